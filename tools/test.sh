#!/usr/bin/env bash
# test.sh: on a fresh Debian 12 machine, set up, build with -Werror and run the whole test
# suite (make check: unit tests, MPI tests on 1, 2 and 4 ranks, the bad-spec corpus), then
# make distcheck (the tarball builds out of tree and passes the same suite).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash tools/build.sh --enable-werror
make -j"$(nproc)" check || { cat tests/*.log 2>/dev/null | tail -n 200; exit 1; }
make -j"$(nproc)" distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror > distcheck.log 2>&1 ||
    { tail -n 80 distcheck.log; exit 1; }
echo "test.sh: make check and make distcheck passed in $(( $(date +%s) - start ))s"
