# netbench.sh: `ccdl netbench`, ping-pong latency and bandwidth between ranks. Checks what
# holds on a noisy shared machine: the figures are positive and finite, each size's
# bandwidth is bytes / one-way time, the fitted figures follow their documented rule, the
# slowest / median pair summaries over 3 ranks; not that times grow with size. Errors (1
# rank, bad options on 1 and 2 ranks): exit 2, one line from rank 0, nothing on stdout.
. "$(dirname "$0")/lib.sh"

# the table: the latency_s and bandwidth_Bps lines parse as positive finite numbers
timeout 120 "$MPIEXEC" $MPIEXEC_FLAGS -n 2 "$CCDL" netbench --max-bytes 65536 --repeats 3 \
    > "$work/table.txt" 2> "$work/e"; code=$?
cat "$work/table.txt"
check "table on 2 ranks: exit 0, empty stderr" sh -c "test $code -eq 0 && test ! -s '$work/e'"
"$PYTHON" - "$work/table.txt" <<'PY' && pass "table: sizes 8 B..64 KiB, latency and bandwidth positive and finite" || fail "table figures"
import math, re, sys
text = open(sys.argv[1]).read()
fig = {k: float(re.search(rf"^{k}\s+(\S+)", text, re.M).group(1)) for k in ("latency_s", "bandwidth_Bps")}
rows = [int(m.group(1)) for m in re.finditer(r"^\s+(\d+)\s+\d", text, re.M)]
print(fig, rows)
ok = rows == [8, 64, 512, 4096, 32768, 65536]
ok &= all(math.isfinite(v) and v > 0 for v in fig.values())
sys.exit(0 if ok else 1)
PY

# --json: one object; bandwidth = bytes / one_way for every size; the fit's rule
check_json() {  # FILE RANKS SIZES(comma list)
    "$PYTHON" - "$@" <<'PY'
import json, math, statistics, sys
d = json.load(open(sys.argv[1]))  # the whole of stdout is one JSON object
ranks, sizes = int(sys.argv[2]), [int(s) for s in sys.argv[3].split(",")]
close = lambda a, b: abs(a - b) <= 1e-12 * abs(b)
pos = lambda x: isinstance(x, float) and math.isfinite(x) and x > 0
ok = d["ranks"] == ranks and len(d["pairs"]) == ranks - 1 and pos(d["latency_s"]) and pos(d["bandwidth_Bps"])
def curve_ok(c, lat, bw, fit):
    ok = [r["bytes"] for r in c] == sizes
    ok &= all(pos(r["one_way_s"]) and close(r["bandwidth_Bps"], r["bytes"] / r["one_way_s"]) for r in c)
    # latency: the smallest size's one-way time; bandwidth: the slope between the ends,
    # unless the largest size took less than twice the smallest
    t0, t1, s0, s1 = c[0]["one_way_s"], c[-1]["one_way_s"], c[0]["bytes"], c[-1]["bytes"]
    slope = len(c) > 1 and t1 >= 2 * t0
    want = (s1 - s0) / (t1 - t0) if slope else s1 / t1
    return ok and close(lat, t0) and close(bw, want) and fit == ("slope" if slope else "largest size")
ok &= curve_ok(d["sizes"], d["latency_s"], d["bandwidth_Bps"], d["bandwidth_fit"])
m = d["median"]
ok &= curve_ok(m["sizes"], m["latency_s"], m["bandwidth_Bps"], m["bandwidth_fit"])
for p, pair in enumerate(d["pairs"]):
    ok &= pair["pair"] == [0, p + 1] and len(pair["hosts"]) == 2
    ok &= curve_ok(pair["sizes"], pair["latency_s"], pair["bandwidth_Bps"], pair["bandwidth_fit"])
# the top level is the slowest pair at each size; "median" the median over pairs
for k in range(len(sizes)):
    times = [pair["sizes"][k]["one_way_s"] for pair in d["pairs"]]
    ok &= d["sizes"][k]["one_way_s"] == max(times)
    ok &= close(d["median"]["sizes"][k]["one_way_s"], statistics.median(times))
print(f'{ranks} ranks: latency_s {d["latency_s"]:.3e} bandwidth_Bps {d["bandwidth_Bps"]:.3e}')
sys.exit(0 if ok else 1)
PY
}
timeout 120 "$MPIEXEC" $MPIEXEC_FLAGS -n 2 "$CCDL" netbench --max-bytes 65536 --repeats 3 --json \
    > "$work/nb2.json" 2> "$work/e"; code=$?
