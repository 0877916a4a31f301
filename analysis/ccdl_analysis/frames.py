"""The notebook API: traces as pandas DataFrames (docs/analysis.md, Notebook API).

load() reads traces with the same reader as ccdl-analyze (traces.load_all: the format
checks, a child process per file, TraceError naming a bad file) and returns one frame per
trace group plus one row per run. Every row carries its run's spec keys, so a grid of runs
is one groupby away. pandas is imported inside load only: the CLI runs without it.
"""

import collections
import os

from . import traces

Frames = collections.namedtuple("Frames", "runs steps epochs phases")
Frames.__doc__ = """DataFrames of the runs loaded: runs (one row per run), steps, epochs, phases
(one row per row of the trace group, runs in input order)."""

GROUPS = ("steps", "epochs", "phases")
# Columns every trace of the format has (docs/trace.md): a completed trace without one, or
# without rows, is an error, as for ccdl-analyze; other columns come as the file has them.
NEED = {"steps": traces.STEP_COLUMNS, "epochs": traces.EPOCH_COLUMNS, "phases": traces.PHASE_COLUMNS}
# Root attributes that tell how a run went (the others are its spec, or the same as a key)
ATTRS = ("completed", "exit_reason", "ccdl_version", "created", "ranks")


def load(inputs, allow_incomplete=False):
    """Frames(runs, steps, epochs, phases) of the traces in inputs: a trace file, a sweep
    directory (its manifest.json), a directory of *.h5, or a list of those (str or
    os.PathLike). TraceError on a bad input or trace, as ccdl-analyze reports it;
    allow_incomplete as its --allow-incomplete."""
    import pandas as pd  # noqa: PLC0415 (only the notebook API needs pandas)

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    runs = traces.load_all([os.fspath(p) for p in inputs], NEED, allow_incomplete)
    table = pd.DataFrame([_run_row(r) for r in runs], columns=_run_columns(runs))
    # what a row of a run frame repeats from its run: the identity and the keys, not how
    # the run went (completed, ...: in runs, joined on trace when wanted)
    keys = table.drop(columns=[a for a in ATTRS if a in table.columns])
    frames = {g: _group_frame(pd, runs, keys, g) for g in GROUPS}
    return Frames(table, frames["steps"], frames["epochs"], frames["phases"])


def _cell(value):
    # lists (model.hidden, schedule.decay_at, communication.phases) as tuples: hashable,
    # so groupby, drop_duplicates and value_counts take them like any other value
    return tuple(_cell(v) for v in value) if isinstance(value, list) else value


def _shorts(runs):
    """(path, short name) of the short names the CLI takes (traces.SHORT) that some run's
    spec has; seed is its own short name and stays one column."""
    return [(p, s) for p, s in traces.SHORT.items() if p != s and any(p in r.flat for r in runs)]


def _run_columns(runs):
    head = ["run", "trace"] + [a for a in ATTRS if any(a in r.attrs for r in runs)]
    head += [s for _, s in _shorts(runs)]
    # an empty object ({} in the spec) holds no key: no column
    return head + sorted({k for r in runs for k, v in r.flat.items() if v != {}} - set(head))


def _run_row(run):
    # dotted paths: the resolved spec as the trace has it (defaults filled in); short names:
    # the CLI's value, None where the key cannot affect the run (Run.value: the All-Reduce
    # run's spec has a default factor and topology, and must not join their groups)
    row = {"run": run.name, "trace": run.path}
    row.update((a, run.attrs.get(a)) for a in ATTRS)
    row.update((s, _cell(run.value(p))) for p, s in _shorts([run]))
    row.update((k, _cell(v)) for k, v in run.flat.items() if v != {} and k not in row)
    return row


def _group_frame(pd, runs, keys, group):
    order = list(traces.COLUMN_KINDS[group])
    parts = []
    for i, r in enumerate(runs):
        cols = getattr(r, group)
        names = [c for c in order if c in cols] + sorted(c for c in cols if c not in order)
        part = pd.DataFrame({c: cols[c] for c in names})
        part["_run"] = i
        parts.append(part)
    data = pd.concat(parts, ignore_index=True)
    index = data.pop("_run").to_numpy()
    # a trace column wins over a key of the same short name (/steps/lr is the learning rate
    # of the step, schedule.lr the spec's; /phases/target the phase's target, and
    # communication.control.target the kind of target): the key stays by its dotted path
    own = keys[[c for c in keys.columns if c not in data.columns or c in ("run", "trace")]]
    rows = own.iloc[index].reset_index(drop=True)
    head = rows[["run", "trace"]]
    return pd.concat([head, data, rows.drop(columns=["run", "trace"])], axis=1)
