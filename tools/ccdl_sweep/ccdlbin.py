"""The ccdl binary: where it is, its key table, `ccdl validate`."""

import concurrent.futures
import os
import shutil
import subprocess

from . import SweepError
from .specjson import Schema


def find(explicit=None):
    """--ccdl PATH, else $CCDL, else `ccdl` on PATH, else ./ccdl. Returns an absolute path."""
    candidates = [explicit] if explicit else [os.environ.get("CCDL"), shutil.which("ccdl"), "./ccdl"]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    if explicit:
        raise SweepError(f"--ccdl {explicit}: not an executable file")
    raise SweepError("ccdl binary not found: pass --ccdl PATH or set $CCDL (or --no-validate)")


def _run(args, cwd=None, timeout=120):
    try:
        return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SweepError(f"{args[0]}: cannot run: {e}") from None


def schema(binary):
    out = _run([binary, "spec-keys"])
    if out.returncode != 0:
        raise SweepError(f"{binary} spec-keys failed: {out.stderr.strip() or out.returncode}")
    return Schema.from_table(out.stdout)


def validate(binary, jobs, cwd):
    """jobs: [(label, spec path relative to cwd)]. Returns [(label, one-line problem)] for
    every spec `ccdl validate` rejects, in the order given."""

    def one(job):
        label, spec = job
        out = _run([binary, "validate", spec], cwd=cwd)
        if out.returncode == 0:
            return None
        lines = [l for l in out.stderr.strip().splitlines() if l.strip()] or [f"exit {out.returncode}"]
        msg = lines[-1]
        if msg.startswith("ccdl: "):
            msg = msg[len("ccdl: "):]
        return label, msg.replace(cwd.rstrip("/") + "/", "")

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        return [r for r in pool.map(one, jobs) if r is not None]
