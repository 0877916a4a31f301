#!/usr/bin/env bash
# run.sh: the benchmarks `make bench` prints (figures, not pass/fail).
set -u
cd "$(dirname "$0")/.." || exit 1
export OMP_NUM_THREADS=1 HYDRA_LAUNCHER=fork
echo "== gossip: ring, n = 16, 270k floats (ResNet-20 size)"
for p in 1 2; do mpiexec -n "$p" bench/bench_gossip 16 270000 50; done
