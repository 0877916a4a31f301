# ccdl_deps.m4: how configure finds a dependency that may live in a prefix of its own
# (a Spack view, a `module load`, a copy in $HOME), the way autotools users expect.

# CCDL_WITH_PREFIX(NAME, VAR, LIBS)
# Declares --with-NAME=PREFIX and the precious variables VAR_CFLAGS / VAR_LIBS. Given a
# PREFIX, VAR_CFLAGS becomes -IPREFIX/include and VAR_LIBS -LPREFIX/lib(64) LIBS with an
# rpath, so the binary keeps working after the module is unloaded. Sets ccdl_NAME_prefix
# to the PREFIX, or empty when none was given (then the caller searches: pkg-config, or
# plain CPPFLAGS / LDFLAGS).
AC_DEFUN([CCDL_WITH_PREFIX], [
AC_ARG_VAR([$2][_CFLAGS], [C compiler flags for $1, overriding the search])
AC_ARG_VAR([$2][_LIBS], [linker flags for $1, overriding the search])
AC_ARG_WITH([$1],
  [AS_HELP_STRING([--with-$1=PREFIX], [use $1 installed under PREFIX (PREFIX/include, PREFIX/lib)])],
  [], [with_$1=])
ccdl_$1_prefix=
AS_CASE([$with_$1],
  [""|yes], [],
  [no], [AC_MSG_ERROR([--without-$1: ccdl cannot be built without $1])],
  [AS_IF([test -d "$with_$1/include"], [],
         [AC_MSG_ERROR([--with-$1=$with_$1: no directory $with_$1/include])])
   ccdl_$1_prefix=$with_$1
   ccdl_libdir="$with_$1/lib"
   AS_IF([test ! -d "$ccdl_libdir" && test -d "$with_$1/lib64"], [ccdl_libdir="$with_$1/lib64"])
   $2_CFLAGS="-I$with_$1/include"
   $2_LIBS="-L$ccdl_libdir -Wl,-rpath,$ccdl_libdir $3"])
])

# CCDL_TRY_FLAGS(VAR, PROLOGUE, BODY, ACTION-IF-OK, ACTION-IF-NOT)
# Links a test program with VAR_CFLAGS and VAR_LIBS added to the current flags.
AC_DEFUN([CCDL_TRY_FLAGS], [
ccdl_save_CFLAGS=$CFLAGS; ccdl_save_LIBS=$LIBS
CFLAGS="$$1_CFLAGS $CFLAGS"; LIBS="$$1_LIBS $LIBS"
AC_LINK_IFELSE([AC_LANG_PROGRAM([$2], [$3])], [$4], [$5])
CFLAGS=$ccdl_save_CFLAGS; LIBS=$ccdl_save_LIBS
])
