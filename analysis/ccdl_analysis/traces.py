"""Reading ccdl traces (docs/trace.md) for analysis: one Run per file, strict about what it needs.

Inputs may be trace files, sweep directories (their manifest.json lists the traces), or
directories of *.h5. A bad trace raises TraceError naming the file and what is wrong in it:
not a regular file, not HDF5, the format check of the root attributes (check_attrs), a column
that is not a 1-D column of its documented kind (integer or floating point), a missing column,
a completed trace whose columns in one group differ in length (corrupt), completed = 0
without allow_incomplete.
"""

import glob
import json
import math
import numbers
import os
import stat
import sys

import h5py
import numpy as np
from ccdl_sweep import SweepError, h5safe
from ccdl_sweep.h5safe import open_h5
from ccdl_sweep.manifest import path_problem
from ccdl_sweep.specjson import MAX_DEPTH, brief, depth, file_kind, load_file

STEP_COLUMNS = ("step", "epoch", "phase", "lr", "loss", "grad_norm", "xi", "theta", "target",
                "rounds", "capped")
EPOCH_COLUMNS = ("epoch", "train_loss", "test_loss", "test_acc", "xi_mean", "wall_s")
PHASE_COLUMNS = ("phase", "start_step", "end_step", "max_xi", "mean_rounds")
# Columns of docs/trace.md by kind: "i" integer, "f" floating point (other columns: numeric).
COLUMN_KINDS = {
    "steps": {"step": "i", "epoch": "i", "phase": "i", "lr": "f", "loss": "f", "grad_norm": "f",
              "xi": "f", "theta": "f", "target": "f", "policy": "i", "rounds": "i", "capped": "i",
              "compute_s": "f", "comm_s": "f",
              "bytes_mean": "f", "bytes_max": "f", "messages_mean": "f", "messages_max": "f"},
    "epochs": {"epoch": "i", "train_loss": "f", "test_loss": "f", "test_acc": "f", "xi_mean": "f",
               "wall_s": "f", "worker_test_acc": "f", "val_bleu": "f", "test_bleu": "f",
               "test_ppl": "f"},
    "phases": {"phase": "i", "start_step": "i", "end_step": "i", "policy": "i", "max_xi": "f",
               "mean_rounds": "f", "capped_steps": "i", "target": "f",
               "bytes_mean": "f", "bytes_max": "f", "messages_mean": "f", "messages_max": "f"},
    "resumes": {"step": "i", "ranks": "i", "unix_time": "f"},
}
# The root attributes (docs/trace.md). format and format_version are newer than ccdl 0.1:
# without them the presence and types of the others are the format check.
FORMAT = "ccdl-trace"
FORMAT_VERSION = 1
REQUIRED_STRINGS = ("spec", "ccdl_version", "exit_reason")
OPTIONAL_STRINGS = ("created",)
OPTIONAL_INTS = ("n", "ranks", "threads")
# Spec keys the analysis reads for itself (policies, names): their types are checked.
SPEC_TYPES = {
    "name": (str, "a string"), "communication": (dict, "an object"),
    "communication.phases": (list, "a list"), "communication.mode": (str, "a string"),
    "communication.dec_phase": (int, "an integer"), "schedule": (dict, "an object"),
    "schedule.decay_at": (list, "a list"),
}
# Keys that never distinguish runs (set per run by ccdl-sweep, or a path on disk).
IDENTITY_EXCLUDED = ("name", "trace.path", "communication.control.reference")

# Keys ccdl added after traces existed: its resolved spec (a trace's `spec`) leaves them out
# while they hold these defaults (spec.c's LATER_* fields), so a run that lacks one used this
# value. tests/trace_readers.sh checks the table against `ccdl spec-keys` and a real trace.
LATER_DEFAULTS = {
    "data.src_lang": "en", "data.tgt_lang": "de", "data.tokens_per_batch": 2048,
    "data.max_len": 0, "data.min_freq": 2, "data.lowercase": False,
    "model.d_model": 256, "model.heads": 4, "model.d_ff": 1024, "model.enc_layers": 3,
    "model.dec_layers": 3, "model.dropout": 0.1, "model.attn_dropout": 0.0,
    "model.relu_dropout": 0.0, "model.label_smoothing": 0.1,
    "optimizer.gossip_moments": False, "schedule.extra_epochs": [],
    "communication.slowmo.tau": 0, "communication.slowmo.alpha": 1.0, "communication.slowmo.beta": 0.0,
}

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
    "communication.slowmo.tau": "tau", "communication.slowmo.alpha": "alpha",
    "communication.slowmo.beta": "beta", "schedule.extra_epochs": "extra_epochs",
}
ALIASES = {v: k for k, v in SHORT.items()}


