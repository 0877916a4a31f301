# control.sh: consensus control end to end (ring, 16 workers on 2 ranks). Each check reads
# the trace and recomputes what the spec promises from the trace's own columns.
. "$(dirname "$0")/lib.sh"
ref="$specs/control-ref.json"
# variant NAME COMMUNICATION-JSON: the reference spec with another communication block
variant() {
    sed -e "s/\"name\": \"control-ref\"/\"name\": \"$1\"/" \
        -e "s#\"communication\": {\"mode\": \"gossip\"}#\"communication\": $2#" "$ref" > "$work/$1.json"
}
run() { mpirun 2 "$CCDL" run "$work/$1.json" --quiet --out "$work/$1.h5" 2> "$work/$1.err" || fail "$1 exited $?: $(cat "$work/$1.err")"; }
py() { "$PYTHON" - "$work" "$@"; }

variant ref '{"mode": "gossip"}'; run ref
variant exact '{"mode": "controlled", "control": {"factor": 0.5, "reference": "'"$work"'/ref.h5"}}'; run exact
variant estimate '{"mode": "controlled", "control": {"metric": "estimate", "factor": 0.25, "reference": "'"$work"'/ref.h5"}}'; run estimate
variant adaptive '{"mode": "controlled", "control": {"target": "adaptive", "factor": 0.02, "ema": 0.8}}'; run adaptive
variant dec2 '{"mode": "controlled", "dec_phase": 2, "control": {"value": 0.5}}'; run dec2
variant guideline '{"phases": ["controlled", "gossip", "gossip"], "control": {"factor": 0.25, "reference": "'"$work"'/ref.h5"}}'; run guideline
variant local4 '{"mode": "local", "local_steps": 4}'; run local4
variant capped '{"mode": "controlled", "control": {"value": 1e-6, "max_rounds": 3}}'; run capped
variant factor1 '{"mode": "controlled", "control": {"factor": 1}}'; run factor1

py <<'PY' && pass "exact control: Xi <= factor x reference max Xi at every step, rounds traced" || fail "exact control"
import sys, h5py, numpy as np
w = sys.argv[1]
ref, run = h5py.File(f"{w}/ref.h5"), h5py.File(f"{w}/exact.h5")
want = 0.5 * ref["phases/max_xi"][:]
s = run["steps"]
xi, target, rounds, phase = s["xi"][:], s["target"][:], s["rounds"][:], s["phase"][:]
print("targets", run["phases/target"][:], "= 0.5 x", ref["phases/max_xi"][:])
print("rounds per step: max", rounds.max(), "mean", rounds.mean(), "; max Xi/target", np.max(xi / target))
ok = np.array_equal(run["phases/target"][:], want) and np.array_equal(target, want[phase - 1])
ok &= bool(np.all(xi <= target)) and not s["capped"][:].any() and rounds.min() >= 1 and rounds.max() > 1
ok &= bool(np.all(s["policy"][:] == 3)) and run.attrs["completed"] == 1
sys.exit(0 if ok else 1)
PY
py <<'PY' && pass "estimate control: Theta <= target at every step" || fail "estimate control"
import sys, h5py, numpy as np
s = h5py.File(f"{sys.argv[1]}/estimate.h5")["steps"]
theta, target = s["theta"][:], s["target"][:]
print("max Theta/target", np.max(theta / target), "mean rounds", s["rounds"][:].mean())
sys.exit(0 if np.all(theta <= target) and not s["capped"][:].any() and s["rounds"][:].max() > 1 else 1)
PY
py <<'PY' && pass "adaptive target = factor x EMA of the mean gradient norm, reset per phase" || fail "adaptive target"
import sys, h5py, numpy as np
s = h5py.File(f"{sys.argv[1]}/adaptive.h5")["steps"]
g, target, phase, xi = s["grad_norm"][:], s["target"][:], s["phase"][:], s["xi"][:]
want, phi = [], None
for t in range(len(g)):
    phi = g[t] if t == 0 or phase[t] != phase[t - 1] else 0.8 * phi + (1 - 0.8) * g[t]
    want.append(0.02 * phi)
