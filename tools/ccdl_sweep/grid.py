"""Sweep files -> runs: grid expansion, run names, reference linking. Pure: no binary, no I/O
beyond reading the sweep file and its base spec; the schema (from `ccdl spec-keys`: known
key paths and their defaults) is passed in, or None for no key checks and the built-in
defaults below.

A sweep file (docs/sweeps.md):

    {"name": "table2",                                   optional, default: file stem
     "description": "...",                               optional
     "base": {spec} | "path/to/spec.json",               relative to the sweep file
     "grid": {"key.path": [values], ...} | [{...}, ...], a list is a union of grids
     "slurm": {"ranks": 2, "time": "01:00:00", "partition": "p", "account": "a",
               "throttle": 8, "cpus_per_task": 1, "extra": ["--qos=x"]}}
"""

import copy
import itertools
import json
import os
import re

from . import SweepError
from .specjson import (canonical, del_path, flatten, format_value, get_path, has_path,
                       load_file, merge, set_path)

FACTOR = "communication.control.factor"
REFERENCE = "communication.control.reference"
# Keys ccdl-sweep sets itself: never part of a run's identity or name.
MANAGED = ("name", "trace.path")
# Defaults assumed when no schema is given (the binary's own come from `ccdl spec-keys`).
FALLBACK_DEFAULTS = {
    "communication.mode": "gossip",
    "communication.phases": [],
    "communication.control.target": "constant",
    "communication.control.value": 0,
    "communication.control.factor": 0.25,
    "communication.control.reference": "",
}
SLURM_KEYS = {"ranks": int, "time": str, "partition": str, "account": str, "throttle": int,
              "cpus_per_task": int, "extra": list, "signal_margin": int, "requeue": bool}
# signal_margin: seconds before the time limit at which Slurm sends SIGUSR1 (--signal=B:USR1@N)
# so ccdl can checkpoint; 0 sends none. requeue: a task that stopped after a checkpoint
# requeues itself (--requeue), to resume where it stopped.
SLURM_DEFAULTS = {"ranks": 1, "time": "01:00:00", "partition": None, "account": None,
                  "throttle": None, "cpus_per_task": 1, "extra": [], "signal_margin": 300,
                  "requeue": True}
TOP_KEYS = ("name", "description", "base", "grid", "slurm")

_MODE = {"allreduce": "ar", "gossip": "gossip", "controlled": "ctrl", "local": "local"}
_MODE1 = {"allreduce": "a", "gossip": "g", "controlled": "c", "local": "l"}
_METRIC = {"exact": "exact", "estimate": "est"}
_TARGET = {"constant": "const", "adaptive": "adapt"}


def _mapped(table):
    return lambda v: table.get(v, format_value(v)) if isinstance(v, str) else format_value(v)


def _prefixed(prefix):
    return lambda v: prefix + format_value(v)


def _phases(v):
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return "p" + "".join(_MODE1.get(x, format_value(x)) for x in v)
    return "p" + format_value(v)


# Short names of common keys, in the order they appear in run names; seed always last.
# Any other varying key is named <last path component><value>, sorted by path.
SHORT_NAMES = [
    ("topology.kind", format_value),
    ("communication.mode", _mapped(_MODE)),
    ("communication.phases", _phases),
    ("workers", _prefixed("n")),
    ("communication.dec_phase", _prefixed("dec")),
    ("communication.control.metric", _mapped(_METRIC)),
    ("communication.control.target", _mapped(_TARGET)),
    ("communication.control.factor", _prefixed("f")),
    ("communication.control.value", _prefixed("v")),
    ("communication.control.ema", _prefixed("ema")),
    ("communication.control.max_rounds", _prefixed("cap")),
    ("communication.local_steps", _prefixed("H")),
    ("model.kind", format_value),
    ("model.hidden", _prefixed("h")),
    ("model.width", _prefixed("w")),
    ("data.dataset", format_value),
    ("schedule.epochs", _prefixed("e")),
    ("schedule.lr", _prefixed("lr")),
    ("schedule.local_batch", _prefixed("b")),
    ("schedule.warmup_epochs", _prefixed("wu")),
    ("optimizer.momentum", _prefixed("mom")),
    ("optimizer.weight_decay", _prefixed("wd")),
    ("threads", _prefixed("t")),
]
SHORT_ORDER = {path: i for i, (path, _) in enumerate(SHORT_NAMES)}
SHORT_FORMAT = dict(SHORT_NAMES)
SHORT_FORMAT["seed"] = _prefixed("s")
NAME_RE = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+-]*$")
MAX_NAME_LENGTH = 200   # a run name is a file name (specs/NAME.json, traces/NAME.ckpt.h5)
MAX_RUNS = 100000       # Slurm takes 1001 per sweep directory; this only stops runaway grids


