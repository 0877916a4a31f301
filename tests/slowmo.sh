# slowmo.sh: SlowMo end to end (the outer step's math is test_slowmo's).
# Oracles: All-Reduce SGD (SlowMo with tau 1, alpha 1, beta 0 over local steps gives its bits,
# on 1 and 2 ranks), the uninterrupted run (stopped by SIGTERM and resumed, bitwise), the
# ring all-reduce's traffic formula on the outer steps, and Xi = 0 right after them.
. "$top_srcdir/tests/lib.sh"
compare="$top_srcdir/tests/compare_traces.py"

spec() { # spec NAME COMMUNICATION
    cat > "$work/$1.json" <<EOF
{
  "name": "slowmo", "seed": 3, "workers": 4,
  "data": {"train_subset": 2048, "test_subset": 200},
  "model": {"kind": "mlp", "hidden": [16]},
  "schedule": {"epochs": 3, "local_batch": 16, "lr": 0.05, "decay_at": [0.5]},
  "topology": {"kind": "ring"},
  "communication": $2
}
EOF
}
spec allreduce '{"mode": "allreduce"}'
spec periodic '{"mode": "local", "local_steps": 1000000, "slowmo": {"tau": 1}}'
spec ring '{"mode": "gossip", "slowmo": {"tau": 5, "alpha": 0.9, "beta": 0.6}}'

"$CCDL" run "$work/allreduce.json" --quiet --out "$work/allreduce.h5" || fail "allreduce run"
for p in 1 2; do
    mpirun $p "$CCDL" run "$work/periodic.json" --quiet --out "$work/periodic-$p.h5" || fail "periodic run on $p"
    "$PYTHON" - "$work/allreduce.h5" "$work/periodic-$p.h5" <<'PY' \
        && pass "tau 1, alpha 1, beta 0 over local steps = All-Reduce SGD, bitwise ($p ranks)" \
        || fail "SlowMo(1, 1, 0) differs from All-Reduce ($p ranks)"
import sys
import h5py
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
for group in ("steps", "epochs", "phases"):
    for col in a[group]:
        if a[group][col].attrs.get("wallclock", 0) or col == "policy":
            continue
        x, y = a[group][col][...], b[group][col][...]
        assert x.tobytes() == y.tobytes(), f"{group}/{col} differs"
assert (b["steps/policy"][...] == 2).all() and (b["steps/rounds"][...] == 0).all()
PY
done

# ring with SlowMo: stopped twice and resumed equals the uninterrupted run
mpirun 2 "$CCDL" run "$work/ring.json" --quiet --out "$work/ring-ref.h5" || fail "ring reference run"
CCDL_TEST_SIGNAL="TERM@7" mpirun 2 "$CCDL" run "$work/ring.json" --quiet --out "$work/ring2.h5" 2> /dev/null
check "stopped at step 7 (exit 3)" test $? -eq 3
CCDL_TEST_SIGNAL="TERM@41" "$CCDL" run "$work/ring.json" --quiet --resume --out "$work/ring2.h5" 2> /dev/null
check "stopped again at step 41 on 1 rank (exit 3)" test $? -eq 3
mpirun 2 "$CCDL" run "$work/ring.json" --quiet --resume --out "$work/ring2.h5" || fail "final resume"
check "SlowMo stopped and resumed twice = uninterrupted, bitwise" \
    "$PYTHON" "$compare" "$work/ring-ref.h5" "$work/ring2.h5"

"$PYTHON" - "$work/ring-ref.h5" <<'PY' && pass "outer steps: Xi 0, ring all-reduce bytes on top of the gossip round" \
    || fail "SlowMo outer steps"
import sys
import h5py
import numpy as np
s = h5py.File(sys.argv[1], "r")["steps"]
n, d = 4, 784 * 16 + 16 + 16 * 10 + 10
step, xi, sent = s["step"][...], s["xi"][...], s["bytes_max"][...]
outer = (step + 1) % 5 == 0
gossip = 2 * d * 4  # one ring round: two neighbours
allreduce = 2 * (n - 1) / n * d * 4
assert outer.sum() >= 10
assert (xi[outer] == 0).all() and (xi[~outer] > 0).all(), "Xi after the outer steps"
assert np.array_equal(sent[~outer], np.full((~outer).sum(), gossip)), "gossip steps' bytes"
assert np.allclose(sent[outer], gossip + allreduce, rtol=1e-12, atol=0), "outer steps' bytes"
PY

# bad values are refused in one line naming the key, on 1 and 2 ranks
spec bad '{"mode": "gossip", "slowmo": {"tau": 2, "beta": 1.0}}'
for p in 1 2; do
    timeout 60 "$MPIEXEC" $MPIEXEC_FLAGS -n $p "$CCDL" run "$work/bad.json" --quiet --out "$work/bad.h5" 2> "$work/bad.err"
    rc=$?
    check "beta 1 refused on $p ranks: exit 2, one line naming communication.slowmo.beta" \
        eval "[ $rc -eq 2 ] && [ \$(wc -l < '$work/bad.err') -eq 1 ] && grep -q 'communication.slowmo.beta' '$work/bad.err'"
done
finish
