# resume.sh: a run stopped by a signal at any step boundary and resumed (any number of
# times, on any rank count) ends with a trace and final parameters bitwise equal to the
# uninterrupted run's; a SIGKILL resumes from the last periodic checkpoint; checkpoints
# that cannot be resumed are refused with exit 2 and one line, leaving the trace untouched.
#
# Oracle: the same spec run once without interruption (tests/compare_traces.py on the
# traces, compare_checkpoints below on the final checkpoints, kept with checkpoint.keep).
. "$(dirname "$0")/lib.sh"
compare="$top_srcdir/tests/compare_traces.py"

# Final parameters and every other checkpointed buffer, bit for bit, and the progress
# scalars but the wall time.
cat > "$work/compare_checkpoints.py" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
if sorted(a["workers"]) != sorted(b["workers"]):
    sys.exit(f"buffers differ: {sorted(a['workers'])} vs {sorted(b['workers'])}")
for name in a["workers"]:
    x, y = a["workers"][name][()], b["workers"][name][()]
    if x.shape != y.shape or (x.view(np.uint32) != y.view(np.uint32)).any():
        sys.exit(f"/workers/{name} differs")
for key in a["progress"].attrs:
    if key == "elapsed_s": continue
    x, y = a["progress"].attrs[key], b["progress"].attrs[key]
    if np.asarray(x).tobytes() != np.asarray(y).tobytes():
        sys.exit(f"/progress {key} differs: {x} vs {y}")
print("final checkpoints equal:", ", ".join(sorted(a["workers"])))
PY
same_ckpt() { "$PYTHON" "$work/compare_checkpoints.py" "$1" "$2"; }

# The specs: every step of these depends on the state a resume must restore.
base="$specs/tiny-ring.json"
keep='s/"communication"/"checkpoint": {"keep": true}, "communication"/'
variant() { # NAME SED-EXPRESSION... (on tiny-ring)
    local name=$1; shift
    sed -e "s/\"name\": \"tiny-ring\"/\"name\": \"$name\"/" -e "$keep" "$@" "$base" > "$work/$name.json"
}
variant ring-exact -e 's/"mode": "gossip"/"mode": "controlled", "control": {"value": 0.02, "max_rounds": 20}/'
variant matching-adaptive -e 's/"kind": "ring"/"kind": "random_matching"/' \
    -e 's/"mode": "gossip"/"mode": "controlled", "control": {"metric": "estimate", "target": "adaptive", "factor": 0.001}/'
variant ring-adaptive -e 's/"mode": "gossip"/"mode": "controlled", "control": {"metric": "estimate", "target": "adaptive", "factor": 0.001}/'
variant matching -e 's/"kind": "ring"/"kind": "random_matching"/'
variant ring-local -e 's/"mode": "gossip"/"mode": "local", "local_steps": 3/'
for extra in tiny-resnet tiny-adam-dirichlet; do
    sed -e "$keep" "$specs/$extra.json" > "$work/$extra.json"
done

# run_chain NAME RANKS STOPS: stop at each listed step (rank 0 raises the signal in the
# middle of that step), resume until the run completes; every stop must exit 3.
run_chain() {
    local name=$1 p=$2 stops=$3 out="$work/$1-chain.h5" n=0 code
    rm -f "$out" "$work/$1-chain.ckpt.h5"
    while :; do
        CCDL_TEST_SIGNAL="$stops" mpirun "$p" "$CCDL" run "$work/$name.json" --quiet --resume \
            --out "$out" 2>> "$work/$name-chain.err"
        code=$?
        [ "$code" -eq 3 ] || break
        n=$((n + 1))
        [ "$n" -le 20 ] || break
    done
    echo "$name: $n stops, final exit $code"
    [ "$code" -eq 0 ] && [ "$n" -eq "$(echo "$stops" | tr ',' '\n' | wc -l)" ]
}

# 64 steps (32 per epoch, phases from steps 32 and 48): mid-epoch (5), inside a controlled
# step's gossip rounds (20: the signal comes before the rounds, the step still completes),
# at an epoch end that is also a phase boundary (31), at a mid-epoch phase boundary (47),
# SIGINT and SIGUSR1 as well (55, 60).
stops64="TERM@5,TERM@20,TERM@31,TERM@40,TERM@47,INT@55,USR1@60"
for name in ring-exact ring-adaptive matching-adaptive matching ring-local tiny-adam-dirichlet; do
    "$CCDL" run "$work/$name.json" --quiet --out "$work/$name-ref.h5" || fail "$name: reference run"
    check "$name: 7 stops and resumes (mid-epoch, epoch end, phase boundaries, SIGINT, SIGUSR1)" \
        run_chain "$name" 1 "$stops64"
    check "$name: resumed trace bitwise equal to the uninterrupted run" \
        "$PYTHON" "$compare" "$work/$name-ref.h5" "$work/$name-chain.h5"
    check "$name: final parameters and optimizer state bitwise equal" \
        same_ckpt "$work/$name-ref.ckpt.h5" "$work/$name-chain.ckpt.h5"
