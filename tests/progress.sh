# progress.sh: ccdl run --progress SECONDS prints lines within epochs (rank 0, stderr) whose
# step counts, Xi and gossip rounds are the trace's, whose rates and ETA agree with their own
# elapsed times, also across a resume; none without the flag, with --progress 0, with --quiet,
# or with bare --progress (60 s) on a short run; bad values are usage errors; the trace is
# bitwise the same with and without the lines, on 1 and 2 ranks.
. "$(dirname "$0")/lib.sh"
compare="$top_srcdir/tests/compare_traces.py"

# 2-3 s: a controlled ring, so the gossip rounds per step change (4, 3, then 1) and Xi is
# measured every step; 3 epochs of 32 steps.
sed -e 's/"name": "tiny-ring"/"name": "long"/' -e 's/"hidden": \[32\]/"hidden": [384, 384]/' \
    -e 's/"epochs": 2/"epochs": 3/' \
    -e 's/"mode": "gossip"/"mode": "controlled", "control": {"value": 0.02, "max_rounds": 20}/' \
    "$specs/tiny-ring.json" > "$work/long.json"

# check_lines.py STDERR TRACE EVERY: every stderr line is a progress line, a per-epoch line
# or a resume's stop/restart line, and every progress line agrees with the trace and with
# the elapsed times printed before it. Printed values are rounded: the bounds allow for it.
cat > "$work/check_lines.py" <<'PY'
import re, sys, h5py, numpy as np
err_path, trace_path, every = sys.argv[1], sys.argv[2], float(sys.argv[3])
PROG = re.compile(r"ccdl: long step (\d+)/(\d+) epoch (\d+)/(\d+) \((\d+)/(\d+)\) "
                  r"images/s (\d+) xi (\S+) rounds/step (\d+\.\d\d) elapsed (\d+\.\d)s eta (\d+\.\d)s")
