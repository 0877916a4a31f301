#!/usr/bin/env bash
# run.sh: the benchmarks `make bench` prints (figures, not pass/fail).
set -u
# Binaries are taken from the current directory: `make bench` runs this in the build
# directory (a VPATH build has no binaries next to this script).
export OMP_NUM_THREADS=1 HYDRA_LAUNCHER=fork
echo "== gossip: ring, n = 16, 270k floats (ResNet-20 size)"
for p in 1 2; do mpiexec -n "$p" bench/bench_gossip 16 270000 50; done
echo "== model: ResNet-20 memory with 32 workers, training throughput at 1 and 2 threads, sgemm ceiling, cost per image (CIFAR-10 and ImageNet-32 ResNet-20)"
bench/bench_model
echo "== transformer: memory of 16 workers in one rank, training throughput at 1 and 2 threads, sgemm ceiling, cost per token"
bench/bench_transformer
echo "== checkpoint: size, write and read time for 32 ResNet-20 workers on 2 ranks; overhead per epoch of examples/resnet20-fmnist-allreduce.json"
mpiexec -n 2 bench/bench_checkpoint . 5
