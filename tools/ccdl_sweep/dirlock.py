"""One ccdl-sweep command at a time per sweep directory (docs/sweeps.md).

`expand`, `submit` and `local` hold an exclusive flock on DIR/.ccdl-sweep.lock for as long as
they act on DIR; the file holds "PID COMMAND" of the holder, for the message a second command
prints. The kernel drops the lock when the holder exits, however it exits, so a leftover file
means nothing. `status` only reads and takes no lock.
"""

import errno
import fcntl
import os
import stat

from . import SweepError

LOCK_NAME = ".ccdl-sweep.lock"


class DirLock:
    def __init__(self, directory, command):
        self.directory = directory
        self.command = command
        self.fd = None

    @property
    def path(self):
        return os.path.join(self.directory, LOCK_NAME)

    def acquire(self):
        """Take the lock (again: nothing to do), or SweepError naming the holder."""
        if self.fd is not None:
            return
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
        try:
            fd = os.open(self.path, flags, 0o666)
        except OSError as e:
            raise SweepError(f"cannot create the sweep lock: {e.strerror}", self.path) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SweepError("not a regular file (remove it)", self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    # no flock on this file system (ENOLCK, EOPNOTSUPP): go on unlocked
                    os.close(fd)
                    return
                raise SweepError(f"{self.directory} is in use by another ccdl-sweep command "
                                 f"({holder(fd)})") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {self.command}\n".encode(), 0)
        except BaseException:
            if self.fd is None:
                os.close(fd)
            raise
        self.fd = fd

    def release(self):
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)  # the file stays: removing it would race with a new holder
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def holder(fd):
    """'pid N: COMMAND' from a held lock file (what its holder wrote)."""
    try:
        text = os.pread(fd, 256, 0).decode("utf-8", "replace")
    except OSError:
        text = ""
    pid, _, command = text.split("\n")[0].strip().partition(" ")
    if not pid.isdigit():
        return "pid unknown: it has not written its name yet"
    return f"pid {pid}: {command.strip() or 'unknown'}"
