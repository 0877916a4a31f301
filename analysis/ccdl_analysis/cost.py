"""Network cost model (ccdl-analyze cost; docs/analysis.md, cost).

The trace counts what each worker sends per step (/steps bytes_mean, bytes_max,
messages_mean, messages_max); a network is a latency L (seconds per message) and a bandwidth
B (bytes per second), the alpha-beta (Hockney) model. The modeled wall time of a step is

    compute per worker step + L x messages_max + bytes_max / B

where messages_max and bytes_max are the synchronous critical path of the step (per round
the most any one worker sends, summed over the rounds), and compute per worker step is the
median over the run's steps of compute_s x ranks / n (compute_s: a rank's wall time for its
n / ranks workers one after another; ranks from /resumes for steps after a resume). No
overlap of compute and communication, no contention, no collective-specific tricks beyond
what the trace counted (an All-Reduce step is counted as a ring all-reduce).
"""

import csv
import io
import json
import math
import os

import numpy as np
from ccdl_sweep.specjson import brief

from . import stats
from .traces import TraceError, fmt, regular

# Named networks: round figures for a typical link, assumptions rather than measurements
# (latency: one small message end to end through the MPI stack; bandwidth: the line rate
# in bytes per second). Measure your own with `ccdl netbench --json` and --netbench.
PROFILES = {
    "ethernet-1g": (50e-6, 125e6),      # 1 Gbit/s, 50 us
    "ethernet-10g": (20e-6, 1.25e9),    # 10 Gbit/s, 20 us
    "infiniband-hdr": (1.5e-6, 25e9),   # 200 Gbit/s, 1.5 us
}
COMM = ("bytes_mean", "bytes_max", "messages_mean", "messages_max")
NEED = {"steps": ["step", "phase", "compute_s"], "resumes": []}
OLDER = "no communication accounting: written by an older ccdl"
GB = 1e9


class Profile:
    def __init__(self, name, latency, bandwidth, source):
        self.name, self.latency, self.bandwidth, self.source = name, latency, bandwidth, source

    def header(self):
        return (f"network {self.name}: latency {self.latency * 1e6:g} us, bandwidth "
                f"{self.bandwidth / 1e6:g} MB/s ({self.bandwidth * 8 / 1e9:g} Gbit/s); {self.source}")


