# paired_stats.sh: ccdl-analyze table's confidence intervals and paired differences
# (--diff-vs, docs/analysis.md). Twelve tiny runs (All-Reduce and gossip on a ring, n = 4 and 8,
# seeds 1-3); the CSV's mean, std and 95% CI half-width of each group, and of the paired
# differences run - baseline (the All-Reduce run of the same seed and n), match the same
# statistics computed here from the traces with h5py and numpy alone, to 1e-9 relative; the
# Markdown shows them rounded. A run without its baseline is one line naming it, exit 2.
. "$(dirname "$0")/lib.sh"
export PYTHONDONTWRITEBYTECODE=1
analyze="$top_srcdir/analysis/ccdl-analyze"
t0=$(date +%s)

"$PYTHON" - "$specs/tiny-allreduce.json" "$work" <<'PY' || fail "write the specs"
import json, sys
base = json.load(open(sys.argv[1]))
for mode in ("allreduce", "gossip"):
    for n in (4, 8):
        for seed in (1, 2, 3):
            s = json.loads(json.dumps(base))
            s.update(name=f"{mode}-n{n}-s{seed}", seed=seed, workers=n)
            s["communication"]["mode"] = mode
            json.dump(s, open(f"{sys.argv[2]}/{s['name']}.json", "w"))