class TraceError(Exception):
    def __init__(self, path, message):
        super().__init__(" ".join(f"{path}: {message}".splitlines()))
        self.path, self.message = path, message


def isolated(fn, path, *args):
    return h5safe.isolated(fn, path, *args, error_type=TraceError, make_error=TraceError)


def regular(path):
    """TraceError unless path is a regular file (checked before HDF5 or open() sees it: a FIFO
    would block them)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise TraceError(path, "no such file") from None
    except (OSError, ValueError) as e:
        raise TraceError(path, f"cannot read ({getattr(e, 'strerror', None) or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise TraceError(path, f"not a regular file ({file_kind(st.st_mode)})")


def load_json_file(path):
    """A JSON file (a sweep's manifest.json): TraceError naming it on any problem. ccdl-sweep
    reads the same manifests, so its reader (strict JSON, a FIFO refused unopened) is used
    as it is and only its error changes type."""
    try:
        return load_file(path)
    except SweepError as e:
        raise TraceError(e.path or path, str(e)) from None


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
    if isinstance(value, float) and math.isfinite(value) and value == int(value) and abs(value) < 1e15:
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
    def __init__(self, path, attrs, spec, steps, epochs, phases, resumes=None):
        self.path = path
        self.attrs = attrs
        self.spec = spec
        self.flat = flatten(spec)
        for key, default in LATER_DEFAULTS.items():  # what the resolved spec left out
            self.flat.setdefault(key, default)
        self.steps, self.epochs, self.phases = steps, epochs, phases
        self.resumes = resumes or {}  # read only when asked for (need["resumes"]), else {}
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


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _attr(f, path, name):
    """One root attribute as the C writer stores it (a str or an int scalar, numpy scalars
    unwrapped); TraceError when HDF5 cannot read it."""
    try:
        v = f.attrs[name]
    except Exception as e:  # noqa: BLE001 (HDF5 fails in many ways on a damaged file)
        raise TraceError(path, f"attribute '{name}': unreadable ({_h5_message(e)})") from None
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return v
    if isinstance(v, np.generic) and v.dtype.kind in "iuf":
        return v.item()
    return v


def _h5_message(e):
    text = " ".join(str(e).split()).strip("'\"")
    return (text.split("(")[0].strip() or type(e).__name__)[:120]


def check_attrs(f, path):
    """The format check (docs/trace.md, Root attributes): a dict of the checked attributes."""
    names = set()
    try:
        names = set(f.attrs.keys())
    except Exception as e:  # noqa: BLE001
        raise TraceError(path, f"root attributes unreadable ({_h5_message(e)})") from None
    if "spec" not in names:
        raise TraceError(path, "not a ccdl trace (no 'spec' attribute)")
    attrs = {}
    if "format" in names:
        v = _attr(f, path, "format")
        if not (isinstance(v, str) and v == FORMAT):
            raise TraceError(path, f"attribute 'format': {brief(v)}, expected {FORMAT!r} (not a ccdl trace)")
        attrs["format"] = v
    if "format_version" in names:
        v = _attr(f, path, "format_version")
        if not _is_int(v) or v < 1:
            raise TraceError(path, f"attribute 'format_version': expected a positive integer, got {brief(v)}")
        if v > FORMAT_VERSION:
            raise TraceError(path, f"format_version {v}: written by a newer ccdl (this ccdl-analyze "
                                   f"reads version {FORMAT_VERSION})")
        attrs["format_version"] = v
    for name in REQUIRED_STRINGS + ("completed",):
        if name not in names:
            raise TraceError(path, f"no attribute '{name}' (a damaged trace)")
    for name in REQUIRED_STRINGS + OPTIONAL_STRINGS:
        if name in names:
            v = _attr(f, path, name)
            if not isinstance(v, str):
                raise TraceError(path, f"attribute '{name}': expected a string, got {brief(v)}")
            attrs[name] = v
    for name in OPTIONAL_INTS:
        if name in names:
            v = _attr(f, path, name)
            if not _is_int(v):
                raise TraceError(path, f"attribute '{name}': expected an integer, got {brief(v)}")
            attrs[name] = v
    v = _attr(f, path, "completed")
    if not _is_int(v) or v not in (0, 1):
        raise TraceError(path, f"attribute 'completed': expected the integer 0 or 1, got {brief(v)}")
    attrs["completed"] = int(v)
    return attrs


def parse_spec(path, text):
    try:
        spec = json.loads(text)
    except RecursionError:
        raise TraceError(path, f"the 'spec' attribute is not JSON (nested more than {MAX_DEPTH} levels)") from None
    except ValueError:
        raise TraceError(path, "the 'spec' attribute is not JSON") from None
    if not isinstance(spec, dict):
        raise TraceError(path, "the 'spec' attribute is not a JSON object")
    if depth(spec) > MAX_DEPTH:
        raise TraceError(path, f"the 'spec' attribute is not JSON (nested more than {MAX_DEPTH} levels)")
    for key, (kind, what) in SPEC_TYPES.items():
        node, found = spec, True
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                found = False
                break
            node = node[part]
        if not found:
            continue
        if not isinstance(node, kind) or (kind is int and isinstance(node, bool)):
            raise TraceError(path, f"attribute 'spec': {key}: expected {what}, got {brief(node)}")
        if key == "communication.phases" and not all(isinstance(p, str) for p in node):
            raise TraceError(path, f"attribute 'spec': {key}: expected a list of strings, got {brief(node)}")
    return spec


def _read_group(f, path, group, required, completed):
    try:
        present = group in f
    except Exception as e:  # noqa: BLE001
        raise TraceError(path, f"/{group}: unreadable ({_h5_message(e)})") from None
    if not present:
        if required:
            raise TraceError(path, f"no group /{group}")
        return {}
    try:
        g = f[group]
        if not isinstance(g, h5py.Group):
            raise TraceError(path, f"/{group} is not a group")
        names = list(g)
    except TraceError:
        raise
    except Exception as e:  # noqa: BLE001
        raise TraceError(path, f"/{group}: unreadable ({_h5_message(e)})") from None
    missing = [c for c in required if c not in names]
    if missing:
        raise TraceError(path, f"missing column{'s' if len(missing) > 1 else ''} "
                               + ", ".join(f"/{group}/{c}" for c in missing))
    kinds = COLUMN_KINDS.get(group, {})
    cols = {}
    for name in names:
        where = f"/{group}/{name}"
        try:
            obj = g[name]
            if not isinstance(obj, h5py.Dataset):
                raise TraceError(path, f"{where}: not a dataset")
            shape, dtype = obj.shape, obj.dtype
            if shape is None or len(shape) != 1 or dtype.kind not in "iuf":
                raise TraceError(path, f"{where}: expected a 1-D numeric column, got dtype {dtype} "
                                       f"shape {shape}")
            want = kinds.get(name)
            if want == "i" and dtype.kind not in "iu" or want == "f" and dtype.kind != "f":
                raise TraceError(path, f"{where}: dtype {dtype}, expected "
                                       f"{'an integer' if want == 'i' else 'a floating-point'} column "
                                       f"(docs/trace.md)")
            data = np.asarray(obj[()])
        except TraceError:
            raise
        except Exception as e:  # noqa: BLE001
            raise TraceError(path, f"{where}: unreadable ({_h5_message(e)})") from None
        cols[name] = data
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) > 1:
        if completed:
            counts = sorted(set(lengths.values()))
            most = max(counts, key=lambda n: sum(1 for v in lengths.values() if v == n))
            odd = ", ".join(f"{c} {n}" for c, n in sorted(lengths.items()) if n != most)
            raise TraceError(path, f"/{group}: completed = 1 but its columns differ in length "
                                   f"({odd} rows, the others {most}): a corrupt trace")
        # an unfinished run killed mid-flush: every row present is right; cut to the shortest
        n = min(lengths.values())
        cols = {k: v[:n] for k, v in cols.items()}
    return cols


def load(path, need=None, allow_incomplete=False):
    """need: {"steps": [...], "epochs": [...], "phases": [...]} columns that must exist;
    a "resumes" entry (its columns needed where the group exists) also reads /resumes.
    Read in a child process (isolated): HDF5 may crash or hang on a damaged file."""
    regular(path)
    return isolated(_load, path, need or {}, allow_incomplete)


def _load(path, need, allow_incomplete):
    try:
        f = open_h5(path)
    except Exception as e:  # noqa: BLE001 (HDF5 fails in many ways on a file that is not one)
        raise TraceError(path, f"not a readable HDF5 file ({_h5_message(e)})") from None
    with f:
        attrs = check_attrs(f, path)
        spec = parse_spec(path, attrs["spec"])
        completed = attrs["completed"]
        if completed != 1 and not allow_incomplete:
            raise TraceError(path, f"run not completed (completed = {completed}, exit_reason "
                                   f"{brief(attrs['exit_reason'], 200)}); pass --allow-incomplete to use it")
        groups = {g: _read_group(f, path, g, list(need.get(g, ())), completed)
                  for g in ("steps", "epochs", "phases")}
        # /resumes (the run history) only for who asks for it: its absence is no error
        # (older traces), and the other commands stay as they were on damaged ones
        groups["resumes"] = _read_group(f, path, "resumes", list(need["resumes"]), completed) \
            if "resumes" in need else {}
    # an unfinished run (accepted with allow_incomplete) may not have reached a group yet,
    # e.g. /phases before its first phase ends: its metrics come out blank, not an error
    for g, cols in need.items():
        if cols and g != "resumes" and completed == 1 and len(next(iter(groups[g].values()), [])) == 0:
            raise TraceError(path, f"/{g} has no rows")
    return Run(path, attrs, spec, groups["steps"], groups["epochs"], groups["phases"], groups["resumes"])


def trace_paths(inputs, allow_incomplete=False):
    """Expand inputs (trace files, sweep directories, directories of traces) to trace paths."""
    out = []
    for item in inputs:
        if os.path.isdir(item):
            man = os.path.join(item, "manifest.json")
            if os.path.lexists(man):
                out.extend(_manifest_traces(item, man, allow_incomplete))
            else:
                found = sorted(glob.glob(os.path.join(glob.escape(item), "*.h5")))
                if not found:
                    raise TraceError(item, "no *.h5 traces and no manifest.json in this directory")
                out.extend(found)
        else:
            out.append(item)
    if not out:
        raise TraceError("(inputs)", "no traces given")
    return out


def _manifest_traces(item, man, allow_incomplete):
    doc = load_json_file(man)
    runs = doc.get("runs") if isinstance(doc, dict) else None
    if not isinstance(runs, list):
        raise TraceError(man, f"runs: expected a list of run entries, got {brief(runs)}")
    for i, r in enumerate(runs):  # every entry checked before any trace is looked for
        if not isinstance(r, dict):
            raise TraceError(man, f"runs[{i}]: expected a run entry (an object), got {brief(r)}")
        name = r.get("name")
        label = f"run {name} (runs[{i}])" if isinstance(name, str) else f"runs[{i}]"
        if not isinstance(name, str) or not name:
            raise TraceError(man, f"{label}: name: expected a string, got {brief(name)}")
        problem = path_problem(item, r.get("trace"))
        if problem:
            raise TraceError(man, f"{label}: trace: {problem}")
    out = []
    for r in runs:
        name = r["name"]
        p = os.path.join(item, r["trace"])
        if os.path.lexists(p):
            out.append(p)
        elif allow_incomplete:
            print(f"ccdl-analyze: {p}: no trace yet, skipped", file=sys.stderr)
        else:
            raise TraceError(p, f"no trace for run {name} (see `ccdl-sweep status "
                                f"{item}`; --allow-incomplete skips it)")
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
