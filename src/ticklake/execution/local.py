"""Serial and process executors.

The process executor uses the ``spawn`` start method only: Polars, DuckDB and Numba
start thread pools that are not fork-safe, so a forked child can deadlock.

With ``fresh_worker_per_task=True`` (the default) every task runs in a new process
that exits afterwards, so memory is returned to the OS between tasks (a batch of
analytics can take gigabytes). Many small tasks (backtest days: ~0.1 s of work each,
against ~1-5 s to start a worker and load its libraries and compiled kernels) instead
use ``tasks_per_worker=N``: a worker serves up to N tasks and is replaced after that, or
at once when its memory after a task exceeds ``max_worker_rss_mib`` — memory is still
returned, without paying a process start per task.

This is a small hand-written pool rather than ``ProcessPoolExecutor(max_tasks_per_child)``,
which can hang on the CPython 3.11 we support when a worker dies; here a worker killed
by the OOM killer is reported as an :class:`ExecutionError` naming the item and the exit
code.
"""

from __future__ import annotations

import collections
import contextlib
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


def _rss_mib() -> float:
    """This process's resident memory now, MiB (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _worker_main(conn: Connection, task: Callable[[Any], Any]) -> None:
    """Serve items from the parent until it sends None: reply (status, value, RSS MiB)."""
    while True:
        try:
            item = conn.recv()
        except (EOFError, KeyboardInterrupt):  # the parent went away or is stopping us
            return
        if item is None:
            conn.close()
            return
        try:
            payload: tuple[str, Any] = ("ok", task(item))
        except BaseException as exc:  # report every failure to the parent
            payload = ("error", _picklable_error(exc))
        conn.send((*payload, _rss_mib()))


class _Worker:
    """One spawned worker process and its end of the pipe."""

    def __init__(self, task: Callable[[Any], Any]) -> None:
        self.conn, child = _SPAWN.Pipe(duplex=True)
        self.proc = _SPAWN.Process(target=_worker_main, args=(child, task), daemon=True)
        self.proc.start()
        child.close()
        self.index = -1
        self.tasks = 0

    def receive(self) -> tuple[str, Any, float] | None:
        """The reply to the current item, or None when the worker died without one."""
        if self.conn.poll():
            try:
                reply: tuple[str, Any, float] = self.conn.recv()
                return reply
            except EOFError:
                return None
        return None

    def retire(self) -> None:
        """Ask the worker to exit (joined later by :meth:`reap`)."""
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.conn.close()

    def reap(self, timeout: float = 30) -> int | None:
        self.proc.join(timeout=timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        return self.proc.exitcode

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()


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

    def __init__(
        self,
        workers: int | None = None,
        *,
        fresh_worker_per_task: bool = True,
        tasks_per_worker: int | None = None,
        max_worker_rss_mib: float | None = None,
    ) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.fresh_worker_per_task = fresh_worker_per_task
        if tasks_per_worker is not None and tasks_per_worker < 1:
            raise ValueError(f"tasks_per_worker must be at least 1, got {tasks_per_worker}")
        self.tasks_per_worker = tasks_per_worker
        self.max_worker_rss_mib = max_worker_rss_mib

    def map(
        self,
        task: Callable[[Any], Any],
        items: Sequence[Any],
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        if self.tasks_per_worker is not None:
            return self._map_workers(task, items, on_result, self.tasks_per_worker)
        if self.fresh_worker_per_task:
            return self._map_workers(task, items, on_result, 1)
        return self._map_pool(task, items, on_result)

    def _map_workers(
        self,
        task: Callable[[Any], Any],
        items: Sequence[Any],
        on_result: Callable[[int, Any], None] | None,
        tasks_per_worker: int,
    ) -> list[Any]:
        """Run items on at most ``self.workers`` workers, each replaced after
        ``tasks_per_worker`` tasks or when its RSS after a task exceeds the limit."""
        results: list[Any] = [None] * len(items)
        pending = collections.deque(enumerate(items))
        idle: list[_Worker] = []
        busy: dict[int, _Worker] = {}
        retired: list[_Worker] = []
        done = 0
        try:
            while pending or busy:
                while pending and len(busy) < self.workers:
                    worker = idle.pop() if idle else _Worker(task)
                    worker.index, item = pending.popleft()
                    worker.conn.send(item)
                    busy[id(worker)] = worker
                waitables: dict[Any, _Worker] = {}
                for worker in busy.values():
                    waitables[worker.conn] = worker
                    waitables[worker.proc.sentinel] = worker
                for ready in wait_any(list(waitables)):
                    worker = waitables[ready]
                    if id(worker) not in busy:
                        continue  # its pipe and its sentinel were both ready
                    del busy[id(worker)]
                    index = worker.index
                    reply = worker.receive()
                    if reply is None:
                        exit_code = worker.reap()
                        raise ExecutionError(
                            f"worker for {_describe_item(items[index])} died with exit code "
                            f"{exit_code} (negative = killed by a signal; -9 is often the "
                            "out-of-memory killer) before returning a result",
                            item=_describe_item(items[index]),
                            exit_code=exit_code,
                        )
                    status, value, rss_mib = reply
                    worker.tasks += 1
                    if status == "error":
                        retired.append(worker)
                        worker.retire()
                        if isinstance(value, KeyboardInterrupt):
                            raise KeyboardInterrupt
                        if isinstance(value, TicklakeError):
                            raise value
                        raise _task_failed(items[index], value)
                    results[index] = value
                    done += 1
                    if on_result is not None:
                        on_result(index, value)
                    limit = self.max_worker_rss_mib
                    if worker.tasks >= tasks_per_worker or (limit and rss_mib > limit):
                        worker.retire()  # its memory goes back to the OS
                        retired.append(worker)
                    else:
                        idle.append(worker)
            for worker in idle:
                worker.retire()
                retired.append(worker)
            for worker in retired:
                worker.reap()
        except KeyboardInterrupt:
            self._stop_workers([*busy.values(), *idle, *retired])
            raise _interrupted(done, len(items)) from None
        except BaseException:
            self._stop_workers([*busy.values(), *idle, *retired])
            raise
        return results

    @staticmethod
    def _stop_workers(workers: list[_Worker]) -> None:
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.reap(timeout=10)
            with contextlib.suppress(OSError):
                worker.conn.close()

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
