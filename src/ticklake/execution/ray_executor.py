"""The Ray executor: the same ``map(task, items, on_result)`` contract, on a Ray cluster.

Ray is an optional extra (``pip install 'ticklake[ray]'``) and is imported only here,
only when this executor is created. Without an address (and without ``RAY_ADDRESS``)
the executor starts a private local Ray instance with ``workers`` CPUs, no dashboard and
token authentication off (Ray 2.60 otherwise writes ``~/.ray/auth_token`` for every new
local cluster), and shuts it down after ``map``. When Ray is already initialised in this
process (a notebook, a test fixture, an enclosing ``with RayExecutor(...)``), that
session is used and left running: only the executor that started Ray stops it.

Each item is one Ray task with one CPU and no retries: tasks write through the lake's
atomic commits, so a retry could only repeat work, never repair it, and a failure must
reach the caller naming its item. Starting a local Ray takes about 10 s, so for a few
short tasks ``process`` is faster; Ray pays off on a cluster (``address="auto"`` or
``RAY_ADDRESS``) or for long runs.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from ticklake.errors import ConfigError, ExecutionError, TicklakeError
from ticklake.execution.local import _describe_item, _interrupted, _task_failed

# Seconds between checks for Ctrl+C while waiting on tasks: ray.wait blocks in C code,
# so a bounded wait keeps KeyboardInterrupt prompt.
_CANCEL_SETTLE_SECONDS = 30.0
_WAIT_SECONDS = 0.5


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            f"the 'ray' executor needs Ray, which is not installed ({exc}); install it with "
            "`pip install 'ticklake[ray]'`, or use the 'process' executor",
            executor="ray",
        ) from None
    return ray


def _catch_ctrl_c(pressed: threading.Event) -> Any:
    """Record Ctrl+C in ``pressed``; return the handler to restore (None: not main thread).

    Ray checks for signals inside ``ray.wait`` and can consume the KeyboardInterrupt
    there, so a plain ``except KeyboardInterrupt`` around it misses some presses (seen
    in the tests); a flag checked after every wait does not.
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        pressed.set()

    return signal.signal(signal.SIGINT, handler)


def _call(task: Callable[[Any], Any], item: Any) -> Any:
    # A plain function wrapper: ray.remote accepts only functions, not any callable
    # (builtins, functools.partial, bound methods).
    return task(item)


class RayExecutor:
    """Run each task as a Ray task (one CPU each), locally or on a cluster."""

    name = "ray"

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        *,
        fresh_worker_per_task: bool = False,
    ) -> None:
        self._ray = _import_ray()
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.address = os.environ.get("RAY_ADDRESS") or address
        self.fresh_worker_per_task = fresh_worker_per_task
        self._started = False

    @property
    def is_local(self) -> bool:
        """True when this executor starts its own single-machine Ray."""
        return not self.address

    def start(self) -> None:
        """Start (or connect to) Ray unless this process is already connected."""
        ray = self._ray
        if ray.is_initialized():
            return
        options: dict[str, Any] = {
            "address": self.address,
            "include_dashboard": False,
            "ignore_reinit_error": True,
            "log_to_driver": False,
        }
        if self.is_local:
            options["num_cpus"] = self.workers
            # A private local instance needs no token; Ray 2.60 would otherwise create
            # ~/.ray/auth_token. A cluster keeps whatever authentication it was set up with.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            raise ConfigError(
                f"could not start {where}: {exc}. Check RAY_ADDRESS / the address, or use "
                "the 'process' executor",
                executor="ray",
                address=self.address,
            ) from exc
        self._started = True

    def shutdown(self) -> None:
        """Stop Ray if this executor started it."""
        if self._started:
            self._started = False
            self._ray.shutdown()

    def __enter__(self) -> RayExecutor:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown()

    def map(
        self,
        task: Callable[[Any], Any],
        items: Sequence[Any],
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        if not items:
            return []
        owns_session = not self._ray.is_initialized()
        self.start()
        try:
            return self._map(task, items, on_result)
        finally:
            if owns_session:
                self.shutdown()

    def _map(
        self,
        task: Callable[[Any], Any],
        items: Sequence[Any],
        on_result: Callable[[int, Any], None] | None,
    ) -> list[Any]:
        ray = self._ray
        remote = ray.remote(
            num_cpus=1,
            max_retries=0,
            retry_exceptions=False,
            # max_calls=1: the worker exits after its task, returning its memory to the OS.
            max_calls=1 if self.fresh_worker_per_task else 0,
        )(_call)
        task_ref = ray.put(task)  # shipped once, not once per item
        results: list[Any] = [None] * len(items)
        index_of: dict[Any, int] = {}
        done = 0
        pressed = threading.Event()
        previous = _catch_ctrl_c(pressed)
        try:
            for index, item in enumerate(items):
                index_of[remote.remote(task_ref, item)] = index
            pending = list(index_of)
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=_WAIT_SECONDS)
                if pressed.is_set():
                    raise KeyboardInterrupt
                for ref in ready:
                    index = index_of.pop(ref)
                    results[index] = self._result(ref, items[index])
                    done += 1
                    if on_result is not None:
                        on_result(index, results[index])
        except KeyboardInterrupt:
            self._cancel(index_of, force=True)
            raise _interrupted(done, len(items)) from None
        except BaseException:
            self._cancel(index_of, force=False)
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return results

    def _result(self, ref: Any, item: Any) -> Any:
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, TicklakeError):
                raise cause from None
            if isinstance(cause, KeyboardInterrupt):
                raise KeyboardInterrupt from None
            if isinstance(cause, BaseException):
                raise _task_failed(item, cause) from None
            raise _task_failed(item, exc) from None
        except ray.exceptions.WorkerCrashedError as exc:
            raise ExecutionError(
                f"worker for {_describe_item(item)} died before returning a result (killed, "
                f"or out of memory): {exc}",
                item=_describe_item(item),
            ) from None
        except ray.exceptions.RayError as exc:
            raise _task_failed(item, exc) from None

    def _cancel(self, index_of: dict[Any, int], *, force: bool) -> None:
        """Stop the tasks still in ``index_of`` and return once they have settled.

        ``force=True`` (Ctrl+C) kills the worker processes at once: a day task must not
        keep writing after the user asked to stop. After a task *failed*, the others are
        cancelled gently first (queued ones dropped, running ones interrupted) and only
        those still running after a grace period are killed. Ray delivers a force-kill to
        the worker asynchronously, and a kill meant for a task that just finished can land
        on the next task that worker runs; the gentle path never kills a reused worker.
        """
        ray = self._ray
        refs = list(index_of)
        index_of.clear()
        if not refs:
            return
        self._send_cancel(refs, force=force)
        _, unsettled = ray.wait(refs, num_returns=len(refs), timeout=_CANCEL_SETTLE_SECONDS)
        if unsettled and not force:
            self._send_cancel(unsettled, force=True)
            ray.wait(unsettled, num_returns=len(unsettled), timeout=_CANCEL_SETTLE_SECONDS)

    def _send_cancel(self, refs: list[Any], *, force: bool) -> None:
        for ref in refs:
            try:
                self._ray.cancel(ref, force=force)
            except Exception:  # already finished or gone: nothing to stop
                continue
