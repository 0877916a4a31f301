#!/usr/bin/env bash
# test.sh: on a fresh Debian 12 machine, set up, build with -Werror and run the whole test
# suite (make check: unit tests, MPI tests on 1, 2 and 4 ranks, the bad-spec corpus), then
# make distcheck with the fast unit tests to prove the tarball builds and tests itself.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash tools/build.sh --enable-werror
make -j"$(nproc)" check || { cat tests/*.log 2>/dev/null | tail -n 200; exit 1; }
make distcheck TESTS="tests/test_rng tests/test_spec tests/test_topology tests/test_optim" \
    DISTCHECK_CONFIGURE_FLAGS=--enable-werror > distcheck.log 2>&1 ||
    { tail -n 80 distcheck.log; exit 1; }
echo "test.sh: make check and make distcheck passed in $(( $(date +%s) - start ))s"
