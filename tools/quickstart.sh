#!/usr/bin/env bash
# quickstart.sh: on a fresh Debian 12 machine, set up, build and run the default experiment
# (examples/quickstart.json: 8 workers on a ring, Fashion-MNIST) on 2 MPI ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
ranks=${RANKS:-2}
# --resume: a second quickstart continues a stopped run and leaves a completed trace as it
# is (ccdl never overwrites a finished result; add --force to train again over it)
echo "quickstart: mpiexec -n $ranks ./ccdl run examples/quickstart.json --resume"
mpiexec -n "$ranks" ./ccdl run examples/quickstart.json --resume
echo "quickstart: trace in quickstart.h5 (see docs/trace.md)"
