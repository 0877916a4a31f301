#!/usr/bin/env bash
# test.sh: on a fresh Debian 12 machine, set up, build with -Werror and run the whole test
# suite (make check: unit tests, MPI tests on 1, 2 and 4 ranks, the bad-spec corpus), then
# make distcheck (the tarball builds out of tree, passes the same suite, installs, and passes
# make installcheck from the prefix), then the fault tests again under ASan + UBSan
# (./configure --enable-sanitizers), then a cluster-style build against Open MPI with
# dependencies from prefixes and its MPI tests (tools/site-build.sh, docs/install.md).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash tools/build.sh --enable-werror
status=0
make -j"$(nproc)" check > check.log 2>&1 || status=$?
grep -E '^(PASS|FAIL|SKIP|ERROR|XPASS):' check.log
passed=$(sed -n 's/^# PASS: *//p' check.log) failed=$(sed -n 's/^# FAIL: *//p' check.log)
errors=$(sed -n 's/^# ERROR: *//p' check.log) skipped=$(sed -n 's/^# SKIP: *//p' check.log)
echo "make check: ${passed:-0} passed, $(( ${failed:-0} + ${errors:-0} )) failed, ${skipped:-0} skipped"
if [ "$status" -ne 0 ]; then
    for log in tests/*.log; do grep -q '^FAIL\|^ERROR' "$log" && { echo "== $log"; tail -n 40 "$log"; }; done
    exit 1
fi
# the Slurm tests (3 minutes) ran in make check above; the tarball's copy skips them
CCDL_SKIP_SLURM=1 make -j"$(nproc)" distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror > distcheck.log 2>&1 ||
    { tail -n 80 distcheck.log; exit 1; }
# ASan + UBSan: the unit tests, the bad-spec corpus, the spec fuzz test and the other fault
# tests of the binary, built from the tarball distcheck just made (leak reports off: MPI
# and HDF5 keep allocations until exit)
san_start=$(date +%s)
rm -rf build-sanitizers && mkdir build-sanitizers
tar -xzf ccdl-*.tar.gz -C build-sanitizers --strip-components=1
san_tests="tests/test_rng tests/test_spec tests/test_topology tests/test_data tests/test_optim
  tests/test_model tests/test_trace tests/test_text tests/test_bleu tests/test_tlayers
  tests/test_transformer tests/test_slowmo tests/traffic.sh tests/bad_specs.sh tests/spec_fuzz.sh tests/cli.sh
  tests/diverged.sh tests/disk_full.sh"
(cd build-sanitizers && ./configure --enable-sanitizers > configure.log 2>&1 &&
    ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
        make -j"$(nproc)" check TESTS="$(echo $san_tests)" > check.log 2>&1) ||
    { grep -E '^(FAIL|ERROR)' build-sanitizers/check.log; tail -n 60 build-sanitizers/tests/*.log; exit 1; }
grep -E '^(PASS|FAIL|SKIP|ERROR):' build-sanitizers/check.log | sed 's/^/sanitizers: /'
echo "test.sh: sanitizer tests passed in $(( $(date +%s) - san_start ))s"
site_start=$(date +%s)
bash tools/site-build.sh ccdl-*.tar.gz build-site "$PWD/ccdl" > site-build.log 2>&1 ||
    { cat site-build.log; exit 1; }
grep -E '^(ok|FAIL|open-mpi):' site-build.log | sed 's/^/site-build: /'
echo "test.sh: Open MPI site build and its tests passed in $(( $(date +%s) - site_start ))s"
echo "test.sh: make check, make distcheck, the sanitizer tests and the Open MPI build passed in $(( $(date +%s) - start ))s"
