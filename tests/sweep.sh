# sweep.sh: tools/ccdl-sweep (expansion, names, reference linking, bad sweep files, local runs,
# status and resubmission) and analysis/ccdl-analyze (tables checked against numbers computed
# here from the traces, figures, bad traces, topology table and consensus figure). No Slurm:
# tests/slurm.sh submits for real.
. "$(dirname "$0")/lib.sh"
export PYTHONDONTWRITEBYTECODE=1 CCDL
sweep() { "$PYTHON" "$top_srcdir/tools/ccdl-sweep" "$@"; }
analyze() { "$PYTHON" "$top_srcdir/analysis/ccdl-analyze" "$@"; }
grids="$top_srcdir/tests/sweeps"
has_control=0
"$CCDL" spec-keys | grep -q 'communication.control.factor' && has_control=1

# ---------------------------------------------------------------- expansion, pure
"$PYTHON" "$grids/unit_grid.py" "$top_srcdir" > "$work/unit.log" 2>&1 \
    && pass "expansion unit tests ($(tail -3 "$work/unit.log" | grep -o 'Ran [0-9]* tests'))" \
    || { cat "$work/unit.log"; fail "expansion unit tests"; }

# ---------------------------------------------------------------- expand the tiny grid
sweep expand "$grids/tiny.json" --out "$work/tiny" > "$work/expand.log" 2>&1 || { cat "$work/expand.log"; fail "expand tiny"; }
"$PYTHON" - "$work/tiny" <<'PY' && pass "tiny: manifest, names, specs" || fail "tiny: manifest, names, specs"
import json, os, sys
d = sys.argv[1]
m = json.load(open(f"{d}/manifest.json"))
names = [r["name"] for r in m["runs"]]
want = ["ring-ar-s1", "ring-ar-s2", "ring-gossip-s1", "ring-gossip-s2", "complete-gossip-s1", "complete-gossip-s2"]
ok = names == want and [r["index"] for r in m["runs"]] == list(range(6))
tsv = [l.rstrip("\n").split("\t") for l in open(f"{d}/manifest.tsv")]
ok &= tsv[0] == ["index", "name", "spec", "trace", "reference", "reference_trace"]
ok &= [row[1] for row in tsv[1:]] == want and all(row[4] == "-" for row in tsv[1:])
for r in m["runs"]:
    spec = json.load(open(os.path.join(d, r["spec"])))
    ok &= spec["name"] == r["name"] and spec["trace"]["path"] == r["trace"] == f"traces/{r['name']}.h5"
    ok &= spec["workers"] == 4 and spec["seed"] == int(r["name"][-1])
ok &= m["slurm"]["ranks"] == 2 and m["slurm"]["throttle"] == 2 and m["validated"] is True
print(names, "ok" if ok else "MISMATCH")
sys.exit(0 if ok else 1)
PY
sweep expand "$grids/tiny.json" --out "$work/tiny-again" --no-validate > /dev/null 2>&1
check "expansion is deterministic" diff -r -x manifest.json "$work/tiny" "$work/tiny-again"