PY
for spec in "$work"/*.json; do
    "$CCDL" run "$spec" --quiet --out "${spec%.json}.h5" || fail "run $(basename "$spec")"
done
echo "12 runs: $(($(date +%s) - t0)) s"

metrics=test_acc,train_loss,test_loss,best_acc
"$PYTHON" "$analyze" table "$work"/*.h5 --metrics $metrics --out "$work/plain" > "$work/plain.md" 2> "$work/plain.err"
check "table: exit 0" test $? -eq 0
"$PYTHON" "$analyze" table "$work"/*.h5 --metrics $metrics --diff-vs mode=allreduce --out "$work/diff" \
    > "$work/diff.md" 2> "$work/diff.err"
check "table --diff-vs mode=allreduce: exit 0" test $? -eq 0
cat "$work/diff.md"

# checks.py prints "ok: ..." / "FAIL: ..." per check; its exit status says whether it ran to
# the end (a traceback is a failure too)
cat > "$work/checks.py" <<'PY'
import csv, glob, json, math, sys
import h5py, numpy as np

work = sys.argv[1]


def check(what, ok):
    print(("ok: " if ok else "FAIL: ") + what)


def close(got, want):
    if math.isnan(want):
        return got == ""
    return got != "" and abs(float(got) - want) <= 1e-9 * max(abs(want), 1e-300) + 1e-12 * (want == 0)


# the metrics of each run, read with h5py alone
runs = {}
for p in sorted(glob.glob(f"{work}/*.h5")):
    with h5py.File(p, "r") as f:
        spec = json.loads(f.attrs["spec"])
        acc = f["epochs/test_acc"][()]
        runs[p] = {"mode": spec["communication"]["mode"], "n": spec["workers"], "seed": spec["seed"],
                   "name": spec["name"],
                   "m": {"test_acc": 100 * acc[-1], "train_loss": f["epochs/train_loss"][-1],
                         "test_loss": f["epochs/test_loss"][-1], "best_acc": 100 * acc.max()}}
check(f"12 traces ({len(runs)})", len(runs) == 12)
metrics = ("test_acc", "train_loss", "test_loss", "best_acc")
# t_{0.975} with 2 degrees of freedom in closed form: the t(2) CDF is 1/2 + t / (2 sqrt(2 + t^2))
T2 = 0.95 * math.sqrt(2 / (1 - 0.95 ** 2))
# (4.30265272974946385232..., mpmath at 40 digits)
check(f"t_0.975(2) = {T2!r}", abs(T2 - 4.3026527297494638523) < 1e-14)


def stats(values):
    v = np.asarray(values, dtype=float)
    std = v.std(ddof=1)
    return v.mean(), std, T2 * std / math.sqrt(len(v))


FMT = {"test_acc": "{:.2f}", "best_acc": "{:.2f}", "train_loss": "{:.4f}", "test_loss": "{:.4f}"}


def md_rows(path):
    rows = {}
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in ("allreduce", "gossip"):
            rows[(cells[0], cells[1])] = cells
    return rows


# ---- the plain table: one group per (mode, n), 3 seeds each
rows = list(csv.DictReader(open(f"{work}/plain.csv")))
md = md_rows(f"{work}/plain.md")
ok = len(rows) == 4 and len(md) == 4
for row in rows:
    mode, n = row["communication.mode"], int(row["workers"])
    mine = [r for r in runs.values() if r["mode"] == mode and r["n"] == n]
    ok &= int(row["runs"]) == len(mine) == 3 and row["seeds"] == "1 2 3"
    cells = md.get((mode, str(n)), [])
    for j, m in enumerate(metrics):
        mean, std, ci = stats([r["m"][m] for r in mine])
        good = close(row[f"{m}_mean"], mean) and close(row[f"{m}_std"], std) and close(row[f"{m}_ci95"], ci)
        f = FMT[m]
        shown = cells[3 + 2 * j: 5 + 2 * j] == [f"{f.format(mean)} ± {f.format(std)}", "±" + f.format(ci)]
        if not (good and shown):
            print(f"  {mode} n={n} {m}: csv {row[f'{m}_mean']} {row[f'{m}_std']} {row[f'{m}_ci95']}, "
                  f"md {cells[3 + 2 * j: 5 + 2 * j]}; want {mean!r} {std!r} {ci!r}")
        ok &= good and shown
check("table: per (mode, n) mean, std and 95% CI half-width t(2) std / sqrt(3) as computed from the "
      "traces (CSV to 1e-9 relative, Markdown rounded)", ok)
head = open(f"{work}/plain.md").readline()
check("table: Markdown header has '<metric> ci95' after each metric",
      head.startswith("| mode | n | runs | test_acc | test_acc ci95 | train_loss | train_loss ci95 |"))

# ---- the paired table: gossip - All-Reduce of the same seed and n
rows = list(csv.DictReader(open(f"{work}/diff.csv")))
md = md_rows(f"{work}/diff.md")
ok = len(rows) == 2 and len(md) == 2 and all(r["communication.mode"] == "gossip" for r in rows)
for row in rows:
    n = int(row["workers"])
    pairs = []
    for seed in (1, 2, 3):
        run = next(r for r in runs.values() if (r["mode"], r["n"], r["seed"]) == ("gossip", n, seed))
        base = next(r for r in runs.values() if (r["mode"], r["n"], r["seed"]) == ("allreduce", n, seed))
        pairs.append((run, base))
    ok &= int(row["pairs"]) == 3 and row["seeds"] == "1 2 3"
    ok &= row["baselines"] == " ".join(b["name"] for _, b in pairs)
    cells = md.get(("gossip", str(n)), [])
    ok &= cells[2:3] == ["3"]
    for j, m in enumerate(metrics):
        d = [r["m"][m] - b["m"][m] for r, b in pairs]
        mean, std, ci = stats(d)
        good = (close(row[f"{m}_diff_mean"], mean) and close(row[f"{m}_diff_std"], std)
                and close(row[f"{m}_diff_ci95"], ci) and row[f"{m}_pairs"] == "3")
        f = FMT[m]
        shown = cells[3 + 2 * j: 5 + 2 * j] == [f"{f.format(mean)} ± {f.format(std)}", "±" + f.format(ci)]
        if not (good and shown):
            print(f"  gossip n={n} {m}: csv {row[f'{m}_diff_mean']} {row[f'{m}_diff_std']} "
                  f"{row[f'{m}_diff_ci95']}, md {cells[3 + 2 * j: 5 + 2 * j]}; want {mean!r} {std!r} {ci!r}")
        ok &= good and shown
        print(f"  gossip n={n} Δ{m}: {mean:.6g} ± {std:.6g} (95% CI ±{ci:.6g})")
check("table --diff-vs: per n, mean, std and 95% CI of gossip - All-Reduce (same seed, n) as computed "
      "from the traces (CSV to 1e-9 relative, Markdown rounded); 3 pairs; baselines left out", ok)
text = open(f"{work}/diff.md").read()
check("table --diff-vs: the Markdown says what was paired (mode=allreduce, same seed, n)",
      "paired differences run - baseline (mode=allreduce, same seed, n)" in text
      and "| mode | n | pairs | Δtest_acc | Δtest_acc ci95 |" in text)
PY
"$PYTHON" "$work/checks.py" "$work" > "$work/checks.out" 2>&1
code=$?
cat "$work/checks.out"
passes=$((passes + $(grep -c '^ok: ' "$work/checks.out")))
failures=$((failures + $(grep -c '^FAIL: ' "$work/checks.out")))
check "checks.py ran to the end" test $code -eq 0

# a pivot of the differences: n down, mode across
"$PYTHON" "$analyze" table "$work"/*.h5 --rows n --cols mode --metrics test_acc --diff-vs mode=allreduce \
    > "$work/pivot.md" 2>&1
check "table --diff-vs --rows n --cols mode: a pivot of the differences" \
    sh -c "test $? -eq 0 && grep -q '^Δtest_acc: run - baseline (mode=allreduce)' '$work/pivot.md' \
           && grep -q '^| n | mode=gossip |' '$work/pivot.md'"

# errors: a run without its baseline, no baseline at all, a bad selection: one line, exit 2
# fails_with WHAT TEXT ARGS...: ccdl-analyze exits 2 with one line on stderr containing TEXT
fails_with() {
    local what=$1 text=$2
    shift 2
    "$PYTHON" "$analyze" "$@" > "$work/out" 2> "$work/err"
    local code=$?
    if [ $code -eq 2 ] && [ "$(wc -l < "$work/err")" -eq 1 ] && grep -qF -- "$text" "$work/err"; then
        pass "$what: exit 2, $(cat "$work/err")"
    else
        fail "$what: exit $code, stderr: $(cat "$work/err")"
    fi
}
others=$(ls "$work"/*.h5 | grep -v allreduce-n4-s2.h5)
fails_with "a run without its baseline" \
    "ccdl-analyze: $work/gossip-n4-s2.h5: run gossip-n4-s2: no baseline run with mode=allreduce, seed=2, n=4" \
    table $others --diff-vs mode=allreduce
mkdir -p "$work/copy" && cp "$work/allreduce-n4-s2.h5" "$work/copy/"
fails_with "two baselines fit a run" \
    "ccdl-analyze: $work/gossip-n4-s2.h5: run gossip-n4-s2: 2 baseline runs with mode=allreduce, seed=2, n=4" \
    table "$work"/*.h5 "$work/copy/allreduce-n4-s2.h5" --diff-vs mode=allreduce
fails_with "no run matches the selection" "ccdl-analyze: --diff-vs: no run has mode=local (no baseline)" \
    table "$work"/*.h5 --diff-vs mode=local
fails_with "a selection that is not KEY=VALUE" "ccdl-analyze: --diff-vs: 'allreduce': expected KEY=VALUE" \
    table "$work"/*.h5 --diff-vs allreduce
# n is matched unless the selection names it: --diff-vs n=4 pairs each run of n = 8 with the
# run of n = 4 of the same seed and mode (the baselines vary in mode)
"$PYTHON" "$analyze" table "$work"/*.h5 --diff-vs n=4 --by mode,n --metrics test_acc --out "$work/vsn" \
    > /dev/null 2> "$work/err"
check "table --diff-vs n=4: n = 8 paired with n = 4 of the same mode and seed" \
    sh -c "test $? -eq 0 && grep -q '^allreduce,8,3,1 2 3,allreduce-n4-s1 allreduce-n4-s2 allreduce-n4-s3,' '$work/vsn.csv' \
           && grep -q '^gossip,8,3,1 2 3,gossip-n4-s1 gossip-n4-s2 gossip-n4-s3,' '$work/vsn.csv' \
           && test \$(wc -l < '$work/vsn.csv') -eq 3"
finish
