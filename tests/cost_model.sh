# cost_model.sh: ccdl-analyze cost (docs/analysis.md, cost). Tiny real runs (All-Reduce and
# gossip on a ring of 4, seeds 1 and 2, one of them on 2 ranks; a dec-phase-1 run given a
# resume onto 4 ranks) get the communication columns /steps and /phases bytes_mean,
# bytes_max, messages_mean, messages_max written here with h5py (known values: a ring
# all-reduce of d parameters per All-Reduce step, 2 x rounds messages of d floats per gossip
# step, jittered), replacing any the ccdl that made them wrote, so that the test does not
# depend on the C side. The modeled compute, communication and total times, GB per worker,
# the closed-form ring all-reduce cost and the differences against the All-Reduce run of the
# same seed, on named, measured (netbench JSON) and given networks, match the formulas
# computed here from the traces with h5py and numpy alone, to 1e-9 relative. A trace
# without the columns (an older ccdl) and bad options are one line, exit 2.
. "$(dirname "$0")/lib.sh"
export PYTHONDONTWRITEBYTECODE=1
analyze="$top_srcdir/analysis/ccdl-analyze"
t0=$(date +%s)

"$PYTHON" - "$specs/tiny-allreduce.json" "$work" <<'PY' || fail "write the specs"
import json, sys
base = json.load(open(sys.argv[1]))
for name, mode, seed, dec in (("ar-s1", "allreduce", 1, 0), ("ar-s2", "allreduce", 2, 0), ("g-s1", "gossip", 1, 0),
                              ("g-s2", "gossip", 2, 0), ("dec1-s1", "gossip", 1, 1)):
    s = json.loads(json.dumps(base))
    s.update(name=name, seed=seed)
    s["communication"].update(mode=mode, dec_phase=dec)
    json.dump(s, open(f"{sys.argv[2]}/{name}.json", "w"))
PY
for name in ar-s1 ar-s2 g-s1 dec1-s1; do
    "$CCDL" run "$work/$name.json" --quiet --out "$work/$name.h5" || fail "run $name"
done
mpirun 2 "$CCDL" run "$work/g-s2.json" --quiet --out "$work/g-s2.h5" || fail "run g-s2 on 2 ranks"
echo "5 runs: $(($(date +%s) - t0)) s"

# the communication columns, with known values; old.h5: a trace without them
cat > "$work/columns.py" <<'PY'
import shutil, sys
import h5py, numpy as np

work = sys.argv[1]
D = 25450  # the MLP 784-32-10: 784 x 32 + 32 + 32 x 10 + 10 parameters
COLS = ("bytes_mean", "bytes_max", "messages_mean", "messages_max")
UNITS = {"bytes_mean": "By", "bytes_max": "By", "messages_mean": "1", "messages_max": "1"}
rng = np.random.default_rng(5)


def put(group, name, data):
    if name in group:
        del group[name]
    ds = group.create_dataset(name, data=np.asarray(data, dtype="<f8"), maxshape=(None,),
                              chunks=(4096 if group.name == "/steps" else 64,))
    ds.attrs["units"] = UNITS[name]
    ds.attrs["description"] = f"{name} (written by cost_model.sh)"


for name in ("ar-s1", "ar-s2", "g-s1", "g-s2", "dec1-s1"):
    with h5py.File(f"{work}/{name}.h5", "r+") as f:
        n = int(f.attrs["n"])
        s = f["steps"]
        policy, rounds = s["policy"][()], s["rounds"][()].astype(float)
        jitter = 1 + 0.1 * rng.random(len(policy))
        ar = policy == 0
        mm = np.where(ar, 2.0 * (n - 1), 2.0 * rounds)
        bm = np.where(ar, 2.0 * (n - 1) / n * D * 4, 2.0 * rounds * D * 4 * jitter)
        cols = {"messages_max": mm, "bytes_max": bm, "messages_mean": np.where(ar, mm, mm * 0.75),
                "bytes_mean": np.where(ar, bm, bm * 0.9)}
        for c in COLS:
            put(s, c, cols[c])
        start, end = f["phases/start_step"][()], f["phases/end_step"][()]
        step = s["step"][()]
        for c in COLS:
            put(f["phases"], c, [cols[c][(step >= a) & (step < b)].sum() for a, b in zip(start, end)])
        if name == "dec1-s1":  # resumed at step 40 on 4 ranks (the first run's 1 stays the root's)
            r = f["resumes"]
            for c, v in (("step", 40), ("ranks", 4), ("unix_time", 1.7e9)):
                r[c].resize((1,))
                r[c][0] = v
