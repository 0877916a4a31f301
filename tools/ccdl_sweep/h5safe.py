"""h5safe: reading HDF5 files that may be damaged without a crash, a hang or a traceback.

Shared by ccdl-sweep (traces) and ccdl-analyze (ccdl_analysis.traces, .topology): the HDF5
library can crash (signal 11) or retry for minutes on a damaged file, so every read of a
file runs in a forked child with a time limit, and its failure becomes the caller's own
one-line error. Standard library only; h5py is imported where a file is opened.
"""
import os
import pickle
import select
import signal
import sys
import time


def open_h5(path):
    """h5py.File(path, "r"); in SWMR-read mode only for a trace whose writer was killed
    mid-flush (its superblock still says "open for write"). Plain mode first: in SWMR mode
    HDF5 retries a metadata read that fails its checksum for minutes before it gives up."""
    import h5py  # noqa: PLC0415 (optional dependency)

    try:
        return h5py.File(path, "r")
    except OSError as e:
        if "already open for write" not in str(e):
            raise
    return h5py.File(path, "r", swmr=True)


def h5_timeout():
    try:
        return max(0.1, float(os.environ.get("CCDL_HDF5_TIMEOUT", "60")))
    except ValueError:
        return 60.0


def isolated(fn, path, *args, error_type, make_error):
    """fn(path, *args) run in a forked child, its result pickled back: the HDF5 library can
    crash or loop on a damaged file, and that must end in one line naming the file, not a
    signal or a hang. An error_type exception from fn comes back as make_error(its path, its
    message); a crash, or no answer within $CCDL_HDF5_TIMEOUT seconds (default 60), is
    make_error(path, what happened)."""
    if not hasattr(os, "fork"):
        return fn(path, *args)
    timeout = h5_timeout()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, never return into the caller
        try:
            os.close(r)
            quiet = os.open(os.devnull, os.O_WRONLY)  # whatever a crashing library prints
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
            try:
                answer = ("ok", fn(path, *args))
            except error_type as e:
                answer = ("error", (e.path, getattr(e, "message", str(e))))
            except BaseException as e:  # noqa: BLE001
                answer = ("internal", f"{type(e).__name__}: {e}")
            view = memoryview(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
            while view:
                view = view[os.write(w, view):]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    try:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                raise make_error(path, f"HDF5 did not finish reading it within {timeout:g} s (a "
                                       f"damaged file? $CCDL_HDF5_TIMEOUT sets the limit)")
            chunk = os.read(r, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    try:
        kind, value = pickle.loads(b"".join(chunks))
    except Exception:  # noqa: BLE001 (nothing, or half an answer: the child died)
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        raise make_error(path, f"HDF5 crashed reading it "
                               f"({f'signal {sig}' if sig else 'no answer'}): a damaged file") from None
    if kind == "ok":
        return value
    if kind == "error":
        raise make_error(*value)
    raise RuntimeError(value)
