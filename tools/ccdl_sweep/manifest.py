"""The expanded sweep on disk (docs/sweeps.md):

    DIR/manifest.json   everything: sweep name, source, ccdl binary, slurm settings, runs
    DIR/manifest.tsv    index name spec trace reference reference_trace (read by jobs/*.sbatch)
    DIR/specs/NAME.json one spec per run, DIR/traces/NAME.h5 its trace, DIR/logs/ Slurm logs
    DIR/submissions.json  every sbatch made for this directory (job ids and run indices)

Paths inside are relative to DIR (jobs run with DIR as working directory).
"""

import json
import os

from . import SweepError
from .specjson import dumps

FORMAT = "ccdl-sweep/1"
TSV_COLUMNS = ("index", "name", "spec", "trace", "reference", "reference_trace")


def run_entry(run):
    return {
        "index": run.index,
        "name": run.name,
        "spec": f"specs/{run.name}.json",
        "trace": f"traces/{run.name}.h5",
        "reference": run.reference.name if run.reference else None,
        "reference_trace": f"traces/{run.reference.name}.h5" if run.reference else None,
        "auto_reference": run.auto,
        "varying": run.varying,
    }


def _write_text(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_specs(directory, runs):
    os.makedirs(os.path.join(directory, "specs"), exist_ok=True)
    for run in runs:
        _write_text(os.path.join(directory, "specs", f"{run.name}.json"), dumps(run.spec))


def write(directory, meta, runs):
    """Write specs, manifest.json and manifest.tsv; keep traces/ and logs/ as they are.
    Every file is replaced atomically (jobs of an earlier submission may be reading them);
    specs of runs no longer in the sweep are removed."""
    os.makedirs(directory, exist_ok=True)
    write_specs(directory, runs)
    keep = {f"{r.name}.json" for r in runs}
    for f in os.listdir(os.path.join(directory, "specs")):
        if f.endswith(".json") and f not in keep:
            os.remove(os.path.join(directory, "specs", f))
    for sub in ("traces", "logs"):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
    entries = [run_entry(r) for r in runs]
    doc = dict(meta, format=FORMAT, runs=entries)
    _write_text(os.path.join(directory, "manifest.json"), json.dumps(doc, indent=1) + "\n")
    lines = ["\t".join(TSV_COLUMNS)]
    for e in entries:
        lines.append("\t".join(str(e[c]) if e[c] is not None else "-" for c in TSV_COLUMNS))
    _write_text(os.path.join(directory, "manifest.tsv"), "\n".join(lines) + "\n")


def read(directory):
    path = os.path.join(directory, "manifest.json")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError:
        raise SweepError("no manifest.json here (expand a sweep file into it first)", directory) from None
    except ValueError as e:
        raise SweepError(f"manifest.json: invalid JSON: {e}", directory) from None
    if doc.get("format") != FORMAT:
        raise SweepError(f"manifest.json: format {doc.get('format')!r}, expected {FORMAT!r}", directory)
    return doc


def read_spec(directory, entry):
    with open(os.path.join(directory, entry["spec"]), encoding="utf-8") as f:
        return json.load(f)


def submissions(directory):
    try:
        with open(os.path.join(directory, "submissions.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return []


def add_submission(directory, record):
    subs = submissions(directory)
    subs.append(record)
    _write_text(os.path.join(directory, "submissions.json"), json.dumps(subs, indent=1) + "\n")
