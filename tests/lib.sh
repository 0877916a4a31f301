# lib.sh: shared by the test scripts (sourced). Each script gets a fresh scratch directory.
set -u
: "${MPIEXEC:=mpiexec}" "${MPIEXEC_FLAGS:=}" "${PYTHON:=/usr/bin/python3}" "${CCDL:=./ccdl}" "${top_srcdir:=.}"
: "${HYDRA_LAUNCHER:=fork}"
export HYDRA_LAUNCHER OMP_NUM_THREADS=1
name=$(basename "$0" .sh)
work="${top_builddir:-.}/tests/tmp/$name"
rm -rf "$work" && mkdir -p "$work"
specs="$top_srcdir/tests/specs"
failures=0
passes=0

pass() { passes=$((passes + 1)); echo "ok: $*"; }
fail() { failures=$((failures + 1)); echo "FAIL: $*"; }
# check DESCRIPTION COMMAND...: passes when the command exits 0
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
finish() {
    echo "$passes passed, $failures failed"
    [ "$failures" -eq 0 ]
}
# mpirun P ARGS...: run ccdl-style commands on P ranks
mpirun() { local p=$1; shift; "$MPIEXEC" $MPIEXEC_FLAGS -n "$p" "$@"; }
# h5attr FILE NAME: print a root attribute
h5attr() { "$PYTHON" -c 'import h5py,sys; v=h5py.File(sys.argv[1],"r").attrs[sys.argv[2]]; print(v.decode() if isinstance(v,bytes) else v)' "$1" "$2"; }
