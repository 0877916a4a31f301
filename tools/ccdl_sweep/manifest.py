"""The expanded sweep on disk (docs/sweeps.md):

    DIR/manifest.json   everything: sweep name, source, ccdl binary, slurm settings, runs
    DIR/manifest.tsv    index name spec trace reference reference_trace (read by jobs/*.sbatch)
    DIR/specs/NAME.json one spec per run, DIR/traces/NAME.h5 its trace, DIR/logs/ Slurm logs
    DIR/submissions.json  every sbatch made for this directory (job ids and run indices)

Paths inside are relative to DIR (jobs run with DIR as working directory) and must stay
inside it: no absolute path, no '..', no symbolic link leading out (check, path_problem).
"""

import json
import os

from . import SweepError
from .grid import MAX_NAME_LENGTH, MAX_RUNS, NAME_RE, slurm_settings
from .specjson import brief, dumps, load_file, read_text

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
    lines = tsv_lines(entries)
    _write_text(os.path.join(directory, "manifest.tsv"), "\n".join(lines) + "\n")


def read(directory):
    """manifest.json of DIR, checked (check below): SweepError naming it otherwise."""
    path = os.path.join(directory, "manifest.json")
    if not os.path.isdir(directory) or not os.path.lexists(path):
        raise SweepError("no manifest.json here (expand a sweep file into it first)", directory)
    doc = load_file(path)
    check(doc, directory, path)
    return doc


def path_problem(directory, rel):
    """'' when rel is a relative path that stays inside DIR (symlinks resolved), else why not."""
    if not isinstance(rel, str) or not rel:
        return f"expected a path relative to the sweep directory, got {brief(rel)}"
    if any(ord(c) < 32 or ord(c) == 127 for c in rel):
        return f"{brief(rel)}: a control character in a path"
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return f"{brief(rel)}: not UTF-8"
    if os.path.isabs(rel):
        return f"{brief(rel)} is an absolute path; paths in a manifest stay inside the sweep directory"
    if ".." in rel.split("/"):
        return f"{brief(rel)} has a '..' component; paths in a manifest stay inside the sweep directory"
    if rel.startswith("-"):
        return f"{brief(rel)} starts with '-'"
    top = os.path.realpath(directory)
    real = os.path.realpath(os.path.join(directory, rel))
    if os.path.commonpath([top, real]) != top:
        return (f"{brief(rel)} leads outside the sweep directory through a symbolic link "
                f"(to {brief(real)})")
    return ""


