#!/usr/bin/env bash
# site-build.sh TARBALL DIR [MPICH_CCDL]: build ccdl from TARBALL in DIR the way a cluster without root
# would (docs/install.md), and run its MPI tests there:
#   - Open MPI (CC=mpicc.openmpi) and its parallel HDF5 through --with-hdf5=PREFIX;
#   - oneDNN and jansson copied to a prefix of their own, through --with-dnnl/--with-jansson,
#     with the system copies hidden from compiler, linker and pkg-config (overlays in a
#     private mount namespace);
#   - gossip digests and the bitwise layout test on 1, 2 and 4 ranks;
#   - with MPICH_CCDL (the MPICH build), the same specs give bitwise the same traces under
#     both MPIs;
# and checks that a serial HDF5 given by --with-hdf5 is refused in one line.
# Needs root (unshare -m) and the packages tools/setup.sh installs. Debian 12 paths.
set -euo pipefail
tarball=$(realpath "$1") dir=$2 mpich_ccdl=${3:-}
cross_specs="tiny-ring tiny-resnet"
multiarch=/usr/lib/x86_64-linux-gnu
prefix=/tmp/ccdl-prefix   # the "module" of oneDNN and jansson
start=$(date +%s)

if [ "${CCDL_SITE_NAMESPACE:-}" != 1 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "site-build: needs root (a private mount namespace)" >&2; exit 1; }
    rm -rf "$prefix" && mkdir -p "$prefix/include/oneapi" "$prefix/lib"
    cp -a /usr/include/oneapi/dnnl "$prefix/include/oneapi/"
    cp -a /usr/include/jansson.h /usr/include/jansson_config.h "$prefix/include/"
    cp -a "$multiarch"/libdnnl.so* "$multiarch"/libjansson.so* "$prefix/lib/"
    if [ -n "$mpich_ccdl" ]; then  # before the system oneDNN is hidden: this build needs it
        mkdir -p "$prefix/mpich"
        for spec in $cross_specs; do
            OMP_NUM_THREADS=1 HYDRA_LAUNCHER=fork mpiexec.mpich -n 2 "$mpich_ccdl" run \
                "$(dirname "$0")/../tests/specs/$spec.json" --quiet --out "$prefix/mpich/$spec.h5"
        done
    fi
    exec unshare --mount --propagation private env CCDL_SITE_NAMESPACE=1 bash "$0" "$@"
fi

# ---- inside the namespace: hide the system oneDNN and jansson. Overlays on /usr/include and
# the library directory, with the files deleted in the overlay only: the compiler, the
# linker's -l search, pkg-config and the loader no longer see them. (The loader keeps
# libjansson.so.4: GNU ld itself needs it.)
scratch=$(mktemp -d)
for d in /usr/include "$multiarch"; do
    key=$(echo "$d" | tr / _)
    mkdir -p "$scratch/$key/upper" "$scratch/$key/work"
    mount -t overlay overlay -o "lowerdir=$d,upperdir=$scratch/$key/upper,workdir=$scratch/$key/work" "$d"
done
rm -rf /usr/include/oneapi /usr/include/dnnl*.h /usr/include/jansson.h /usr/include/jansson_config.h
rm -f "$multiarch"/libdnnl.so* "$multiarch"/libjansson.so "$multiarch"/libjansson.a "$multiarch/pkgconfig/jansson.pc"
failures=0
hidden() { ! echo "#include <$1>" | gcc -E -x c - > /dev/null 2>&1 &&
    ! echo 'int main(void) { return 0; }' | gcc -x c - -o "$scratch/a.out" "-l$2" > /dev/null 2>&1 &&
    ! pkg-config --exists "$2"; }
for lib in dnnl:oneapi/dnnl/dnnl.h jansson:jansson.h; do
    if hidden "${lib#*:}" "${lib%%:*}"; then echo "ok: system ${lib%%:*} hidden (header, -l${lib%%:*}, pkg-config)"
    else echo "FAIL: system ${lib%%:*} still visible"; failures=$((failures + 1)); fi
done

rm -rf "$dir" && mkdir -p "$dir"
tar -xzf "$tarball" -C "$dir" --strip-components=1
cd "$dir"
# 1. a serial HDF5 is refused, in one line
if ./configure CC=mpicc.mpich --with-hdf5="$multiarch/hdf5/serial" --with-dnnl="$prefix" \
        --with-jansson="$prefix" > configure-serial.log 2> configure-serial.err; then
    echo "FAIL: configure accepted a serial HDF5"; failures=$((failures + 1))
elif [ "$(wc -l < configure-serial.err)" -eq 1 ] && grep -q 'serial build' configure-serial.err; then
    echo "ok: serial HDF5 refused: $(cat configure-serial.err)"
else
    echo "FAIL: serial HDF5 refusal is not one line naming it:"; cat configure-serial.err; failures=$((failures + 1))
fi
# 2. Open MPI, everything from prefixes
./configure CC=mpicc.openmpi --enable-werror --with-hdf5="$multiarch/hdf5/openmpi" \
    --with-dnnl="$prefix" --with-jansson="$prefix" > configure.log 2>&1 ||
    { tail -n 20 configure.log; exit 1; }
grep -E '^(MPI_FLAVOR|MPIEXEC|MPIEXEC_FLAGS|HDF5_LIBS|DNNL_LIBS|JANSSON_LIBS) =' Makefile | sed 's/^/site-build: /'
make -j"$(nproc)" ccdl tests/test_gossip > make.log 2>&1 || { tail -n 30 make.log; exit 1; }
for lib in libdnnl libjansson; do
    if ldd ./ccdl | grep "$lib" | grep -q "$prefix/lib"; then echo "ok: ccdl loads $lib from $prefix"
    else echo "FAIL: ccdl does not load $lib from $prefix:"; ldd ./ccdl | grep "$lib"; failures=$((failures + 1)); fi
done
if ldd ./ccdl | grep -q 'libmpi\.so'; then echo "ok: ccdl links Open MPI ($(ldd ./ccdl | grep -o 'libmpi\.so[^ ]*' | head -n 1))"
else echo "FAIL: ccdl does not link Open MPI"; failures=$((failures + 1)); fi
make check TESTS="tests/mpi_gossip.sh tests/layout_identical.sh" check_PROGRAMS=tests/test_gossip \
    > check.log 2>&1 || { failures=$((failures + 1)); tail -n 40 tests/*.log; }
grep -E '^(PASS|FAIL|ERROR|SKIP):' check.log | sed 's/^/open-mpi: /'
for spec in $cross_specs; do
    [ -f "$prefix/mpich/$spec.h5" ] || continue
    OMP_NUM_THREADS=1 /usr/bin/mpiexec.openmpi --oversubscribe --allow-run-as-root -n 2 ./ccdl run \
        "tests/specs/$spec.json" --quiet --out "$spec-openmpi.h5" &&
        /usr/bin/python3 tests/compare_traces.py "$prefix/mpich/$spec.h5" "$spec-openmpi.h5" &&
        echo "ok: $spec on 2 ranks: Open MPI and MPICH traces bitwise identical" ||
        { echo "FAIL: $spec differs between Open MPI and MPICH"; failures=$((failures + 1)); }
done
echo "site-build: $failures failed, $(( $(date +%s) - start ))s"
[ "$failures" -eq 0 ]
