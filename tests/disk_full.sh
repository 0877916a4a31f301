# disk_full.sh: a disk that fills up during a 2-rank run (a small tmpfs) ends the run within
# seconds with one line, and leaves a trace whose rows are all real: each equal to the same
# row of an uninterrupted run, none made up of zeros. Then the same for the checkpoint, and
# the resume once there is room again. Needs root for the mounts (skipped otherwise).
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ] || ! command -v mount > /dev/null; then
    echo "needs root to mount a small tmpfs"
    exit 77
fi
disk="$work/disk"
mkdir -p "$disk"
trap 'umount "$disk" 2> /dev/null' EXIT
mount_disk() { umount "$disk" 2> /dev/null; mount -t tmpfs -o "size=$1" tmpfs "$disk"; }
if ! mount_disk 64k; then
    echo "cannot mount a tmpfs here"
    exit 77
fi

# 5120 steps: the flush that crosses 4096 step rows needs a second chunk of every column
sed -e 's/"epochs": 2,/"epochs": 20,/' -e 's/"local_batch": 16/"local_batch": 2/' \
    -e 's/"test_subset": 1000/"test_subset": 200/' -e 's/"hidden": \[32\]/"hidden": [8]/' \
    -e 's/"decay_at": \[0.5, 0.75\]/"decay_at": [0.5]/' \
    -e 's/"name": "tiny-ring"/"name": "disk-full"/' "$specs/tiny-ring.json" > "$work/spec.json"
sed 's#"communication"#"checkpoint": {"path": "'"$disk"'/c.ckpt.h5"}, "communication"#' \
    "$work/spec.json" > "$work/ckpt-full.json"
# the uninterrupted run, of the very spec the checkpoint case runs (the trace holds the spec)
mount_disk 8m
start=$(date +%s)
mpirun 2 "$CCDL" run "$work/ckpt-full.json" --quiet --out "$work/ref.h5" || fail "uninterrupted run"
# "within 10 s" of the fault: a failing run may take as long as the whole uninterrupted one
# plus 10 s; twice that, since a loaded machine (make -j2 check) varies run times by 2x; a
# hang hits the 60 s timeout
limit=$((2 * ($(date +%s) - start) + 10))

# rows_real TRACE STEPS: every row of every group equals the reference's (wallclock columns
# aside), with exactly STEPS step rows; prints the row counts and the exit reason
rows_real() {
    "$PYTHON" - "$1" "$work/ref.h5" "$2" <<'PY'
import sys, h5py, numpy as np
f, ref, want = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r"), int(sys.argv[3])
ok = f.attrs["completed"] == 0
for g in ("steps", "epochs", "phases"):
    for name, d in f[g].items():
        if d.attrs.get("wallclock", 0) == 1:
            continue
        a, b = d[()], ref[g][name][()]
        same = len(a) <= len(b) and np.array_equal(a, b[: len(a)], equal_nan=a.dtype.kind == "f")
        if not same:
            print(f"/{g}/{name}: {len(a)} rows, not the reference's first rows")
        ok &= same
ok &= len(f["steps/step"]) == want
print(f"steps={len(f['steps/step'])} epochs={len(f['epochs/epoch'])} "
      f"exit_reason={f.attrs['exit_reason']!r}")
sys.exit(0 if ok else 1)
PY
}

# --- the trace's disk fills up: room for the first step chunk, not the second. A flush
# reserves, for every column that starts a chunk, 8 bytes per chunk row plus 4 KiB, and
# 64 KiB twice over: with 18 step columns the first flush asks ~0.8 MB beyond the new file
# and the one crossing 4096 rows asks as much beyond the ~0.55 MB the first chunk filled.
# 1100k lies between the two; a new step column shrinks that gap (18 -> 20 closes it).
check "the disk size below assumes 18 step columns" \
    "$PYTHON" -c 'import h5py,sys; sys.exit(len(h5py.File(sys.argv[1],"r")["steps"]) != 18)' "$work/ref.h5"
mount_disk 1100k
sed 's#"communication"#"checkpoint": {"path": "'"$work"'/t.ckpt.h5"}, "communication"#' \
    "$work/spec.json" > "$work/trace-full.json"
start=$(date +%s)
timeout 60 "$MPIEXEC" $MPIEXEC_FLAGS -n 2 "$CCDL" run "$work/trace-full.json" --quiet --out "$disk/t.h5" \
    2> "$work/err"
rc=$?
took=$(($(date +%s) - start))
cat "$work/err"
check "trace disk full: exit 1 (got $rc)" [ "$rc" = 1 ]
check "trace disk full: ended within 10 s of the fault (took $took s, limit $limit)" [ "$took" -le "$limit" ]
check "trace disk full: one line" [ "$(wc -l < "$work/err")" = 1 ]
check "trace disk full: the line says so" grep -q "no room for the next" "$work/err"
check "trace disk full: 4096 real step rows, exit_reason recorded" rows_real "$disk/t.h5" 4096
check "trace disk full: exit_reason recorded" \
    "$PYTHON" -c 'import h5py,sys; sys.exit("no room" not in h5py.File(sys.argv[1],"r").attrs["exit_reason"])' "$disk/t.h5"

# --- the checkpoints' disk fills up: the first fits, the second (written beside the first)
# does not; the run stops at epoch 2 with the epoch-1 checkpoint intact
mount_disk 1400k
start=$(date +%s)
timeout 60 "$MPIEXEC" $MPIEXEC_FLAGS -n 2 "$CCDL" run "$work/ckpt-full.json" --quiet --out "$work/c.h5" \
    2> "$work/err"
rc=$?
took=$(($(date +%s) - start))
cat "$work/err"
check "checkpoint disk full: exit 1 (got $rc)" [ "$rc" = 1 ]
check "checkpoint disk full: ended within 10 s of the fault (took $took s, limit $limit)" [ "$took" -le "$limit" ]
check "checkpoint disk full: one line naming the checkpoint" \
    [ "$(wc -l < "$work/err")" = 1 -a "$(grep -c "no room for the checkpoint" "$work/err")" = 1 ]
check "checkpoint disk full: 512 real step rows" rows_real "$work/c.h5" 512
check "checkpoint disk full: no temporary file left" [ ! -e "$disk/c.ckpt.h5.tmp" ]
# room again: the resume continues from the epoch-1 checkpoint to the uninterrupted result
mount -o remount,size=8m "$disk"
timeout 60 "$MPIEXEC" $MPIEXEC_FLAGS -n 2 "$CCDL" run "$work/ckpt-full.json" --quiet --out "$work/c.h5" \
    --resume 2> "$work/err"
rc=$?
check "checkpoint disk full: resumed with room, exit 0 (got $rc)" [ "$rc" = 0 ]
check "checkpoint disk full: resumed trace equals the uninterrupted run" \
    "$PYTHON" "$top_srcdir/tests/compare_traces.py" "$work/ref.h5" "$work/c.h5"

# --- no room even to create the trace: exit 2 on every rank count, one line
mount_disk 4k
dd if=/dev/zero of="$disk/filler" bs=4k count=1 2> /dev/null
for p in 1 2; do
    timeout 60 "$MPIEXEC" $MPIEXEC_FLAGS -n "$p" "$CCDL" run "$work/trace-full.json" --quiet \
        --out "$disk/none.h5" 2> "$work/err"
    rc=$?
    cat "$work/err"
    check "no room to create, $p rank(s): non-zero exit, one line" \
        [ "$rc" != 0 -a "$(wc -l < "$work/err")" = 1 ]
done
finish
