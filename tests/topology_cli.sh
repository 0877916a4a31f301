# topology_cli.sh: `ccdl topology --json` for n = 16, 32, 64 against closed forms
# (NOTES.md section 3): ring 1 - ((1 + 2cos(2pi/n))/3)^2, complete 1, random matching
# 1/2 + 1/(2(n-1)), to 1e-9; every kind listed with sane values; bad arguments exit 2.
. "$(dirname "$0")/lib.sh"
"$CCDL" topology --n 16,32,64 --json > "$work/t.jsonl" || fail "ccdl topology exited $?"
"$PYTHON" - "$work/t.jsonl" <<'PY' && pass "closed forms to 1e-9, every kind present" || fail "closed forms"
import sys, json, math
rows = [json.loads(l) for l in open(sys.argv[1])]
closed = {"ring": lambda n: 1 - ((1 + 2 * math.cos(2 * math.pi / n)) / 3) ** 2,
          "complete": lambda n: 1.0,
          "random_matching": lambda n: 0.5 + 0.5 / (n - 1)}
kinds = {r["kind"] for r in rows}
ok = len(kinds) == 7 and len(rows) == 21
for r in rows:
    ok &= set(r) >= {"kind", "n", "degree", "spectral_gap", "p"} and 0 < r["p"] <= 1
    ok &= abs(r["p"] - (1 - (1 - r["spectral_gap"]) ** 2)) < 1e-12
    if r["kind"] in closed:
        err = abs(r["p"] - closed[r["kind"]](r["n"]))
        print(f'{r["kind"]:16s} n={r["n"]:2d} p={r["p"]:.12f} |p - closed form|={err:.1e}')
        ok &= err < 1e-9
sys.exit(0 if ok else 1)
PY
"$CCDL" topology --kinds rng 2> "$work/e"; code=$?
check "unknown kind: exit 2 naming it" sh -c "test $code -eq 2 && grep -q 'unknown kind \"rng\"' '$work/e'"
"$CCDL" topology --kinds bipartite_exponential --n 15 2> "$work/e"; code=$?
check "unsupported n: exit 2 with the reason" sh -c "test $code -eq 2 && grep -q 'even number of workers' '$work/e'"
finish