shutil.copy(f"{work}/ar-s1.h5", f"{work}/old/ar-s1.h5")
shutil.copy(f"{work}/ar-s1.h5", f"{work}/half/ar-s1.h5")
with h5py.File(f"{work}/old/ar-s1.h5", "r+") as f:
    for g in ("steps", "phases"):
        for c in COLS:
            del f[g][c]
with h5py.File(f"{work}/half/ar-s1.h5", "r+") as f:
    del f["steps/bytes_max"]
PY
mkdir -p "$work/old" "$work/half"
"$PYTHON" "$work/columns.py" "$work" || fail "write the communication columns"
traces="$work/ar-s1.h5 $work/ar-s2.h5 $work/g-s1.h5 $work/g-s2.h5 $work/dec1-s1.h5"

# a measured network: what `ccdl netbench --json` prints (other keys ignored)
cat > "$work/netbench.json" <<'EOF2'
{"latency_s": 3.25e-05, "bandwidth_Bps": 910000000.0, "ranks": 2, "sizes": [8, 1048576], "host": "test"}
EOF2
"$PYTHON" "$analyze" cost $traces --network ethernet-1g,infiniband-hdr --network ethernet-10g \
    --netbench "$work/netbench.json" --latency 1e-4 --bandwidth 5e7 --out "$work/cost" > "$work/cost.md" 2> "$work/cost.err"
check "cost: exit 0" test $? -eq 0
cat "$work/cost.err"
sed -n '1,20p' "$work/cost.md"

cat > "$work/checks.py" <<'PY'
import csv, json, math, sys
import h5py, numpy as np

work, traces = sys.argv[1], sys.argv[2:]


def check(what, ok):
    print(("ok: " if ok else "FAIL: ") + what)


def close(got, want):
    if isinstance(want, float) and math.isnan(want):
        return got == ""
    return got != "" and abs(float(got) - want) <= 1e-9 * abs(want) + 1e-300


D = 25450
NETS = [("ethernet-1g", 50e-6, 125e6), ("infiniband-hdr", 1.5e-6, 25e9), ("ethernet-10g", 20e-6, 1.25e9),
        ("netbench netbench.json", 3.25e-05, 910000000.0), ("custom", 1e-4, 5e7)]

# the traces, read with h5py alone
runs = {}
for p in traces:
    with h5py.File(p, "r") as f:
        spec = json.loads(f.attrs["spec"])
        s = {c: f["steps"][c][()] for c in f["steps"]}
        n, ranks = int(f.attrs["n"]), np.full(len(s["step"]), float(f.attrs["ranks"]))
        for first, k in zip(f["resumes/step"][()], f["resumes/ranks"][()]):
            ranks[s["step"] >= first] = k
        runs[spec["name"]] = {"path": p, "spec": spec, "n": n, "steps": s,
                              "compute": float(np.median(s["compute_s"] * ranks / n)),
                              "ranks": sorted(set(ranks))}
check("ranks per step: g-s2 ran on 2, dec1-s1 on 1 then 4 from step 40",
      runs["g-s2"]["ranks"] == [2] and runs["dec1-s1"]["ranks"] == [1, 4] and runs["ar-s1"]["ranks"] == [1])


def model(run, phase, lat, bw):
    s = run["steps"]
    mask = np.ones(len(s["step"]), bool) if phase == "all" else s["phase"] == int(phase)
    steps = int(mask.sum())
    compute = run["compute"] * steps
    comm = lat * s["messages_max"][mask].sum() + s["bytes_max"][mask].sum() / bw
    return {"steps": steps, "compute_s": compute, "comm_s": comm, "total_s": compute + comm,
            "gb_per_worker": s["bytes_mean"][mask].sum() / 1e9,
            "messages_per_worker": s["messages_mean"][mask].sum()}


