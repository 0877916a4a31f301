"""What a trace says about its run: running (a live ccdl process writes it), completed,
resumable (stopped or killed with a checkpoint beside it), failed, killed, stale (a completed
trace of a different spec), missing. Reads the root attributes and the columns' shapes with
h5py when it is importable, else with `h5dump` (so `ccdl-sweep` needs only the standard
library).

A trace whose content is not what ccdl writes (docs/trace.md: not HDF5, a root attribute
missing or of the wrong type, a column that is not a 1-D numeric dataset, a completed trace
whose columns in one group differ in length) raises SweepError naming the file and the
attribute, group or column: the command exits 2 with that one line.

Liveness (live_writer): while `ccdl run` writes TRACE, its rank 0 holds an exclusive flock on
TRACE.lock ("pid host"). A reader that cannot take a shared lock on it without blocking knows
a live process writes the trace; a TRACE.lock nobody holds is stale and means nothing.
"""

import errno
import fcntl
import json
import numbers
import os
import re
import shutil
import stat
import subprocess

from . import SweepError, h5safe
from .h5safe import open_h5
from .specjson import MAX_DEPTH, brief, depth, file_kind, flatten, same

# format_version of the traces this reader knows (absent in traces of ccdl 0.1: then the
# presence and types of the attributes below are the format check)
FORMAT = "ccdl-trace"
FORMAT_VERSION = 1
STRINGS = ("ccdl_version", "exit_reason", "spec")   # required, strings
GROUPS = ("steps", "epochs", "phases")              # required; /resumes is newer: optional
ATTRS = STRINGS + ("completed", "format", "format_version")


def live_writer(trace):
    """'pid host' of the live ccdl process writing TRACE (it holds TRACE.lock), else None.
    The one liveness check of ccdl-sweep: status, submit and local all go through it."""
    path = trace + ".lock"
    try:  # O_NONBLOCK: a FIFO in its place opens at once (and is no lock)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except (OSError, ValueError):
        return None  # none (or unreadable: cannot tell, and ccdl run itself refuses a held one)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                try:
                    text = os.pread(fd, 256, 0).decode("utf-8", "replace")
                except OSError:
                    text = ""
                return " ".join(text.split()) or "unknown"
            return None  # no flock on this file system: cannot tell
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # stale: its process is gone
    finally:
        os.close(fd)


def regular_file(path):
    """True for a regular file (symlinks followed), False when nothing is there; SweepError
    for anything else (a directory, a FIFO: h5py would block on a FIFO)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.lexists(path):
            raise SweepError("a symbolic link to nothing", path) from None
        return False
    except (OSError, ValueError) as e:
        raise SweepError(f"cannot read: {getattr(e, 'strerror', None) or e}", path) from None
    if not stat.S_ISREG(st.st_mode):
        raise SweepError(f"not a regular file ({file_kind(st.st_mode)})", path)
    return True


# ---------------------------------------------------------------- reading


class TraceInfo:
    """The root attributes a status needs, checked, and per group the columns' lengths."""

    def __init__(self, attrs, lengths):
        self.attrs = attrs      # name -> str or int
        self.lengths = lengths  # group -> {column: rows}; None: not read (h5dump without -H)


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_attrs(path, attrs):
    """The format check of the root attributes (docs/trace.md)."""
    if "format" in attrs and not (isinstance(attrs["format"], str) and attrs["format"] == FORMAT):
        raise SweepError(f"attribute 'format': {brief(attrs['format'])}, expected {FORMAT!r} "
                         f"(not a ccdl trace)", path)
    if "format_version" in attrs:
        v = attrs["format_version"]
        if not _is_int(v) or v < 1:
            raise SweepError(f"attribute 'format_version': expected a positive integer, got {brief(v)}", path)
        if v > FORMAT_VERSION:
            raise SweepError(f"format_version {v}: written by a newer ccdl (this ccdl-sweep reads "
                             f"version {FORMAT_VERSION})", path)
    for name in STRINGS + ("completed",):
        if name not in attrs:
            raise SweepError(f"no attribute '{name}' (not a ccdl trace, or a damaged one)", path)
    for name in STRINGS:
        if not isinstance(attrs[name], str):
            raise SweepError(f"attribute '{name}': expected a string, got {brief(attrs[name])}", path)
    c = attrs["completed"]
    if not _is_int(c) or c not in (0, 1):
        raise SweepError(f"attribute 'completed': expected the integer 0 or 1, got {brief(c)}", path)
    attrs["completed"] = int(c)
    try:
        spec = json.loads(attrs["spec"])
    except RecursionError:
        raise SweepError(f"attribute 'spec': nested more than {MAX_DEPTH} levels deep", path) from None
    except ValueError:
        raise SweepError("attribute 'spec': not JSON", path) from None
    if not isinstance(spec, dict):
        raise SweepError("attribute 'spec': not a JSON object", path)
    if depth(spec) > MAX_DEPTH:
        raise SweepError(f"attribute 'spec': nested more than {MAX_DEPTH} levels deep", path)
    attrs["spec_doc"] = spec


