#!/usr/bin/env bash
# run.sh [RUNS]: the tables, figures and the independent check of README.md from the traces of
# sweeps/mini/resnet20.json in RUNS (default /tmp/r20-runs; run through ccdl-sweep submit,
# see README.md "Commands"). Outputs land beside this script; the traces stay in RUNS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
RUNS=${1:-/tmp/r20-runs}
PY=/usr/bin/python3
analyze() { "$PY" "$top/analysis/ccdl-analyze" "$@"; }
"$PY" "$top/tools/ccdl-sweep" status "$RUNS"
cp "$RUNS/manifest.json" "$here/manifest.json"

keys=workers,mode,phases,dec_phase,metric,factor
per_phase=max_xi_p1,max_xi_p2,max_xi_p3,rounds_p1,rounds_p2,rounds_p3
analyze table "$RUNS" --by $keys --metrics test_acc,train_loss,$per_phase,gb_sent,best_acc,wall_s \
    --out "$here/table" > /dev/null
analyze table "$RUNS" --by $keys --metrics test_acc,train_loss,best_acc,gb_sent \
    --diff-vs mode=allreduce --out "$here/diff" > /dev/null
# modeled time: two named networks, and this machine's shared memory measured by netbench
mpiexec -n 2 "$top/ccdl" netbench --json > "$here/netbench.json"
analyze cost "$RUNS" --network ethernet-1g,infiniband-hdr --netbench "$here/netbench.json" \
    --out "$here/cost" > /dev/null

# Figures 1-2 style (seed 1): Xi and target per phase, training loss, test accuracy, rounds
t=$RUNS/traces
rm -rf "$here/figures" && mkdir -p "$here/figures"
fig() { local name=$1; shift; analyze plot "$@" --no-per-run --out "$here/figures/$name" > /dev/null; }
fig ring-vs-n "$t"/ar-n16-s1.h5 "$t"/gossip-n16-exact-const-f1-s1.h5 "$t"/ar-n32-s1.h5 \
    "$t"/gossip-n32-exact-const-f1-s1.h5
for k in 1 2 3; do
    fig dec-phase-$k "$t"/ar-n32-s1.h5 "$t"/ctrl-n32-dec$k-exact-const-f*-s1.h5
done
fig guideline "$t"/ar-n32-s1.h5 "$t"/gossip-n32-exact-const-f1-s1.h5 \
    "$t"/gossip-n32-exact-const-f0.25-s1.h5 "$t"/gossip-n32-est-adapt-f0.3-s1.h5
"$PY" "$here/summarize.py" > "$here/summary.md"
"$PY" "$here/verify.py" "$RUNS" "$top/ccdl"