# ---------------------------------------------------------------- bad sweep files
for f in "$grids"/bad/*.json; do
    b=$(basename "$f" .json)
    sweep expand "$f" --out "$work/bad-$b" > "$work/bad.out" 2> "$work/bad.err"
    rc=$?
    expect=$(cat "${f%.json}.expect")
    if [ "$rc" -eq 2 ] && [ "$(wc -l < "$work/bad.err")" -eq 1 ] && [ ! -s "$work/bad.out" ] \
        && grep -qF "ccdl-sweep: $f: " "$work/bad.err" && grep -qF -- "$expect" "$work/bad.err" \
        && [ ! -e "$work/bad-$b" ]; then
        pass "bad sweep $b: exit 2, one line, nothing written"
    else
        fail "bad sweep $b (exit $rc): $(cat "$work/bad.err") (expected: $expect)"
    fi
done
# a bad sweep aimed at an existing sweep directory leaves it as it was
sed -e 's/"seed": \[1, 2\]}$/"seed": [1, 2], "model.hidden": [[0]]}/' -e 's#"\.\./specs/#"'"$grids"'/../specs/#' \
    "$grids/tiny.json" > "$work/tiny-bad.json"
(cd "$work/tiny" && find . -type f | sort | xargs md5sum) > "$work/before.md5"
sweep expand "$work/tiny-bad.json" --out "$work/tiny" > /dev/null 2> "$work/bad.err"
rc=$?
(cd "$work/tiny" && find . -type f | sort | xargs md5sum) > "$work/after.md5"
if [ "$rc" -eq 2 ] && grep -q 'ccdl validate' "$work/bad.err" && cmp -s "$work/before.md5" "$work/after.md5"; then
    pass "rejected spec: existing sweep directory untouched"
else
    fail "rejected spec into existing directory (exit $rc): $(cat "$work/bad.err")"
fi

# ---------------------------------------------------------------- run locally, status, resubmit
sweep local "$work/tiny" --ranks 1 > "$work/local.log" 2>&1 || { cat "$work/local.log"; fail "local run of tiny"; }
sweep status "$work/tiny" > "$work/status.log" 2>&1
check "status: all completed, exit 0" grep -q '^tiny: 6 runs: 6 completed$' "$work/status.log"
sweep submit "$work/tiny" --dry-run > "$work/submit.log" 2>&1
check "submit: nothing to submit when all completed" grep -q 'nothing to submit: 6 of 6 runs completed' "$work/submit.log"
# one run fails (diverges), one trace disappears
sed -e 's/"lr": 0.05/"lr": 100000/' "$specs/tiny-ring.json" > "$work/diverge.json"
"$CCDL" run "$work/diverge.json" --quiet --force --out "$work/tiny/traces/ring-gossip-s2.h5" 2> /dev/null
rm "$work/tiny/traces/complete-gossip-s1.h5"
touch -d '2001-01-01' "$work/tiny/traces/"*.h5
sweep status "$work/tiny" > "$work/status.log" 2>&1
rc=$?
if [ "$rc" -eq 1 ] && grep -q '^failed  *ring-gossip-s2  *exit_reason: diverged at step' "$work/status.log" \
    && grep -q '^missing  *complete-gossip-s1' "$work/status.log" \
    && grep -q '^tiny: 6 runs: 4 completed, 1 failed, 1 missing$' "$work/status.log" \
    && grep -qF "ccdl-sweep submit $(cd "$work/tiny" && pwd)" "$work/status.log"; then
    pass "status: failed (with exit_reason) and missing runs, exit 1, resubmit command"
else
    cat "$work/status.log"; fail "status with a failed and a missing run (exit $rc)"
fi
CCDL_SWEEP_NO_H5PY=1 sweep status "$work/tiny" > "$work/status-h5dump.log" 2>&1
check "status reads traces with h5dump as with h5py" cmp -s "$work/status.log" "$work/status-h5dump.log"
sweep submit "$work/tiny" --dry-run --throttle 3 --time 00:01:00 --partition debug > "$work/submit.log" 2>&1
if grep -q -- '--array=3-4%3 ' "$work/submit.log" && grep -q -- '--time=00:01:00' "$work/submit.log" \
    && grep -q -- '--partition=debug' "$work/submit.log" && grep -q -- '--ntasks=2' "$work/submit.log" \
    && ! grep -q -- '--dependency' "$work/submit.log"; then
    pass "submit --dry-run: only the 2 unfinished runs, flags override the sweep file"
else
    cat "$work/submit.log"; fail "submit --dry-run of unfinished runs"
fi
sweep local "$work/tiny" --ranks 1 > "$work/local.log" 2>&1
fresh=$(find "$work/tiny/traces" -name '*.h5' -newer "$work/diverge.json" | wc -l)
if [ "$fresh" -eq 2 ] && sweep status "$work/tiny" > /dev/null 2>&1; then
    pass "local rerun: only the 2 unfinished runs ran, now all completed"
else
    fail "local rerun: $fresh traces rewritten (expected 2), or not all completed"
fi
# the sweep changes (more epochs): completed traces of the old spec are stale, kept aside on rerun
sweep expand "$grids/tiny.json" --out "$work/tiny" --set schedule.epochs=3 --no-validate > /dev/null 2>&1
sweep status "$work/tiny" > "$work/status.log" 2>&1
check "changed sweep: old traces reported stale" grep -q '^tiny: 6 runs: 6 stale$' "$work/status.log"
sweep expand "$grids/tiny.json" --out "$work/tiny" --no-validate > /dev/null 2>&1
sweep status "$work/tiny" > "$work/status.log" 2>&1
check "sweep changed back: traces completed again" grep -q '^tiny: 6 runs: 6 completed$' "$work/status.log"
# a key ccdl leaves out of the resolved spec at its default (communication.slowmo.tau 0)
# matches a trace that lacks it; set to anything else, it does not
sweep expand "$grids/tiny.json" --out "$work/tiny" --set communication.slowmo.tau=0 --no-validate > /dev/null 2>&1
sweep status "$work/tiny" > "$work/status.log" 2>&1
check "a later key at its default: traces still completed" grep -q '^tiny: 6 runs: 6 completed$' "$work/status.log"
sweep expand "$grids/tiny.json" --out "$work/tiny" --set communication.slowmo.tau=4 --no-validate > /dev/null 2>&1
sweep status "$work/tiny" > "$work/status.log" 2>&1
check "a later key off its default: traces stale" grep -q '^tiny: 6 runs: 6 stale$' "$work/status.log"
sweep expand "$grids/tiny.json" --out "$work/tiny" --no-validate > /dev/null 2>&1

# ---------------------------------------------------------------- tables against the traces
analyze table "$work/tiny" --out "$work/table" > "$work/table.md" 2> "$work/table.err" \
    || { cat "$work/table.err"; fail "table"; }
"$PYTHON" - "$work/tiny" "$work/table.csv" <<'PY' && pass "table: mean ± std over seeds match the traces" || fail "table numbers"
import csv, glob, json, sys
import h5py, numpy as np
d, table = sys.argv[1], sys.argv[2]
groups = {}
for p in sorted(glob.glob(f"{d}/traces/*.h5")):
    with h5py.File(p, "r") as f:
        spec = json.loads(f.attrs["spec"])
        mode = spec["communication"]["mode"]  # an All-Reduce run has no topology: "-"
        key = ("-" if mode == "allreduce" else spec["topology"]["kind"], mode)
        rounds = f["steps/rounds"][()]
        groups.setdefault(key, []).append((100 * f["epochs/test_acc"][-1], f["epochs/train_loss"][-1],
                                           np.mean(np.where(rounds > 0, rounds, 0))))
rows = list(csv.DictReader(open(table)))
ok = len(rows) == len(groups) == 3
for row in rows:
    vals = np.array(groups[(row["topology.kind"], row["communication.mode"])])
    ok &= int(row["runs"]) == len(vals) == 2 and row["seeds"] == "1 2"
    for j, m in enumerate(("test_acc", "train_loss", "rounds")):
        mean, std = vals[:, j].mean(), vals[:, j].std(ddof=1)
        ok &= abs(float(row[f"{m}_mean"]) - mean) < 1e-9 and abs(float(row[f"{m}_std"]) - std) < 1e-9
    print(row["topology.kind"], row["communication.mode"], row["test_acc_mean"], row["test_acc_std"])
ok &= sorted(r["communication.mode"] for r in rows) == ["allreduce", "gossip", "gossip"]
sys.exit(0 if ok else 1)
PY
check "table: Markdown with mean ± std" grep -q '^| ring | gossip | 2 | [0-9.]* ± [0-9.]* |' "$work/table.md"
analyze table "$work/tiny" --rows topology --cols mode,seed --metrics test_acc > "$work/pivot.md" 2>&1
check "table: pivot rows x columns" grep -q '^| topology | mode=allreduce seed=1 | mode=allreduce seed=2 |' "$work/pivot.md"

# ---------------------------------------------------------------- figures
analyze plot "$work/tiny" --out "$work/fig" > "$work/plot.log" 2>&1 || { cat "$work/plot.log"; fail "plot"; }
"$PYTHON" - "$work/fig" <<'PY' && pass "plot: 6 run figures and an overlay, PNG" || fail "plot output"
import glob, sys
files = sorted(glob.glob(sys.argv[1] + "/*.png"))
ok = len(files) == 7 and any(f.endswith("/overlay.png") for f in files)
for f in files:
    data = open(f, "rb").read()
    ok &= data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
sys.exit(0 if ok else 1)
PY

# ---------------------------------------------------------------- bad traces
good="$work/tiny/traces/ring-gossip-s1.h5"
echo "not hdf5" > "$work/junk.h5"
"$PYTHON" - "$good" "$work" <<'PY'
import shutil, sys, h5py
good, w = sys.argv[1], sys.argv[2]
shutil.copy(good, f"{w}/incomplete.h5")
with h5py.File(f"{w}/incomplete.h5", "r+") as f:
    f.attrs["completed"] = 0
    f.attrs["exit_reason"] = "running"
shutil.copy(good, f"{w}/nocolumn.h5")
with h5py.File(f"{w}/nocolumn.h5", "r+") as f:
    del f["epochs/test_acc"]
PY
for case in "junk:not a readable HDF5 file" "incomplete:run not completed (completed = 0" \
    "nocolumn:missing column /epochs/test_acc" "absent:no such file"; do
    b=${case%%:*} expect=${case#*:}
    for cmd in table plot; do
        analyze $cmd "$good" "$work/$b.h5" --out "$work/badfig" > /dev/null 2> "$work/bad.err"
        rc=$?
        if [ "$rc" -eq 2 ] && [ "$(wc -l < "$work/bad.err")" -eq 1 ] \
            && grep -qF "ccdl-analyze: $work/$b.h5: $expect" "$work/bad.err"; then
            pass "bad trace $b: $cmd exits 2 naming the file"
        else
            fail "bad trace $b: $cmd (exit $rc): $(cat "$work/bad.err")"
        fi
    done
done
check "--allow-incomplete accepts the incomplete trace" \
    analyze table "$good" "$work/incomplete.h5" --allow-incomplete --by seed > /dev/null 2>&1

# ---------------------------------------------------------------- Table 10, consensus figure
# closed forms: ring W = I/3 + shifts/3 has eigenvalues 1/3 + 2/3 cos(2 pi k / n); complete gap 1
"$PYTHON" - "$work" <<'PY'
import json, math, sys
import h5py, numpy as np
w = sys.argv[1]
with open(f"{w}/gaps.jsonl", "w") as f:
    for n in (16, 32):
        lam = 1 / 3 + 2 / 3 * math.cos(2 * math.pi / n)
        f.write(json.dumps({"kind": "ring", "n": n, "degree": 2, "spectral_gap": 1 - lam, "p": 1 - lam ** 2}) + "\n")
        f.write(json.dumps({"kind": "complete", "n": n, "degree": n - 1, "spectral_gap": 1.0, "p": 1.0}) + "\n")
with h5py.File(f"{w}/bench.h5", "w") as f:
    rng = np.random.default_rng(1)
    for kind in ("ring", "complete"):
        for n in (16, 32):
            W = np.full((n, n), 1 / n) if kind == "complete" else (np.eye(n) + np.roll(np.eye(n), 1, 0) + np.roll(np.eye(n), -1, 0)) / 3
            x = rng.standard_normal((n, 50))
            xi = []
            for r in range(30):
                xi.append(math.sqrt(np.mean(np.sum((x - x.mean(0)) ** 2, 1))))
                x = W @ x
            g = f.create_group(f"{kind}-n{n}")
            g.create_dataset("xi", data=np.array(xi))
            g.attrs["kind"], g.attrs["n"] = kind, n
PY
analyze gap-table "$work/gaps.jsonl" --out "$work/gaps" > "$work/gaps.out" 2>&1
check "gap-table: ring and complete at n = 16, 32" \
    grep -q '^| ring | 0.05075 | 0.01281 | 0.09892 | 0.02546 | 2 | 2 |$' "$work/gaps.md"
analyze consensus-plot "$work/bench.h5" --out "$work/consensus.png" > /dev/null 2>&1
check "consensus-plot: PNG from the bench HDF5 layout" test -s "$work/consensus.png"
echo '{"kind": "ring", "n": 16}' > "$work/badgaps.jsonl"
analyze gap-table "$work/badgaps.jsonl" > /dev/null 2> "$work/bad.err"
check "gap-table: missing key is one line, exit 2" grep -qx "ccdl-analyze: $work/badgaps.jsonl: line 1: missing key 'degree'" "$work/bad.err"
if "$CCDL" --help 2>&1 | grep -q 'ccdl topology'; then
    "$CCDL" topology --kinds ring,complete --n 16,32 --json > "$work/real-gaps.jsonl" 2> "$work/bad.err" \
        && analyze gap-table "$work/real-gaps.jsonl" > "$work/real-gaps.md" 2>> "$work/bad.err" \
        && grep -q '^| ring | 0.05075 | 0.01281 | 0.09892 | 0.02546 | 2 | 2 |$' "$work/real-gaps.md"
    check "gap-table from ccdl topology --json matches the closed form" test $? -eq 0
else
    echo "skip: ccdl topology not in this binary yet"
fi
if "$CCDL" --help 2>&1 | grep -q 'ccdl consensus-bench'; then
    for n in 8 16; do
        "$CCDL" consensus-bench --n $n --kinds ring,exponential --out "$work/cb$n.h5" > /dev/null 2>&1 || break
    done
    analyze consensus-plot "$work/cb8.h5" "$work/cb16.h5" --out "$work/cb.png" > /dev/null 2> "$work/bad.err"
    check "consensus-plot from ccdl consensus-bench files" test -s "$work/cb.png"
else
    echo "skip: ccdl consensus-bench not in this binary yet"
fi

# ---------------------------------------------------------------- sweep files shipped in sweeps/
# Every sweep file in sweeps/paper and sweeps/mini expands to the run count its README states
# in a "| `file` | runs |" table. Mini sweeps: key paths checked against ccdl spec-keys, and
# table7 (references, per-phase policies) validated by ccdl validate (all of them take ~40 s);
# with a ccdl that lacks the control keys, the runs are only counted.
# Paper sweeps: key paths checked once ccdl knows ResNet-20 (model.width), else not.
paper_mode=--no-binary
"$CCDL" spec-keys | grep -q 'model.width' && paper_mode=--no-validate
"$PYTHON" - "$top_srcdir" "$work" "$has_control" "$paper_mode" <<'PY' && pass "sweeps/: paper and mini run counts match sweeps/*/README.md" || fail "sweeps/ run counts"
import json, os, re, subprocess, sys
top, work, has_control, paper_mode = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
ok = True
for sub in ("paper", "mini"):
    d = os.path.join(top, "sweeps", sub)
    readme = open(os.path.join(d, "README.md")).read()
    stated = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\| `([\w.-]+\.json)` \| (\d+) \|", readme, re.M)}
    files = sorted(f for f in os.listdir(d) if f.endswith(".json"))
    ok &= sorted(stated) == files
    for f in files:
        if sub == "paper":
            mode = paper_mode
        elif not has_control:  # a ccdl without the control keys: count the runs only
            mode = "--no-binary"
        else:
            mode = "" if f == "table7.json" else "--no-validate"
        out = os.path.join(work, f"{sub}-{f[:-5]}")
        cmd = [sys.executable, os.path.join(top, "tools", "ccdl-sweep"), "expand", os.path.join(d, f), "--out", out]
        p = subprocess.run(cmd + ([mode] if mode else []), capture_output=True, text=True)
        n = len(json.load(open(os.path.join(out, "manifest.json")))["runs"]) if p.returncode == 0 else -1
        print(f"{sub}/{f}: {n} runs (README: {stated.get(f)}) {mode or 'validated'} {p.stderr.strip()}")
        ok &= n == stated.get(f)
