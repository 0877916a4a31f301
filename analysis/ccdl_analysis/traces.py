"""Reading ccdl traces (docs/trace.md) for analysis: one Run per file, strict about what it needs.

Inputs may be trace files, sweep directories (their manifest.json lists the traces), or
directories of *.h5. A bad trace (not HDF5, no spec, a missing column, completed = 0 without
allow_incomplete) raises TraceError naming the file.
"""

import glob
import json
import os
import sys

import h5py
import numpy as np

STEP_COLUMNS = ("step", "epoch", "phase", "lr", "loss", "grad_norm", "xi", "theta", "target",
                "rounds", "capped")
EPOCH_COLUMNS = ("epoch", "train_loss", "test_loss", "test_acc", "xi_mean", "wall_s")
PHASE_COLUMNS = ("phase", "start_step", "end_step", "max_xi", "mean_rounds")
# Keys that never distinguish runs (set per run by ccdl-sweep, or a path on disk).
IDENTITY_EXCLUDED = ("name", "trace.path", "communication.control.reference")

# Short labels of common spec keys (tables, legends); other keys show their full path.
SHORT = {
    "topology.kind": "topology", "communication.mode": "mode", "communication.phases": "phases",
    "workers": "n", "communication.dec_phase": "dec_phase",
    "communication.control.metric": "metric", "communication.control.target": "target",
    "communication.control.factor": "factor", "communication.control.value": "value",
    "communication.control.ema": "ema", "communication.control.max_rounds": "max_rounds",
    "communication.local_steps": "H", "model.kind": "model", "data.dataset": "dataset",
    "schedule.epochs": "epochs", "schedule.lr": "lr", "schedule.local_batch": "local_batch",
    "optimizer.momentum": "momentum", "seed": "seed",
}
ALIASES = {v: k for k, v in SHORT.items()}


class TraceError(Exception):
    def __init__(self, path, message):
        super().__init__(f"{path}: {message}")


def short(path):
    return SHORT.get(path, path)


def key_path(name):
    """A key given on the command line: a full path, or a short label (n, factor, ...)."""
    return ALIASES.get(name, name)


def flatten(obj, prefix=""):
    out = {}
    for key, value in obj.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def fmt(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, list):
        return "[" + ",".join(fmt(v) for v in value) + "]"
    return str(value)


def sort_key(value):
    """Orders mixed values: numbers numerically, then strings, then everything else."""
    if isinstance(value, bool):
        return (1, str(value), 0)
    if isinstance(value, (int, float)):
        return (0, "", float(value))
    return (1, json.dumps(value, sort_keys=True), 0)


class Run:
    def __init__(self, path, attrs, spec, steps, epochs, phases):
        self.path = path
        self.attrs = attrs
        self.spec = spec
        self.flat = flatten(spec)
        self.steps, self.epochs, self.phases = steps, epochs, phases
        self.name = spec.get("name") or os.path.splitext(os.path.basename(path))[0]

    def policies(self):
        """Communication policy of each phase (docs/spec.md: phases, else mode and dec_phase)."""
        c = self.spec.get("communication", {})
        n = len(self.spec.get("schedule", {}).get("decay_at", [])) + 1
        if c.get("phases"):
            return list(c["phases"])
        dec, mode = c.get("dec_phase", 0), c.get("mode", "gossip")
        return [mode if dec in (0, k) else "allreduce" for k in range(1, n + 1)]

    def relevant(self, key):
        """False for keys that cannot affect this run (control settings of a run without a
        controlled phase, the topology of an All-Reduce run, ...): tables show them as '-'."""
        pol = self.policies()
        if key.startswith("communication.control."):
            return "controlled" in pol
        if key == "communication.local_steps":
            return "local" in pol
        if key == "topology.kind":
            return any(p != "allreduce" for p in pol)
        c = self.spec.get("communication", {})
        if key == "communication.mode":
            return not c.get("phases")
        if key == "communication.dec_phase":
            return not c.get("phases") and c.get("mode") != "allreduce"
        return True

    def value(self, key):
        return self.flat.get(key) if self.relevant(key) else None

    def label(self, keys):
        if not keys:
            return self.name
        return " ".join(f"{short(k)}={fmt(self.value(k))}" for k in keys)


