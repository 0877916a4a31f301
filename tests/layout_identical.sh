# layout_identical.sh: the same spec and seed give bitwise-identical traces (every column but
# wall-clock times) with 4 workers on 1, 2 and 4 ranks: All-Reduce, every topology kind,
# controlled gossip (exact metric with a constant target, estimate metric with an adaptive
# one), whose round counts depend on every bit of Xi and Theta; ResNet-20 with batch-norm
# state and augmentation; Adam with a Dirichlet split and a cosine schedule.
. "$(dirname "$0")/lib.sh"
base="$specs/tiny-ring.json"
variant() { # NAME SED-EXPRESSION...
    local name=$1; shift
    sed -e "s/\"name\": \"tiny-ring\"/\"name\": \"$name\"/" "$@" "$base" > "$work/$name.json"
    names="$names $name"
}
names=""
variant allreduce -e 's/"mode": "gossip"/"mode": "allreduce"/'
for kind in complete ring torus exponential one_peer_exponential bipartite_exponential random_matching; do
    variant "$kind" -e "s/\"kind\": \"ring\"/\"kind\": \"$kind\"/"
done
variant controlled-exact -e 's/"mode": "gossip"/"mode": "controlled", "control": {"value": 0.02, "max_rounds": 20}/'
variant controlled-adaptive -e 's/"kind": "ring"/"kind": "random_matching"/' \
    -e 's/"mode": "gossip"/"mode": "controlled", "control": {"metric": "estimate", "target": "adaptive", "factor": 0.001}/'
for extra in tiny-resnet tiny-adam-dirichlet; do
    cp "$specs/$extra.json" "$work/$extra.json"
    names="$names $extra"
done
for name in $names; do
    for p in 1 2 4; do
        mpirun "$p" "$CCDL" run "$work/$name.json" --quiet --out "$work/$name-p$p.h5" ||
            fail "$name on $p ranks exited $?"
    done
    for p in 2 4; do
        check "$name: 1 rank vs $p ranks bitwise identical" \
            "$PYTHON" "$top_srcdir/tests/compare_traces.py" "$work/$name-p1.h5" "$work/$name-p$p.h5"
    done
done
# the controlled runs did take extra rounds, so the comparison covered the control loop
"$PYTHON" - "$work" <<'PY' && pass "controlled runs took extra rounds" || fail "controlled runs took no extra rounds"
import sys, h5py
for name in ("controlled-exact", "controlled-adaptive"):
    r = h5py.File(f"{sys.argv[1]}/{name}-p1.h5")["steps/rounds"][:]
    print(name, "rounds per step: max", r.max(), "mean", r.mean())
    if r.max() < 2: sys.exit(1)
PY
# the comparison itself must be able to fail: a different seed differs
sed 's/"seed": 7/"seed": 8/' "$base" > "$work/seed8.json"
"$CCDL" run "$work/seed8.json" --quiet --out "$work/seed8.h5"
check "a different seed is reported as different" \
    sh -c "! '$PYTHON' '$top_srcdir/tests/compare_traces.py' '$work/ring-p1.h5' '$work/seed8.h5' >/dev/null"
finish
