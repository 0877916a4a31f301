"""verify.py RUNS [CCDL]: recompute every number of this directory's tables from the traces,
independently of analysis/ccdl-analyze (h5py and numpy only; the defaults of keys a spec
leaves out come from `ccdl spec-keys`), and compare. Prints one line per table and exits 1
if any number differs by more than 1e-9 relative.

Checked: table.csv (mean, std, 95% CI per configuration), diff.csv (paired differences
against the All-Reduce run of the same seed and n), cost.csv (the whole-run rows: modeled
compute, communication and total seconds, GB per worker, and total / All-Reduce). The
metrics are recomputed from the raw per-step and per-epoch rows (max Xi of a phase as the
max of /steps/xi over its steps, rounds as their mean, bytes as the sum of
/steps/bytes_mean), not read from /phases.
"""
import csv
import json
import math
import os
import re
import subprocess
import sys

import h5py
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
runs_dir = sys.argv[1]
ccdl = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "..", "ccdl")

# 95% two-sided Student t for k - 1 = 1 and 2 degrees of freedom, in closed form
T975 = {1: math.tan(0.475 * math.pi), 2: 0.95 * math.sqrt(2 / (1 - 0.95**2))}
ETHERNET_1G = (50e-6, 125e6)  # docs/analysis.md's profile; the other networks are read from the CSV

# spec key defaults, from the binary's own schema table
defaults = {}
for line in subprocess.run([ccdl, "spec-keys"], capture_output=True, text=True, check=True).stdout.splitlines():
    m = re.match(r"\| `([^`]+)` \| [^|]+ \| `(.*?)` \|", line)
    if m:
        defaults[m.group(1)] = json.loads(m.group(2)) if m.group(2) != "<name>.h5" else None


def get(spec, path):
    node = spec
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return defaults.get(path)
        node = node[part]
    return node


def same(csv_value, value):
    """A CSV group-key cell against a spec value. `-` is a key the table leaves open for the
    group (it does not apply, as the control keys of All-Reduce); the run counts checked
    below make sure the rows still select exactly their runs."""
    if csv_value == "-":
        return True
    if isinstance(value, list):
        return csv_value == "[" + ",".join(str(v) for v in value) + "]"
    if isinstance(value, bool):
        return csv_value.lower() == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            return float(csv_value) == float(value)
        except ValueError:
            return False
    return csv_value == str(value)


def metrics(path):
    with h5py.File(path, "r") as f:
        assert f.attrs["completed"] == 1, f"{path}: not completed"
        spec = json.loads(f.attrs["spec"])
        s, e = f["steps"], f["epochs"]
        phase, xi, rounds = s["phase"][()], s["xi"][()], s["rounds"][()]
        m = {"test_acc": 100 * e["test_acc"][-1], "best_acc": 100 * e["test_acc"][()].max(),
             "train_loss": e["train_loss"][-1],
             "gb_sent": s["bytes_mean"][()].sum() / 1e9, "messages": s["messages_mean"][()].sum()}
        for k in (1, 2, 3):
            sel = phase == k
            m[f"max_xi_p{k}"] = xi[sel].max()
            m[f"rounds_p{k}"] = rounds[sel].mean()
            m[f"gb_sent_p{k}"] = s["bytes_mean"][()][sel].sum() / 1e9
        m["rounds"] = rounds.mean()
        # the cost model's inputs
        resumes = f["resumes"] if "resumes" in f else None
        ranks = np.full(len(phase), f.attrs["ranks"], dtype=float)
        if resumes is not None:
            for first, r in zip(resumes["step"][()], resumes["ranks"][()]):
                ranks[s["step"][()] >= first] = r
        m["_c"] = float(np.median(s["compute_s"][()] * ranks / f.attrs["n"]))
        m["_steps"] = len(phase)
        m["_msg_max"], m["_bytes_max"] = s["messages_max"][()], s["bytes_max"][()]
    return spec, m


manifest = json.load(open(os.path.join(runs_dir, "manifest.json")))
runs = {}
for r in manifest["runs"]:
    runs[r["name"]] = metrics(os.path.join(runs_dir, r["trace"]))
print(f"{len(runs)} traces read")

bad = 0
checked = 0


def close(a, b, what):
    global bad, checked
    checked += 1
    if not (a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b)) or (math.isnan(a) and math.isnan(b))):
        bad += 1
        print(f"DIFFERS: {what}: table {b!r}, traces {a!r}")


def stats(values):
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return v.mean(), None, None
    sd = v.std(ddof=1)
    return v.mean(), sd, T975[len(v) - 1] * sd / math.sqrt(len(v))