def name_part(path, value):
    fmt = SHORT_FORMAT.get(path)
    if fmt is None:
        leaf = re.sub(r"[^A-Za-z0-9]", "", path.split(".")[-1])
        return leaf + format_value(value)
    return fmt(value)


def _name_order(path):
    if path == "seed":
        return (2, 0, path)
    if path in SHORT_ORDER:
        return (0, SHORT_ORDER[path], path)
    return (1, 0, path)


class Run:
    """One expanded run. `spec` is what goes to specs/NAME.json."""

    def __init__(self, spec, origin, auto=False):
        self.spec = spec
        self.origin = origin      # 'grid[0] {seed=2}' or 'reference of <origin>'
        self.auto = auto          # added as a reference the grid lacked
        self.reference = None     # the Run whose trace this run's target is read from
        self.name = None
        self.index = None
        self.varying = {}         # path -> value for the keys named in the run name

    def identity(self, schema):
        return canonical(resolved(self.spec, schema))

    def __repr__(self):
        return f"Run({self.name!r}, ref={self.reference.name if self.reference else None!r})"


# ---------------------------------------------------------------- semantics


def effective(spec, path, schema):
    """The value ccdl would use: the spec's, else the binary's default, else ours."""
    if has_path(spec, path):
        return get_path(spec, path)
    if schema is not None and schema.is_leaf(path):
        return schema.default(path)
    return FALLBACK_DEFAULTS.get(path)


def resolved(spec, schema):
    """Flat spec with defaults filled in and managed keys dropped: equal for equal runs."""
    flat = flatten(spec)
    if schema is not None:
        for path in schema.keys:
            if path not in flat:
                flat[path] = schema.default(path)
    for path in MANAGED:
        flat.pop(path, None)
    return flat


def is_controlled(spec, schema):
    phases = effective(spec, "communication.phases", schema)
    if isinstance(phases, list) and phases:
        return "controlled" in phases
    return effective(spec, "communication.mode", schema) == "controlled"


def needs_reference(spec, schema):
    """Constant target, no literal value, factor != 1 (1 = uncontrolled), no explicit reference."""
    if not is_controlled(spec, schema):
        return False
    if effective(spec, "communication.control.target", schema) != "constant":
        return False
    if effective(spec, "communication.control.value", schema) not in (0, None):
        return False
    factor = effective(spec, FACTOR, schema)
    if factor is None or factor == 1:
        return False
    return not effective(spec, REFERENCE, schema)


# ---------------------------------------------------------------- loading


def load(path):
    """Read and check the sweep file's own structure (not the specs). Returns (sweep, base)."""
    sweep = load_file(path)
    if not isinstance(sweep, dict):
        raise SweepError("a sweep file is a JSON object", path)
    for key in sweep:
        if key not in TOP_KEYS:
            raise SweepError(f"unknown key {key!r} (expected one of {', '.join(TOP_KEYS)})", path)
    for key in ("base", "grid"):
        if key not in sweep:
            raise SweepError(f"missing {key!r}", path)
    name = sweep.get("name", os.path.splitext(os.path.basename(path))[0])
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SweepError(f"name: {name!r} is not a file name ([A-Za-z0-9._+-])", path)
    if len(name) > MAX_NAME_LENGTH:
        raise SweepError(f"name: longer than {MAX_NAME_LENGTH} characters", path)
    sweep["name"] = name
    if not isinstance(sweep.get("description", ""), str):
        raise SweepError("description: expected a string", path)
    base = sweep["base"]
    if isinstance(base, str):
        if not base:
            raise SweepError("base: expected a spec object or the path of a spec file, got ''", path)
        base_path = os.path.join(os.path.dirname(os.path.abspath(path)), base)
        try:
            base = load_file(base_path)
        except SweepError as e:
            raise SweepError(f"base: {e.line()}", path) from None
    if not isinstance(base, dict):
        raise SweepError("base: expected a spec object or the path of a spec file", path)
    grids = sweep["grid"]
    if isinstance(grids, dict):
        grids = [grids]
    if not isinstance(grids, list) or not grids or not all(isinstance(g, dict) for g in grids):
        raise SweepError("grid: expected an object of axes or a non-empty list of them", path)
    sweep["grid"] = grids
    sweep["slurm"] = slurm_settings(sweep.get("slurm", {}), path)
    return sweep, base


