"""Module-level tasks for executor tests (spawned workers import them by name)."""

from __future__ import annotations

import os
import time


def square(x: int) -> int:
    return x * x


def pid_of(_: int) -> int:
    time.sleep(0.05)
    return os.getpid()


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def die_on_two(x: int) -> int:
    if x == 2:
        os._exit(9)
    return x


def sleep_then_mark(arg: tuple[str, int]) -> int:
    directory, x = arg
    time.sleep(0.3 * x)
    with open(os.path.join(directory, f"done-{x}"), "w") as fh:
        fh.write("ok")
    return x


_HELD: list[bytearray] = []


def hold_memory(mib: int) -> int:
    """Keep ``mib`` MiB of touched memory alive in this worker; return its pid."""
    if mib:
        _HELD.append(bytearray(b"\x01") * (mib * 2**20))
    time.sleep(0.05)
    return os.getpid()


def rss_mib(_: int) -> float:
    """This worker's resident memory, MiB."""
    from ticklake.execution.local import _rss_mib

    return _rss_mib()