rows = list(csv.DictReader(open(f"{work}/cost.csv")))
want_rows = len(NETS) * len(runs) * 4  # per run: 3 phases and all
check(f"cost.csv: {want_rows} rows (5 networks x 5 runs x (3 phases + all)): {len(rows)}", len(rows) == want_rows)
base_of = {"g-s1": "ar-s1", "g-s2": "ar-s2", "dec1-s1": "ar-s1"}
ok_model = ok_ring = ok_diff = ok_net = True
seen = set()
for row in rows:
    run = runs[row["run"]]
    lat, bw = next((l, b) for name, l, b in NETS if name == row["profile"])
    ok_net &= close(row["latency_s"], lat) and close(row["bandwidth_Bps"], bw)
    seen.add((row["profile"], row["run"], row["phase"]))
    m = model(run, row["phase"], lat, bw)
    good = int(row["steps"]) == m["steps"] and row["trace"] == run["path"]
    for c in ("compute_s", "comm_s", "total_s", "gb_per_worker", "messages_per_worker"):
        good &= close(row[c], m[c])
    good &= close(row["compute_per_step_s"], run["compute"])
    if not good:
        print(f"  {row['profile']} {row['run']} phase {row['phase']}: {row}; want {m}")
    ok_model &= good
    # the closed-form ring all-reduce: 2(n-1) latency + 2(n-1)/n x 4d / bandwidth per step
    if run["spec"]["communication"]["mode"] == "allreduce":
        n = run["n"]
        ring = m["steps"] * (2 * (n - 1) * lat + 2 * (n - 1) / n * D * 4 / bw)
        good = close(row["ring_comm_s"], ring) and close(row["comm_s"], ring) and close(row["params"], D)
        if not good:
            print(f"  {row['profile']} {row['run']} phase {row['phase']}: ring {row['ring_comm_s']} "
                  f"params {row['params']}; want {ring!r}")
        ok_ring &= good
    else:
        ok_ring &= row["ring_comm_s"] == "" and row["params"] == ""
    # run - the All-Reduce run of the same seed (and n), per phase and over the run
    if row["run"] in base_of:
        b = model(runs[base_of[row["run"]]], row["phase"], lat, bw)
        good = row["baseline"] == base_of[row["run"]] and close(row["total_ratio"], m["total_s"] / b["total_s"])
        for c in ("compute_s", "comm_s", "total_s", "gb_per_worker"):
            good &= close(row["d_" + c], m[c] - b[c])
        if not good:
            print(f"  {row['profile']} {row['run']} phase {row['phase']}: diff {row}; baseline {b}")
        ok_diff &= good
    else:
        ok_diff &= row["baseline"] == "" and row["d_total_s"] == ""
check("cost.csv: every network, run and phase (and all)", len(seen) == want_rows)
check("cost.csv: latency and bandwidth of the named, measured and given networks", ok_net)
check("cost.csv: steps, compute (median of compute_s x ranks / n per step), comm (L x messages_max + "
      "bytes_max / B), total, GB and messages per worker = the formulas from the traces, to 1e-9", ok_model)
check("cost.csv: All-Reduce runs: ring_comm_s = steps x (2(n-1) L + 2(n-1)/n x 4d / B) with d = 25450 derived "
      "from bytes_max; empty for the others", ok_ring)
check("cost.csv: differences against the All-Reduce run of the same seed (per phase and all), "
      "none for the All-Reduce runs", ok_diff)

# the Markdown: one table per network in order, each run's 'all' row and its difference rounded
md = open(f"{work}/cost.md").read()
heads = [l for l in md.splitlines() if l.startswith("network ")]
check(f"cost.md: one table per network, in the order given ({len(heads)})",
      [h.split(":")[0] for h in heads] == [f"network {name}" for name, _, _ in NETS]
      and heads[0].startswith("network ethernet-1g: latency 50 us, bandwidth 125 MB/s (1 Gbit/s)")
      and heads[3].endswith(f"measured ({work}/netbench.json)"))
