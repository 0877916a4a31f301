#!/usr/bin/env bash
# build.sh [CONFIGURE_ARGS...]: set up packages, then configure (once) and build ccdl in
# the source tree. Extra arguments go to ./configure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
[ -x configure ] || autoreconf -fi
if [ ! -f Makefile ] || [ $# -gt 0 ]; then ./configure "$@"; fi
make -j"$(nproc)"