def slurm_settings(given, path, where="slurm"):
    if not isinstance(given, dict):
        raise SweepError(f"{where}: expected an object", path)
    out = dict(SLURM_DEFAULTS)
    for key, value in given.items():
        kind = SLURM_KEYS.get(key)
        if kind is None:
            raise SweepError(f"{where}.{key}: unknown key (expected one of {', '.join(SLURM_KEYS)})", path)
        if value is None and key in ("partition", "account", "throttle"):
            out[key] = None
            continue
        least = 0 if key == "signal_margin" else 1
        if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            what = "a non-negative" if least == 0 else "a positive"
            raise SweepError(f"{where}.{key}: expected {what} integer, got {value!r}", path)
        if kind is bool and not isinstance(value, bool):
            raise SweepError(f"{where}.{key}: expected true or false, got {value!r}", path)
        if kind is str and (not isinstance(value, str) or not value):
            raise SweepError(f"{where}.{key}: expected a non-empty string, got {value!r}", path)
        if kind is list and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise SweepError(f"{where}.{key}: expected a list of strings", path)
        out[key] = value
    return out


# ---------------------------------------------------------------- expansion


def _check_axis(path, values, schema, where):
    if not isinstance(values, list):
        raise SweepError(f"{where}: {path}: an axis is a list of values, got {type(values).__name__}")
    if not values:
        raise SweepError(f"{where}: {path}: empty axis")
    if path in MANAGED:
        raise SweepError(f"{where}: {path}: set by ccdl-sweep, not a grid axis")
    if not path or any(not part for part in path.split(".")):
        raise SweepError(f"{where}: {path!r}: not a key path")
    if schema is not None:
        problem = schema.check_path(path)
        if problem:
            raise SweepError(f"{where}: {problem}")
        if schema.is_object(path):
            for v in values:
                if not isinstance(v, dict):
                    raise SweepError(f"{where}: {path}: an object path takes objects, got {v!r}")
                schema.check_spec(_nest(path, v), where)


def _nest(path, value):
    out = {}
    set_path(out, path, value)
    return out


def apply_sets(base, sets, schema):
    """--set KEY=JSON overrides of the base spec (before expansion)."""
    for path, value in sets:
        if schema is not None:
            problem = schema.check_path(path)
            if problem:
                raise SweepError(f"--set {problem}")
        if isinstance(value, dict) and isinstance(get_path(base, path), dict):
            merge(get_path(base, path), value)
        else:
            set_path(base, path, value)


