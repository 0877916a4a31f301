"""What a trace says about its run: completed, resumable (stopped or killed with a checkpoint
beside it), failed, killed, stale (a completed trace of a different spec), missing. Reads three root attributes with h5py when it is importable, else
with `h5dump` (so `ccdl-sweep` needs only the standard library)."""

import json
import os
import re
import shutil
import subprocess

from .specjson import flatten, same

ATTRS = ("completed", "exit_reason", "spec")


class Unreadable(Exception):
    pass


def _with_h5py(path):
    import h5py  # noqa: PLC0415 (optional dependency)

    try:
        with h5py.File(path, "r", swmr=True) as f:
            out = {}
            for name in ATTRS:
                if name in f.attrs:
                    v = f.attrs[name]
                    out[name] = v.decode() if isinstance(v, bytes) else v
            return out
    except (OSError, ValueError) as e:
        raise Unreadable(str(e).split("(")[0].strip() or "not an HDF5 file") from None


def _with_h5dump(path):
    h5dump = shutil.which("h5dump")
    if h5dump is None:
        raise Unreadable("neither h5py nor h5dump is available to read it")
    args = [h5dump, "-y", "-w", "0"]
    for name in ATTRS:
        args += ["-a", f"/{name}"]
    out = subprocess.run(args + [path], capture_output=True, text=True)
    if "unable to open file" in out.stderr:
        raise Unreadable("not an HDF5 file (or open for writing: h5clear -s)")
    values = {}
    for block in re.split(r'^ATTRIBUTE "', out.stdout, flags=re.M)[1:]:
        name = block.split('"', 1)[0]
        m = re.search(r"DATA \{\n(.*)\n\s*\}\n\}", block, flags=re.S)
        if not m:
            continue
        text = m.group(1).strip()
        if text.startswith('"') and text.endswith('"'):
            values[name] = text[1:-1]
        else:
            try:
                values[name] = int(text)
            except ValueError:
                values[name] = text
    return values


def read_attrs(path):
    if not os.environ.get("CCDL_SWEEP_NO_H5PY"):
        try:
            return _with_h5py(path)
        except ImportError:
            pass
    return _with_h5dump(path)


def matches(expected_spec, trace_spec_text):
    """True when every key the run's spec sets has the same value in the trace's resolved spec
    (trace.path aside: --out overrides it)."""
    try:
        got = flatten(json.loads(trace_spec_text))
    except (TypeError, ValueError):
        return True  # unparsable through h5dump: cannot tell, trust the name
    for path, value in flatten(expected_spec).items():
        if path == "trace.path":
            continue
        if path not in got or not same(got[path], value):
            return False
    return True


def checkpoint_path(trace):
    """Where ccdl keeps a trace's checkpoint by default: run.h5 -> run.ckpt.h5."""
    return (trace[:-3] if trace.endswith(".h5") else trace) + ".ckpt.h5"


def checkpoint_step(path):
    """The step a checkpoint resumes at, or None when it cannot be read here."""
    try:
        import h5py  # noqa: PLC0415 (optional dependency)

        with h5py.File(path, "r") as f:
            return int(f["progress"].attrs["step"])
    except Exception:  # noqa: BLE001 (any unreadable checkpoint: ccdl itself will say why)
        return None


def resumes(path):
    """How many times the run was resumed (rows of /resumes), 0 when unknown."""
    try:
        import h5py  # noqa: PLC0415

        with h5py.File(path, "r", swmr=True) as f:
            return len(f["resumes/step"]) if "resumes/step" in f else 0
    except Exception:  # noqa: BLE001
        return 0


def state(trace, expected_spec=None):
    """(state, detail): state is completed | stale | resumable | failed | killed | missing."""
    ckpt = checkpoint_path(trace)
    if not os.path.exists(trace):
        if os.path.exists(ckpt):
            return "resumable", "checkpoint without a trace: ccdl will refuse it (remove it)"
        return "missing", ""
    try:
        attrs = read_attrs(trace)
    except Unreadable as e:
        return "failed", f"unreadable trace: {e}"
    completed = attrs.get("completed")
    reason = attrs.get("exit_reason", "")
    if completed is None:
        return "failed", "trace has no 'completed' attribute"
    if int(completed) == 1:
        if expected_spec is not None and not matches(expected_spec, attrs.get("spec")):
            return "stale", "completed trace of a different spec (the sweep changed)"
        n = resumes(trace)
        return "completed", (f"resumed {n} time{'s' if n != 1 else ''}" if n else "")
    if os.path.exists(ckpt):
        step = checkpoint_step(ckpt)
        at = f" at step {step}" if step is not None else ""
        return "resumable", f"checkpoint{at}; exit_reason: {reason}"
    if reason == "running":
        return "killed", "completed = 0, exit_reason 'running' (killed, or still running)"
    return "failed", f"exit_reason: {reason}"
