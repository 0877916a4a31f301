# gossip_moments.sh: optimizer.gossip_moments mixes Adam's m and v with the parameters.
# Oracle: the same run with local moments. After one step (stopped there by a test SIGTERM,
# so both checkpoints hold the state after step 0's communication) the parameters are the
# same bits in both runs (moments only act from the next update on), and the gossiped
# run's moments are the ring mixing W m (W: 1/3 on i-1, i, i+1) of the local run's moments.
# Then: layout invariance with gossiped moments, exact averages of the moments under
# all-reduce, and a spec without moments refused.
. "$top_srcdir/tests/lib.sh"

spec() { # spec NAME MODE GOSSIP_MOMENTS
    cat > "$work/$1.json" <<EOF
{
  "name": "moments", "seed": 11, "workers": 6,
  "data": {"train_subset": 768, "test_subset": 120},
  "model": {"kind": "mlp", "hidden": [24]},
  "optimizer": {"kind": "adam", "weight_decay": 0, "gossip_moments": $3},
  "schedule": {"epochs": 2, "local_batch": 16, "lr": 0.01, "scaling": "none", "kind": "cosine"},
  "topology": {"kind": "ring"},
  "communication": {"mode": "$2"},
  "checkpoint": {"keep": true}
}
EOF
}
spec local gossip false
spec mixed gossip true
spec allreduce allreduce true

for name in local mixed allreduce; do
    CCDL_TEST_SIGNAL="TERM@0" mpirun 2 "$CCDL" run "$work/$name.json" --quiet \
        --out "$work/$name-1.h5" 2> "$work/$name.err"
    check "$name: stopped after step 0 (exit 3)" test $? -eq 3
done

"$PYTHON" - "$work/local-1.ckpt.h5" "$work/mixed-1.ckpt.h5" "$work/allreduce-1.ckpt.h5" <<'PY' \
    && pass "gossiped moments are W m of the local ones, parameters the same bits, all-reduce averages them" \
    || fail "moment mixing oracle"
import sys
import h5py
import numpy as np
local, mixed, allred = (h5py.File(p, "r")["workers"] for p in sys.argv[1:4])
n = local["params"].shape[0]
W = np.zeros((n, n))
for i in range(n):
    for j in (i - 1, i, i + 1):
        W[i, j % n] = 1.0 / 3.0
assert np.array_equal(local["params"][...], mixed["params"][...]), "parameters differ after step 0"
for name in ("adam_m", "adam_v"):
    lm = local[name][...].astype(np.float64)
    mm = mixed[name][...].astype(np.float64)
    # the local moments differ between workers, so mixing is visible
    assert np.abs(lm - lm.mean(axis=0)).max() > 1e-3 * np.abs(lm).max(), name + " rows equal"
    want = W @ lm
    err = np.abs(mm - want).max()
    # float32 sums of three terms against a float64 oracle: a few ulps of the largest entry
    assert err <= 1e-6 * np.abs(want).max(), "%s: off by %g" % (name, err)
    assert np.abs(mm - lm).max() > 1e-3 * np.abs(lm).max(), name + " not mixed"
    a = allred[name][...]
    assert np.abs(a - a[0]).max() <= 1e-6 * np.abs(a).max(), name + " not averaged by all-reduce"
print("max |W m|:", np.abs(W @ local["adam_m"][...]).max())
PY

# the whole run with gossiped moments: the same bits on 1, 2 and 3 ranks
for p in 1 2 3; do
    rm -f "$work/mixed-p$p.ckpt.h5"
    mpirun "$p" "$CCDL" run "$work/mixed.json" --quiet --out "$work/mixed-p$p.h5" ||
        fail "mixed on $p rank(s)"
done
check "gossiped moments: the trace on 2 ranks is the one on 1" \
    "$PYTHON" "$top_srcdir/tests/compare_traces.py" "$work/mixed-p1.h5" "$work/mixed-p2.h5"
check "gossiped moments: the trace on 3 ranks is the one on 1" \
    "$PYTHON" "$top_srcdir/tests/compare_traces.py" "$work/mixed-p1.h5" "$work/mixed-p3.h5"
mpirun 1 "$CCDL" run "$work/local.json" --quiet --out "$work/local-full.h5" || fail "local run"
check "gossiped and local moments give different runs" \
    sh -c "! '$PYTHON' '$top_srcdir/tests/compare_traces.py' '$work/local-full.h5' '$work/mixed-p1.h5' > /dev/null 2>&1"

# nothing to gossip: refused in one line on every rank count
sed -e 's/"kind": "adam"/"kind": "sgd", "momentum": 0/' "$work/mixed.json" > "$work/nomoments.json"
for p in 1 2; do
    timeout 60 "$MPIEXEC" $MPIEXEC_FLAGS -n "$p" "$CCDL" run "$work/nomoments.json" \
        --out "$work/nomoments.h5" 2> "$work/err" > /dev/null
    code=$?
    check "sgd without momentum and gossip_moments refused on $p rank(s): $(cat "$work/err")" \
        sh -c "test $code -eq 2 && test \$(wc -l < '$work/err') -eq 1 && grep -q 'optimizer.gossip_moments' '$work/err'"
done
finish
