# traffic.sh: the communication accounting of /steps and /phases (bytes_*, messages_*).
# Oracle: each topology's neighbour sets written out here from its definition (NOTES.md
# section 3), not from ccdl's topology code: a gossip round sends degree x d x 4 bytes per
# worker; an exact average is a ring all-reduce, 2(n-1)/n x d x 4 bytes in 2(n-1) messages;
# consensus control adds its metric's reductions per round; gossiped moments multiply the
# vectors; /phases sums /steps; and the columns do not depend on the rank layout.
. "$top_srcdir/tests/lib.sh"
compare="$top_srcdir/tests/compare_traces.py"

spec() { # spec NAME TOPOLOGY COMMUNICATION [OPTIMIZER]
    cat > "$work/$1.json" <<EOF
{
  "name": "$1", "seed": 5, "workers": 16,
  "data": {"train_subset": 4096, "test_subset": 100},
  "model": {"kind": "mlp", "hidden": [8]},
  "optimizer": ${4:-{\}},
  "schedule": {"epochs": 1, "local_batch": 16, "lr": 0.05, "decay_at": [0.5]},
  "topology": {"kind": "$2"},
  "communication": $3
}
EOF
}
kinds="complete ring torus exponential one_peer_exponential bipartite_exponential random_matching"
for k in $kinds; do spec "$k" "$k" '{"mode": "gossip"}'; done
spec allreduce ring '{"mode": "allreduce"}'
spec local ring '{"mode": "local", "local_steps": 3}'
spec exact ring '{"mode": "controlled", "control": {"metric": "exact", "value": 0.02, "max_rounds": 4}}'
spec estimate exponential '{"mode": "controlled", "control": {"metric": "estimate", "value": 0.01, "max_rounds": 4}}'
spec moments ring '{"mode": "gossip"}' '{"kind": "adam", "gossip_moments": true}'
spec slowmo_allreduce ring '{"mode": "allreduce", "slowmo": {"tau": 2, "beta": 0.5}}'
spec guideline ring '{"phases": ["controlled", "allreduce"], "control": {"metric": "estimate", "target": "adaptive", "factor": 0.001, "max_rounds": 3}}'

runs="$kinds allreduce slowmo_allreduce local exact estimate moments guideline"
for r in $runs; do
    "$CCDL" run "$work/$r.json" --quiet --out "$work/$r.h5" || fail "run $r"
done

"$PYTHON" - "$work" $runs <<'PY' \
    && pass "bytes and messages per step for 7 topologies, all-reduce, local, control (exact, estimate, adaptive), gossiped moments, SlowMo over All-Reduce; /phases sums" \
    || fail "traffic oracle"
import os
import sys

import h5py
import numpy as np

work, runs = sys.argv[1], sys.argv[2:]
n, d = 16, 784 * 8 + 8 + 8 * 10 + 10
F, S = 4.0, 8.0  # bytes of a float parameter, of a double scalar
ring_allreduce = 2 * (n - 1) / n  # bytes per byte of vector, per worker
allreduce_messages = 2 * (n - 1)
scalar_messages = 4  # a scalar reduction: recursive doubling, log2(16) exchanges


def neighbours(kind, rnd, i, partner=None):
    """Worker i's neighbours at gossip round rnd, from the topology's definition."""
    if kind == "complete":
        s = set(range(n))
    elif kind == "ring":
        s = {(i + 1) % n, (i - 1) % n}
    elif kind == "torus":  # 4 x 4
        a, b = divmod(i, 4)
        s = {((a + 1) % 4) * 4 + b, ((a - 1) % 4) * 4 + b, a * 4 + (b + 1) % 4, a * 4 + (b - 1) % 4}
    elif kind == "exponential":
        s = {(i + h) % n for h in (1, 2, 4, 8)} | {(i - h) % n for h in (1, 2, 4, 8)}
    elif kind == "one_peer_exponential":  # hops 1, 2, 4, 8 in turn
        h = 2 ** (rnd % 4)
        s = {(i + h) % n, (i - h) % n}
    elif kind == "bipartite_exponential":  # offsets 2^k - 1, k = 1..4 in turn
        off = 2 ** (1 + rnd % 4) - 1
        s = {(i + off) % n if i % 2 == 0 else (i - off) % n}
    elif kind == "random_matching":  # a perfect matching: one partner each (n even)
        s = {partner}
    s.discard(i)
    return s


def expect_gossip_round(kind, rnd):
    deg = np.array([len(neighbours(kind, rnd, i, partner=-1)) for i in range(n)])
    return deg.mean(), deg.max()