EPOCH = re.compile(r"ccdl: long epoch (\d+)/\d+ lr .* elapsed (\d+\.\d)s eta \d+\.\ds")
RESUME = re.compile(r"ccdl: long: resuming at step (\d+) from ")
STOP = re.compile(r"ccdl: stopped by SIGTERM at step \d+ of \d+; ")
t = h5py.File(trace_path, "r")
xi, rounds = t["steps/xi"][()], t["steps/rounds"][()]
T, N = len(xi), len(t["epochs/epoch"])
M = T // N
spec_workers, spec_batch = 4, 16
problems, lines = [], 0
# the current window: its first step, the elapsed time printed then, whether that was a
# progress line (the window starts right after it; an epoch line's trace flush comes before)
start, start_elapsed, exact, last_elapsed = 0, 0.0, False, 0.0
for text in open(err_path).read().splitlines():
    m = PROG.fullmatch(text)
    if EPOCH.fullmatch(text):
        e = EPOCH.fullmatch(text)
        start, start_elapsed, exact = int(e[1]) * M, float(e[2]), False
        if start_elapsed < last_elapsed: problems.append(f"elapsed went back: {text}")
        last_elapsed = start_elapsed
        continue
    if RESUME.match(text):
        start, start_elapsed, exact = int(RESUME.match(text)[1]), None, False
        continue
    if STOP.match(text): continue
    if not m:
        problems.append(f"unexpected line: {text!r}")
        continue
    lines += 1
    S, tot, E, n, K, m_, ips, x, rps, el, eta = m.groups()
    S, ips, el, eta = int(S), int(ips), float(el), float(eta)
    want = (T, (S - 1) // M + 1, N, (S - 1) % M + 1, M)
    if (int(tot), int(E), int(n), int(K), int(m_)) != want:
        problems.append(f"step counts {text} (want {want})")
    if S <= start or S >= T or S % M == 0:
        problems.append(f"step {S} not after {start} or at an epoch end: {text}")
        continue
    if x != "%.4g" % xi[S - 1]:
        problems.append(f"xi {x} != trace /steps/xi[{S - 1}] {xi[S - 1]:.4g}")
    if rps != "%.2f" % np.mean(rounds[start:S]):
        problems.append(f"rounds/step {rps} != mean /steps/rounds[{start}:{S}] {np.mean(rounds[start:S]):.2f}")
    # lines are at least `every` apart, so the i-th has at least i x every behind it
    if el < last_elapsed or el < lines * every - 0.05:
        problems.append(f"elapsed {el} before the previous {last_elapsed} or below {lines} x {every}")
    images = (S - start) * spec_workers * spec_batch
    dt_lo = max(every, el - start_elapsed - 0.1) if exact else every
    if ips > images / dt_lo + 1:
        problems.append(f"images/s {ips} > {images} images / {dt_lo:.2f} s")
    if start_elapsed is not None and ips < images / (el - start_elapsed + 0.1) - 1:
        problems.append(f"images/s {ips} < {images} images / {el - start_elapsed + 0.1:.2f} s")
    # eta = elapsed / steps done x steps left, from unrounded values
    if abs(eta - el * (T - S) / S) > 0.05 * (T - S) / S + 0.05 + 1e-9:
        problems.append(f"eta {eta} != {el} / {S} x {T - S}")
    start, start_elapsed, exact, last_elapsed = S, el, True, el
for p in problems: print(p)
print(f"{lines} progress lines, {len(problems)} problems")
bad = problems or lines < 3 or lines > last_elapsed / every + 1
if bad: print("".join("    " + line for line in open(err_path)), end="")
sys.exit(1 if bad else 0)
PY
check_lines() { "$PYTHON" "$work/check_lines.py" "$@"; }
# no_lines NAME CODE N: exit code 0, nothing on stdout, only N per-epoch lines on stderr
no_lines() {
    test "$2" -eq 0 && test ! -s "$work/$1.out" && test "$(wc -l < "$work/$1.err")" -eq "$3" &&
        test "$(grep -c '^ccdl: long epoch [1-3]/3 lr .* eta [0-9.]*s$' "$work/$1.err")" -eq "$3"
}
run() { # RANKS NAME ARGS...: run the long spec to $work/NAME.h5, stdout and stderr aside
    local p=$1 name=$2; shift 2
    timeout 120 "$MPIEXEC" $MPIEXEC_FLAGS -n "$p" "$CCDL" run "$work/long.json" --out "$work/$name.h5" "$@" \
        > "$work/$name.out" 2> "$work/$name.err"
}

for p in 1 2; do
    run "$p" "lines$p" --progress 0.2
    check "$p rank(s), --progress 0.2: exit 0" test $? -eq 0
    check "$p rank(s), --progress 0.2: lines agree with the trace and their times" \
        check_lines "$work/lines$p.err" "$work/lines$p.h5" 0.2
    check "$p rank(s), --progress 0.2: nothing on stdout" test ! -s "$work/lines$p.out"
done
sed 's/^/    /' "$work/lines1.err"
check "1 and 2 ranks: traces bitwise equal" "$PYTHON" "$compare" "$work/lines1.h5" "$work/lines2.h5"

# Without lines: no flag, --progress 0, --quiet.
run 1 default
check "default flags: exit 0, only the 3 per-epoch lines on stderr, nothing on stdout" \
    no_lines default $? 3
run 1 off --progress 0.2 --progress 0
check "--progress 0: exit 0, only the 3 per-epoch lines on stderr, nothing on stdout" \
    no_lines off $? 3
run 1 quiet --progress 0.2 --quiet
check "--quiet --progress 0.2: exit 0, stderr and stdout empty" no_lines quiet $? 0
# (the 2-rank trace with lines equals the 1-rank one with lines, compared above)
for name in default off quiet; do
    check "trace with lines bitwise equal to the one without ($name)" \
        "$PYTHON" "$compare" "$work/lines1.h5" "$work/$name.h5"
done

# Stopped on 1 rank at step 40 (of 96), resumed on 2: elapsed goes on from the stopped run,
# rates and rounds count from the resumed step, and the bits are the uninterrupted run's.
CCDL_TEST_SIGNAL="TERM@40" run 1 chain --progress 0.2
check "stop at step 40: exit 3" test $? -eq 3
cp "$work/chain.err" "$work/chain-all.err"
run 2 chain --progress 0.2 --resume
check "resume on 2 ranks: exit 0" test $? -eq 0
cat "$work/chain.err" >> "$work/chain-all.err"
check "resume on 2 ranks: resumes at step 41 and prints lines" \
    sh -c "grep -q 'resuming at step 41 ' '$work/chain.err' && grep -q ' step [0-9]*/96 ' '$work/chain.err'"
check "stop and resume: lines agree with the trace and their times, elapsed goes on" \
    check_lines "$work/chain-all.err" "$work/chain.h5" 0.2
check "stop and resume: trace bitwise equal to the uninterrupted run" \
    "$PYTHON" "$compare" "$work/lines1.h5" "$work/chain.h5"

# The checks can fail: a trace whose Xi is 1% off, or lines claimed 10 x further apart.
"$PYTHON" - "$work/lines1.h5" "$work/doctored.h5" <<'PY'
import shutil, sys, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f: f["steps/xi"][...] = f["steps/xi"][()] * 1.01
PY
check "negative control: lines against a trace with Xi 1% off are refused" \
    sh -c "! '$PYTHON' '$work/check_lines.py' '$work/lines1.err' '$work/doctored.h5' 0.2 > /dev/null"
check "negative control: the doctored trace differs for compare_traces.py" \
    sh -c "! '$PYTHON' '$compare' '$work/lines1.h5' '$work/doctored.h5' > /dev/null"
check "negative control: lines 0.2 s apart are refused as 2 s apart" \
    sh -c "! '$PYTHON' '$work/check_lines.py' '$work/lines1.err' '$work/lines1.h5' 2 > /dev/null"

# Bad values: exit 2, one line naming --progress, no trace. (A word that does not look like
# a number is not taken as the value: it is an unexpected argument, also exit 2.)
for bad in -1 1e999 5s .5.5 +1x; do
    "$CCDL" run "$work/long.json" --out "$work/bad.h5" --progress "$bad" > /dev/null 2> "$work/e"
    code=$?
    check "--progress '$bad': exit 2, one line naming --progress, no trace" \
        sh -c "test $code -eq 2 && test \$(wc -l < '$work/e') -eq 1 && grep -q -- '^ccdl: --progress: .*see ccdl --help' '$work/e' && test ! -e '$work/bad.h5'"
done
for bad in abc nan ""; do
    "$CCDL" run "$work/long.json" --out "$work/bad.h5" --progress "$bad" > /dev/null 2> "$work/e"
    code=$?
    check "--progress '$bad': exit 2, one line (unexpected argument), no trace" \
        sh -c "test $code -eq 2 && test \$(wc -l < '$work/e') -eq 1 && grep -q -- 'unexpected argument' '$work/e' && test ! -e '$work/bad.h5'"
done
# --progress alone means every 60 s: a run of a few seconds prints only its epoch lines; and
# a spec path after it is the spec, not a value
(cd "$work" && "$CCDL" run --progress ./long.json --out bare.h5 > bare.out 2> bare.err)
check "--progress without a value (before ./SPEC): exit 0, only the 3 per-epoch lines" \
    no_lines bare $? 3
finish
