# python_faults.sh: the Python tools (tools/ccdl-sweep, analysis/ccdl-analyze) on bad input.
# Every bad sweep file, hand-edited manifest and damaged trace ends in exit 2 and one line on
# stderr naming the file (never a traceback, a hang or a signal); manifest paths stay inside
# the sweep directory; one ccdl-sweep command per sweep directory (DIR/.ccdl-sweep.lock); a
# trace a live ccdl process writes (it holds TRACE.lock) is "running", never failed, and
# local/submit leave it alone; a completed trace with unequal columns is corrupt. Then a
# seeded fuzz: mutated sweep files, manifests and traces (PYTHON_FAULTS_SEED, default below).
. "$(dirname "$0")/lib.sh"
export PYTHONDONTWRITEBYTECODE=1 CCDL
sweep() { "$PYTHON" "$top_srcdir/tools/ccdl-sweep" "$@"; }
analyze() { "$PYTHON" "$top_srcdir/analysis/ccdl-analyze" "$@"; }
grids="$top_srcdir/tests/sweeps"
work=$(cd "$work" && pwd)  # absolute: messages are matched with it
t0=$(date +%s)

# fails_with DESCRIPTION EXPECT COMMAND...: exit 2 within 20 s, exactly one line on stderr,
# and that line contains EXPECT
fails_with() {
    local what=$1 expect=$2 rc
    shift 2
    case $1 in  # timeout runs programs, not functions
        sweep) shift; set -- "$PYTHON" "$top_srcdir/tools/ccdl-sweep" "$@" ;;
        analyze) shift; set -- "$PYTHON" "$top_srcdir/analysis/ccdl-analyze" "$@" ;;
    esac
    timeout 20 "$@" > "$work/out" 2> "$work/err" < /dev/null
    rc=$?
    if [ "$rc" -eq 2 ] && [ "$(wc -l < "$work/err")" -eq 1 ] && grep -qF -- "$expect" "$work/err"; then
        pass "$what"
    else
        fail "$what (exit $rc; expected one line with: $expect): $(head -c 800 "$work/err")"
    fi
}
# h5 FILE PYTHON-CODE: edit a trace with h5py (f is the open file)
h5() { "$PYTHON" -c "import sys, h5py, numpy as np
with h5py.File(sys.argv[1], 'r+') as f:
    $2" "$1"; }

# ---------------------------------------------------------------- material
"$CCDL" run "$specs/tiny-ring.json" --quiet --out "$work/t.h5" || fail "ccdl run tiny-ring"
sweep expand "$grids/tiny.json" --out "$work/tiny" --no-validate > /dev/null || fail "expand tiny"
sweep local "$work/tiny" --ranks 1 > "$work/local.log" 2>&1 || { cat "$work/local.log"; fail "local run of tiny"; }
# copy_sweep NAME: the expanded tiny sweep without traces, as $work/NAME
copy_sweep() {
    rm -rf "${work:?}/$1" && mkdir -p "$work/$1/traces"
    cp -r "$work/tiny/specs" "$work/tiny/manifest.json" "$work/tiny/manifest.tsv" "$work/$1/"
}
# a stand-in for ccdl: logs its arguments; `run` waits for $FAKE_RELEASE to exist
cat > "$work/fake-ccdl" <<EOF
#!/bin/sh
if [ "\$1" = spec-keys ]; then exec "$CCDL" "\$@"; fi
echo "\$*" >> "\${FAKE_LOG:-/dev/null}"
if [ "\$1" = run ]; then while [ ! -e "\${FAKE_RELEASE:-/}" ]; do sleep 0.05; done; fi
exit 0
EOF
chmod +x "$work/fake-ccdl"

# ---------------------------------------------------------------- class 9: bad input files
printf '{"name": "x", "base": "\xff\xfe", "grid": {"seed": [1]}}\n' > "$work/nonutf8.json"
fails_with "sweep file: non-UTF-8 bytes" "$work/nonutf8.json: not UTF-8 text (byte 0xff at offset 23)" \
    sweep expand "$work/nonutf8.json" --out "$work/o" --no-binary
"$PYTHON" -c 'print("[" * 200000 + "]" * 200000)' > "$work/deep.json"
fails_with "sweep file: 200000 levels of nesting (RecursionError)" "$work/deep.json: invalid JSON: nested more than 64 levels deep" \
    sweep expand "$work/deep.json" --out "$work/o" --no-binary
"$PYTHON" -c 'import json; d = 1
for _ in range(500): d = {"a": d}
print(json.dumps({"base": d, "grid": {"seed": [1]}}))' > "$work/deep500.json"
fails_with "sweep file: 500 levels of nesting (parses, refused)" "$work/deep500.json: invalid JSON: nested more than 64 levels deep" \
    sweep expand "$work/deep500.json" --out "$work/o" --no-binary
mkfifo "$work/fifo.json"
fails_with "sweep file: a FIFO (does not block)" "$work/fifo.json: not a regular file (a FIFO)" \
    sweep expand "$work/fifo.json" --out "$work/o" --no-binary
mkdir "$work/dir.json"
fails_with "sweep file: a directory" "$work/dir.json: not a regular file (a directory)" \
    sweep expand "$work/dir.json" --out "$work/o" --no-binary
echo '{"base": "fifo.json", "grid": {"seed": [1]}}' > "$work/fifo-base.json"
fails_with "base spec: a FIFO" "$work/fifo-base.json: base: $work/fifo.json: not a regular file (a FIFO)" \
    sweep expand "$work/fifo-base.json" --out "$work/o" --no-binary
echo '{"base": "a\u0000b", "grid": {"seed": [1]}}' > "$work/nul-base.json"
fails_with "base spec: a NUL in its path" "$work/nul-base.json: base: " \
    sweep expand "$work/nul-base.json" --out "$work/o" --no-binary
echo '{"base": {"workers": 4}, "grid": {"schedule.lr": [1e999]}}' > "$work/overflow.json"
fails_with "sweep file: a number beyond a double" "$work/overflow.json: invalid JSON: number '1e999' is out of range" \
    sweep expand "$work/overflow.json" --out "$work/o" --no-binary
"$PYTHON" -c 'import json; print(json.dumps({"base": {"workers": 4}, "grid": {"data.path": ["x" * 300, "y"]}}))' > "$work/longname.json"
fails_with "sweep file: a run name longer than a file name" "longer than 200 characters" \
    sweep expand "$work/longname.json" --out "$work/o" --no-binary
check "nothing written for the bad sweep files" test ! -e "$work/o"

copy_sweep m
printf '{"format": "ccdl-sweep/1", "sweep": "\xc3("}' > "$work/m/manifest.json"
fails_with "manifest.json: non-UTF-8 bytes" "$work/m/manifest.json: not UTF-8 text" sweep status "$work/m"
"$PYTHON" -c 'print("{\"runs\": " + "[" * 100000 + "]" * 100000 + "}")' > "$work/m/manifest.json"
fails_with "manifest.json: deep nesting" "$work/m/manifest.json: invalid JSON: nested more than 64 levels deep" sweep status "$work/m"
rm "$work/m/manifest.json" && mkfifo "$work/m/manifest.json"
fails_with "manifest.json: a FIFO" "$work/m/manifest.json: not a regular file (a FIFO)" sweep status "$work/m"
fails_with "manifest.json: a FIFO (ccdl-analyze)" "$work/m/manifest.json: not a regular file (a FIFO)" analyze table "$work/m"
# edit_manifest DIR PYTHON-CODE: m is the parsed manifest.json, written back after the code
edit_manifest() { "$PYTHON" -c "import json, sys
m = json.load(open(sys.argv[1] + '/manifest.json'))
$2
json.dump(m, open(sys.argv[1] + '/manifest.json', 'w'), indent=1)" "$1"; }
for case in "m['runs'] = []|runs: expected a non-empty list" \
    "del m['runs'][3]['trace']|run ring-gossip-s2 (runs[3]): trace: expected a path relative to the sweep directory, got None" \
    "m['runs'][1]['index'] = '1'|run ring-ar-s2 (runs[1]): index: expected an integer" \
    "m['runs'][1]['index'] = 0|run ring-ar-s2 (runs[1]): index: 0 given twice" \
    "m['runs'][2]['name'] = 'ring-ar-s1'|run ring-ar-s1 (runs[2]): name: given twice" \
    "m['runs'][2]['reference'] = 'nope'|run ring-gossip-s1 (runs[2]): reference: expected the name of another run" \
    "m['slurm'] = {'ranks': 'two'}|slurm.ranks: expected a positive integer, got 'two'" \
    "m['ccdl'] = 5|ccdl: expected the path of the ccdl binary or null, got 5" \
    "m['format'] = 'ccdl-sweep/9'|format 'ccdl-sweep/9', expected 'ccdl-sweep/1'" \
    "m['defaults'] = 5|defaults: expected an object of spec key paths"; do
    copy_sweep m
    edit_manifest "$work/m" "${case%%|*}"
    fails_with "manifest.json: ${case%%|*}" "$work/m/manifest.json: ${case#*|}" sweep status "$work/m"
done
# a run entry without the reference keys has no reference, as with null (was a KeyError)
copy_sweep m
edit_manifest "$work/m" "for r in m['runs']:
    if r['reference'] is None: del r['reference'], r['reference_trace']"
check "manifest.json: run entries without reference keys: status (exit 1: runs missing)" \
    sh -c '"$@" > "'"$work"'/out"; test $? = 1 && grep -q "^tiny: 6 runs: 6 missing" "'"$work"'/out"' sh \
    "$PYTHON" "$top_srcdir/tools/ccdl-sweep" status "$work/m"
check "manifest.json: run entries without reference keys: local --dry-run" sweep local "$work/m" --dry-run
copy_sweep m
sed -i '3s/\tspecs\/ring-ar-s2.json/\tspecs\/ring-gossip-s1.json/' "$work/m/manifest.tsv"
fails_with "manifest.tsv edited by hand: status names the line" "$work/m/manifest.tsv: line 3: " sweep status "$work/m"
fails_with "manifest.tsv edited by hand: submit refuses" "$work/m/manifest.tsv: line 3: " sweep submit "$work/m" --dry-run
copy_sweep m
rm "$work/m/specs/ring-gossip-s1.json" && mkfifo "$work/m/specs/ring-gossip-s1.json"
fails_with "a run's spec is a FIFO" "$work/m/specs/ring-gossip-s1.json: not a regular file (a FIFO)" sweep status "$work/m"
copy_sweep m
printf '{"seed": "\xff"}' > "$work/m/specs/ring-gossip-s1.json"
fails_with "a run's spec: non-UTF-8" "$work/m/specs/ring-gossip-s1.json: not UTF-8 text" sweep status "$work/m"
copy_sweep m
echo '[{"job": ["1"]}]' > "$work/m/submissions.json"
fails_with "submissions.json: wrong type" "$work/m/submissions.json: [0]: job: expected a Slurm job id" sweep status "$work/m"

# ---------------------------------------------------------------- class 3: manifest paths stay inside DIR
for case in "trace|/etc/passwd|is an absolute path" "spec|../../tiny/specs/ring-ar-s1.json|has a '..' component" \
    "trace|traces/../../x.h5|has a '..' component" "spec|-x.json|starts with '-'"; do
    IFS='|' read -r key value expect <<< "$case"
    copy_sweep p
    edit_manifest "$work/p" "m['runs'][1]['$key'] = '$value'"
    for cmd in status "local --dry-run" "submit --dry-run"; do
        fails_with "manifest $key $value: $cmd exits 2 naming manifest.json and the run" \
            "$work/p/manifest.json: run ring-ar-s2 (runs[1]): $key: '$value' $expect" sweep $cmd "$work/p"
    done
done
copy_sweep p
edit_manifest "$work/p" "m['runs'][1]['trace'] = '/etc/passwd'"
fails_with "manifest trace /etc/passwd: ccdl-analyze exits 2 naming manifest.json and the run" \
    "$work/p/manifest.json: run ring-ar-s2 (runs[1]): trace: '/etc/passwd' is an absolute path" analyze table "$work/p"
copy_sweep p
rmdir "$work/p/traces" && mkdir "$work/outside" && ln -s "$work/outside" "$work/p/traces"
fails_with "traces/ a symlink leading out of DIR: refused" \
    "$work/p/manifest.json: run ring-ar-s1 (runs[0]): trace: 'traces/ring-ar-s1.h5' leads outside the sweep directory through a symbolic link" \
    sweep status "$work/p"
copy_sweep p
ln -s "$work/tiny/specs/ring-ar-s1.json" "$work/p/specs/escape.json"
edit_manifest "$work/p" "m['runs'][0]['spec'] = 'specs/escape.json'"
fails_with "a spec symlink leading out of DIR: refused" "run ring-ar-s1 (runs[0]): spec: 'specs/escape.json' leads outside" \
    sweep local "$work/p" --dry-run
copy_sweep p
mv "$work/p/specs" "$work/p/specs-real" && ln -s specs-real "$work/p/specs"
sweep status "$work/p" > /dev/null 2> "$work/err"
check "a symlink that stays inside DIR is fine (exit 1: runs missing, no error)" sh -c "test $? -eq 1 && test ! -s '$work/err'"

# ---------------------------------------------------------------- class 4: one command per sweep directory
copy_sweep lk
export FAKE_LOG="$work/fake.log" FAKE_RELEASE="$work/release"
rm -f "$FAKE_LOG" "$FAKE_RELEASE"
"$PYTHON" "$top_srcdir/tools/ccdl-sweep" local "$work/lk" --ranks 1 --ccdl "$work/fake-ccdl" > "$work/lk1.log" 2>&1 &
lk_pid=$!
for _ in $(seq 1 400); do [ -s "$FAKE_LOG" ] && break; sleep 0.05; done
holder=$(cat "$work/lk/.ccdl-sweep.lock" 2> /dev/null)
check "local holds DIR/.ccdl-sweep.lock, with its pid and command ($holder)" test "$holder" = "$lk_pid local"
busy="ccdl-sweep: $work/lk is in use by another ccdl-sweep command (pid $lk_pid: local)"
fails_with "a second local on the same DIR: exit 2, one line" "$busy" sweep local "$work/lk" --ranks 1 --ccdl "$work/fake-ccdl"
check "  ... the line is exactly the documented one" grep -qxF "$busy" "$work/err"
fails_with "submit --dry-run on the same DIR meanwhile: exit 2, one line" "$busy" sweep submit "$work/lk" --dry-run
fails_with "expand into the same DIR meanwhile: exit 2, one line" "$busy" \
    sweep expand "$grids/tiny.json" --out "$work/lk" --no-validate
sweep status "$work/lk" > "$work/out" 2> "$work/err"
check "status takes no lock: works meanwhile" sh -c "test $? -eq 1 && test ! -s '$work/err'"
check "the first local is still running its first run" sh -c "kill -0 $lk_pid && test \$(wc -l < '$FAKE_LOG') -eq 1"
touch "$FAKE_RELEASE"
wait "$lk_pid"
check "the first local ran every run once" test "$(grep -c '^run ' "$FAKE_LOG")" -eq 6
sweep submit "$work/lk" --dry-run > "$work/out" 2> "$work/err"
check "after it ended, submit --dry-run takes the lock (exit 0)" sh -c "test $? -eq 0 && grep -q 'would run: sbatch' '$work/out'"
# a holder killed with SIGKILL: the kernel dropped its lock, the file it leaves means nothing
rm -f "$FAKE_RELEASE"
"$PYTHON" "$top_srcdir/tools/ccdl-sweep" local "$work/lk" --ranks 1 --ccdl "$work/fake-ccdl" > /dev/null 2>&1 &
lk_pid=$!
for _ in $(seq 1 400); do grep -q "^$lk_pid local" "$work/lk/.ccdl-sweep.lock" 2> /dev/null && break; sleep 0.05; done
kill -9 "$lk_pid"; wait "$lk_pid" 2> /dev/null
touch "$FAKE_RELEASE"  # its orphaned fake run ends
sweep submit "$work/lk" --dry-run > /dev/null 2> "$work/err"
check "a lock file left by a killed command is stale: submit proceeds" sh -c "test $? -eq 0 && test ! -s '$work/err'"

# ---------------------------------------------------------------- live traces: TRACE.lock held
copy_sweep lv
cp "$work/t.h5" "$work/lv/traces/ring-ar-s2.h5"
h5 "$work/lv/traces/ring-ar-s2.h5" "f.attrs['completed'] = np.int32(0); f.attrs['exit_reason'] = 'running'"
cp "$work/t.h5" "$work/lv/traces/ring-gossip-s1.h5"
h5 "$work/lv/traces/ring-gossip-s1.h5" "f.attrs['completed'] = np.int32(0); f.attrs['exit_reason'] = 'diverged at step 3'"
head -c 100 "$work/t.h5" > "$work/lv/traces/ring-gossip-s2.h5"  # a trace being created: not HDF5 yet
# hold.py RELEASE LOCK...: hold each TRACE.lock as rank 0 of ccdl run does ("pid host", an
# exclusive flock) until RELEASE exists; RELEASE.ready holds the pid once they are held
cat > "$work/hold.py" <<'PY'
import fcntl, os, socket, sys, time
fds = []
for path in sys.argv[2:]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    fds.append(fd)
open(sys.argv[1] + ".ready", "w").write(str(os.getpid()))
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
PY
# four runs held: ring-ar-s1 no trace yet; ring-ar-s2 completed = 0, running; ring-gossip-s1
# an error; ring-gossip-s2 half written
"$PYTHON" "$work/hold.py" "$work/unlock" "$work/lv/traces/"{ring-ar-s1,ring-ar-s2,ring-gossip-s1,ring-gossip-s2}.h5.lock &
helper=$!
for _ in $(seq 1 200); do [ -s "$work/unlock.ready" ] && break; sleep 0.05; done
holder_pid=$(cat "$work/unlock.ready")
sweep status "$work/lv" > "$work/status.log" 2> "$work/err"
rc=$?
live="a live ccdl process is writing it (pid and host: $holder_pid $("$PYTHON" -c 'import socket; print(socket.gethostname())'))"
ok=1
for r in ring-ar-s1 ring-ar-s2 ring-gossip-s1 ring-gossip-s2; do
    grep -q "^running  *$r  *$live\$" "$work/status.log" || ok=0
done
check "status: 4 traces with a held TRACE.lock (none, killed-looking, failed-looking, half-written) are running" \
    sh -c "test $ok -eq 1 && test $rc -eq 1 && test ! -s '$work/err' && grep -q '^tiny: 6 runs: 4 running, 2 missing$' '$work/status.log'"
[ "$ok" -eq 1 ] || cat "$work/status.log" "$work/err"
rm -f "$FAKE_LOG"; touch "$FAKE_RELEASE"
sweep local "$work/lv" --ranks 1 --ccdl "$work/fake-ccdl" > "$work/out" 2> "$work/err"
check "local skips the live runs: only the other 2 ran" \
    sh -c "test \$(grep -c '^run ' '$FAKE_LOG') -eq 2 && ! grep -q 'ring-ar\|ring-gossip' '$FAKE_LOG'"
check "local says why it skipped them" sh -c "test \$(grep -c 'skipped, a live ccdl process is writing it' '$work/err') -eq 4"
sweep submit "$work/lv" --dry-run > "$work/out" 2> "$work/err"
check "submit --dry-run leaves the live runs out (--array=4-5)" grep -q -- '--array=4-5%2 ' "$work/out"
touch "$work/unlock"; wait "$helper"
fails_with "the writer gone (its TRACE.lock stale), a half-written trace is an error naming it" \
    "$work/lv/traces/ring-gossip-s2.h5: not a readable HDF5 file" sweep status "$work/lv"
rm "$work/lv/traces/ring-gossip-s2.h5"
sweep status "$work/lv" > "$work/status.log" 2> "$work/err"
check "the other stale TRACE.lock files are ignored: missing, killed and failed again" \
    sh -c "grep -q '^missing  *ring-ar-s1' '$work/status.log' && grep -q '^killed  *ring-ar-s2' '$work/status.log' \
        && grep -q '^failed  *ring-gossip-s1  *exit_reason: diverged at step 3' '$work/status.log'"
mkfifo "$work/lv/traces/ring-ar-s1.h5.lock.tmp" && mv -f "$work/lv/traces/ring-ar-s1.h5.lock.tmp" "$work/lv/traces/ring-ar-s1.h5.lock"
timeout 20 "$PYTHON" "$top_srcdir/tools/ccdl-sweep" status "$work/lv" > "$work/status.log" 2>&1
check "a FIFO in place of TRACE.lock: no hang, not live" sh -c "test $? -eq 1 && grep -q '^missing  *ring-ar-s1' '$work/status.log'"
# a reference being written: submit holds its dependents back, local skips them
sweep expand "$grids/tiny-control.json" --out "$work/ctl" --no-binary > /dev/null || fail "expand tiny-control"
read -r dep ref dep_index <<< "$("$PYTHON" -c 'import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
r = next(r for r in runs if r["reference"])
print(r["name"], r["reference"], r["index"])' "$work/ctl/manifest.json")"
"$PYTHON" "$work/hold.py" "$work/unlock2" "$work/ctl/traces/$ref.h5.lock" &
helper=$!
for _ in $(seq 1 200); do [ -s "$work/unlock2.ready" ] && break; sleep 0.05; done
sweep submit "$work/ctl" --dry-run > "$work/out" 2> "$work/err"
check "submit: a dependent of a live reference is held back, with a note" \
    sh -c "grep -q '$dep: not submitted: its reference $ref is running outside Slurm' '$work/err' \
        && ! grep -q -- '--array=[^ ]*$dep_index' '$work/out'"
sweep local "$work/ctl" --dry-run --ranks 1 > "$work/out" 2> "$work/err"
check "local: a dependent of a live reference is skipped, with a note" \
    grep -q "$dep: skipped, its reference $ref is being written by a live ccdl process" "$work/err"
touch "$work/unlock2"; wait "$helper"
if grep -q "another ccdl run is writing this trace" "$CCDL"; then
    # the real writer: ccdl run holds TRACE.lock while it writes
    sed -e 's/"epochs": 2/"epochs": 400/' "$specs/tiny-ring.json" > "$work/long.json"
    "$CCDL" run "$work/long.json" --quiet --out "$work/lv/traces/complete-gossip-s1.h5" 2> /dev/null &
    run_pid=$!
    for _ in $(seq 1 200); do [ -e "$work/lv/traces/complete-gossip-s1.h5" ] && break; sleep 0.05; done
    sweep status "$work/lv" > "$work/status.log" 2>&1
    check "a real ccdl run in progress: status says running" grep -q "^running  *complete-gossip-s1  *a live ccdl process is writing it (pid and host: $run_pid " "$work/status.log"
    kill -9 "$run_pid"; wait "$run_pid" 2> /dev/null
    sweep status "$work/lv" > "$work/status.log" 2>&1
    check "  ... killed with SIGKILL: no longer running (killed, or resumable from its checkpoint)" \
        grep -Eq "^(killed|resumable)  *complete-gossip-s1" "$work/status.log"
else
    echo "skip: this ccdl takes no TRACE.lock yet (the reader side is tested with a helper above)"
fi

# ---------------------------------------------------------------- damaged traces
copy_sweep tr
good="$work/tr/traces/ring-ar-s1.h5"
cp "$work/tiny/traces/ring-ar-s1.h5" "$good"
sweep status "$work/tr" > "$work/status.log" 2>&1
check "the undamaged trace is completed" grep -q '^completed  *ring-ar-s1' "$work/status.log"
h5 "$good" "f['steps/xi'].resize((len(f['steps/xi']) - 1,))"
unequal="/steps: completed = 1 but its columns differ in length (xi 63 rows, the others 64): a corrupt trace"
fails_with "completed trace, unequal column lengths: ccdl-analyze table exits 2" "$good: $unequal" analyze table "$good"
fails_with "completed trace, unequal column lengths: ccdl-analyze plot exits 2" "$good: $unequal" analyze plot "$good" --out "$work/fig"
fails_with "completed trace, unequal column lengths: ccdl-sweep status exits 2" "ccdl-sweep: $good: $unequal" sweep status "$work/tr"
if command -v h5dump > /dev/null; then
    CCDL_SWEEP_NO_H5PY=1 fails_with "  ... the same through h5dump" "ccdl-sweep: $good: $unequal" sweep status "$work/tr"
fi
h5 "$good" "f.attrs['completed'] = np.int32(0)"
analyze table "$good" --allow-incomplete > /dev/null 2> "$work/err"
check "unfinished trace, unequal columns: --allow-incomplete cuts to the shortest (exit 0)" test $? -eq 0
# bad_trace DESCRIPTION EXPECT H5PY-CODE: both readers exit 2 naming the trace and EXPECT
bad_trace() {
    cp "$work/tiny/traces/ring-ar-s1.h5" "$good"
    h5 "$good" "$3"
    fails_with "trace $1: ccdl-analyze" "ccdl-analyze: $good: $2" analyze table "$good" --allow-incomplete
    fails_with "trace $1: ccdl-sweep status" "ccdl-sweep: $good: $2" sweep status "$work/tr"
}
bad_trace "completed = '1' (a string)" "attribute 'completed': expected the integer 0 or 1, got '1'" "f.attrs['completed'] = '1'"
bad_trace "completed = 2" "attribute 'completed': expected the integer 0 or 1, got 2" "f.attrs['completed'] = np.int32(2)"
bad_trace "completed as an array" "attribute 'completed': expected the integer 0 or 1" "f.attrs['completed'] = np.array([1, 1], dtype=np.int32)"
bad_trace "no ccdl_version" "no attribute 'ccdl_version'" "del f.attrs['ccdl_version']"
bad_trace "no completed" "no attribute 'completed'" "del f.attrs['completed']"
bad_trace "exit_reason non-UTF-8 bytes" "attribute 'exit_reason': expected a string, got b'\\xff\\xfe'" "f.attrs['exit_reason'] = np.bytes_(b'\\xff\\xfe')"
bad_trace "spec an integer" "attribute 'spec': expected a string, got 5" "f.attrs['spec'] = np.int32(5)"
bad_trace "format_version from the future" "format_version 99: written by a newer ccdl" "f.attrs['format_version'] = np.int32(99)"
bad_trace "format_version a string" "attribute 'format_version': expected a positive integer, got '1'" "f.attrs['format_version'] = '1'"
bad_trace "format of a checkpoint" "attribute 'format': 'ccdl-checkpoint', expected 'ccdl-trace'" "f.attrs['format'] = 'ccdl-checkpoint'"
bad_trace "/steps/xi strings" "/steps/xi: expected a 1-D numeric column, got dtype |S3" "del f['steps/xi']; f['steps'].create_dataset('xi', data=np.array([b'abc'] * 64))"
bad_trace "/steps/xi 2-D" "/steps/xi: expected a 1-D numeric column, got dtype float64 shape (64, 2)" "del f['steps/xi']; f['steps'].create_dataset('xi', data=np.zeros((64, 2)))"
bad_trace "/steps a dataset" "/steps" "del f['steps']; f.create_dataset('steps', data=np.zeros(3))"
cp "$work/tiny/traces/ring-ar-s1.h5" "$good"
h5 "$good" "del f['epochs/test_acc']; f['epochs'].create_dataset('test_acc', data=np.arange(2, dtype=np.int64))"
fails_with "trace /epochs/test_acc integers: ccdl-analyze names the column and its kind" \
    "$good: /epochs/test_acc: dtype int64, expected a floating-point column" analyze table "$good"
cp "$work/tiny/traces/ring-ar-s1.h5" "$good"
"$PYTHON" -c 'import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs["spec"] = "[" * 100000 + "]" * 100000' "$good"
fails_with "trace spec nested 100000 levels: ccdl-analyze" "$good: the 'spec' attribute is not JSON (nested" analyze table "$good"
fails_with "trace spec nested 100000 levels: ccdl-sweep status" "$good: attribute 'spec': nested more than 64 levels deep" sweep status "$work/tr"
cp "$work/tiny/traces/ring-ar-s1.h5" "$good"
h5 "$good" "import json; s = json.loads(f.attrs['spec']); s['communication']['phases'] = 7; f.attrs['spec'] = json.dumps(s)"
fails_with "trace spec: phases of the wrong type" "$good: attribute 'spec': communication.phases: expected a list, got 7" analyze table "$good"
rm "$good" && mkfifo "$good"
fails_with "trace a FIFO: ccdl-analyze (no hang)" "$good: not a regular file (a FIFO)" analyze table "$good"
fails_with "trace a FIFO: ccdl-sweep status (no hang)" "$good: not a regular file (a FIFO)" sweep status "$work/tr"
rm "$good" && mkdir "$good"
fails_with "trace a directory: ccdl-analyze (an INPUT directory: of traces)" "$good: no *.h5 traces and no manifest.json" analyze table "$good"
fails_with "trace a directory: ccdl-sweep status" "$good: not a regular file (a directory)" sweep status "$work/tr"
rmdir "$good" && head -c 3000 "$work/t.h5" > "$good"
fails_with "trace truncated: ccdl-analyze" "$good: not a readable HDF5 file" analyze table "$good"
fails_with "trace truncated: ccdl-sweep status" "$good: not a readable HDF5 file" sweep status "$work/tr"
echo "  (targeted checks: $(($(date +%s) - t0)) s)"

# ---------------------------------------------------------------- seeded fuzz
# One driver generates every mutant from random.Random(SEED) (the choices are reproducible;
# the traces it starts from hold wall-clock columns) and runs the cases, two at a time, each
# with a 20 s limit. PYTHON_FAULTS_SEED and PYTHON_FAULTS_N (mutants of each kind, default
# 210) change them; every case's exit code and stderr are kept in $work/fuzz/results.tsv,
# the mutants beside it. CCDL_HDF5_TIMEOUT=8: the readers give up on a file HDF5 loops on
# after 8 s (default 60), well within the 20 s.
CCDL_HDF5_TIMEOUT=8 "$PYTHON" - "$top_srcdir" "$work" "${PYTHON_FAULTS_SEED:-20260412}" <<'PY' && pass "fuzz: every case exit 0 or 2 (status, local: 1 = unfinished), one line on exit 2, no traceback, hang or signal" || fail "fuzz"
import concurrent.futures, json, os, random, shutil, subprocess, sys, time
import h5py
import numpy as np

top, work, seed = os.path.abspath(sys.argv[1]), sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
py = sys.executable
SWEEP = [py, os.path.join(top, "tools", "ccdl-sweep")]
ANALYZE = [py, os.path.join(top, "analysis", "ccdl-analyze")]
fz = os.path.join(work, "fuzz")
os.makedirs(fz)
tiny = os.path.join(work, "tiny")
N = int(os.environ.get("PYTHON_FAULTS_N", "210"))  # mutants of each kind
cases = []  # (label, argv, exit codes allowed, token the error line must name)

# ---- JSON mutations: values a hand edit or a bad tool could leave
DEEP = "@@DEEP@@"
ODD = [None, True, False, 0, -1, 1.5, -0.0, 2 ** 31, 2 ** 63, 10 ** 30, -10 ** 30, 1e308, -1e308, 5e-324,
       "", "x", "\u0000", "\ud800", "a\tb\nc", "é" * 5, "x" * 300, "../../etc/passwd", "/abs/path", "-x",
       "traces/../x.h5", [], {}, [1, [2, [3]]], {"a": {"b": {}}}, list(range(50)), [None], [[]], [{}],
       {"ranks": 0}, DEEP]
NUMBERS = [0, -1, 2 ** 31, 2 ** 63, 10 ** 100, 1e308, 5e-324, -1e308, 1.7976931348623157e308, 0.1]


def nodes(obj, path=()):
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from nodes(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from nodes(v, path + (i,))


def parent(obj, path):
    for p in path[:-1]:
        obj = obj[p]
    return obj


def mutate_json(doc):
    all_nodes = [p for p, _ in nodes(doc) if p]
    if not all_nodes:
        return rng.choice(ODD)
    path = rng.choice(all_nodes)
    par = parent(doc, path)
    op = rng.random()
    if op < 0.3:
        del par[path[-1]]
    elif op < 0.65:
        par[path[-1]] = rng.choice(ODD)
    elif op < 0.8:
        node = par[path[-1]]
        nums = [p for p, v in nodes(doc) if p and isinstance(v, (int, float)) and not isinstance(v, bool)]
        p = rng.choice(nums) if nums else path
        parent(doc, p)[p[-1]] = rng.choice(NUMBERS)
    elif op < 0.9:
        dicts = [p for p, v in nodes(doc) if isinstance(v, dict)]
        p = rng.choice(dicts)
        target = doc if not p else parent(doc, p)[p[-1]]
        target[rng.choice(["zz", "runs", "index", "name", "seed", "x.y"])] = rng.choice(ODD)
    else:
        lists = [p for p, v in nodes(doc) if p and isinstance(v, list) and v]
        if lists:
            p = rng.choice(lists)
            lst = parent(doc, p)[p[-1]]
            lst.append(json.loads(json.dumps(lst[0])))  # a repeated value
    return doc


def dumps(doc):
    deep = rng.choice([70, 3000, 200000])
    text = json.dumps(doc, indent=rng.choice([None, 1]))
    return text.replace(json.dumps(DEEP), "[" * deep + "]" * deep)


def mutate_bytes(data):
    op = rng.random()
    if op < 0.25 and data:
        return data[:rng.randrange(len(data))]
    if op < 0.5:
        b = bytearray(data)
        for _ in range(rng.randint(1, 5)):
            if b:
                b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if op < 0.7:
        pos = rng.randrange(len(data) + 1)
        return data[:pos] + rng.choice([b"\xff", b"\xc3", b"\x00", b"\xef\xbb\xbf", b"\xed\xa0\x80", b"}", b'"']) + data[pos:]
    if op < 0.8:
        return rng.choice([b"", b"   \n", b"\xef\xbb\xbf" + data, b"null", b"[]", b"{}", b'"x"', b"1e999"])
    # a number literal made extreme
    text = data.decode("utf-8", "replace")
    import re
    nums = list(re.finditer(r"(?<![\w.\"])\d+(\.\d+)?", text))
    if not nums:
        return data
    m = rng.choice(nums)
    return (text[:m.start()] + rng.choice(["1e999", "-1e999", "NaN", "Infinity", "1" * 5000, "1e-999", "-0", "01"])
            + text[m.end():]).encode("utf-8", "surrogatepass")


def write_mutant(path, doc):
    for _ in range(rng.randint(1, 3)):
        doc = mutate_json(doc) if isinstance(doc, (dict, list)) else doc
    data = dumps(doc).encode("utf-8", "surrogatepass")
    if rng.random() < 0.35:
        data = mutate_bytes(data)
    with open(path, "wb") as f:
        f.write(data)


# ---- sweep files through expand
sources = []
for name in sorted(os.listdir(os.path.join(top, "tests", "sweeps"))) + [
        "bad/" + n for n in sorted(os.listdir(os.path.join(top, "tests", "sweeps", "bad")))]:
    p = os.path.join(top, "tests", "sweeps", name)
    if not p.endswith(".json"):
        continue
    try:
        doc = json.load(open(p))
    except ValueError:
        continue
    if isinstance(doc.get("base"), str):
        base = os.path.normpath(os.path.join(os.path.dirname(p), doc["base"]))
        doc["base"] = base
        if os.path.exists(base):
            doc_inline = dict(doc, base=json.load(open(base)))
            sources.append(doc_inline)
    sources.append(doc)
for i in range(N):
    path = os.path.join(fz, f"sweep-{i}.json")
    write_mutant(path, json.loads(json.dumps(rng.choice(sources))))
    mode = ["--no-binary"] if i % 8 else ["--no-validate", "--ccdl", os.path.abspath(os.environ["CCDL"])]
    cases.append((f"sweep-{i}", SWEEP + ["expand", path, "--out", os.path.join(fz, f"out-{i}")] + mode,
                  (0, 2), f"sweep-{i}.json"))

# ---- manifests of the expanded tiny sweep through status (and local, submit, analyze)
manifest = json.load(open(os.path.join(tiny, "manifest.json")))


def tsv_of(doc):
    cols = ("index", "name", "spec", "trace", "reference", "reference_trace")
    lines = ["\t".join(cols)] + ["\t".join(str(e[c]) if e[c] is not None else "-" for c in cols)
                                 for e in doc["runs"]]
    return "\n".join(lines) + "\n"


def sweep_copy(d, traces=True):
    os.makedirs(os.path.join(d, "traces"))
    shutil.copytree(os.path.join(tiny, "specs"), os.path.join(d, "specs"))
    for f in ("manifest.json", "manifest.tsv"):
        shutil.copy(os.path.join(tiny, f), d)
    if traces:
        for f in os.listdir(os.path.join(tiny, "traces")):
            if f.endswith(".h5"):
                os.link(os.path.join(tiny, "traces", f), os.path.join(d, "traces", f))


for i in range(N):
    d = os.path.join(fz, f"m-{i}")
    sweep_copy(d)
    op = rng.random()
    if op < 0.8:
        doc = json.loads(json.dumps(manifest))
        write_mutant(os.path.join(d, "manifest.json"), doc)
        if rng.random() < 0.5:
            try:
                open(os.path.join(d, "manifest.tsv"), "w").write(tsv_of(doc))
            except Exception:  # noqa: BLE001 (a mutant without what a tsv needs)
                pass
    elif op < 0.9:
        p = os.path.join(d, "manifest.tsv")
        data = open(p, "rb").read()
        if rng.random() < 0.5:
            data = mutate_bytes(data)
        else:
            lines = data.split(b"\n")
            k = rng.randrange(1, len(lines) - 1)
            cells = lines[k].split(b"\t")
            cells[rng.randrange(len(cells))] = rng.choice([b"", b"-", b"/etc/passwd", b"99", b"x\xff"])
            lines[k] = b"\t".join(cells)
            data = b"\n".join(lines)
        open(p, "wb").write(data)
    else:
        what = rng.choice(["fifo-manifest", "dir-manifest", "fifo-spec", "dir-trace", "traces-out",
                           "spec-out", "submissions", "no-manifest", "fifo-trace"])
        if what == "fifo-manifest":
            os.remove(os.path.join(d, "manifest.json")); os.mkfifo(os.path.join(d, "manifest.json"))
        elif what == "dir-manifest":
            os.remove(os.path.join(d, "manifest.json")); os.mkdir(os.path.join(d, "manifest.json"))
        elif what == "fifo-spec":
            p = os.path.join(d, "specs", "ring-gossip-s1.json"); os.remove(p); os.mkfifo(p)
        elif what in ("dir-trace", "fifo-trace"):
            p = os.path.join(d, "traces", "complete-gossip-s2.h5"); os.remove(p)
            os.mkdir(p) if what == "dir-trace" else os.mkfifo(p)
        elif what == "traces-out":
            shutil.rmtree(os.path.join(d, "traces")); os.symlink(os.path.join(tiny, "traces"), os.path.join(d, "traces"))
        elif what == "spec-out":
            p = os.path.join(d, "specs", "ring-ar-s2.json"); os.remove(p)
            os.symlink(os.path.join(tiny, "specs", "ring-ar-s2.json"), p)
        elif what == "submissions":
            open(os.path.join(d, "submissions.json"), "wb").write(
                rng.choice([b"{}", b"[1]", b'[{"job": 5}]', b"\xff", b"[" * 5000, b'[{"job": "1", "overrides": []}]']))
        else:
            os.remove(os.path.join(d, "manifest.json"))
    cases.append((f"m-{i}", SWEEP + ["status", d], (0, 1, 2), f"m-{i}"))
    if i % 4 == 0:
        cases.append((f"m-{i} analyze", ANALYZE + ["table", d, "--allow-incomplete"], (0, 2), f"m-{i}"))
    if i % 5 == 1:
        cases.append((f"m-{i} local", SWEEP + ["local", d, "--dry-run", "--ranks", "1"], (0, 1, 2), f"m-{i}"))
    if i % 5 == 3:
        cases.append((f"m-{i} submit", SWEEP + ["submit", d, "--dry-run"], (0, 2), f"m-{i}"))

# ---- traces through ccdl-analyze table and status
bases = [os.path.join(work, "t.h5"), os.path.join(tiny, "traces", "ring-ar-s1.h5")]
SPEC_EDITS = ['{"communication": 5}', '{"name": [1]}', "[]", '{"schedule": {"decay_at": 3}}',
              '{"communication": {"phases": [1, 2]}}', '{"communication": {"dec_phase": "x"}}',
              '{"seed": 1e999}', '{"seed": NaN}', "{" * 5000, '{"a": ' * 100 + "1" + "}" * 100, "", "\u00e9"]


def odd_attr():
    return rng.choice([np.int32(0), np.int32(1), np.int32(2), np.int64(-1), np.float64(1.0), np.float64("nan"),
                       "1", "", "x" * 10000, np.bytes_(b"\xff\xfe"), np.array([1, 1], dtype=np.int32),
                       np.array([], dtype=float), np.bool_(True), np.uint8(1), np.array(["a", "b"], dtype="S1"),
                       np.complex64(1j), np.zeros((2, 2))])


def h5_mutation(f):
    op = rng.random()
    groups = [g for g in ("steps", "epochs", "phases", "resumes") if g in f and isinstance(f[g], h5py.Group)]
    g = rng.choice(groups) if groups else None
    cols = list(f[g]) if g else []
    if op < 0.12 and len(f.attrs):
        del f.attrs[rng.choice(list(f.attrs))]
    elif op < 0.3:
        name = rng.choice(["completed", "exit_reason", "spec", "ccdl_version", "n", "created",
                           "format_version", "format"])
        f.attrs[name] = odd_attr()
    elif op < 0.4:
        if rng.random() < 0.5:
            f.attrs["spec"] = rng.choice(SPEC_EDITS)
        else:
            spec = json.loads(f.attrs["spec"])
            for _ in range(rng.randint(1, 3)):
                spec = mutate_json(spec) if isinstance(spec, (dict, list)) else spec
            f.attrs["spec"] = dumps(spec)
    elif op < 0.48:
        f.attrs[rng.choice(["format_version", "format"])] = rng.choice(
            [np.int32(1), np.int32(2), np.int32(0), "1", "ccdl-trace", "ccdl-checkpoint", np.float64(1.5)])
    elif op < 0.58 and g:
        if rng.random() < 0.3:
            del f[g]
        elif cols:
            del f[g][rng.choice(cols)]
    elif op < 0.72 and g and cols:
        c = rng.choice(cols)
        n = len(f[g][c])
        del f[g][c]
        data = rng.choice([np.array([b"abc"] * n), np.zeros((n, 2)), np.float64(1.0), np.zeros(n),
                           np.arange(n, dtype=np.int16), np.zeros(n, dtype=bool), np.zeros(n, dtype=np.complex64),
                           np.zeros(n, dtype=[("a", "i4"), ("b", "f8")]), np.array([], dtype=float)])
        if rng.random() < 0.15:
            f[g].create_group(c)
        else:
            f[g].create_dataset(c, data=data)
    elif op < 0.85 and g and cols:
        ds = f[g][rng.choice(cols)]
        if ds.maxshape and ds.maxshape[0] is None:
            ds.resize((max(0, len(ds) - rng.randint(1, 3)),) if rng.random() < 0.7 else (0,))
        f.attrs["completed"] = np.int32(rng.choice([0, 1]))
    elif g and cols:
        ds = f[g][rng.choice(cols)]
        if len(ds) and ds.dtype.kind in "iuf":
            vals = ds[()]
            vals[rng.randrange(len(vals))] = rng.choice([np.nan, np.inf, -np.inf, -5, 1e308]) if ds.dtype.kind == "f" \
                else rng.choice([-5, 2 ** 30, 0])
            ds[...] = vals


for i in range(N):
    d = os.path.join(fz, f"tr-{i}")
    sweep_copy(d, traces=False)
    p = os.path.join(d, "traces", "ring-ar-s1.h5")
    shutil.copy(rng.choice(bases), p)
    try:
        with h5py.File(p, "r+") as f:
            for _ in range(rng.randint(1, 3)):
                try:
                    h5_mutation(f)
                except Exception:  # noqa: BLE001 (a mutation the previous one made impossible)
                    pass
    except Exception:  # noqa: BLE001
        pass
    op = rng.random()
    if op < 0.3:
        data = open(p, "rb").read()
        r = rng.random()
        if r < 0.35:
            data = data[:rng.randrange(len(data))]
        elif r < 0.85:
            b = bytearray(data)
            for _ in range(rng.randint(1, 20)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            data = bytes(b)
        elif r < 0.95:
            pos = rng.randrange(len(data))
            data = data[:pos] + bytes([rng.choice([0, 255])]) * 64 + data[pos + 64:]
        else:
            data = rng.choice([b"", b"\x89HDF\r\n\x1a\n", bytes(rng.randrange(256) for _ in range(4096))])
        open(p, "wb").write(data)
    extra = ["--allow-incomplete"] if i % 2 else []
    cases.append((f"tr-{i} analyze", ANALYZE + ["table", p] + extra, (0, 2), f"tr-{i}"))
    cases.append((f"tr-{i} status", SWEEP + ["status", d], (0, 1, 2), f"tr-{i}"))
    if i % 10 == 0:  # figures too (slower: matplotlib)
        cases.append((f"tr-{i} plot", ANALYZE + ["plot", p, "--allow-incomplete", "--out", os.path.join(d, "fig")],
                      (0, 2), f"tr-{i}"))


def run(case):
    label, argv, allowed, token = case
    t = time.time()
    try:
        p = subprocess.run(argv, capture_output=True, timeout=20, stdin=subprocess.DEVNULL, cwd=work)
    except subprocess.TimeoutExpired:
        return label, "hang (no exit within 20 s)", time.time() - t, None, ""
    err = p.stderr.decode("utf-8", "replace")
    rc = p.returncode
    why = None
    if rc < 0:
        why = f"killed by signal {-rc}"
    elif "Traceback" in err or "internal error" in err:
        why = f"exit {rc}, {err.strip().splitlines()[-1][:300] if err.strip() else ''}"
    elif rc not in allowed:
        why = f"exit {rc} (allowed: {allowed})"
    elif rc == 2:
        lines = err.split("\n")
        if len(lines) != 2 or lines[1] != "" or not lines[0].startswith(("ccdl-sweep: ", "ccdl-analyze: ")):
            why = f"exit 2 with {len(lines) - 1} lines on stderr: {err[:300]!r}"
        elif token not in lines[0]:
            why = f"exit 2, the line does not name the file ({token}): {lines[0][:300]}"
    return label, (f"{why}; {' '.join(argv[1:])}" if why else None), time.time() - t, rc, err.strip()[:300]


t0 = time.time()
failures = []
with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    results = list(pool.map(run, cases))
codes = {}
with open(os.path.join(fz, "results.tsv"), "w") as log:  # every case: label, exit code, stderr
    for label, why, _, rc, err in results:
        codes[rc] = codes.get(rc, 0) + 1
        log.write(f"{label}\t{rc}\t{' '.join(err.split())}\n")
        if why:
            failures.append(f"{label}: {why}")
kinds = {"sweep": 0, "m": 0, "tr": 0}
for label, *_ in results:
    kinds[label.split("-")[0]] += 1
slowest = max(results, key=lambda r: r[2])
print(f"fuzz seed {seed}: {len(cases)} cases ({kinds['sweep']} sweep files through expand, {kinds['m']} "
      f"manifest cases through status/local/submit/analyze, {kinds['tr']} trace cases through "
      f"ccdl-analyze table, plot and status) in {time.time() - t0:.0f} s (slowest {slowest[2]:.1f} s, {slowest[0]}); "
      f"{len(failures)} failed; exit codes: {', '.join(f'{k}: {v}' for k, v in sorted(codes.items(), key=str))}")
for f in failures[:40]:
    print("  FAIL " + f)
sys.exit(1 if failures else 0)
PY
echo "python_faults: $(($(date +%s) - t0)) s"
finish
