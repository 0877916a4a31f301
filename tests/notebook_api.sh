# notebook_api.sh: the notebook API (docs/analysis.md, Notebook API). ccdl_analysis.load on a
# small sweep gives DataFrames whose rows, columns and spec keys match the traces read here
# with h5py alone; a groupby over keys matches numpy over the matching traces; the inputs of
# ccdl-analyze (trace, sweep directory, directory of traces, a list) all work; bad input is a
# TraceError naming the file; pandas is imported by load only (ccdl-analyze runs without it);
# examples/notebook_example.py writes its PNG.
. "$(dirname "$0")/lib.sh"
export PYTHONDONTWRITEBYTECODE=1 CCDL
work=$(cd "$work" && pwd)     # absolute: the sweep file names its base by path
top=$(cd "$top_srcdir" && pwd)
t0=$(date +%s)

# The sweep: All-Reduce runs (topology, factor, dec_phase cannot affect them: no value),
# controlled runs at factor 0.5 on a ring and on a 2 x 2 torus with their factor-1
# references (added by the expansion), two seeds each: 10 runs of ~0.3 s.
cat > "$work/grid.json" <<EOF
{"name": "nb", "base": "$top/tests/specs/tiny-ring.json",
 "grid": [{"communication.mode": ["allreduce"], "seed": [1, 2]},
          {"communication.mode": ["controlled"], "communication.dec_phase": [1],
           "communication.control": [{"metric": "exact", "target": "constant", "max_rounds": 200}],
           "communication.control.factor": [0.5], "topology.kind": ["ring", "torus"], "seed": [1, 2]}]}
EOF
"$PYTHON" "$top/tools/ccdl-sweep" expand "$work/grid.json" --out "$work/nb" --no-validate > "$work/expand.log" 2>&1 \
    || { cat "$work/expand.log"; fail "expand the sweep"; }
"$PYTHON" "$top/tools/ccdl-sweep" local "$work/nb" --ranks 1 > "$work/local.log" 2>&1 \
    || { cat "$work/local.log"; fail "run the sweep"; }
echo "sweep of $(ls "$work/nb/traces"/*.h5 | wc -l) runs: $(($(date +%s) - t0)) s"

echo "not HDF5" > "$work/notes.h5"  # a bad input for load and for the example

# ---------------------------------------------------------------- the frames against h5py
# checks.py prints "ok: ..." / "FAIL: ..." per check (counted below); its exit status says
# whether it ran to the end (a traceback is a failure too)
cat > "$work/checks.py" <<'PY'
import importlib.util, json, os, pathlib, shutil, sys
import h5py, numpy as np

sys.dont_write_bytecode = True
top, work = sys.argv[1], sys.argv[2]
d = os.path.join(work, "nb")


def check(what, ok):
    print(("ok: " if ok else "FAIL: ") + what)


def same(a, b):
    """Equal arrays, NaN equal to NaN, same length (dtype aside: checked on its own)."""
    try:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        return True
    except AssertionError as e:
        print("  " + " ".join(str(e).split())[:300])
        return False


def nan(v):
    return v is None or (isinstance(v, float) and v != v)


# only analysis/ on sys.path, as in a notebook: ccdl_sweep is found next to it
check("ccdl_sweep is not importable before ccdl_analysis is", importlib.util.find_spec("ccdl_sweep") is None)
sys.path.insert(0, os.path.join(top, "analysis"))
import ccdl_analysis  # noqa: E402
check("import ccdl_analysis with analysis/ on sys.path: load and TraceError, pandas not imported yet",
      callable(ccdl_analysis.load) and issubclass(ccdl_analysis.TraceError, Exception)
      and "pandas" not in sys.modules)
f = ccdl_analysis.load(d)
check("load imported pandas", "pandas" in sys.modules)
import pandas as pd  # noqa: E402

# what the traces hold, read with h5py alone
man = json.load(open(os.path.join(d, "manifest.json")))
runs = []
for e in man["runs"]:
    path = os.path.join(d, e["trace"])
    with h5py.File(path, "r") as h:
        runs.append({"name": e["name"], "path": path, "spec": json.loads(h.attrs["spec"]),
                     "attrs": {k: h.attrs[k] for k in h.attrs},
                     "groups": {g: {c: h[g][c][()] for c in h[g]} for g in ("steps", "epochs", "phases")}})
check(f"the sweep has 10 runs ({len(runs)})", len(runs) == 10)

# runs: one row per run, in manifest order
check("runs: one row per run, names and traces in manifest order",
      list(f.runs["run"]) == [r["name"] for r in runs] and list(f.runs["trace"]) == [r["path"] for r in runs])