def check_columns(path, lengths, completed):
    """Every group there; in a completed trace, the columns of a group equally long (a kill
    mid-flush may leave them unequal: fine while completed = 0, corruption once it is 1)."""
    for group in GROUPS:
        if group not in lengths:
            raise SweepError(f"no group /{group} (a damaged trace)", path)
    if not completed:
        return
    for group, cols in lengths.items():
        counts = sorted(set(cols.values()))
        if len(counts) > 1:
            most = max(counts, key=lambda n: sum(1 for v in cols.values() if v == n))
            odd = ", ".join(f"{c} {n}" for c, n in sorted(cols.items()) if n != most)
            raise SweepError(f"/{group}: completed = 1 but its columns differ in length ({odd} rows, "
                             f"the others {most}): a corrupt trace", path)


def _scalar(v):
    """An attribute as the C writer stores it: a string or an integer scalar, else as it is."""
    import numpy as np  # h5py brings numpy

    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return v
    if isinstance(v, np.ndarray):
        return v  # an array where a scalar belongs: reported as it is
    if isinstance(v, np.generic):
        return v.item() if v.dtype.kind in "iuf" else v
    return v


def isolated(fn, path):
    return h5safe.isolated(fn, path, error_type=SweepError,
                           make_error=lambda p, message: SweepError(message, p))


def _with_h5py(path):
    return isolated(_read_with_h5py, path)


def _read_with_h5py(path):
    import h5py  # noqa: PLC0415 (optional dependency)

    try:
        f = open_h5(path)
    except Exception as e:  # noqa: BLE001 (HDF5 fails in many ways on a file that is not one)
        raise SweepError(f"not a readable HDF5 file ({_h5_message(e)})", path) from None
    with f:
        attrs = {}
        for name in ATTRS:
            try:
                if name not in f.attrs:
                    continue
                attrs[name] = _scalar(f.attrs[name])
            except Exception as e:  # noqa: BLE001
                raise SweepError(f"attribute '{name}': unreadable ({_h5_message(e)})", path) from None
        check_attrs(path, attrs)
        lengths = {}
        for group in GROUPS + ("resumes",):
            try:
                if group not in f:
                    continue
                g = f[group]
                if not isinstance(g, h5py.Group):
                    raise SweepError(f"/{group}: not a group", path)
                cols = {}
                for name in g:
                    ds = g[name]
                    if not isinstance(ds, h5py.Dataset):
                        raise SweepError(f"/{group}/{name}: not a dataset", path)
                    if len(ds.shape or ()) != 1 or ds.dtype.kind not in "iuf":
                        raise SweepError(f"/{group}/{name}: expected a 1-D numeric column, got "
                                         f"dtype {ds.dtype} shape {ds.shape}", path)
                    cols[name] = int(ds.shape[0])
            except SweepError:
                raise
            except Exception as e:  # noqa: BLE001
                raise SweepError(f"/{group}: unreadable ({_h5_message(e)})", path) from None
            lengths[group] = cols
        check_columns(path, lengths, attrs["completed"])
    return TraceInfo(attrs, lengths)


def _h5_message(e):
    text = " ".join(str(e).split()).strip("'\"")
    return (text.split("(")[0].strip() or type(e).__name__)[:120]


def _with_h5dump(path):
    """The same through `h5dump -A` (the header and the attributes' values, no rows)."""
    h5dump = shutil.which("h5dump")
    if h5dump is None:
        raise SweepError("neither h5py nor h5dump is available to read it", path)
    try:
        out = subprocess.run([h5dump, "-A", "-w", "0", path], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SweepError(f"h5dump: {e}", path) from None
    text = out.stdout.decode("utf-8", "replace")
    if out.returncode != 0 or not text.startswith("HDF5 "):
        raise SweepError("not a readable HDF5 file (or open for writing: h5clear -s)", path)
    lines = text.splitlines()
    values, lengths = {}, {}
    group = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r'^   ATTRIBUTE "([^"]*)" \{$', line)
        if m:
            end = lines.index("   }", i)
            if m.group(1) in ATTRS:
                values[m.group(1)] = _h5dump_value(path, m.group(1), lines[i + 1:end])
            i = end + 1
            continue
        m = re.match(r'^   GROUP "([^"]*)" \{$', line)
        if m:
            group = m.group(1)
            lengths[group] = {}
        m = re.match(r'^      (DATASET|GROUP) "([^"]*)" \{$', line)
        if m and group is not None:
            col, kind, space = m.group(2), m.group(1), ""
            if kind == "GROUP":
                raise SweepError(f"/{group}/{col}: not a dataset", path)
            body = lines[i + 1:i + 3]
            dtype = body[0].strip().split()[-1] if body else ""
            space = body[1].strip() if len(body) > 1 else ""
            size = re.match(r"DATASPACE  SIMPLE \{ \( (\d+) \) /", space)
            if not re.match(r"^H5T_(STD_[IU]\d+|IEEE_F\d+)[LB]E$", dtype) or not size:
                raise SweepError(f"/{group}/{col}: expected a 1-D numeric column, got {dtype} "
                                 f"{space.replace('DATASPACE  ', '')}", path)
            lengths[group][col] = int(size.group(1))
        i += 1
    check_attrs(path, values)
    check_columns(path, lengths, values["completed"])
    return TraceInfo(values, lengths)


