"""Serial and process executors.

The process executor uses the ``spawn`` start method only: Polars, DuckDB and Numba
start thread pools that are not fork-safe, so a forked child can deadlock.

With ``fresh_worker_per_task=True`` (the default) every task runs in a new process
that exits afterwards, so memory is returned to the OS between tasks (a day of option
data can take gigabytes). This is a small hand-written pool rather than
``ProcessPoolExecutor(max_tasks_per_child=1)``, which can hang on the CPython 3.11 we
support when a worker dies; here a worker killed by the OOM killer is reported as an
:class:`ExecutionError` naming the item and the exit code.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_any
from typing import Any

from ticklake.errors import ExecutionError, InterruptedRunError, TicklakeError

_SPAWN = mp.get_context("spawn")


def _describe_item(item: Any) -> str:
    text = repr(item)
    return text if len(text) <= 120 else text[:117] + "..."


def _task_failed(item: Any, exc: BaseException) -> ExecutionError:
    if isinstance(exc, ExecutionError):
        return exc
    message = f"task for {_describe_item(item)} failed: {type(exc).__name__}: {exc}"
    return ExecutionError(message, item=_describe_item(item), cause=type(exc).__name__)


def _interrupted(done: int, total: int) -> InterruptedRunError:
    return InterruptedRunError(
        f"interrupted after {done} of {total} tasks; workers were stopped. Finished tasks are "
        "committed and nothing partial was written: run the same command again to finish.",
        done=done,
        total=total,
    )


class SerialExecutor:
    """Run tasks one after another in this process."""

    name = "serial"

    def map(
        self,
        task: Callable[[Any], Any],
        items: Sequence[Any],
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        results: list[Any] = []
        for index, item in enumerate(items):
            try:
                result = task(item)
            except KeyboardInterrupt:
                raise _interrupted(index, len(items)) from None
            except TicklakeError:
                raise
            except Exception as exc:
                raise _task_failed(item, exc) from exc
            results.append(result)
            if on_result is not None:
                on_result(index, result)
        return results


def _child_main(conn: Connection, task: Callable[[Any], Any], item: Any) -> None:
    try:
        result = task(item)
        payload = ("ok", result)
    except BaseException as exc:  # report every failure to the parent, then exit
        payload = ("error", _picklable_error(exc))
    try:
        conn.send(payload)
    finally:
        conn.close()


def _picklable_error(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return ExecutionError(text, cause=type(exc).__name__)


class ProcessExecutor:
    """Run tasks in ``workers`` spawned processes (a fresh process per task by default)."""

    name = "process"

    def __init__(self, workers: int | None = None, *, fresh_worker_per_task: bool = True) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.fresh_worker_per_task = fresh_worker_per_task

    def map(
        self,
        task: Callable[[Any], Any],
        items: Sequence[Any],
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        if self.fresh_worker_per_task:
            return self._map_fresh(task, items, on_result)
        return self._map_pool(task, items, on_result)

    def _map_fresh(
        self,
        task: Callable[[Any], Any],
        items: Sequence[Any],
        on_result: Callable[[int, Any], None] | None,
    ) -> list[Any]:
        results: list[Any] = [None] * len(items)
        pending = list(enumerate(items))
        running: dict[Any, tuple[int, Any, Connection]] = {}
        done = 0
        try:
            while pending or running:
                while pending and len(running) < self.workers:
                    index, item = pending.pop(0)
                    parent, child = _SPAWN.Pipe(duplex=False)
                    proc = _SPAWN.Process(target=_child_main, args=(child, task, item), daemon=True)
                    proc.start()
                    child.close()
                    running[proc.sentinel] = (index, proc, parent)
                ready = wait_any(list(running))
                for sentinel in ready:
                    index, proc, parent = running.pop(sentinel)
                    payload = None
                    if parent.poll():
                        try:
                            payload = parent.recv()
                        except EOFError:
                            payload = None
                    proc.join()
                    parent.close()
                    if payload is None:
                        raise ExecutionError(
                            f"worker for {_describe_item(items[index])} died with exit code "
                            f"{proc.exitcode} (negative = killed by a signal; -9 is often the "
                            "out-of-memory killer) before returning a result",
                            item=_describe_item(items[index]),
                            exit_code=proc.exitcode,
                        )
                    status, value = payload
                    if status == "error":
                        if isinstance(value, KeyboardInterrupt):
                            raise KeyboardInterrupt
                        if isinstance(value, TicklakeError):
                            raise value
                        raise _task_failed(items[index], value)
                    results[index] = value
                    done += 1
                    if on_result is not None:
                        on_result(index, value)
        except KeyboardInterrupt:
            self._stop(running)
            raise _interrupted(done, len(items)) from None
        except BaseException:
            self._stop(running)
            raise
        return results

    @staticmethod
    def _stop(running: dict[Any, tuple[int, Any, Connection]]) -> None:
        for _, proc, _ in running.values():
            if proc.is_alive():
                proc.terminate()
        for _, proc, parent in running.values():
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
            parent.close()
        running.clear()

    def _map_pool(
        self,
        task: Callable[[Any], Any],
        items: Sequence[Any],
        on_result: Callable[[int, Any], None] | None,
    ) -> list[Any]:
        results: list[Any] = [None] * len(items)
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=_SPAWN)
        done = 0
        try:
            futures = {pool.submit(task, item): index for index, item in enumerate(items)}
            remaining = set(futures)
            while remaining:
                finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = futures[future]
                    exc = future.exception()
                    if exc is not None:
                        if isinstance(exc, TicklakeError):
                            raise exc
                        raise _task_failed(items[index], exc)
                    results[index] = future.result()
                    done += 1
                    if on_result is not None:
                        on_result(index, results[index])
        except KeyboardInterrupt:
            _kill_pool(pool)
            raise _interrupted(done, len(items)) from None
        except BaseException:
            _kill_pool(pool)
            raise
        pool.shutdown(wait=True)
        return results


def _kill_pool(pool: ProcessPoolExecutor) -> None:
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(timeout=10)
