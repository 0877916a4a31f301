#!/usr/bin/env bash
# run.sh: the two mini grids of README.md (sweeps/mini/table9.json and table13.json, 15 runs
# each, one after another on one rank: ~3.5 min each here), then their tables, paired
# differences and modeled-time tables. Outputs land beside this script; the traces go to
# RUNS (default runs/ here, not committed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
RUNS=${RUNS:-$here/runs}
sweep() { /usr/bin/python3 "$top/tools/ccdl-sweep" "$@"; }
analyze() { /usr/bin/python3 "$top/analysis/ccdl-analyze" "$@"; }
for t in table9 table13; do
    [ -f "$RUNS/$t/manifest.json" ] || sweep expand "$top/sweeps/mini/$t.json" --out "$RUNS/$t" --ccdl "$top/ccdl"
    sweep local "$RUNS/$t" --ccdl "$top/ccdl"
    sweep status "$RUNS/$t"
    cp "$RUNS/$t/manifest.json" "$here/$t-manifest.json"
done
# the netbench profile of this machine (2 ranks, shared memory)
mpiexec -n 2 "$top/ccdl" netbench --json > "$here/netbench.json"
nets="--network ethernet-1g,infiniband-hdr --netbench $here/netbench.json"
analyze table "$RUNS/table9" --metrics test_acc,train_loss,rounds_p1,max_xi_p1,gb_sent --out "$here/table9"
analyze table "$RUNS/table9" --metrics test_acc,train_loss,gb_sent \
    --diff-vs 'phases=[allreduce,allreduce,allreduce]' --out "$here/table9-diff"
analyze cost "$RUNS/table9" $nets --diff-vs 'phases=[allreduce,allreduce,allreduce]' --out "$here/table9-cost"
analyze table "$RUNS/table13" --metrics test_acc,train_loss,gb_sent,messages --out "$here/table13"
analyze table "$RUNS/table13" --metrics test_acc,train_loss,gb_sent --diff-vs mode=allreduce --out "$here/table13-diff"
analyze cost "$RUNS/table13" $nets --out "$here/table13-cost"