print("max |target - oracle|", np.max(np.abs(target - want)))
sys.exit(0 if np.allclose(target, want, rtol=1e-12, atol=0) and np.all(xi <= target) else 1)
PY
py <<'PY' && pass "dec-phase-2: phases 1 and 3 all-reduce (Xi = 0), phase 2 controlled" || fail "dec-phase-2"
import sys, h5py, numpy as np
f = h5py.File(f"{sys.argv[1]}/dec2.h5"); s = f["steps"]
phase, xi, pol, rounds = s["phase"][:], s["xi"][:], s["policy"][:], s["rounds"][:]
print("phase policies", f["phases/policy"][:], "max Xi", f["phases/max_xi"][:])
ok = np.array_equal(f["phases/policy"][:], [0, 3, 0])
ok &= bool(np.all(xi[phase != 2] == 0)) and bool(np.all(rounds[phase != 2] == 0))
ok &= bool(np.all(xi[phase == 2] <= 0.5)) and bool(np.all(xi[phase == 2] > 0))
sys.exit(0 if ok else 1)
PY
py <<'PY' && pass "guideline: phase 1 controlled, later phases one gossip round" || fail "guideline"
import sys, h5py, numpy as np
f = h5py.File(f"{sys.argv[1]}/guideline.h5"); s = f["steps"]
phase, rounds, target = s["phase"][:], s["rounds"][:], s["target"][:]
ok = np.array_equal(f["phases/policy"][:], [3, 1, 1]) and bool(np.all(rounds[phase > 1] == 1))
ok &= bool(np.all(np.isnan(target[phase > 1]))) and bool(np.all(s["xi"][:][phase == 1] <= target[phase == 1]))
sys.exit(0 if ok else 1)
PY
py <<'PY' && pass "local steps: one round every 4th step, none between; larger Xi than gossip" || fail "local steps"
import sys, h5py, numpy as np
w = sys.argv[1]
s = h5py.File(f"{w}/local4.h5")["steps"]
step, rounds = s["step"][:], s["rounds"][:]
ref = h5py.File(f"{w}/ref.h5")["steps/xi"][:]
print("mean Xi local H=4", s["xi"][:].mean(), "gossip", ref.mean())
ok = np.array_equal(rounds, ((step + 1) % 4 == 0).astype(rounds.dtype)) and s["xi"][:].mean() > ref.mean()
sys.exit(0 if ok else 1)
PY
py <<'PY' && pass "round cap: capped steps traced and counted per phase" || fail "round cap"
import sys, h5py, numpy as np
f = h5py.File(f"{sys.argv[1]}/capped.h5"); s = f["steps"]
ok = bool(np.all(s["rounds"][:] == 3)) and bool(np.all(s["capped"][:] == 1))
ok &= int(f["phases/capped_steps"][:].sum()) == len(s["step"])
sys.exit(0 if ok else 1)
PY
check "round cap: warned on stderr" grep -q "warning: phase 1: .* steps hit the cap of 3 gossip rounds" "$work/capped.err"
py <<'PY' && pass "factor 1 = uncontrolled: identical to plain gossip but for the policy column" || fail "factor 1"
import sys, h5py, numpy as np
w = sys.argv[1]
a, b = h5py.File(f"{w}/ref.h5")["steps"], h5py.File(f"{w}/factor1.h5")["steps"]
sys.exit(0 if np.array_equal(a["xi"][:], b["xi"][:]) and np.all(b["rounds"][:] == 1) else 1)
PY

