"""Per-partition write locks.

A lock is ``fcntl.flock`` on a file under ``<lake>/_locks/``. The kernel drops a flock
when the holding process dies (even by SIGKILL), so there are no stale locks to
recover: a crashed writer never blocks the next one. Lock files are never deleted
(deleting a lock file while another process waits on it would let two writers in).
flock is reliable on local file systems; do not put a lake on NFS.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ticklake.errors import LockTimeoutError


@contextmanager
def file_lock(path: Path, timeout_seconds: float, what: str) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` for the duration of the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_seconds
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(
                        f"{what}: another writer held the lock {path} for more than "
                        f"{timeout_seconds:g} s. Wait for it to finish or raise "
                        "lake.lock_timeout_seconds.",
                        path=str(path),
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
