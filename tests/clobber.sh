# clobber.sh: a run never overwrites what is not its own. A completed trace needs --force
# (--resume leaves it alone), anything that is not a ccdl trace or checkpoint is refused,
# non-regular outputs are refused up front; exit 2, one line, the file untouched, on 1 and
# 2 ranks.
. "$(dirname "$0")/lib.sh"
spec="$work/spec.json"
sed 's/"epochs": 2/"epochs": 1/' "$specs/tiny-ring.json" > "$spec"
mpirun 2 "$CCDL" run "$spec" --quiet --out "$work/done.h5" || fail "first run"
sum() { md5sum < "$1"; }
# refused P WHAT EXPECT ARGS...: exit 2, one line containing EXPECT
refused() {
    local p=$1 what=$2 want=$3
    shift 3
    timeout 60 "$MPIEXEC" $MPIEXEC_FLAGS -n "$p" "$CCDL" "$@" 2> "$work/err" > /dev/null
    local rc=$?
    if [ "$rc" = 2 ] && [ "$(wc -l < "$work/err")" = 1 ] && grep -qF -- "$want" "$work/err"; then
        pass "$what, $p rank(s): $(cat "$work/err")"
    else
        fail "$what, $p rank(s): exit $rc: $(head -c 400 "$work/err")"
    fi
}
before=$(sum "$work/done.h5")
echo "my notes" > "$work/notes.txt"
cp "$spec" "$work/spec-copy.json"
mkfifo "$work/fifo"
for p in 1 2; do
    refused "$p" "a completed trace" "holds a completed run; --force overwrites it" \
        run "$spec" --quiet --out "$work/done.h5"
    refused "$p" "the spec itself as output" "exists and is not a ccdl trace" \
        run "$work/spec-copy.json" --quiet --out "$work/spec-copy.json"
    refused "$p" "a text file as output" "exists and is not a ccdl trace" \
        run "$spec" --quiet --out "$work/notes.txt"
    refused "$p" "/dev/null as output" "not a regular file" run "$spec" --quiet --out /dev/null
    refused "$p" "a FIFO as output" "not a regular file" run "$spec" --quiet --out "$work/fifo"
    refused "$p" "a directory as output" "not a regular file" run "$spec" --quiet --out "$work"
done
check "completed trace untouched" [ "$(sum "$work/done.h5")" = "$before" ]
check "text file untouched" [ "$(cat "$work/notes.txt")" = "my notes" ]
check "spec untouched" cmp -s "$spec" "$work/spec-copy.json"
# a checkpoint path holding something else
sed 's#"communication"#"checkpoint": {"path": "'"$work"'/notes.txt"}, "communication"#' "$spec" \
    > "$work/ckpt-notes.json"
refused 2 "a text file as checkpoint" "exists and is not a ccdl checkpoint" \
    run "$work/ckpt-notes.json" --quiet --out "$work/new.h5"
sed 's#"communication"#"checkpoint": {"path": "'"$work"'/same.h5"}, "communication"#' "$spec" \
    > "$work/ckpt-same.json"
refused 2 "the checkpoint on the trace" "the trace and the checkpoint are one file" \
    run "$work/ckpt-same.json" --quiet --out "$work/same.h5"
check "text file untouched by the checkpoint case" [ "$(cat "$work/notes.txt")" = "my notes" ]
# what is allowed: --resume leaves a completed trace as it is; --force reruns it; an
# unfinished trace (a failed or killed run) is simply run again
mpirun 2 "$CCDL" run "$spec" --quiet --out "$work/done.h5" --resume 2> "$work/err"
check "--resume on a completed trace: exit 0, untouched" \
    [ $? = 0 -a "$(sum "$work/done.h5")" = "$before" ]
cp "$work/done.h5" "$work/first.h5"
mtime=$(stat -c %y "$work/done.h5")
mpirun 2 "$CCDL" run "$spec" --quiet --out "$work/done.h5" --force
check "--force rewrites a completed trace" [ "$(stat -c %y "$work/done.h5")" != "$mtime" ]
check "--force reruns it to the same bits" \
    "$PYTHON" "$top_srcdir/tests/compare_traces.py" "$work/done.h5" "$work/first.h5"
"$PYTHON" -c 'import h5py,sys; f=h5py.File(sys.argv[1],"r+"); f.attrs["completed"]=0' "$work/done.h5"
mpirun 2 "$CCDL" run "$spec" --quiet --out "$work/done.h5"
check "an unfinished trace is run again" \
    "$PYTHON" "$top_srcdir/tests/compare_traces.py" "$work/done.h5" "$work/first.h5"
# one writer per trace: while a run writes it, a second run on it refuses to start, and the
# first one still completes untouched (its lock file is gone after it)
sed -e 's/"epochs": 2/"epochs": 400/' -e 's/"train_subset": 2048, //' "$specs/tiny-ring.json" \
    > "$work/long.json"
"$MPIEXEC" $MPIEXEC_FLAGS -n 2 "$CCDL" run "$work/long.json" --quiet --out "$work/live.h5" &
pid=$!
for _ in $(seq 1 300); do [ -s "$work/live.h5.lock" ] && break; sleep 0.1; done
for p in 1 2; do
    refused "$p" "a second run on a live trace" "another ccdl run is writing this trace" \
        run "$work/long.json" --quiet --out "$work/live.h5"
    refused "$p" "a --resume on a live trace" "another ccdl run is writing this trace" \
        run "$work/long.json" --quiet --out "$work/live.h5" --resume
done
# the ranks, not mpiexec: how Hydra reports its children's exit status after it was
# signalled itself is a race (CI once saw 0 after both ranks exited 3)
for rank in $(pgrep -x ccdl); do
    grep -qF "$work/live.h5" "/proc/$rank/cmdline" 2> /dev/null && kill -TERM "$rank"
done
wait "$pid"
rc=$?
check "the live run stopped cleanly (exit 3, got $rc), lock file removed" \
    [ "$rc" = 3 -a ! -e "$work/live.h5.lock" ]
# a trace of another format version is neither resumed nor overwritten
"$PYTHON" -c 'import h5py,sys; h5py.File(sys.argv[1],"r+").attrs["format_version"]=2' "$work/live.h5"
refused 2 "a trace of format version 2" "trace format version 2; this ccdl reads version 1; refusing to overwrite it" \
    run "$work/long.json" --quiet --out "$work/live.h5" --resume
finish