def check(doc, directory, path):
    """What the commands rely on in manifest.json (a hand-edited one included): SweepError
    naming the file and the key or the run entry."""
    def bad(msg):
        raise SweepError(msg, path)

    if not isinstance(doc, dict):
        bad("expected a JSON object")
    if doc.get("format") != FORMAT:
        bad(f"format {brief(doc.get('format'))}, expected {FORMAT!r}")
    sweep = doc.get("sweep")
    if not isinstance(sweep, str) or not NAME_RE.match(sweep):
        bad(f"sweep: expected the sweep's name ([A-Za-z0-9._+-]), got {brief(sweep)}")
    ccdl = doc.get("ccdl")
    if ccdl is not None and (not isinstance(ccdl, str) or not ccdl or "\0" in ccdl):
        bad(f"ccdl: expected the path of the ccdl binary or null, got {brief(ccdl)}")
    for key, kind, what in (("description", str, "a string"), ("source", str, "a string"),
                            ("validated", bool, "true or false"), ("sets", list, "a list")):
        if key in doc and not isinstance(doc[key], kind):
            bad(f"{key}: expected {what}, got {brief(doc[key])}")
    defaults = doc.get("defaults")
    if defaults is not None and not (isinstance(defaults, dict)
                                     and all(isinstance(k, str) for k in defaults)):
        bad(f"defaults: expected an object of spec key paths and their default values, "
            f"got {brief(defaults)}")
    doc["slurm"] = slurm_settings(doc.get("slurm", {}), path)
    runs = doc.get("runs")
    if not isinstance(runs, list) or not runs:
        bad(f"runs: expected a non-empty list of run entries, got {brief(runs)}")
    if len(runs) > MAX_RUNS:
        bad(f"runs: {len(runs)} entries, more than {MAX_RUNS}")
    names, indices = {}, set()
    for i, e in enumerate(runs):
        label = f"runs[{i}]"
        if not isinstance(e, dict):
            bad(f"{label}: expected a run entry (an object), got {brief(e)}")
        name = e.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > MAX_NAME_LENGTH:
            bad(f"{label}: name: expected a run name ([A-Za-z0-9._+-]), got {brief(name)}")
        label = f"run {name} (runs[{i}])"
        if name in names:
            bad(f"{label}: name: given twice")
        names[name] = e
        index = e.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < MAX_RUNS:
            bad(f"{label}: index: expected an integer in [0, {MAX_RUNS}), got {brief(index)}")
        if index in indices:
            bad(f"{label}: index: {index} given twice")
        indices.add(index)
        for key in ("spec", "trace"):
            problem = path_problem(directory, e.get(key))
            if problem:
                bad(f"{label}: {key}: {problem}")
        for key, kind, what in (("auto_reference", bool, "true or false"), ("varying", dict, "an object")):
            if key in e and not isinstance(e[key], kind):
                bad(f"{label}: {key}: expected {what}, got {brief(e[key])}")
    for i, e in enumerate(runs):
        label = f"run {e['name']} (runs[{i}])"
        # absent means no reference, as null does: the commands read both keys directly
        ref = e.setdefault("reference", None)
        ref_trace = e.setdefault("reference_trace", None)
        if ref is None:
            if ref_trace is not None:
                bad(f"{label}: reference_trace without a reference")
            continue
        if not isinstance(ref, str) or ref not in names or ref == e["name"]:
            bad(f"{label}: reference: expected the name of another run of this manifest, got {brief(ref)}")
        problem = path_problem(directory, ref_trace)
        if problem:
            bad(f"{label}: reference_trace: {problem}")
        if names[ref].get("reference") is not None:
            bad(f"{label}: reference: run {ref} itself depends on a reference (no chains)")
        if ref_trace != names[ref]["trace"]:
            bad(f"{label}: reference_trace {brief(ref_trace)} is not the trace of run {ref} "
                f"({brief(names[ref]['trace'])})")


def tsv_lines(entries):
    lines = ["\t".join(TSV_COLUMNS)]
    for e in entries:
        lines.append("\t".join(str(e[c]) if e.get(c) is not None else "-" for c in TSV_COLUMNS))
    return lines


def check_tsv(directory, doc, required=False):
    """manifest.tsv (what Slurm tasks read) must say what manifest.json says."""
    path = os.path.join(directory, "manifest.tsv")
    if not os.path.lexists(path):
        if required:
            raise SweepError("missing (expand the sweep again)", path)
        return
    lines = read_text(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    want = tsv_lines(doc["runs"])
    for n, (got, expected) in enumerate(zip(lines, want), 1):
        if got != expected:
            raise SweepError(f"line {n}: {brief(got)} does not match manifest.json ({brief(expected)}); "
                             f"expand the sweep again", path)
    if len(lines) != len(want):
        raise SweepError(f"{len(lines) - 1} runs, manifest.json has {len(want) - 1}; expand the sweep again", path)


def read_spec(directory, entry):
    """A run's spec (a JSON object); None when the file is not there; SweepError otherwise."""
    path = os.path.join(directory, entry["spec"])
    if not os.path.lexists(path):
        return None
    spec = load_file(path)
    if not isinstance(spec, dict):
        raise SweepError("a spec is a JSON object", path)
    return spec


def submissions(directory):
    """submissions.json: [] when absent; SweepError naming it when it is not what add_submission
    writes."""
    path = os.path.join(directory, "submissions.json")
    if not os.path.lexists(path):
        return []
    subs = load_file(path)
    if not isinstance(subs, list):
        raise SweepError("expected a list of submissions", path)
    for i, s in enumerate(subs):
        if not isinstance(s, dict):
            raise SweepError(f"[{i}]: expected an object", path)
        job = s.get("job")
        if not isinstance(job, str) or not job.isdigit():
            raise SweepError(f"[{i}]: job: expected a Slurm job id, got {brief(job)}", path)
        if not isinstance(s.get("overrides", {}), dict):
            raise SweepError(f"[{i}]: overrides: expected an object", path)
    return subs


def add_submission(directory, record):
    subs = submissions(directory)
    subs.append(record)
    _write_text(os.path.join(directory, "submissions.json"), json.dumps(subs, indent=1) + "\n")
