"""The ccdl-sweep subcommands: expand, submit, status, local."""

import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

from . import SweepError, ccdlbin, dirlock, grid, manifest, slurm, traces
from .specjson import brief, del_path, get_path, load_file, loads_strict, set_path

# this command as the user ran it (installed or in the source tree), for the lines it prints
TOOL = (os.path.abspath(sys.argv[0]) if os.path.basename(sys.argv[0]) == "ccdl-sweep"
        else os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ccdl-sweep"))


def note(msg):
    print(f"ccdl-sweep: {msg}", file=sys.stderr)


def parse_sets(sets):
    out = []
    for item in sets or []:
        path, eq, text = item.partition("=")
        if not eq or not path:
            raise SweepError(f"--set {item!r}: expected KEY=VALUE")
        try:
            value = loads_strict(text)
        except ValueError:
            value = text  # a bare string: --set data.path=/scratch/cifar10
        out.append((path, value))
    return out


# ---------------------------------------------------------------- expand


def validation_copy(run):
    """What `ccdl validate` checks for a run. ccdl validate reads a run's reference trace,
    which does not exist before the reference has run: a dependent run is validated with a
    literal target instead (its reference, the same spec with factor 1, is validated as
    itself; the trace is checked when the run starts)."""
    if run.reference is None:
        return run
    copy_ = grid.Run(json.loads(json.dumps(run.spec)), run.origin)
    copy_.name = run.name
    del_path(copy_.spec, grid.REFERENCE)
    set_path(copy_.spec, "communication.control.value", 1.0)
    return copy_


def expand(sweep_path, out_dir, ccdl=None, validate=True, sets=(), binary_checks=True, lock=None):
    """Expand SWEEP into OUT_DIR. Everything is checked before anything is written.
    validate: run `ccdl validate` on every spec; binary_checks: check key paths against
    `ccdl spec-keys` and take defaults from it (else built-in defaults, no key checks).
    lock: the DirLock of OUT_DIR, taken before the first write (default: one of its own,
    released on return)."""
    sweep, base = grid.load(sweep_path)
    binary = schema = None
    if binary_checks or validate:
        try:
            binary = ccdlbin.find(ccdl)
            schema = ccdlbin.schema(binary)
        except SweepError as e:
            raise SweepError(str(e), sweep_path) from None
    elif ccdl:
        binary = os.path.abspath(ccdl)
    try:
        runs = grid.expand(sweep, base, schema, parse_sets(sets), check_keys=schema is not None)
    except SweepError as e:
        raise SweepError(str(e), sweep_path) from None
    ranks = sweep["slurm"]["ranks"]
    for run in runs:
        n = get_path(run.spec, "workers", schema.default("workers") if schema else None)
        if isinstance(n, int) and n % ranks:
            raise SweepError(f"run {run.name}: slurm.ranks {ranks} does not divide workers {n}", sweep_path)
    old_manifest = os.path.join(out_dir, "manifest.json")
    if os.path.lexists(old_manifest):
        # only its sweep name matters: expanding again repairs the rest of a damaged one
        old = load_file(old_manifest)
        old_name = old.get("sweep") if isinstance(old, dict) else None
        if old_name != sweep["name"]:
            raise SweepError(f"{out_dir} holds sweep {brief(old_name)}, not {sweep['name']!r}: "
                             f"choose another --out", sweep_path)
    if validate:
        with tempfile.TemporaryDirectory(prefix="ccdl-sweep-") as tmp:
            manifest.write_specs(tmp, [validation_copy(r) for r in runs])
            os.mkdir(os.path.join(tmp, "traces"))
            bad = ccdlbin.validate(binary, [(r.name, f"specs/{r.name}.json") for r in runs], tmp)
        if bad:
            name, msg = bad[0]
            more = f" (and {len(bad) - 1} more runs)" if len(bad) > 1 else ""
            raise SweepError(f"run {name}: ccdl validate: {msg}{more}", sweep_path)
    meta = {"sweep": sweep["name"], "description": sweep.get("description", ""),
            "source": os.path.abspath(sweep_path), "ccdl": binary, "validated": bool(validate),
            "sets": [[p, v] for p, v in parse_sets(sets)], "slurm": sweep["slurm"]}
    if schema is not None:  # what a trace leaves out of its resolved spec at the default
        meta["defaults"] = {p: schema.default(p) for p in sorted(schema.keys)}
    own_lock = lock is None
    if own_lock:
        lock = dirlock.DirLock(out_dir, "expand")
    os.makedirs(out_dir, exist_ok=True)
    lock.acquire()
    try:
        manifest.write(out_dir, meta, runs)
    finally:
        if own_lock:
            lock.release()
    refs = {r.reference.name for r in runs if r.reference}
    auto = sum(1 for r in runs if r.auto)
    print(f"{sweep_path}: {len(runs)} runs ({len(refs)} references, "
          f"{sum(1 for r in runs if r.reference)} depending on one, {auto} references added)"
          f" -> {os.path.join(out_dir, 'manifest.json')}")
    return runs


# ---------------------------------------------------------------- run states


def run_states(directory, doc, with_queue=True):
    """[(entry, state, detail)] plus the queue view (None when squeue cannot tell)."""
    subs = manifest.submissions(directory)
    jobs = sorted({s["job"] for s in subs})
    queued = slurm.queued_tasks(jobs) if with_queue and jobs else {}
    out = []
    for e in doc["runs"]:
        spec = manifest.read_spec(directory, e)
        st, detail = traces.state(os.path.join(directory, e["trace"]), spec, doc.get("defaults"))
        q = (queued or {}).get(e["index"])
        if q and st != "completed":
            resumable = f"; {detail}" if st == "resumable" else ""
            st, detail = q[1].lower(), f"job {q[0]}{resumable}"
        elif st in ("missing", "killed", "failed"):
            log = last_log_line(directory, e["name"])
            if log:
                detail = f"{detail}; log: {log}" if detail else f"log: {log}"
        out.append((e, st, detail))
    return out, queued


def last_log_line(directory, name):
    for log in (f"logs/{name}.out", f"logs/local_{name}.out"):
        path = os.path.join(directory, log)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = [l.strip() for l in f if l.strip()]
        except OSError:
            continue
        if lines:
            return f"{log}: {lines[-1][:200]}"
    return ""


UNFINISHED = ("resumable", "failed", "killed", "missing", "stale")
# not UNFINISHED: completed, and running / pending (a live ccdl process writes the trace, or a
# Slurm task of an earlier submission is queued): submit and local leave those alone


# ---------------------------------------------------------------- submit


def resolve_binary(doc, ccdl):
    if ccdl:
        return ccdlbin.find(ccdl)
    if doc.get("ccdl") and os.access(doc["ccdl"], os.X_OK):
        return doc["ccdl"]
    return ccdlbin.find(None)


def set_aside(directory, entry):
    """Move a stale trace (a completed run of an older spec) to traces/stale/ instead of
    letting the rerun overwrite it."""
    src = os.path.join(directory, entry["trace"])
    dst_dir = os.path.join(directory, "traces", "stale")
    os.makedirs(dst_dir, exist_ok=True)
    k = 1
    while os.path.exists(os.path.join(dst_dir, f"{entry['name']}.{k}.h5")):
        k += 1
    dst = os.path.join(dst_dir, f"{entry['name']}.{k}.h5")
    os.rename(src, dst)
    note(f"{entry['trace']} is a completed run of another spec: moved to {os.path.relpath(dst, directory)}")


def submit(directory, overrides, ccdl=None, dry_run=False, lock=None):
    """lock: a DirLock of DIR (held until the process ends), or None to take one here."""
    if lock is None:
        lock = dirlock.DirLock(directory, "submit")
    manifest.read(directory)  # a clear message for a directory that is no sweep, before the lock
    lock.acquire()
    doc = manifest.read(directory)
    manifest.check_tsv(directory, doc, required=True)
    settings = grid.slurm_settings(dict(doc.get("slurm", {}), **overrides), directory, "settings")
    binary = resolve_binary(doc, ccdl)
    states, queued = run_states(directory, doc)
    if queued is None and manifest.submissions(directory):
        note("squeue cannot tell which earlier tasks are still queued; submitting every unfinished run")
    by_name = {e["name"]: (e, st) for e, st, _ in states}
    todo = [e for e, st, _ in states if st in UNFINISHED]
    done = sum(1 for _, st, _ in states if st == "completed")
    waiting_in_queue = sum(1 for _, st, _ in states if st not in UNFINISHED and st != "completed")
    if not todo:
        print(f"{directory}: nothing to submit: {done} of {len(states)} runs completed, "
              f"{waiting_in_queue} queued or running")
        return 0
    for e in todo:
        spec = manifest.read_spec(directory, e)
        if spec is None:
            raise SweepError(f"{e['spec']}: missing (expand the sweep again)", directory)
        n = spec.get("workers")
        if isinstance(n, int) and n % settings["ranks"]:
            raise SweepError(f"run {e['name']}: {settings['ranks']} ranks do not divide workers {n}", directory)
    todo_names = {e["name"] for e in todo}
    ready = [e for e in todo if e["reference"] is None or e["reference"] not in todo_names
             and by_name[e["reference"]][1] == "completed"]
    dependent = [e for e in todo if e not in ready]
    # a reference neither completed, nor submitted now, nor queued in Slurm: a live ccdl
    # process outside Slurm writes it; its dependents wait for the next submit
    held = [e for e in dependent if e["reference"] not in todo_names
            and (queued or {}).get(by_name[e["reference"]][0]["index"]) is None]
    for e in held:
        note(f"{e['name']}: not submitted: its reference {e['reference']} is "
             f"{by_name[e['reference']][1]} outside Slurm (submit again when it completed)")
    dependent = [e for e in dependent if e not in held]
    todo = [e for e in todo if e not in held]
    if not todo:
        print(f"{directory}: nothing to submit now: {len(held)} runs wait for their references")
        return 0
    if not dry_run:
        for e, st, _ in states:
            if st == "stale":
                set_aside(directory, e)
    def launch(cmd, entries, dependency, placeholder):
        if dry_run:
            print("would run: " + shlex.join(cmd))
            return placeholder
        job = slurm.sbatch(cmd)
        print(f"job {job}: " + shlex.join(cmd))
        manifest.add_submission(directory, {
            "job": job, "indices": [e["index"] for e in entries], "dependency": dependency,
            "overrides": overrides, "ccdl": binary,
            "submitted": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
        return job

    ready_job = None
    if ready:
        cmd = slurm.sbatch_command(directory, doc["sweep"], [e["index"] for e in ready], settings,
                                   binary, "ready")
        ready_job = launch(cmd, ready, None, "JOB_A")
    if dependent:
        deps = []
        for e in dependent:
            ref = by_name[e["reference"]][0]
            if ref["name"] in todo_names:
                dep = f"{ready_job}_{ref['index']}"
            else:  # the reference is queued or running from an earlier submission
                dep = (queued or {}).get(ref["index"], (None,))[0]
            if dep and dep not in deps:
                deps.append(dep)
        dependency = "afterok:" + ":".join(deps) if deps else None
        cmd = slurm.sbatch_command(directory, doc["sweep"], [e["index"] for e in dependent], settings,
                                   binary, "dependent", dependency)
        launch(cmd, dependent, dependency, "JOB_B")
    print(f"{directory}: {'would submit' if dry_run else 'submitted'} {len(todo)} runs "
          f"({len(ready)} ready, {len(dependent)} after their references); "
          f"{done} completed and {waiting_in_queue} queued or running left alone")
    return 0


# ---------------------------------------------------------------- status


def resubmit_command(directory):
    subs = manifest.submissions(directory)
    flags = []
    if subs:
        for key, value in subs[-1].get("overrides", {}).items():
            flags += [f"--{key.replace('_', '-')}", str(value)]
    return shlex.join([TOOL, "submit", os.path.abspath(directory)] + flags)


def status(directory, only_unfinished=False):
    """Takes no lock: reads only; a trace a live ccdl process writes shows as running."""
    doc = manifest.read(directory)
    manifest.check_tsv(directory, doc)
    states, queued = run_states(directory, doc)
    counts = {}
    width = max(len(e["name"]) for e, _, _ in states)
    for e, st, detail in states:
        counts[st] = counts.get(st, 0) + 1
        if only_unfinished and st == "completed":
            continue
        ref = f" (reference {e['reference']})" if e["reference"] and st != "completed" else ""
        print(f"{st:<10} {e['name']:<{width}}  {detail}{ref}".rstrip())
    order = ["completed", "running", "pending", "resumable", "failed", "killed", "stale", "missing"]
    summary = ", ".join(f"{counts[k]} {k}" for k in order + sorted(set(counts) - set(order)) if k in counts)
    print(f"{doc['sweep']}: {len(states)} runs: {summary}")
    unfinished = sum(counts.get(k, 0) for k in UNFINISHED)
    if queued is None:
        print("(squeue cannot tell which runs are queued: 'missing' may include queued runs)")
    if unfinished:
        print(f"resubmit the {unfinished} unfinished runs (completed and queued ones are skipped; "
              f"resumable ones continue from their checkpoints):")
        print(f"  {resubmit_command(directory)}")
    return 0 if counts.get("completed", 0) == len(states) else 1


# ---------------------------------------------------------------- local


def local(directory, ranks=None, ccdl=None, mpiexec=None, dry_run=False):
    """Run every unfinished run here, one after another, references first (no Slurm).
    Runs whose trace a live ccdl process writes are left alone."""
    manifest.read(directory)  # a clear message for a directory that is no sweep, before the lock
    with dirlock.DirLock(directory, "local"):
        return _local(directory, ranks, ccdl, mpiexec, dry_run)


def _local(directory, ranks, ccdl, mpiexec, dry_run):
    doc = manifest.read(directory)
    manifest.check_tsv(directory, doc)
    binary = resolve_binary(doc, ccdl)
    ranks = ranks or doc.get("slurm", {}).get("ranks", 1)
    mpiexec = mpiexec or os.environ.get("MPIEXEC") or shutil.which("mpiexec") or "mpiexec"
    states, _ = run_states(directory, doc, with_queue=False)
    by_name = {e["name"]: st for e, st, _ in states}
    failed = 0
    for e, st, detail in states:  # the manifest lists references before their dependents
        if st == "completed":
            continue
        if st not in UNFINISHED:
            note(f"{e['name']}: skipped, {detail or st}")
            failed += 1
            continue
        if st == "stale" and not dry_run:
            set_aside(directory, e)
        if e["reference"] and by_name.get(e["reference"]) != "completed":
            why = ("is being written by a live ccdl process" if by_name.get(e["reference"]) == "running"
                   else "did not complete")
            note(f"{e['name']}: skipped, its reference {e['reference']} {why}")
            by_name[e["name"]] = "failed"
            failed += 1
            continue
        cmd = [binary, "run", e["spec"], "--out", e["trace"], "--resume"]
        if ranks > 1:
            cmd = shlex.split(mpiexec) + shlex.split(os.environ.get("MPIEXEC_FLAGS", "")) + ["-n", str(ranks)] + cmd
        if dry_run:
            print("would run: " + shlex.join(cmd))
            continue
        log = os.path.join(directory, "logs", f"local_{e['name']}.out")
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, "w", encoding="utf-8") as f:
            rc = subprocess.run(cmd, cwd=directory, stdout=f, stderr=subprocess.STDOUT).returncode
        try:
            st, detail = traces.state(os.path.join(directory, e["trace"]), manifest.read_spec(directory, e),
                                      doc.get("defaults"))
        except SweepError as err:  # the run left a trace that is not one: report it, go on
            st, detail = "failed", err.line()
        by_name[e["name"]] = st
        print(f"{st:<10} {e['name']}  (exit {rc}){'  ' + detail if detail else ''}")
        failed += st != "completed"
    return 1 if failed else 0