done
# ResNet-20 with batch norm and augmentation: 8 steps in one epoch; the augmentation
# streams must be replayed to the stopped step.
"$CCDL" run "$work/tiny-resnet.json" --quiet --out "$work/tiny-resnet-ref.h5" || fail "resnet reference"
check "tiny-resnet: stops at steps 1, 3, 6" run_chain tiny-resnet 1 "TERM@1,TERM@3,TERM@6"
check "tiny-resnet: resumed trace bitwise equal" \
    "$PYTHON" "$compare" "$work/tiny-resnet-ref.h5" "$work/tiny-resnet-chain.h5"
check "tiny-resnet: final parameters and BN statistics bitwise equal" \
    same_ckpt "$work/tiny-resnet-ref.ckpt.h5" "$work/tiny-resnet-chain.ckpt.h5"

# The trace records every resume.
"$PYTHON" - "$work/ring-exact-chain.h5" <<'PY' && pass "/resumes lists the 7 resumes with their steps" || fail "/resumes"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
steps = list(f["resumes/step"][()])
print("resumed at steps", steps, "ranks", list(f["resumes/ranks"][()]))
sys.exit(0 if steps == [6, 21, 32, 41, 48, 56, 61] and f.attrs["completed"] == 1 else 1)
PY

# Written on 2 ranks, resumed on 1 and on 4: the checkpoint is indexed by worker.
for name in ring-exact tiny-resnet; do
    stop=20; [ "$name" = tiny-resnet ] && stop=3
    rm -f "$work/x2.h5" "$work/x2.ckpt.h5"
    CCDL_TEST_SIGNAL="TERM@$stop" mpirun 2 "$CCDL" run "$work/$name.json" --quiet --out "$work/x2.h5" 2> /dev/null
    check "$name: stopped on 2 ranks (exit 3)" test $? -eq 3
    for p in 1 4; do
        mkdir -p "$work/p$p" && cp "$work/x2.h5" "$work/x2.ckpt.h5" "$work/p$p/"
        mpirun "$p" "$CCDL" run "$work/$name.json" --quiet --resume --out "$work/p$p/x2.h5" ||
            fail "$name: resume on $p ranks"
        check "$name: checkpoint of 2 ranks resumed on $p: trace bitwise equal" \
            "$PYTHON" "$compare" "$work/$name-ref.h5" "$work/p$p/x2.h5"
        check "$name: checkpoint of 2 ranks resumed on $p: final parameters bitwise equal" \
            same_ckpt "$work/$name-ref.ckpt.h5" "$work/p$p/x2.ckpt.h5"
    done
done

# SIGKILL leaves no time to checkpoint: the resume starts from the last periodic one (end
# of epoch 2 of 4, every 2 epochs) and cuts back the trace rows flushed after it (epoch 3).
sed -e 's/"epochs": 2/"epochs": 4/' -e 's/"keep": true/"keep": true, "every_epochs": 2/' \
    "$work/ring-exact.json" > "$work/killed.json"
"$CCDL" run "$work/killed.json" --quiet --out "$work/killed-ref.h5" || fail "killed reference"
rm -f "$work/killed.h5" "$work/killed.ckpt.h5"
CCDL_TEST_SIGNAL="KILL@100" "$CCDL" run "$work/killed.json" --quiet --out "$work/killed.h5" 2> /dev/null
check "SIGKILL at step 100: killed (exit 137)" test $? -eq 137
"$PYTHON" - "$work/killed.h5" "$work/killed.ckpt.h5" <<'PY' && pass "killed: trace has 96 step rows, the checkpoint is at step 64" || fail "killed state"
import sys, h5py
t, c = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
rows, step = len(t["steps/step"]), c["progress"].attrs["step"]
print("trace rows", rows, "checkpoint step", step, "completed", t.attrs["completed"])
sys.exit(0 if rows == 96 and step == 64 and t.attrs["completed"] == 0 else 1)
PY
"$CCDL" run "$work/killed.json" --quiet --resume --out "$work/killed.h5" || fail "resume after SIGKILL"
check "after SIGKILL: resumed trace bitwise equal to the uninterrupted run" \
    "$PYTHON" "$compare" "$work/killed-ref.h5" "$work/killed.h5"
