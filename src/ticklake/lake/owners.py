"""Which process owns a working directory (ingest staging, SQL snapshots), and is it alive.

An owner is recorded as ``owner.json``: pid, host and the process's start time (from
``/proc/<pid>/stat``, in clock ticks since boot), so a pid reused by another process
after a reboot or a wrap-around is not mistaken for the owner.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

OWNER_FILE = "owner.json"
LEGACY_OWNER_FILE = "owner.pid"


def alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None where unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = text[text.rindex(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


def write_owner(directory: Path) -> None:
    """Record this process as the owner of ``directory``."""
    pid = os.getpid()
    body = {"pid": pid, "host": socket.gethostname(), "start": process_start(pid)}
    (directory / OWNER_FILE).write_text(json.dumps(body, sort_keys=True) + "\n")


def describe_owner(directory: Path) -> tuple[bool | None, str]:
    """(owner alive?, one-line description); None when it cannot be told (another host)."""
    path = directory / OWNER_FILE
    legacy = directory / LEGACY_OWNER_FILE
    try:
        if path.is_file():
            body = json.loads(path.read_text())
            pid, host, start = int(body["pid"]), str(body.get("host", "")), body.get("start")
        elif legacy.is_file():
            pid, host, start = int(legacy.read_text().strip()), socket.gethostname(), None
        else:
            return None, "no owner recorded"
    except (OSError, ValueError, KeyError, TypeError):
        return None, "owner record unreadable"
    if host and host != socket.gethostname():
        return None, f"owner pid {pid} on host {host} (cannot be checked from here)"
    running = alive(pid) and (start is None or process_start(pid) in (None, start))
    return running, f"owner pid {pid} {'running' if running else 'gone'}"
