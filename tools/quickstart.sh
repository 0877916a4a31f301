#!/usr/bin/env bash
# quickstart.sh: on a fresh Debian 12 machine, set up, build and run the default experiment
# (examples/quickstart.json: 8 workers on a ring, Fashion-MNIST) on 2 MPI ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
ranks=${RANKS:-2}
echo "quickstart: mpiexec -n $ranks ./ccdl run examples/quickstart.json"
mpiexec -n "$ranks" ./ccdl run examples/quickstart.json
echo "quickstart: trace written to quickstart.h5 (see docs/trace.md)"