check "after SIGKILL: final parameters bitwise equal" \
    same_ckpt "$work/killed-ref.ckpt.h5" "$work/killed.ckpt.h5"

# Checkpoints by wall time (every_minutes) land at any step boundary, mid-epoch too: a
# SIGKILL then resumes from the last of them. An interval shorter than any step makes one
# due at every boundary, so the last one before a kill in step 45 is at step 45 exactly.
sed -e 's/"keep": true/"keep": true, "every_epochs": 0, "every_minutes": 1e-9/' \
    "$work/ring-exact.json" > "$work/timed.json"
"$CCDL" run "$work/timed.json" --quiet --out "$work/timed-ref.h5" || fail "timed reference"
rm -f "$work/timed.h5" "$work/timed.ckpt.h5"
CCDL_TEST_SIGNAL="KILL@45" "$CCDL" run "$work/timed.json" --quiet --out "$work/timed.h5" 2> /dev/null
"$PYTHON" - "$work/timed.ckpt.h5" <<'PY' && pass "timed checkpoints: the last one before the kill is mid-epoch" || fail "timed checkpoint"
import sys, h5py
step = int(h5py.File(sys.argv[1], "r")["progress"].attrs["step"])
print("last timed checkpoint before SIGKILL in step 45: step", step)
sys.exit(0 if step == 45 else 1)
PY
"$CCDL" run "$work/timed.json" --quiet --resume --out "$work/timed.h5" || fail "resume from a timed checkpoint"
check "timed checkpoint, SIGKILL, resume: trace bitwise equal" \
    "$PYTHON" "$compare" "$work/timed-ref.h5" "$work/timed.h5"
check "timed checkpoint, SIGKILL, resume: final parameters bitwise equal" \
    same_ckpt "$work/timed-ref.ckpt.h5" "$work/timed.ckpt.h5"

# A real SIGTERM from outside, at whatever point the ranks are (mostly inside gossip
# rounds of a controlled step), on 2 ranks: the stop is agreed at the next boundary.
sed -e 's/"epochs": 2/"epochs": 40/' -e 's/"train_subset": 2048/"train_subset": 4096/' \
    "$work/ring-exact.json" > "$work/long.json"
mpirun 2 "$CCDL" run "$work/long.json" --quiet --out "$work/long-ref.h5" || fail "long reference"
rm -f "$work/long.h5" "$work/long.ckpt.h5"
mpirun 2 "$CCDL" run "$work/long.json" --out "$work/long.h5" 2> "$work/long.err" &
launcher=$!
# after two epochs' progress lines (not a fixed sleep: a fast machine could finish first)
for _ in $(seq 1 600); do
    [ "$(grep -c ' epoch [0-9]*/' "$work/long.err" 2> /dev/null)" -ge 2 ] && break
    sleep 0.05
done
# the ranks only (not mpiexec, whose command line names the spec too)
for pid in $(pgrep -x ccdl); do
    grep -qF "$work/long.json" "/proc/$pid/cmdline" 2> /dev/null && kill -TERM "$pid"
done
wait "$launcher"
code=$?
grep -v ' epoch [0-9]*/' "$work/long.err" > "$work/long.msg"
check "external SIGTERM on 2 ranks: exit 3 with one line" \
    sh -c "test $code -eq 3 && test \$(wc -l < '$work/long.msg') -eq 1 && grep -q 'stopped by SIGTERM at step' '$work/long.msg'"
mpirun 2 "$CCDL" run "$work/long.json" --quiet --resume --out "$work/long.h5" || fail "long resume"
check "external SIGTERM: resumed trace bitwise equal" "$PYTHON" "$compare" "$work/long-ref.h5" "$work/long.h5"

# --resume of a completed run does nothing; --resume without a checkpoint starts fresh.
before=$(md5sum < "$work/long.h5")
"$CCDL" run "$work/long.json" --quiet --resume --out "$work/long.h5" 2> "$work/done.err"
check "--resume of a completed trace: exit 0, trace untouched" \
    sh -c "test $? -eq 0 && test '$before' = \"\$(md5sum < '$work/long.h5')\" && grep -q 'already completed' '$work/done.err'"
rm -f "$work/fresh.h5"
"$CCDL" run "$work/ring-exact.json" --quiet --resume --out "$work/fresh.h5" || fail "fresh --resume"
check "--resume without a checkpoint starts fresh" "$PYTHON" "$compare" "$work/ring-exact-ref.h5" "$work/fresh.h5"

