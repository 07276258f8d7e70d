"""Files the daemon owns: atomic replacement, and the locked, private state directory.

Atomic replacement: readers see the old file or the new one, never a part; after a crash, one of the two. The
data is written to a temporary file beside the target, fsynced, renamed over the target, and the directory is
fsynced so the rename itself is durable.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from onexd.errors import ConfigError

log = logging.getLogger("onexd.daemon")


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace path with data (file mode `mode`), durably."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # a leftover of a crash, possibly read-only
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # O_CREAT's mode is filtered by the umask; an existing tmp keeps its old mode
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def lock_state_dir(state_dir: Path) -> int:
    """An exclusive lock held for the daemon's life: a second instance on the same state dir is refused.
    From here on everything the daemon writes is private to it (umask 077; what jobs or the socket's group must
    read is given its mode explicitly), and the state directory is tightened to 0700 if an operator created it
    wider: its keys, job records and trail are for onexd alone."""
    os.umask(0o077)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if state_dir.stat().st_mode & 0o077:
        log.warning("tightened the state directory to 0700", extra={"was": oct(state_dir.stat().st_mode & 0o777)})
        os.chmod(state_dir, 0o700)
    fd = os.open(state_dir / "onexd.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"another onexd is running with state directory {state_dir}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd
