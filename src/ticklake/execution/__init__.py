"""Executors: run ``task(item)`` over items serially, in processes, or on Ray.

One small interface, ``Executor.map(task, items, on_result=None) -> list`` (results in
item order), so every heavy step runs the same way everywhere. Tasks are pure
module-level functions of picklable items returning small summaries; they write
their outputs through the lake's atomic commits, so stopping a run midway leaves
nothing partial.

Examples:
    >>> get_executor("serial").map(abs, [-1, 2, -3])
    [1, 2, 3]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from ticklake.errors import ConfigError
from ticklake.execution.local import ProcessExecutor, SerialExecutor

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("serial", "process", "ray")


class Executor(Protocol):
    name: str

    def map(
        self,
        task: Callable[[Any], Any],
        items: Sequence[Any],
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[Any]: ...


def get_executor(
    name: str = "serial",
    *,
    workers: int | None = None,
    fresh_worker_per_task: bool = True,
    tasks_per_worker: int | None = None,
    max_worker_rss_mib: float | None = None,
) -> Executor:
    """Return the executor called ``name`` (``serial``, ``process`` or ``ray``).

    ``tasks_per_worker`` (process) lets a worker serve that many tasks before it is
    replaced (or sooner, once its memory after a task exceeds ``max_worker_rss_mib``);
    it overrides ``fresh_worker_per_task``. Ray reuses its workers unless a fresh one per
    task is asked for (``fresh_worker_per_task`` without ``tasks_per_worker``, or
    ``tasks_per_worker=1``).
    """
    if name == "serial":
        return SerialExecutor()
    if name == "process":
        return ProcessExecutor(
            workers=workers,
            fresh_worker_per_task=fresh_worker_per_task,
            tasks_per_worker=tasks_per_worker,
            max_worker_rss_mib=max_worker_rss_mib,
        )
    if name == "ray":
        from ticklake.execution.ray_executor import RayExecutor  # Ray is an optional extra

        fresh = tasks_per_worker == 1 if tasks_per_worker is not None else fresh_worker_per_task
        return RayExecutor(workers=workers, fresh_worker_per_task=fresh)
    raise ConfigError(
        f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}", executor=name
    )


__all__ = ["EXECUTORS", "Executor", "ProcessExecutor", "SerialExecutor", "get_executor"]