check "--json on 2 ranks: exit 0" test "$code" -eq 0
check "--json on 2 ranks: keys, bandwidth = bytes / one_way, fit rule" \
    check_json "$work/nb2.json" 2 8,64,512,4096,32768,65536
timeout 120 "$MPIEXEC" $MPIEXEC_FLAGS -n 3 "$CCDL" netbench --min-bytes 100 --max-bytes 10K \
    --repeats 3 --json > "$work/nb3.json" 2> "$work/e"; code=$?
check "--json on 3 ranks: exit 0" test "$code" -eq 0
check "--json on 3 ranks: per pair, slowest and median pair" \
    check_json "$work/nb3.json" 3 100,800,6400,10240
timeout 120 "$MPIEXEC" $MPIEXEC_FLAGS -n 2 "$CCDL" netbench --max-bytes 4 --json \
    > "$work/one.json" 2> "$work/e"; code=$?
if [ "$code" -eq 0 ] && check_json "$work/one.json" 2 4; then
    pass "--max-bytes 4 alone: one size of 4 B, bandwidth = bytes / one_way"
else fail "--max-bytes 4 alone: exit $code"; fi

# errors: one line on stderr (rank 0 only), exit 2, nothing on stdout, never a hang
expect_error() {  # RANKS WANT ARGS...
    local p=$1 want=$2; shift 2
    timeout 60 "$MPIEXEC" $MPIEXEC_FLAGS -n "$p" "$CCDL" netbench "$@" > "$work/o" 2> "$work/e"
    local code=$?
    if [ "$code" -eq 2 ] && [ "$(wc -l < "$work/e")" -eq 1 ] && grep -qF -- "$want" "$work/e" &&
        [ ! -s "$work/o" ]; then
        pass "netbench $* on $p rank(s): exit 2, one line: $want"
    else
        fail "netbench $* on $p rank(s): exit $code, stderr: $(cat "$work/e")"
    fi
}
rank_error='ccdl: netbench: needs at least 2 MPI ranks; run it under mpiexec -n 2 or srun'
expect_error 1 "$rank_error"
expect_error 1 "$rank_error" --json --max-bytes 64K
"$CCDL" netbench > "$work/o" 2> "$work/e"; code=$?
check "without mpiexec: exit 2, the same line" \
    sh -c "test $code -eq 2 && test \"\$(cat '$work/e')\" = '$rank_error' && test ! -s '$work/o'"
for p in 1 2; do
    expect_error "$p" "unknown option '--bogus'" --bogus
    expect_error "$p" "unexpected argument 'extra'" --json extra
    expect_error "$p" "--repeats: expected an integer in [1, 1000000]; got '0'" --repeats 0
    expect_error "$p" "--repeats: expected an integer" --repeats x
    expect_error "$p" "--repeats: expected an integer" --repeats -3
    expect_error "$p" "--min-bytes: expected a size in bytes" --min-bytes abc
    expect_error "$p" "--min-bytes: expected a size in bytes" --min-bytes 0
    expect_error "$p" "--max-bytes: expected a size in bytes" --max-bytes 12Q
    expect_error "$p" "--max-bytes: expected a size in bytes" --max-bytes 2G
    expect_error "$p" "--max-bytes needs a value" --max-bytes
    expect_error "$p" "--min-bytes 4096 is larger than --max-bytes 512" --min-bytes 4096 --max-bytes 512
done
check "--help lists netbench" sh -c "'$CCDL' --help | grep -q '^  netbench '"
finish