# rows per run and the values of the trace columns
for g, cols in (("steps", ["step", "epoch", "phase", "lr", "loss", "grad_norm", "xi", "theta", "target",
                           "policy", "rounds", "capped"]),
                ("epochs", ["epoch", "train_loss", "test_loss", "test_acc", "xi_mean", "worker_test_acc"]),
                ("phases", ["phase", "start_step", "end_step", "policy", "max_xi", "mean_rounds",
                            "capped_steps", "target"])):
    frame = getattr(f, g)
    counts = frame.groupby("trace", sort=False).size()
    want = [len(r["groups"][g][cols[0]]) for r in runs]
    check(f"{g}: rows per run as in the traces ({want[:3]}...), {sum(want)} in all",
          [counts.get(r["path"], 0) for r in runs] == want and len(frame) == sum(want) and min(want) > 0)
    ok = list(frame["trace"]) == [r["path"] for r, n in zip(runs, want) for _ in range(n)]
    for r in runs:
        rows = frame[frame["trace"] == r["path"]]
        h = r["groups"][g]
        ok &= set(h) <= set(frame.columns)  # every column of the trace is there
        for c in cols:
            ok &= same(rows[c], h[c]) and rows[c].dtype == h[c].dtype
        ok &= set(rows["run"]) == {r["name"]}
    check(f"{g}: runs in order, columns {', '.join(cols)}: values and dtypes as in the traces", ok)

# spec keys: dotted paths as the spec has them, short names with the CLI's relevance
ok = True
for r, (_, row) in zip(runs, f.runs.iterrows()):
    s, c = r["spec"], r["spec"]["communication"]
    mode = c["mode"]
    ok &= row["seed"] == s["seed"] and row["topology.kind"] == s["topology"]["kind"]
    ok &= row["communication.control.factor"] == c["control"]["factor"]  # set even where unused
    ok &= row["mode"] == row["communication.mode"] == mode and row["n"] == s["workers"] == r["attrs"]["n"]
    ok &= row["schedule.decay_at"] == tuple(s["schedule"]["decay_at"]) and row["schedule.lr"] == s["schedule"]["lr"]
    ok &= row["completed"] == 1 and row["exit_reason"] == r["attrs"]["exit_reason"]
    if mode == "allreduce":
        ok &= nan(row["topology"]) and nan(row["factor"]) and nan(row["dec_phase"])
    else:
        ok &= row["topology"] == s["topology"]["kind"] and row["factor"] == c["control"]["factor"]
        ok &= row["dec_phase"] == c["dec_phase"] == 1
check("runs: seed, topology.kind, communication.control.factor, mode, n, schedule.* as in the specs; "
      "topology, factor, dec_phase none for All-Reduce", ok)
try:  # list values (model.hidden, ...) are tuples: hashable, so they group like any value
    ok = list(f.runs.groupby(["model.hidden", "schedule.decay_at", "phases"]).size()) == [10]
except TypeError as e:
    ok = False
    print(f"  {e}")
check("runs: list-valued keys group (one group: [32], [0.5, 0.75], [])", ok)
check("runs: the grid's values (modes, topologies, factors, seeds)",
      sorted(f.runs["mode"].unique()) == ["allreduce", "controlled"]
      and sorted(f.runs["topology"].dropna().unique()) == ["ring", "torus"]
      and sorted(f.runs["factor"].dropna().unique()) == [0.5, 1.0] and sorted(f.runs["seed"].unique()) == [1, 2])
ok = True
for g in ("steps", "epochs", "phases"):
    frame = getattr(f, g)
    for key in ("seed", "topology", "topology.kind", "factor", "mode", "n", "schedule.decay_at", "run"):
        per = frame.groupby("trace", sort=False)[key].agg(lambda v: list(v))
        for _, row in f.runs.iterrows():
            values = per[row["trace"]]
            ok &= all(v == row[key] or (nan(v) and nan(row[key])) for v in values)
    ok &= "completed" not in frame.columns and "exit_reason" not in frame.columns  # in runs only
check("steps, epochs, phases: every row carries its run's keys (runs has how it went)", ok)
check("steps: lr is /steps/lr (varies per step), schedule.lr the spec's; phases: target is /phases/target",
      f.steps["lr"].nunique() > 1 and f.steps["schedule.lr"].nunique() == 1
      and "communication.control.target" in f.phases.columns)

