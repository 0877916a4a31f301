# slurm_requeue.sh: on a real one-node Slurm cluster, a sweep task whose time limit (1 min)
# is shorter than its run gets the warning signal (--signal=B:USR1@margin), ccdl checkpoints
# and exits 3, the task requeues itself, resumes (--resume) and completes with a trace
# bitwise equal to the same run uninterrupted; `ccdl-sweep status` shows it resumable while
# it waits, then completed and resumed. Needs root (exit 77 otherwise). About 2 minutes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/slurm_lib.sh"
t0=$(date +%s)

# ---------------------------------------------------------------- a run longer than its limit
# Slurm sends the warning when its periodic check (every ~30 s) finds the job within the
# margin of its limit: with a 1-minute limit and a 55 s margin, 5 to 35 s after the start.
# The run is sized to ~80 s on this machine (from a 2-epoch calibration), so every segment
# is signalled before it can finish and the run needs at least one requeue.
cat > "$work/base.json" <<'EOF'
{
  "name": "requeue",
  "seed": 3,
  "workers": 4,
  "data": {"train_subset": 16384, "test_subset": 2000},
  "model": {"kind": "mlp", "hidden": [128]},
  "schedule": {"epochs": 2, "local_batch": 16, "lr": 0.05, "decay_at": [0.5, 0.75]},
  "topology": {"kind": "ring"},
  "communication": {"mode": "controlled", "control": {"value": 0.02, "max_rounds": 20}}
}
EOF
start=$(date +%s.%N)
"$CCDL" run "$work/base.json" --quiet --out "$work/calibrate.h5" || fail "calibration run"
per_epoch=$("$PYTHON" -c "import sys; print(max(0.05, ($(date +%s.%N) - $start) / 2))")
epochs=$("$PYTHON" -c "print(max(8, min(400, int(80 / $per_epoch))))")
echo "calibration: ${per_epoch} s per epoch -> $epochs epochs"
sed "s/\"epochs\": 2/\"epochs\": $epochs/" "$work/base.json" > "$work/long.json"
cat > "$work/requeue.json" <<EOF
{
  "name": "requeue",
  "base": "$work/long.json",
  "grid": [{"seed": [3]}],
  "slurm": {"ranks": 1, "time": "00:01:00", "signal_margin": 55}
}
EOF
d="$work/sweep"
sweep expand "$work/requeue.json" --out "$d" > /dev/null || fail "expand"
# the oracle: the same spec run uninterrupted, alongside the Slurm job (2 cores here)
"$CCDL" run "$d"/specs/*.json --quiet --out "$work/uninterrupted.h5" &
oracle=$!

if ! slurm_local_start "$S"; then
    fail "one-node cluster up"
    finish
    exit 1
fi
pass "one-node cluster up ($SLURM_LOCAL_INFO)"
sweep submit "$d" > "$work/submit.log" 2>&1 || { cat "$work/submit.log"; fail "submit"; }
cat "$work/submit.log"
check "sbatch asked for the warning signal and requeueing" \
    grep -q -- '--signal=B:USR1@55 --requeue' "$work/submit.log"
job=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["job"])' "$d/submissions.json")

# Watch the queue until the task leaves it (at most 8 minutes), keeping every new line of
# squeue and of `ccdl-sweep status`.
: > "$work/squeue.log"
: > "$work/status-seen.log"
last_q="" last_s=""
for _ in $(seq 1 960); do
    q=$(squeue -h -r -j "$job" -o '%i %T %l %r' 2> /dev/null)
    [ "$q" != "$last_q" ] && { echo "$(date -u +%T) ${q:-(left the queue)}" >> "$work/squeue.log"; last_q=$q; }
    s=$(sweep status "$d" 2> /dev/null | head -1)
    [ "$s" != "$last_s" ] && { echo "$(date -u +%T) $s" >> "$work/status-seen.log"; last_s=$s; }
    [ -z "$q" ] && break
    sleep 0.5
done
echo "--- squeue lines as they changed"
cat "$work/squeue.log"
echo "--- ccdl-sweep status (first line) as it changed"
cat "$work/status-seen.log"
echo "--- the task's log (every run of it: --open-mode=append)"
grep -h 'ccdl-array\|resuming\|stopped' "$d"/logs/[0-9]*.out | sed 's/^/    /'
scontrol show job "$job" 2> /dev/null | grep -o 'JobState=[A-Z]* Reason=[^ ]*\|Restarts=[0-9]*\|Requeue=[0-9]*' | tr '\n' ' '
echo
sweep status "$d" > "$work/status.log" 2>&1
status_rc=$?
cat "$work/status.log"
wait "$oracle" || fail "uninterrupted run"

check "the task was signalled, checkpointed and requeued (exit 3 then a restart)" \
    sh -c "grep -q 'checkpointed and stopped (exit 3)' '$d'/logs/*.out && grep -q 'restart count 1' '$d'/logs/*.out"
check "squeue showed the task pending again after running (requeued)" \
    sh -c "awk '/RUNNING/ {r = 1} r && /PENDING/ {p = 1} END {exit !p}' '$work/squeue.log'"
check "status showed the run resumable or running from a checkpoint while it waited" \
    grep -Eq '^[0-9:]+ (resumable|pending|running) .*checkpoint at step [0-9]+' "$work/status-seen.log"
check "status: completed, resumed, exit 0" \
    sh -c "test $status_rc -eq 0 && grep -Eq '^completed +requeue.* resumed [0-9]+ time' '$work/status.log'"
check "the requeued run's trace is bitwise equal to the uninterrupted run's" \
    "$PYTHON" "$top_srcdir/tests/compare_traces.py" "$work/uninterrupted.h5" "$d/traces/requeue.h5"
"$PYTHON" - "$d/traces/requeue.h5" <<'PY'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
print(f"{sys.argv[1]}: completed={f.attrs['completed']} resumed at steps "
      f"{list(f['resumes/step'][()])} of {len(f['steps/step'])}")
PY
echo "slurm requeue test: $(($(date +%s) - t0)) s"
finish