checked = 0
for r in runs:
    f = h5py.File(os.path.join(work, r + ".h5"), "r")
    st, ph = f["steps"], f["phases"]
    steps = len(st["step"])
    assert steps == 16, (r, steps)
    bm, bx = st["bytes_mean"][...], st["bytes_max"][...]
    mm, mx = st["messages_mean"][...], st["messages_max"][...]
    rounds = st["rounds"][...]
    want = np.zeros((steps, 4))  # bytes_mean, bytes_max, messages_mean, messages_max
    rnd = 0
    for t in range(steps):
        if r in ("complete", "ring", "torus", "exponential", "one_peer_exponential",
                 "bipartite_exponential", "random_matching", "moments"):
            kind = "ring" if r == "moments" else r
            vectors = 3 if r == "moments" else 1  # parameters, adam m and v
            mean, most = expect_gossip_round(kind, t)
            want[t] = [mean * d * F * vectors, most * d * F * vectors, mean * vectors, most * vectors]
        elif r in ("allreduce", "slowmo_allreduce"):  # SlowMo does not average twice
            b = ring_allreduce * d * F
            want[t] = [b, b, allreduce_messages, allreduce_messages]
        elif r == "local":
            if (t + 1) % 3 == 0:
                want[t] = [2 * d * F, 2 * d * F, 2, 2]
        elif r == "exact":  # per round: the ring round, Xi's model average and its scalar sum
            per = 2 * d * F + ring_allreduce * d * F + scalar_messages * S
            m = rounds[t] * (2 + allreduce_messages + scalar_messages)
            want[t] = [rounds[t] * per, rounds[t] * per, m, m]
        elif r == "estimate":  # per round: the exponential graph's round and Theta's scalar sum
            per = 7 * d * F + scalar_messages * S
            m = rounds[t] * (7 + scalar_messages)
            want[t] = [rounds[t] * per, rounds[t] * per, m, m]
        elif r == "guideline":  # phase 1 controlled on an adaptive target (one scalar sum)
            if st["phase"][t] == 1:
                per = 2 * d * F + scalar_messages * S
                b = rounds[t] * per + scalar_messages * S
                m = rounds[t] * (2 + scalar_messages) + scalar_messages
                want[t] = [b, b, m, m]
            else:
                b = ring_allreduce * d * F
                want[t] = [b, b, allreduce_messages, allreduce_messages]
    got = np.stack([bm, bx, mm, mx], axis=1)
    assert np.allclose(got, want, rtol=1e-12, atol=0), (r, got[:4], want[:4])
    if r in ("exact", "estimate", "guideline"):
        assert rounds.max() > 1, (r, "control never repeated a round: the test is too weak")
    # /phases sums /steps over each phase's steps
    for k, (a, b) in enumerate(zip(ph["start_step"][...], ph["end_step"][...])):
        for col, v in (("bytes_mean", bm), ("bytes_max", bx), ("messages_mean", mm), ("messages_max", mx)):
            assert np.isclose(ph[col][k], v[a:b].sum(), rtol=1e-12, atol=0), (r, col, k)
    checked += 1
print("checked", checked, "runs")
PY

# the accounting models one process per worker: the same on 2 ranks
mpirun 2 "$CCDL" run "$work/exponential.json" --quiet --out "$work/exponential-2.h5" || fail "2-rank run"
check "traffic columns identical on 1 and 2 ranks" "$PYTHON" "$compare" "$work/exponential.h5" "$work/exponential-2.h5"

# a checkpoint of an older ccdl lacks the open phase's traffic sums: the resume continues, and
# that phase's /phases sums are NaN (unknown), never a partial sum; the steps are all there
CCDL_TEST_SIGNAL="TERM@3" "$CCDL" run "$work/ring.json" --quiet --out "$work/old.h5" 2> /dev/null
check "stopped at step 3 (exit 3)" test $? -eq 3
"$PYTHON" -c '
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    for k in ("bytes_mean", "bytes_max", "messages_mean", "messages_max"):
        del f["progress"].attrs["phase.sent." + k]
' "$work/old.ckpt.h5" || fail "editing the checkpoint"
"$CCDL" run "$work/ring.json" --quiet --resume --out "$work/old.h5" || fail "resume from the older checkpoint"
"$PYTHON" - "$work/old.h5" "$work/ring.h5" <<'PY' && pass "older checkpoint: phase 1's sums NaN, phase 2's and every step's right" \
    || fail "resume from an older checkpoint"
import sys
import h5py
import numpy as np
old, ref = (h5py.File(p, "r") for p in sys.argv[1:3])
for col in ("bytes_mean", "bytes_max", "messages_mean", "messages_max"):
    assert np.array_equal(old["steps"][col][...], ref["steps"][col][...]), col
    assert np.isnan(old["phases"][col][0]) and old["phases"][col][1] == ref["phases"][col][1], col
PY
finish
