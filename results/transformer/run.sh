#!/usr/bin/env bash
# run.sh: the transformer runs of results/transformer/README.md, two at a time on a 2-core
# machine (1 rank, 1 thread each; 8 workers per rank). Needs the corpus: 
#   /usr/bin/python3 ../../tools/debian_corpus.py corpus
set -euo pipefail
cd "$(dirname "$0")"
CCDL=${CCDL:-../../ccdl}
export OMP_NUM_THREADS=1
run() { "$CCDL" run "$1.json" --out "$1.h5" --progress 120 2> "$1.log"; }
run de-allreduce & run de-ring & wait
run de-ring-quarter & run de-exponential & wait
run de-ring-moments