# a grid is one groupby away: final accuracy by (topology, factor), mean Xi by seed
final = f.epochs.groupby("trace", sort=False).tail(1)
got = final.groupby(["topology", "factor"], dropna=False)["test_acc"].mean()
want = {}
for r in runs:
    c = r["spec"]["communication"]
    key = (None, None) if c["mode"] == "allreduce" else (r["spec"]["topology"]["kind"], c["control"]["factor"])
    want.setdefault(key, []).append(r["groups"]["epochs"]["test_acc"][-1])
got = {(None if nan(t) else t, None if nan(x) else x): v for (t, x), v in got.items()}
print("  final test_acc by (topology, factor):", {k: round(v, 4) for k, v in got.items()})
check(f"groupby topology, factor: mean final test_acc of {len(want)} groups = numpy over their traces",
      len(want) == 5 and set(got) == set(want) and all(abs(got[k] - np.mean(v)) < 1e-12 for k, v in want.items()))
got = f.steps.groupby("seed")["xi"].mean()
want = {s: np.nanmean(np.concatenate([r["groups"]["steps"]["xi"] for r in runs if r["spec"]["seed"] == s]))
        for s in (1, 2)}
check(f"groupby seed: mean Xi over steps = numpy over the traces ({want[1]:.6g}, {want[2]:.6g})",
      list(got.index) == [1, 2] and all(abs(got[s] - want[s]) <= 1e-12 * abs(want[s]) for s in want)
      and want[1] != want[2])

# the other inputs
ar, ring = runs[0]["path"], runs[3]["path"]
one = ccdl_analysis.load(ring)
ok = list(one.runs["run"]) == [runs[3]["name"]]
for g in ("steps", "epochs", "phases"):
    mine, all_ = getattr(one, g), getattr(f, g)
    try:  # key columns may differ in dtype: alone, no run lacks a value (dec_phase int, not float)
        pd.testing.assert_frame_equal(mine, all_[all_["trace"] == ring][list(mine.columns)].reset_index(drop=True),
                                      check_dtype=False)
    except AssertionError as e:
        ok = False
        print("  " + " ".join(str(e).split())[:300])
check("a trace file: one run, its rows as in the sweep's frames", ok)
two = ccdl_analysis.load([ring, pathlib.Path(ar)])
check("a list (str and Path): its runs in its order",
      list(two.runs["trace"]) == [ring, ar] and len(two.epochs) == len(runs[3]["groups"]["epochs"]["epoch"]) * 2)
tdir = ccdl_analysis.load(pathlib.Path(d) / "traces")
check("a directory of traces: every trace, by file name",
      list(tdir.runs["trace"]) == sorted(r["path"] for r in runs) and len(tdir.steps) == len(f.steps))


def error(what, call, path, text):
    try:
        call()
    except ccdl_analysis.TraceError as e:
        ok = e.path == path and str(e).startswith(f"{path}: ") and text in str(e)
        check(f"{what}: TraceError ({e})", ok)
        return
    except Exception as e:  # noqa: BLE001
        check(f"{what}: {type(e).__name__} ({e}), not TraceError", False)
        return
    check(f"{what}: no error", False)


junk = os.path.join(work, "notes.h5")  # a text file (written by the script)
error("a text file", lambda: ccdl_analysis.load(junk), junk, "not a readable HDF5 file")
empty = os.path.join(work, "empty.h5")
h5py.File(empty, "w").close()
error("an HDF5 file that is no trace, in a list", lambda: ccdl_analysis.load([ring, empty]), empty,
      "not a ccdl trace (no 'spec' attribute)")
error("a trace given twice", lambda: ccdl_analysis.load([ring, d]), ring, "given twice")
inc = os.path.join(work, "incomplete.h5")
shutil.copy(ring, inc)
with h5py.File(inc, "r+") as h:
    h.attrs["completed"] = np.int32(0)
error("completed = 0", lambda: ccdl_analysis.load(inc), inc, "run not completed")
check("completed = 0 with allow_incomplete=True: loaded, completed 0 in runs",
      list(ccdl_analysis.load(inc, allow_incomplete=True).runs["completed"]) == [0])
part = os.path.join(work, "part")
shutil.copytree(d, part)
os.remove(os.path.join(part, man["runs"][4]["trace"]))
error("a sweep with a trace missing", lambda: ccdl_analysis.load(part), os.path.join(part, man["runs"][4]["trace"]),
      f"no trace for run {man['runs'][4]['name']}")
check("a sweep with a trace missing, allow_incomplete=True: the other 9 runs",
      len(ccdl_analysis.load(part, allow_incomplete=True).runs) == 9)
