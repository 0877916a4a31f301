# slurm.sh: a real one-node Slurm cluster (private munged, slurmctld, slurmd; config, state
# and logs under the scratch dir) runs a tiny sweep through `ccdl-sweep submit`: reference runs
# first, then the runs that read their targets from them. Checks every trace and the table,
# then submits again and checks that nothing new runs. Needs root (exit 77 otherwise).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/slurm_lib.sh"
analyze() { "$PYTHON" "$top_srcdir/analysis/ccdl-analyze" "$@"; }
t0=$(date +%s)

# ---------------------------------------------------------------- the cluster
if ! slurm_local_start "$S"; then
    fail "one-node cluster up"
    finish
    exit 1
fi
pass "one-node cluster up in $(($(date +%s) - t0)) s ($SLURM_LOCAL_INFO)"

# ---------------------------------------------------------------- the sweep
# tiny-control: 1 All-Reduce run, 2 uncontrolled references added by the expansion, 2 runs at
# factor 0.5 depending on them. Until ccdl has the control keys: the 6 plain runs of tiny.json.
grid="$top_srcdir/tests/sweeps/tiny-control.json"
if ! "$CCDL" spec-keys | grep -q 'communication.control.factor'; then
    echo "note: this ccdl has no communication.control keys: submitting plain runs only (no dependency)"
    grid="$top_srcdir/tests/sweeps/tiny.json"
fi
d="$work/sweep"
sweep submit "$grid" --out "$d" > "$work/submit.log" 2>&1 || { cat "$work/submit.log"; fail "submit"; }
cat "$work/submit.log"
sweep status "$d" --unfinished > "$work/status-queued.log" 2>&1
check "status while queued: runs shown pending or running with their job" \
    grep -Eq '^(pending|running) +[^ ]+ +job [0-9]+_[0-9]+' "$work/status-queued.log"
jobs=$("$PYTHON" -c 'import json,sys; print(",".join(s["job"] for s in json.load(open(sys.argv[1]))))' "$d/submissions.json")
deps=$("$PYTHON" -c 'import json,sys; print(sum(1 for s in json.load(open(sys.argv[1])) if s["dependency"]))' "$d/submissions.json")
left=""
for _ in $(seq 1 600); do
    left=$(squeue -h -j "$jobs" 2> /dev/null | wc -l)
    [ "$left" -eq 0 ] && break
    sleep 0.2
done
check "all array tasks left the queue (jobs $jobs)" test "$left" -eq 0
sweep status "$d" > "$work/status.log" 2>&1
status_rc=$?
cat "$work/status.log"
n=$("$PYTHON" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["runs"]))' "$d/manifest.json")
check "status: all $n runs completed, exit 0" test $status_rc -eq 0
"$PYTHON" - "$d" <<'PY' && pass "every trace completed; logs name their runs; dependents ran after their references" || fail "traces after Slurm"
import json, os, sys
import h5py
d = sys.argv[1]
m = json.load(open(f"{d}/manifest.json"))
ok = True
created = {}
for r in m["runs"]:
    with h5py.File(os.path.join(d, r["trace"]), "r") as f:
        ok &= int(f.attrs["completed"]) == 1 and len(f["epochs/test_acc"]) == json.loads(f.attrs["spec"])["schedule"]["epochs"]
        created[r["name"]] = f.attrs["created"]
        ranks = int(f.attrs["ranks"])
    log = open(os.path.join(d, "logs", r["name"] + ".out")).read()
    ok &= f"ccdl-array: run {r['name']} " in log and ranks == m["slurm"]["ranks"]
for r in m["runs"]:
    if r["reference"]:  # ISO times: a dependent's trace was created after its reference's
        ok &= created[r["name"]] >= created[r["reference"]]
print(f"{len(created)} traces, ranks per run {m['slurm']['ranks']}, {'ok' if ok else 'MISMATCH'}")
sys.exit(0 if ok else 1)
PY
if [ "$grid" = "$top_srcdir/tests/sweeps/tiny-control.json" ]; then
    check "the dependent runs were a second array with afterok on the reference tasks" test "$deps" -eq 1
