#!/usr/bin/env bash
# test.sh: on a fresh Debian 12 machine, set up, build with -Werror and run the whole test
# suite (make check: unit tests, MPI tests on 1, 2 and 4 ranks, the bad-spec corpus), then
# make distcheck (the tarball builds out of tree and passes the same suite).
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
echo "test.sh: make check and make distcheck passed in $(( $(date +%s) - start ))s"