def rows(name):
    with open(os.path.join(here, name), newline="") as fh:
        rd = csv.DictReader(fh)
        return rd.fieldnames, list(rd)


def group_runs(row, keys):
    return [n for n, (spec, _) in runs.items() if all(same(row[k], get(spec, k)) for k in keys)]


def is_allreduce(spec):
    return get(spec, "communication.mode") == "allreduce" and not get(spec, "communication.phases")


# --- table.csv: mean, std, ci95 per group
cols, table = rows("table.csv")
keys = cols[: cols.index("runs")]
# wall_s (the run's wall clock) is a measurement, not a function of the rows: not checked
names = sorted({c.rsplit("_", 1)[0] for c in cols if c.endswith("_mean")} - {"wall_s"})
for row in table:
    members = group_runs(row, keys)
    assert len(members) == int(row["runs"]), f"table.csv {row}: {len(members)} runs match"
    for metric in names:
        mean, sd, ci = stats([runs[n][1][metric] for n in members])
        close(mean, float(row[f"{metric}_mean"]), f"table.csv {members[0]} {metric} mean")
        if sd is not None:
            close(sd, float(row[f"{metric}_std"]), f"table.csv {members[0]} {metric} std")
            close(ci, float(row[f"{metric}_ci95"]), f"table.csv {members[0]} {metric} ci95")
print(f"table.csv: {len(table)} groups, {checked} numbers")


# --- diff.csv: paired differences against the All-Reduce run of the same seed and n
def baseline(name):
    spec = runs[name][0]
    hits = [b for b, (bs, _) in runs.items() if is_allreduce(bs)
            and bs.get("seed") == spec.get("seed") and get(bs, "workers") == get(spec, "workers")]
    assert len(hits) == 1, f"{name}: {len(hits)} baselines"
    return hits[0]


before = checked
cols, diff = rows("diff.csv")
keys = cols[: cols.index("pairs")]
names = sorted({c[: -len("_diff_mean")] for c in cols if c.endswith("_diff_mean")})
for row in diff:
    members = [n for n in group_runs(row, keys) if not is_allreduce(runs[n][0])]
    assert len(members) == int(row["pairs"]), f"diff.csv {row}: {len(members)} runs match"
    bases = {n: baseline(n) for n in members}
    for metric in names:
        d = [runs[n][1][metric] - runs[bases[n]][1][metric] for n in members]
        mean, sd, ci = stats(d)
        close(mean, float(row[f"{metric}_diff_mean"]), f"diff.csv {members[0]} {metric} mean")
        if sd is not None:
            close(sd, float(row[f"{metric}_diff_std"]), f"diff.csv {members[0]} {metric} std")
            close(ci, float(row[f"{metric}_diff_ci95"]), f"diff.csv {members[0]} {metric} ci95")
print(f"diff.csv: {len(diff)} groups, {checked - before} numbers")

# --- cost.csv: the whole-run rows, alpha-beta model per network
before = checked
_, cost = rows("cost.csv")
whole = {}
for row in cost:
    if row["phase"] != "all":
        continue
    m = runs[row["run"]][1]
    lat, bw = float(row["latency_s"]), float(row["bandwidth_Bps"])
    if row["profile"] == "ethernet-1g":
        close(lat, ETHERNET_1G[0], "cost.csv ethernet-1g latency")
        close(bw, ETHERNET_1G[1], "cost.csv ethernet-1g bandwidth")
    compute = m["_c"] * m["_steps"]
    comm = float(np.sum(lat * m["_msg_max"] + m["_bytes_max"] / bw))
    close(compute, float(row["compute_s"]), f"cost.csv {row['run']} {row['profile']} compute_s")
    close(comm, float(row["comm_s"]), f"cost.csv {row['run']} {row['profile']} comm_s")
    close(compute + comm, float(row["total_s"]), f"cost.csv {row['run']} {row['profile']} total_s")
    close(m["gb_sent"], float(row["gb_per_worker"]), f"cost.csv {row['run']} gb_per_worker")
    whole[(row["profile"], row["run"])] = (compute + comm, row)
for (profile, name), (total, row) in whole.items():
    if row["total_ratio"]:
        base = whole[(profile, baseline(name))][0]
        close(total / base, float(row["total_ratio"]), f"cost.csv {name} {profile} total_ratio")
print(f"cost.csv: {len(whole)} run x network rows, {checked - before} numbers")

print(f"verify.py: {checked} numbers recomputed from the traces, {bad} differ")
sys.exit(1 if bad else 0)