fi
analyze table "$d" --out "$work/table" > "$work/table.md" 2>&1 || { cat "$work/table.md"; fail "table"; }
cat "$work/table.md"
"$PYTHON" - "$work/table.csv" "$n" <<'PY' && pass "aggregated table accounts for every run" || fail "table rows"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"{len(rows)} rows, {sum(int(r['runs']) for r in rows)} runs")
sys.exit(0 if sum(int(r["runs"]) for r in rows) == int(sys.argv[2]) else 1)
PY

# ---------------------------------------------------------------- the same sweep again
stamp() { (cd "$d/traces" && find . -name '*.h5' -printf '%p %T@\n' | sort); }
stamp > "$work/before.stamp"
subs_before=$(wc -c < "$d/submissions.json")
sweep submit "$grid" --out "$d" > "$work/again.log" 2>&1
cat "$work/again.log"
sleep 1
queued=$(squeue -h 2> /dev/null | wc -l)
stamp > "$work/after.stamp"
if grep -q "nothing to submit: $n of $n runs completed" "$work/again.log" && [ "$queued" -eq 0 ] \
    && [ "$(wc -c < "$d/submissions.json")" -eq "$subs_before" ] && cmp -s "$work/before.stamp" "$work/after.stamp"; then
    pass "submitting again runs nothing"
else
    fail "submitting again (queued $queued)"
fi
# ---------------------------------------------------------------- a failure, resubmitted
# the last reference "fails" and the last run's trace disappears: status names both and
# prints the command that resubmits exactly those (the dependent again after its reference)
"$PYTHON" - "$d" <<'PY'
import json, os, sys
import h5py
d = sys.argv[1]
runs = json.load(open(f"{d}/manifest.json"))["runs"]
last = runs[-1]
ref = next(r for r in runs if r["name"] == (last["reference"] or runs[0]["name"]))
with h5py.File(os.path.join(d, ref["trace"]), "r+") as f:
    f.attrs["completed"] = 0
    f.attrs["exit_reason"] = "test: pretend this run failed"
os.remove(os.path.join(d, last["trace"]))
print(ref["name"], last["name"], file=open(f"{d}/../broken.txt", "w"))
PY
read -r broken_ref broken_last < "$work/broken.txt"
sweep status "$d" > "$work/status-broken.log" 2>&1
cat "$work/status-broken.log"
resubmit=$(grep -A1 '^resubmit the 2 unfinished runs' "$work/status-broken.log" | tail -1)
if grep -q "^failed  *$broken_ref  *exit_reason: test: pretend this run failed" "$work/status-broken.log" \
    && grep -q "^missing  *$broken_last" "$work/status-broken.log" && [ -n "$resubmit" ]; then
    pass "status after a failure: failed and missing runs, resubmit command"
else
    fail "status after a failure"
fi
stamp > "$work/before.stamp"
$resubmit > "$work/resubmit.log" 2>&1
cat "$work/resubmit.log"
jobs=$("$PYTHON" -c 'import json,sys; print(",".join(s["job"] for s in json.load(open(sys.argv[1]))))' "$d/submissions.json")
for _ in $(seq 1 600); do
    [ "$(squeue -h -j "$jobs" 2> /dev/null | wc -l)" -eq 0 ] && break
    sleep 0.2
done
stamp > "$work/after.stamp"
changed=$(diff "$work/before.stamp" "$work/after.stamp" | grep '^>' | awk '{print $2}' | sed 's#^\./##; s#\.h5$##' | sort | tr '\n' ' ')
want=$(printf '%s\n' "$broken_ref" "$broken_last" | sort -u | tr '\n' ' ')
if sweep status "$d" > /dev/null 2>&1 && [ "$changed" = "$want" ]; then
    pass "resubmitted only the unfinished runs ($changed), all completed"
else
    fail "resubmit: rewritten '$changed', expected '$want'"
fi
echo "slurm test: $(($(date +%s) - t0)) s"
finish