sys.exit(0 if ok else 1)
PY

# ---------------------------------------------------------------- reference linking end to end
if [ "$has_control" -eq 1 ]; then
    sweep expand "$grids/tiny-control.json" --out "$work/ctl" > "$work/ctl.log" 2>&1 \
        && sweep local "$work/ctl" --ranks 1 >> "$work/ctl.log" 2>&1
    "$PYTHON" - "$work/ctl" <<'PY' && pass "controlled runs read their targets from the linked reference" || { cat "$work/ctl.log"; fail "reference linking end to end"; }
# constant target in the controlled phase k = factor x the reference's /phases/max_xi[k]
import json, sys
import h5py, numpy as np
d = sys.argv[1]
m = json.load(open(f"{d}/manifest.json"))
ok = any(r["reference"] for r in m["runs"])
for r in m["runs"]:
    if not r["reference"]:
        continue
    spec = json.load(open(f"{d}/{r['spec']}"))
    c = spec["communication"]
    k, factor = c["dec_phase"], c["control"]["factor"]
    ok &= c["control"]["reference"] == r["reference_trace"]
    ref = h5py.File(f"{d}/{r['reference_trace']}", "r")
    run = h5py.File(f"{d}/{r['trace']}", "r")
    want = factor * ref["phases/max_xi"][k - 1]
    ph, target = run["steps/phase"][()], run["steps/target"][()]
    got = np.unique(target[ph == k])
    print(r["name"], "->", r["reference"], f"target {got} want {want}")
    ok &= len(got) == 1 and abs(got[0] - want) <= 1e-12 * want
    ok &= bool(np.all(np.isnan(target[ph != k])))
sys.exit(0 if ok else 1)
PY
    # overlays per (dec_phase, seed): the All-Reduce run (no dec_phase) joins its seed's figure
    analyze plot "$work/ctl" --overlay-by dec_phase,seed --no-per-run --out "$work/ctlfig" > "$work/ctlfig.log" 2>&1
    check "plot --overlay-by: one overlay per group, the baseline in each" \
        test "$(sed 's#.*/##' "$work/ctlfig.log" | tr '\n' ' ')" = "overlay-dec_phase1-seed1.png overlay-dec_phase1-seed2.png "
else
    echo "skip: reference linking end to end (this ccdl has no communication.control keys yet)"
fi
finish