def _h5dump_value(path, name, body):
    """The value of one attribute from the lines of its `h5dump -A` block."""
    head = "\n".join(body)
    m = re.search(r"DATA \{\n\s*\(0\): (.*)\n\s*\}$", head, flags=re.S)
    if not m or "DATASPACE  SCALAR" not in head:
        return f"<{' '.join(head.split())[:60]}>"  # not a scalar: check_attrs names it
    data = m.group(1)
    if head.lstrip().startswith("DATATYPE  H5T_STRING"):
        return data[1:-1] if data.startswith('"') and data.endswith('"') else data
    if re.match(r"^\s*DATATYPE  H5T_STD_[IU]\d+[LB]E$", body[0]):
        try:
            return int(data)
        except ValueError:
            pass
    return f"<{body[0].strip()[10:]} {data[:40]}>"  # another type: check_attrs names it


def read_trace(path):
    if not os.environ.get("CCDL_SWEEP_NO_H5PY"):
        try:
            import h5py  # noqa: F401, PLC0415
        except ImportError:
            pass
        else:
            return _with_h5py(path)
    return _with_h5dump(path)


def matches(expected_spec, trace_spec, defaults=None):
    """True when every key the run's spec sets has the same value in the trace's resolved spec
    (trace.path aside: --out overrides it). ccdl leaves keys added after traces existed out of
    the resolved spec while they hold their defaults (communication.slowmo.tau 0, ...), so a
    key the trace lacks matches when the run sets it to its default (defaults: path -> value,
    from `ccdl spec-keys` when the sweep was expanded)."""
    got = flatten(trace_spec)
    defaults = defaults or {}
    for path, value in flatten(expected_spec).items():
        if path == "trace.path":
            continue
        if path in got:
            if not same(got[path], value):
                return False
        elif not (path in defaults and same(defaults[path], value)):
            return False
    return True


def checkpoint_path(trace):
    """Where ccdl keeps a trace's checkpoint by default: run.h5 -> run.ckpt.h5."""
    return (trace[:-3] if trace.endswith(".h5") else trace) + ".ckpt.h5"


def checkpoint_step(path):
    """The step a checkpoint resumes at, or None when it cannot be read here."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None  # never open a FIFO: it would block
        import h5py  # noqa: F401, PLC0415 (optional dependency)

        return isolated(_checkpoint_step, path)
    except Exception:  # noqa: BLE001 (any unreadable checkpoint: ccdl itself will say why)
        return None


def _checkpoint_step(path):
    try:
        with open_h5(path) as f:
            return int(f["progress"].attrs["step"])
    except Exception:  # noqa: BLE001
        return None


def state(trace, expected_spec=None, defaults=None):
    """(state, detail): state is running | completed | stale | resumable | failed | killed |
    missing. SweepError for a trace that is not what ccdl writes."""
    writer = live_writer(trace)
    if writer is not None:
        return "running", f"a live ccdl process is writing it (pid and host: {writer})"
    ckpt = checkpoint_path(trace)
    if not regular_file(trace):
        if os.path.lexists(ckpt):
            return "resumable", "checkpoint without a trace: ccdl will refuse it (remove it)"
        return "missing", ""
    info = read_trace(trace)
    completed = info.attrs["completed"]
    reason = info.attrs["exit_reason"]
    if completed == 1:
        if expected_spec is not None and not matches(expected_spec, info.attrs["spec_doc"], defaults):
            return "stale", "completed trace of a different spec (the sweep changed)"
        n = (info.lengths or {}).get("resumes", {}).get("step", 0)
        return "completed", (f"resumed {n} time{'s' if n != 1 else ''}" if n else "")
    if os.path.lexists(ckpt):
        step = checkpoint_step(ckpt)
        at = f" at step {step}" if step is not None else ""
        return "resumable", f"checkpoint{at}; exit_reason: {brief_reason(reason)}"
    if reason == "running":
        return "killed", "completed = 0, exit_reason 'running', and no live ccdl process holds its lock (killed)"
    return "failed", f"exit_reason: {brief_reason(reason)}"


def brief_reason(reason, limit=300):
    text = " ".join(reason.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