def expand(sweep, base, schema=None, sets=(), check_keys=True):
    """Runs of a loaded sweep, named, linked and ordered (independent runs first).
    schema gives the defaults (and, with check_keys, the known key paths).
    Raises SweepError without a file name (the caller adds it)."""
    base = copy.deepcopy(base)
    for path in MANAGED:
        del_path(base, path)
    keys = schema if check_keys else None
    apply_sets(base, sets, keys)
    if keys is not None:
        keys.check_spec(base, "base")
    runs = []
    total = 0
    for gi, grid in enumerate(sweep["grid"]):
        where = f"grid[{gi}]" if len(sweep["grid"]) > 1 else "grid"
        axes = list(grid.items())
        for path, values in axes:
            _check_axis(path, values, keys, where)
        size = 1
        for _, values in axes:
            size *= len(values)
        total += size
        if total > MAX_RUNS:
            raise SweepError(f"{where}: more than {MAX_RUNS} runs in the sweep")
        # object paths (shallower first) merge before leaf values set, whatever the file order
        order = sorted(range(len(axes)), key=lambda i: (
            0 if any(isinstance(v, dict) for v in axes[i][1]) else 1, axes[i][0].count(".")))
        for combo in itertools.product(*[values for _, values in axes]):
            spec = copy.deepcopy(base)
            for i in order:
                path, value = axes[i][0], copy.deepcopy(combo[i])
                if isinstance(value, dict) and isinstance(get_path(spec, path), dict):
                    merge(get_path(spec, path), value)
                else:
                    set_path(spec, path, value)
            for path in MANAGED:
                del_path(spec, path)
            values = ", ".join(f"{p}={json.dumps(v)}" for (p, _), v in zip(axes, combo))
            runs.append(Run(spec, f"{where} {{{values}}}"))
    seen = {}
    for run in runs:
        key = run.identity(schema)
        if key in seen:
            raise SweepError(f"{run.origin} is the same run as {seen[key].origin} "
                             f"(a repeated axis value, or two grids overlapping)")
        seen[key] = run
    runs = link_references(runs, schema, seen)
    name_runs(runs, sweep["name"])
    ordered = [r for r in runs if r.reference is None] + [r for r in runs if r.reference is not None]
    for i, run in enumerate(ordered):
        run.index = i
        run.spec["name"] = run.name
        set_path(run.spec, "trace.path", trace_path(run.name))
        if run.reference is not None:
            set_path(run.spec, REFERENCE, trace_path(run.reference.name))
    return ordered


def trace_path(name):
    return f"traces/{name}.h5"


def link_references(runs, schema, by_identity):
    """Each run needing a reference gets the run with factor = 1 and otherwise the same spec;
    missing ones are added (just before their first dependent)."""
    out = []
    for run in runs:
        if needs_reference(run.spec, schema):
            ref_spec = copy.deepcopy(run.spec)
            set_path(ref_spec, FACTOR, 1)
            key = canonical(resolved(ref_spec, schema))
            ref = by_identity.get(key)
            if ref is None:
                ref = Run(ref_spec, f"reference of {run.origin}", auto=True)
                by_identity[key] = ref
                out.append(ref)
            run.reference = ref
        out.append(run)
    return out


def name_runs(runs, sweep_name):
    """Name each run by the keys that vary across the sweep: first the keys taking two or more
    values; if that leaves two runs with one name (or a run with no name part), also the keys
    some runs do not set."""
    flats = [flatten(r.spec) for r in runs]
    for f in flats:
        for path in MANAGED + (REFERENCE,):
            f.pop(path, None)
    paths = sorted({p for f in flats for p in f}, key=_name_order)
    valued, present = [], []
    for path in paths:
        values = {canonical(f[path]) for f in flats if path in f}
        if len(values) > 1:
            valued.append(path)
        elif any(path not in f for f in flats):
            present.append(path)
    if _assign_names(runs, flats, valued, sweep_name) is None and (
            len(runs) == 1 or all(r.varying for r in runs)):
        return
    varying = sorted(valued + present, key=_name_order)
    clash = _assign_names(runs, flats, varying, sweep_name)
    if clash is not None:
        a, b = clash
        raise SweepError(f"run name {b.name!r} clashes: {a.origin} and {b.origin} "
                         f"differ only in ways the name does not show")


def _assign_names(runs, flats, varying, sweep_name):
    """Name runs by the given keys; the first two runs sharing a name, or None."""
    names = {}
    clash = None
    for run, flat in zip(runs, flats):
        run.varying = {p: flat[p] for p in varying if p in flat}
        run.name = "-".join(name_part(p, v) for p, v in run.varying.items()) or sweep_name
        if not NAME_RE.match(run.name):
            run.name = re.sub(r"[^A-Za-z0-9._+-]", "_", run.name).lstrip(".-") or sweep_name
        if len(run.name) > MAX_NAME_LENGTH:
            raise SweepError(f"{run.origin}: run name {run.name[:40]}... is longer than "
                             f"{MAX_NAME_LENGTH} characters (a file name): shorten the values")
        if run.name in names and clash is None:
            clash = (names[run.name], run)
        names.setdefault(run.name, run)
    return clash