manifest = os.path.join(part, "manifest.json")
text = open(manifest).read()
open(manifest, "w").write(text.replace('"runs": [', '"runs": [], "runs": [', 1))
error("a manifest with a duplicate key (strict JSON, as ccdl-sweep reads it)", lambda: ccdl_analysis.load(part),
      manifest, "invalid JSON: duplicate key 'runs'")
PY
env -u PYTHONPATH "$PYTHON" "$work/checks.py" "$top" "$work" > "$work/checks.log" 2>&1
rc=$?
while IFS= read -r line; do
    case $line in
        "ok: "*) pass "${line#ok: }" ;;
        "FAIL: "*) fail "${line#FAIL: }" ;;
        *) echo "$line" ;;
    esac
done < "$work/checks.log"
check "the checks ran to the end (exit $rc)" test "$rc" -eq 0

# ---------------------------------------------------------------- without pandas
# a pandas that cannot be imported: ccdl-analyze works as before, load says pandas is missing
mkdir -p "$work/nopandas/pandas"
echo 'raise ImportError("no pandas here (notebook_api.sh)")' > "$work/nopandas/pandas/__init__.py"
PYTHONPATH="$work/nopandas" "$PYTHON" "$top/analysis/ccdl-analyze" table "$work/nb" > "$work/table.md" 2> "$work/table.err"
check "ccdl-analyze table without pandas: exit 0, a table of 5 groups" \
    sh -c "test $? -eq 0 && test \$(grep -c '^|' '$work/table.md') -eq 7"
PYTHONPATH="$work/nopandas" "$PYTHON" -c 'import sys
sys.path.insert(0, sys.argv[1] + "/analysis")
import ccdl_analysis
try:
    ccdl_analysis.load(sys.argv[2])
except ImportError as e:
    sys.exit(0 if "no pandas here" in str(e) else 1)
sys.exit(1)' "$top" "$work/nb"
check "ccdl_analysis imports without pandas; load raises its ImportError" test $? -eq 0

# ---------------------------------------------------------------- the worked example
"$PYTHON" "$top/examples/notebook_example.py" "$work/nb" --out "$work/example.png" > "$work/example.log" 2>&1
rc=$?
check "examples/notebook_example.py: exit 0, prints the PNG it wrote (exit $rc)" \
    sh -c "test $rc -eq 0 && test \"\$(cat '$work/example.log')\" = '$work/example.png'"
check "  ... a PNG of some size" sh -c "head -c 8 '$work/example.png' | od -An -c | grep -q 'P   N   G' \
    && test \$(wc -c < '$work/example.png') -gt 20000"
"$PYTHON" "$top/examples/notebook_example.py" "$work/nb" --by topology --out "$work/by-topology.png" > /dev/null 2>&1
check "examples/notebook_example.py --by topology: a PNG" sh -c "test $? -eq 0 && test -s '$work/by-topology.png'"
"$PYTHON" "$top/examples/notebook_example.py" "$work/notes.h5" --out "$work/bad.png" > /dev/null 2> "$work/example.err"
check "examples/notebook_example.py on a text file: exit 1, one line naming it, no PNG" \
    sh -c "test $? -eq 1 && test \$(wc -l < '$work/example.err') -eq 1 \
        && grep -qF '$work/notes.h5: not a readable HDF5 file' '$work/example.err' && test ! -e '$work/bad.png'"
# the code of docs/analysis.md, Notebook API, on this sweep
"$PYTHON" - "$top" "$work" > "$work/docs.log" 2>&1 <<'PY'
import re, sys
top, work = sys.argv[1:]
text = open(f"{top}/docs/analysis.md", encoding="utf-8").read()
code = "\n".join(re.findall(r"```python\n(.*?)```", text[text.index("## Notebook API"):], re.S))
for old, new in (("/path/to/ccdl/analysis", f"{top}/analysis"), ('"runs/t2"', repr(f"{work}/nb")),
                 ('"table2.png"', repr(f"{work}/docs.png"))):
    if old not in code:
        sys.exit(f"{old} is no longer in the example: update this test")
    code = code.replace(old, new)
sys.dont_write_bytecode = True
import matplotlib
matplotlib.use("Agg")
exec(compile(code, "docs/analysis.md", "exec"))
PY
rc=$?
check "docs/analysis.md: the Notebook API example runs on this sweep and writes its PNG (exit $rc)" \
    sh -c "test $rc -eq 0 && test -s '$work/docs.png'"
[ "$rc" -eq 0 ] || cat "$work/docs.log"
echo "notebook_api: $(($(date +%s) - t0)) s"
finish