def _read_group(f, path, group, required):
    if group not in f:
        if required:
            raise TraceError(path, f"no group /{group}")
        return {}
    g = f[group]
    missing = [c for c in required if c not in g]
    if missing:
        raise TraceError(path, f"missing column{'s' if len(missing) > 1 else ''} "
                               + ", ".join(f"/{group}/{c}" for c in missing))
    cols = {name: np.asarray(obj[()]) for name, obj in g.items() if isinstance(obj, h5py.Dataset)}
    if cols:  # a kill mid-flush may leave columns of different lengths: cut to the shortest
        n = min(len(c) for c in cols.values())
        cols = {k: v[:n] for k, v in cols.items()}
    return cols


def load(path, need=None, allow_incomplete=False):
    """need: {"steps": [...], "epochs": [...], "phases": [...]} columns that must exist."""
    need = need or {}
    if not os.path.exists(path):
        raise TraceError(path, "no such file")
    try:
        f = h5py.File(path, "r", swmr=True)
    except OSError as e:
        raise TraceError(path, f"not a readable HDF5 file ({str(e).split('(')[0].strip()})") from None
    with f:
        attrs = {}
        for k, v in f.attrs.items():
            attrs[k] = v.decode() if isinstance(v, bytes) else v
        if "spec" not in attrs:
            raise TraceError(path, "not a ccdl trace (no 'spec' attribute)")
        try:
            spec = json.loads(attrs["spec"])
        except (TypeError, ValueError):
            raise TraceError(path, "the 'spec' attribute is not JSON") from None
        completed = int(attrs.get("completed", 0))
        if completed != 1 and not allow_incomplete:
            raise TraceError(path, f"run not completed (completed = {completed}, exit_reason "
                                   f"{attrs.get('exit_reason', '?')!r}); pass --allow-incomplete to use it")
        groups = {g: _read_group(f, path, g, list(need.get(g, ()))) for g in ("steps", "epochs", "phases")}
    # an unfinished run (accepted with allow_incomplete) may not have reached a group yet,
    # e.g. /phases before its first phase ends: its metrics come out blank, not an error
    for g, cols in need.items():
        if cols and completed == 1 and len(next(iter(groups[g].values()), [])) == 0:
            raise TraceError(path, f"/{g} has no rows")
    return Run(path, attrs, spec, groups["steps"], groups["epochs"], groups["phases"])


def trace_paths(inputs, allow_incomplete=False):
    """Expand inputs (trace files, sweep directories, directories of traces) to trace paths."""
    out = []
    for item in inputs:
        if os.path.isdir(item):
            man = os.path.join(item, "manifest.json")
            if os.path.exists(man):
                with open(man, encoding="utf-8") as f:
                    runs = json.load(f).get("runs", [])
                for r in runs:
                    p = os.path.join(item, r["trace"])
                    if os.path.exists(p):
                        out.append(p)
                    elif allow_incomplete:
                        print(f"ccdl-analyze: {p}: no trace yet, skipped", file=sys.stderr)
                    else:
                        raise TraceError(p, f"no trace for run {r['name']} (see `ccdl-sweep status "
                                            f"{item}`; --allow-incomplete skips it)")
            else:
                found = sorted(glob.glob(os.path.join(item, "*.h5")))
                if not found:
                    raise TraceError(item, "no *.h5 traces and no manifest.json in this directory")
                out.extend(found)
        else:
            out.append(item)
    if not out:
        raise TraceError("(inputs)", "no traces given")
    return out


def load_all(inputs, need=None, allow_incomplete=False):
    runs = [load(p, need, allow_incomplete) for p in trace_paths(inputs, allow_incomplete)]
    seen = {}
    for r in runs:
        if r.path in seen:
            raise TraceError(r.path, "given twice")
        seen[r.path] = r
    return runs


def varying_keys(runs, exclude=()):
    """Spec keys taking two or more values across runs, in a stable order (short names first)."""
    keys = sorted({k for r in runs for k in r.flat})
    out = []
    for k in keys:
        if k in IDENTITY_EXCLUDED or k in exclude:
            continue
        # a key set in some runs only (None: irrelevant there) is told by the keys that
        # decide relevance (mode, phases): it varies if it takes two values
        values = {json.dumps(r.value(k), sort_keys=True) for r in runs if r.value(k) is not None}
        if len(values) > 1:
            out.append(k)
    order = list(SHORT)
    return sorted(out, key=lambda k: (order.index(k) if k in order else len(order), k))