ok = True
for section, (name, lat, bw) in zip(md.split("\nnetwork ")[0:], NETS):
    for r, run in runs.items():
        m = model(run, "all", lat, bw)
        pol = "-"
        ring = "-"
        if run["spec"]["communication"]["mode"] == "allreduce":
            ring = f"{m['steps'] * (2 * 3 * lat + 1.5 * D * 4 / bw):.4g}"
        line = (f"| {r} | all | {pol} | {m['steps']} | {m['compute_s']:.4g} | {m['comm_s']:.4g} | "
                f"{m['total_s']:.4g} | {m['gb_per_worker']:.4g} | {ring} |")
        if line not in section:
            print(f"  {name}: no line {line}")
            ok = False
        if r in base_of:
            b = model(runs[base_of[r]], "all", lat, bw)
            line = (f"| {r} | {base_of[r]} | {m['compute_s'] - b['compute_s']:.4g} | {m['comm_s'] - b['comm_s']:.4g} | "
                    f"{m['total_s'] - b['total_s']:.4g} | {m['gb_per_worker'] - b['gb_per_worker']:.4g} | "
                    f"{m['total_s'] / b['total_s']:.4g} |")
            if line not in section:
                print(f"  {name}: no line {line}")
                ok = False
check("cost.md: per network, each run's totals and its difference against its All-Reduce run, rounded", ok)
g = model(runs["g-s1"], "all", 50e-6, 125e6)
a = model(runs["ar-s1"], "all", 50e-6, 125e6)
print(f"  ethernet-1g: gossip comm {g['comm_s']:.4g} s vs all-reduce {a['comm_s']:.4g} s per run")
PY
"$PYTHON" "$work/checks.py" "$work" $traces > "$work/checks.out" 2>&1
code=$?
cat "$work/checks.out"
passes=$((passes + $(grep -c '^ok: ' "$work/checks.out")))
failures=$((failures + $(grep -c '^FAIL: ' "$work/checks.out")))
check "checks.py ran to the end" test $code -eq 0

# only gossip runs: no All-Reduce run to compare with, no difference table (not an error
# unless --diff-vs asks for one)
"$PYTHON" "$analyze" cost "$work/g-s1.h5" --network ethernet-1g > "$work/g.md" 2> "$work/g.err"
check "cost of a gossip run alone: exit 0, no difference table" \
    sh -c "test $? -eq 0 && grep -q '^| g-s1 | all |' '$work/g.md' && ! grep -q 'baseline' '$work/g.md'"

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
fails_with "a trace without the columns (an older ccdl)" \
    "ccdl-analyze: $work/old/ar-s1.h5: no communication accounting: written by an older ccdl" \
    cost $traces "$work/old/ar-s1.h5" --network ethernet-1g
fails_with "a trace with some of the columns" "ccdl-analyze: $work/half/ar-s1.h5: missing column /steps/bytes_max" \
    cost "$work/half/ar-s1.h5" --network ethernet-1g
fails_with "no network" "ccdl-analyze: cost: no network: give --network NAME, --netbench FILE or --latency and --bandwidth" \
    cost $traces
fails_with "an unknown network" "ccdl-analyze: --network: unknown network 'token-ring' (one of ethernet-1g, ethernet-10g, infiniband-hdr)" \
    cost $traces --network token-ring
fails_with "--latency without --bandwidth" "ccdl-analyze: --latency/--bandwidth: give both" cost $traces --latency 1e-5
fails_with "a zero bandwidth" "ccdl-analyze: --bandwidth: bytes per second: expected a positive number, got 0.0" \
    cost $traces --latency 1e-5 --bandwidth 0
echo '{"latency_s": 1e-6}' > "$work/bad-netbench.json"
fails_with "a netbench file without bandwidth_Bps" \
    "ccdl-analyze: $work/bad-netbench.json: no JSON object with latency_s and bandwidth_Bps" \
    cost $traces --netbench "$work/bad-netbench.json"
echo '{"latency_s": -1, "bandwidth_Bps": 1e9}' > "$work/bad-netbench.json"
fails_with "a netbench file with a negative latency" \
    "ccdl-analyze: $work/bad-netbench.json: latency_s: expected a positive number, got -1" \
    cost $traces --netbench "$work/bad-netbench.json"
fails_with "--diff-vs given: a run without its baseline" \
    "ccdl-analyze: $work/g-s2.h5: run g-s2: no baseline run with mode=allreduce, seed=2, n=4" \
    cost "$work/ar-s1.h5" "$work/g-s1.h5" "$work/g-s2.h5" --network ethernet-1g --diff-vs mode=allreduce
finish