# Checkpoints that cannot be resumed: exit 2, one line naming the problem, trace untouched.
refuse() { # WHAT RANKS EXPECTED-TEXT SPEC
    local what=$1 p=$2 text=$3 spec=$4 before code
    before=$(md5sum < "$work/bad.h5")
    timeout 60 "$MPIEXEC" $MPIEXEC_FLAGS -n "$p" "$CCDL" run "$spec" --quiet --resume --out "$work/bad.h5" 2> "$work/bad.err"
    code=$?
    check "$what ($p ranks): exit 2, one line naming it, trace untouched" \
        sh -c "test $code -eq 2 && test \$(wc -l < '$work/bad.err') -eq 1 && grep -q \"$text\" '$work/bad.err' && test '$before' = \"\$(md5sum < '$work/bad.h5')\""
    sed 's/^/    /' "$work/bad.err"
}
rm -f "$work/bad.h5" "$work/bad.ckpt.h5"
CCDL_TEST_SIGNAL="TERM@20" "$CCDL" run "$work/ring-exact.json" --quiet --out "$work/bad.h5" 2> /dev/null
cp "$work/bad.ckpt.h5" "$work/good.ckpt.h5"
sed 's/"lr": 0.05/"lr": 0.06/' "$work/ring-exact.json" > "$work/other.json"
for p in 1 2; do
    refuse "checkpoint of another spec" "$p" "schedule.lr differs" "$work/other.json"
done
head -c 300000 "$work/good.ckpt.h5" > "$work/bad.ckpt.h5"
for p in 1 2; do refuse "truncated checkpoint" "$p" "bad.ckpt.h5" "$work/ring-exact.json"; done
# one flipped byte in the middle of worker 3's parameters (the rows of rank 1 on 2 ranks)
"$PYTHON" - "$work/good.ckpt.h5" "$work/bad.ckpt.h5" <<'PY'
import sys, shutil, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r") as f:
    info = f["workers/params"].id.get_chunk_info(3)
offset = info.byte_offset + info.size // 2
with open(sys.argv[2], "r+b") as fh:
    fh.seek(offset); b = fh.read(1); fh.seek(offset); fh.write(bytes([b[0] ^ 0x10]))
PY
for p in 1 2; do refuse "checkpoint with a flipped data byte" "$p" "corrupt checkpoint" "$work/ring-exact.json"; done
# and one flipped byte in the file's metadata (the superblock, checksummed)
cp "$work/good.ckpt.h5" "$work/bad.ckpt.h5"
printf '\x7f' | dd of="$work/bad.ckpt.h5" bs=1 seek=20 conv=notrunc 2> /dev/null
for p in 1 2; do refuse "checkpoint with a flipped superblock byte" "$p" "bad.ckpt.h5" "$work/ring-exact.json"; done
# the good one still resumes after all that
cp "$work/good.ckpt.h5" "$work/bad.ckpt.h5"
"$CCDL" run "$work/ring-exact.json" --quiet --resume --out "$work/bad.h5" &&
    check "the intact checkpoint still resumes to the same bits" \
        "$PYTHON" "$compare" "$work/ring-exact-ref.h5" "$work/bad.h5"
# ccdl-sweep: runs stopped with a checkpoint show as resumable, and the next `local`
# (or `submit`) continues them with --resume; status then says completed and resumed.
sweep() { "$PYTHON" "$top_srcdir/tools/ccdl-sweep" "$@"; }
d="$work/sweep"
sweep expand "$top_srcdir/tests/sweeps/tiny.json" --out "$d" > /dev/null || fail "expand tiny sweep"
CCDL_TEST_SIGNAL="TERM@5" sweep local "$d" --ranks 1 > "$work/local1.log" 2>&1
check "every run of the sweep stopped: status lists 6 resumable runs at step 6" \
    sh -c "sweep_status=\$('$PYTHON' '$top_srcdir/tools/ccdl-sweep' status '$d'); echo \"\$sweep_status\";
           test \$(echo \"\$sweep_status\" | grep -c '^resumable .*checkpoint at step 6; exit_reason: stopped by SIGTERM') -eq 6"
sweep local "$d" --ranks 1 > "$work/local2.log" 2>&1
check "the next ccdl-sweep local resumed them: 6 completed, resumed 1 time" \
    sh -c "sweep_status=\$('$PYTHON' '$top_srcdir/tools/ccdl-sweep' status '$d'); echo \"\$sweep_status\";
           test \$(echo \"\$sweep_status\" | grep -c '^completed .*resumed 1 time') -eq 6"
finish