def _positive(where, name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise TraceError(where, f"{name}: expected a positive number, got {brief(v)}")
    return float(v)


def read_netbench(path):
    """The JSON object `ccdl netbench --json` prints (keys latency_s and bandwidth_Bps, others
    ignored). The file may hold other lines too: then the last line that is such an object."""
    regular(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(1 << 20)
    except (OSError, UnicodeDecodeError) as e:
        raise TraceError(path, f"cannot read ({getattr(e, 'strerror', None) or e})") from None
    candidates = [text] + [line for line in reversed(text.splitlines()) if line.strip().startswith("{")]
    for c in candidates:
        try:
            doc = json.loads(c)
        except (ValueError, RecursionError):
            continue
        if isinstance(doc, dict) and "latency_s" in doc and "bandwidth_Bps" in doc:
            return Profile(f"netbench {os.path.basename(path)}",
                           _positive(path, "latency_s", doc["latency_s"]),
                           _positive(path, "bandwidth_Bps", doc["bandwidth_Bps"]), f"measured ({path})")
    raise TraceError(path, "no JSON object with latency_s and bandwidth_Bps (the output of `ccdl netbench --json`)")


def profiles(networks, netbench, latency, bandwidth):
    out = []
    for text in networks or ():
        for name in (n.strip() for n in text.split(",")):
            if not name:
                continue
            if name not in PROFILES:
                raise TraceError("--network", f"unknown network {name!r} (one of {', '.join(PROFILES)})")
            out.append(Profile(name, *PROFILES[name], "assumed round figures"))
    out += [read_netbench(p) for p in netbench or ()]
    if (latency is None) != (bandwidth is None):
        raise TraceError("--latency/--bandwidth", "give both")
    if latency is not None:
        out.append(Profile("custom", _positive("--latency", "seconds", latency),
                           _positive("--bandwidth", "bytes per second", bandwidth), "given"))
    if not out:
        raise TraceError("cost", "no network: give --network NAME, --netbench FILE or --latency and --bandwidth")
    return out


# ---------------------------------------------------------------- per run, independent of the network


class Accounting:
    """What the model needs of one run, summed per phase (and over the run: phase None)."""

    def __init__(self, run):
        self.run = run
        steps = run.steps
        missing = [c for c in COMM if c not in steps]
        if len(missing) == len(COMM):
            raise TraceError(run.path, f"{OLDER} (no /steps/{', /steps/'.join(COMM)})")
        if missing:
            raise TraceError(run.path, "missing column" + ("s " if len(missing) > 1 else " ")
                             + ", ".join(f"/steps/{c}" for c in missing))
        self.n = int(run.attrs.get("n") or run.spec.get("workers") or 0)
        if self.n < 1:
            raise TraceError(run.path, "no attribute 'n' (workers)")
        ranks = ranks_per_step(run)
        per_worker = steps["compute_s"].astype(float) * ranks / self.n
        # the median: robust to the first steps' warm-up and to other load on the machine
        self.compute_step = float(np.nanmedian(per_worker)) if len(per_worker) else math.nan
        self.compute_sum = float(np.nansum(per_worker))
        phase = steps["phase"]
        self.parts = [(int(k), phase == k) for k in sorted(set(phase.tolist()))]
        self.parts.append((None, np.ones(len(phase), dtype=bool)))
        pol = run.policies()
        self.policies = {k: pol[k - 1] if 1 <= k <= len(pol) else "-" for k, _ in self.parts if k is not None}
        self.allreduce = bool(pol) and all(p == "allreduce" for p in pol)
        self.params = self._params() if self.allreduce else math.nan

    def _params(self):
        """d, the parameter count, from an All-Reduce step's bytes_max = 2(n-1)/n x 4d (the
        trace does not record d): the median over steps that sent anything."""
        b = self.run.steps["bytes_max"].astype(float)
        b = b[b > 0]
        if self.n < 2 or not len(b):
            return math.nan
        return float(np.median(b)) * self.n / (2 * (self.n - 1) * 4)

    def sums(self, mask):
        s = self.run.steps
        return {c: float(np.sum(s[c][mask].astype(float))) for c in COMM}


def ranks_per_step(run):
    """Ranks each step ran on: the root attribute `ranks` (the first run's), then from each
    /resumes row on, that resume's."""
    r0 = run.attrs.get("ranks")
    if r0 is None or r0 < 1:
        raise TraceError(run.path, "no attribute 'ranks' (needed to turn compute_s into compute per worker)")
    step = run.steps["step"]
    ranks = np.full(len(step), float(r0))
    res = run.resumes
    if res:
        for c in ("step", "ranks"):
            if c not in res:
                raise TraceError(run.path, f"missing column /resumes/{c}")
        order = np.argsort(res["step"], kind="stable")
        for first, k in zip(res["step"][order], res["ranks"][order]):
            if k < 1:
                raise TraceError(run.path, f"/resumes/ranks: {k} ranks")
            ranks[step >= first] = float(k)
    return ranks


# ---------------------------------------------------------------- the model on one network


def model(acc, mask, prof):
    """Row of the model for the steps in mask of one run on one network."""
    c = acc.sums(mask)
    steps = int(np.sum(mask))
    compute = acc.compute_step * steps
    comm = prof.latency * c["messages_max"] + c["bytes_max"] / prof.bandwidth
    ring = math.nan
    if acc.allreduce:  # the closed form of a ring all-reduce of d float32 per step
        n, d = acc.n, acc.params
        ring = 0.0 if n < 2 else steps * (2 * (n - 1) * prof.latency + 2 * (n - 1) / n * (d * 4) / prof.bandwidth)
    return {"steps": steps, "compute_per_step_s": acc.compute_step, "compute_s": compute, "comm_s": comm,
            "total_s": compute + comm, "gb_per_worker": c["bytes_mean"] / GB,
            "messages_per_worker": c["messages_mean"], "bytes_max": c["bytes_max"],
            "messages_max": c["messages_max"], "ring_comm_s": ring, "params": acc.params}


DIFFS = ("compute_s", "comm_s", "total_s", "gb_per_worker")


def tables(runs, profs, selection, required):
    """(Markdown, CSV) of every run and phase on every network, with the differences
    against each run's baseline (stats.pair)."""
    accs = [Accounting(r) for r in runs]
    _, base = stats.pair(runs, selection, required=required)
    by_run = {id(a.run): a for a in accs}
    md, rows = [], []
    for prof in profs:
        md.append(prof.header() + "\n")
        md.append("| run | phase | policy | steps | compute_s | comm_s | total_s | GB/worker | ring_s |")
        md.append("|---|---|---|---|---|---|---|---|---|")
        diff_md = []
        for a in accs:
            b = by_run.get(id(base.get(id(a.run))))
            for k, mask in a.parts:
                m = model(a, mask, prof)
                bm = None
                if b is not None:
                    bmask = dict(b.parts).get(k)
                    bm = model(b, bmask, prof) if bmask is not None else None
                md.append(f"| {a.run.name} | {'all' if k is None else k} | "
                          f"{'-' if k is None else a.policies[k]} | {m['steps']} | {_g(m['compute_s'])} | "
                          f"{_g(m['comm_s'])} | {_g(m['total_s'])} | {_g(m['gb_per_worker'])} | "
                          f"{_g(m['ring_comm_s'])} |")
                row = {"profile": prof.name, "latency_s": prof.latency, "bandwidth_Bps": prof.bandwidth,
                       "run": a.run.name, "trace": a.run.path, "phase": "all" if k is None else k,
                       "policy": "" if k is None else a.policies[k], **m,
                       "baseline": b.run.name if b is not None else ""}
                for c in DIFFS:
                    row["d_" + c] = m[c] - bm[c] if bm is not None else math.nan
                row["total_ratio"] = m["total_s"] / bm["total_s"] if bm is not None and bm["total_s"] else math.nan
                rows.append(row)
                if k is None and b is not None:
                    diff_md.append(f"| {a.run.name} | {b.run.name} | {_g(row['d_compute_s'])} | "
                                   f"{_g(row['d_comm_s'])} | {_g(row['d_total_s'])} | "
                                   f"{_g(row['d_gb_per_worker'])} | {_g(row['total_ratio'])} |")
        if diff_md:
            md.append("")
            md.append(f"against the baseline ({stats.selection_text(selection)}): run - baseline")
            md.append("")
            md.append("| run | baseline | Δcompute_s | Δcomm_s | Δtotal_s | ΔGB/worker | total/baseline |")
            md.append("|---|---|---|---|---|---|---|")
            md += diff_md
        md.append("")
    return "\n".join(md), _csv(rows)


CSV_COLUMNS = ("profile", "latency_s", "bandwidth_Bps", "run", "trace", "phase", "policy", "steps",
               "compute_per_step_s", "compute_s", "comm_s", "total_s", "gb_per_worker", "messages_per_worker",
               "bytes_max", "messages_max", "ring_comm_s", "params", "baseline", "d_compute_s", "d_comm_s",
               "d_total_s", "d_gb_per_worker", "total_ratio")


def _csv(rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow(["" if isinstance(r[c], float) and math.isnan(r[c])
                    else repr(r[c]) if isinstance(r[c], float) else fmt(r[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


def _g(v):
    return "-" if isinstance(v, float) and math.isnan(v) else f"{v:.4g}"