# the reference must be finished and of the same experiment
sed 's/"seed": 3/"seed": 4/' "$work/exact.json" > "$work/foreign.json"
mpirun 2 "$CCDL" run "$work/foreign.json" --out "$work/foreign.h5" 2> "$work/e"; code=$?
check "foreign reference: exit 2" test "$code" -eq 2
check "foreign reference: one line naming it" sh -c "test \$(wc -l < '$work/e') -eq 1 && grep -q 'ref.h5: a trace of a different experiment (seed differs)' '$work/e'"
check "foreign reference: no trace" test ! -e "$work/foreign.h5"
cp "$work/ref.h5" "$work/unfinished.h5"
"$PYTHON" -c 'import h5py,sys; f=h5py.File(sys.argv[1],"r+"); f.attrs["completed"]=0' "$work/unfinished.h5"
sed "s#$work/ref.h5#$work/unfinished.h5#" "$work/exact.json" > "$work/unfinished.json"
mpirun 2 "$CCDL" run "$work/unfinished.json" --out "$work/u.h5" 2> "$work/e"; code=$?
check "unfinished reference: exit 2 naming it" sh -c "test $code -eq 2 && grep -q 'unfinished.h5: the reference run did not complete' '$work/e'"
# a short reference whose last phase has no steps (decays at 0.5 and 0.99 of one 8-step
# epoch): /phases holds an explicit empty row for it, and the controlled run accepts it,
# also from a trace that left the empty phase out (written before empty rows existed)
cat > "$work/eref.json" <<JSON
{"name": "eref", "seed": 3, "workers": 4, "data": {"train_subset": 512, "test_subset": 100},
 "model": {"kind": "mlp", "hidden": [8]},
 "schedule": {"epochs": 1, "local_batch": 16, "lr": 0.05, "decay_at": [0.5, 0.99]},
 "topology": {"kind": "ring"}, "communication": {"mode": "gossip"}}
JSON
mpirun 2 "$CCDL" run "$work/eref.json" --quiet --out "$work/eref.h5"
check "short reference: one /phases row per phase, the last empty (start = end, max_xi NaN)" \
    "$PYTHON" -c 'import h5py,sys,math; p=h5py.File(sys.argv[1],"r")["phases"]; sys.exit(not (list(p["phase"][:])==[1,2,3] and p["start_step"][2]==p["end_step"][2]==8 and math.isnan(p["max_xi"][2]) and p["max_xi"][1]>0))' "$work/eref.h5"
sed -e 's#"communication": {"mode": "gossip"}#"communication": {"mode": "controlled", "control": {"factor": 0.5, "reference": "'"$work"'/eref.h5"}}#' \
    -e 's/"name": "eref"/"name": "ectl"/' "$work/eref.json" > "$work/ectl.json"
mpirun 2 "$CCDL" run "$work/ectl.json" --quiet --out "$work/ectl.h5" 2> "$work/e"
code=$?
check "short reference accepted by the controlled run" sh -c "test $code -eq 0 && test ! -s '$work/e'"
"$PYTHON" - "$work/eref.h5" "$work/eref-old.h5" <<'PY'
import h5py, sys
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "w") as b:
    for k, v in a.attrs.items():
        b.attrs[k] = v
    for g in a:
        for name, d in a[g].items():
            b[f"{g}/{name}"] = d[:2] if g == "phases" else d[()]
PY
sed "s#$work/eref.h5#$work/eref-old.h5#" "$work/ectl.json" > "$work/ectl-old.json"
mpirun 2 "$CCDL" run "$work/ectl-old.json" --quiet --out "$work/ectl-old.h5" 2> "$work/e"
code=$?
check "a reference without the empty phase's row accepted too" sh -c "test $code -eq 0 && test ! -s '$work/e'"
check "both controlled runs alike (targets, rounds, Xi)" "$PYTHON" -c 'import h5py,sys,numpy as np; a,b=(h5py.File(p,"r")["steps"] for p in sys.argv[1:]); sys.exit(not all(np.array_equal(a[c][:],b[c][:],equal_nan=True) for c in ("target","rounds","xi","loss")))' "$work/ectl.h5" "$work/ectl-old.h5"
finish
