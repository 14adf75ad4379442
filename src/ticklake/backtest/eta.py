"""The ETA of a running backtest or sweep, from the same day-cost model as the estimate.

:class:`EtaModel` is pure (no clock, no I/O): it is told the option rows of every day
task in dispatch order, the number of lanes (1 serial, N process workers) and a prior
day cost, then each completion with its time. It predicts the remaining wall time as
the run would spend it, not as ``elapsed / done × remaining`` (days differ 1.3–4.8 M
rows; expiry days are the big ones):

* **Who runs what, when.** The executors hand the day tasks out in order to the first
  free lane (:class:`~ticklake.execution.local.ProcessExecutor`), so the first
  ``lanes`` days start at 0 and the ``k``-th completion starts the next day in order,
  on the lane it freed. A completed day's own duration is therefore known exactly:
  completion time minus its start. A lane's first day, and its first day after the
  worker was replaced (``tasks_per_worker``), runs on a **fresh** worker.
* **Fit.** ``fixed + per_row × rows`` (:func:`~ticklake.backtest.estimate.fit_day_cost`)
  on the completed steady (not fresh) days; before there is one, the prior's. A fresh
  day's excess over that cost is the worker start-up (the mean of them; before the
  first, the prior's). Days the engine skips without loading (no data, weekday not
  selected, cached) cost the mean of those seen (prior: :data:`SKIP_SECONDS`).
* **Remaining.** Each day in flight still needs its predicted cost minus what it has
  run; the days not started are dealt out to the lanes as they free up (list
  scheduling, start-up added where a worker is replaced); the ETA is when the last
  lane finishes.

* **Tail.** What a run does after its last day (closing the workers, the run's final
  files) is a constant per executor, :data:`~ticklake.backtest.estimate.TAIL_SECONDS`,
  as in the estimate.

Left out: load on the machine that changes during the run (the fit follows it only as
days complete).
:class:`RunEta` puts the model on a clock and turns the library's ``progress`` states
into ``eta_seconds`` / ``elapsed_seconds`` / ``eta_model`` fields; :func:`run_eta`
builds one for a run from the lake's manifests and its last recorded run (the prior).
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from ticklake.backtest.engine import WEEKDAY_NAMES
from ticklake.backtest.estimate import TAIL_SECONDS, day_cost, fit_day_cost, plan_day_rows
from ticklake.backtest.run_ledger import RUNS_DIR
from ticklake.backtest.spec import StrategySpec, parse_spec
from ticklake.errors import ConfigError
from ticklake.lake import Lake

#: Seconds of a day task that loads nothing (no data, weekday not selected, cached).
SKIP_SECONDS = 0.02

#: Completions after which the model refits on every tenth day only (a fit is O(days)).
REFIT_EVERY_DAY_UNTIL = 100
#: How many recent runs :func:`prior_from_runs` opens before it settles for the default.
PRIOR_RUNS_LOOKED_AT = 20


@dataclass(frozen=True)
class DayCostPrior:
    """A day's cost before any day of this run has finished (seconds)."""

    fixed_seconds: float
    per_row_seconds: float
    startup_seconds: float  # a fresh worker's (or, serial, the first day's) extra cost
    source: str


#: When the lake has no run to learn from: about 2× the development machine's figures
#: (0.05 s per M rows, 0.1 s a day, a spawned worker 3.8 s), so the first ETA is high.
DEFAULT_PRIOR = DayCostPrior(0.1, 1e-7, 4.0, "default")


@dataclass(frozen=True)
class DayCostFit:
    """The model's current figures, and how many completed days they come from."""

    fixed_seconds: float
    per_row_seconds: float
    startup_seconds: float
    skip_seconds: float
    fitted_days: int
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "fixed_seconds": round(self.fixed_seconds, 4),
            "per_row_seconds": self.per_row_seconds,
            "startup_seconds": round(self.startup_seconds, 3),
            "fitted_days": self.fitted_days,
            "source": self.source,
        }


class EtaModel:
    """Remaining wall time of a run of day tasks (see the module docstring).

    Examples:
        >>> rows = [1_000_000, 3_000_000, 2_000_000]
        >>> model = EtaModel(rows, prior=DayCostPrior(0.5, 1e-6, 0.0, "x"))
        >>> model.remaining_seconds(0.0)  # the prior: 1.5 + 3.5 + 2.5
        7.5
        >>> model.done(0, 1.0)  # the lane's first day (a fresh worker's) is not fitted
        >>> round(model.remaining_seconds(1.0), 6)
        6.0
        >>> model.done(1, 3.0)  # 3 M rows in 2 s: fitted through 0, 2/3 s per M rows
        >>> round(model.remaining_seconds(3.0), 6)
        1.333333
    """

    def __init__(
        self,
        rows: Sequence[int],
        *,
        lanes: int = 1,
        prior: DayCostPrior = DEFAULT_PRIOR,
        runnable: Sequence[bool] | None = None,
        tasks_per_worker: int | None = None,
        now: float = 0.0,
        tail_seconds: float = 0.0,
    ) -> None:
        if lanes < 1:
            raise ConfigError(f"an ETA needs at least one lane, got {lanes}")
        self.rows = [int(r) for r in rows]
        self.runnable = list(runnable) if runnable is not None else [r > 0 for r in self.rows]
        if len(self.runnable) != len(self.rows):
            raise ConfigError("runnable must have one flag per day")
        self.lanes = lanes
        self.prior = prior
        self.tasks_per_worker = tasks_per_worker
        self.tail_seconds = tail_seconds
        self._last_done_at = now
        self._start: list[float | None] = [None] * len(self.rows)
        self._duration: list[float | None] = [None] * len(self.rows)
        self._lane = [-1] * len(self.rows)
        self._fresh = [False] * len(self.rows)
        self._running: dict[int, int] = {}  # lane -> day index in flight
        self._worker_tasks: list[int | None] = [None] * lanes  # None: no worker yet
        self._next = 0
        self.done_count = 0
        self._fit = DayCostFit(
            prior.fixed_seconds, prior.per_row_seconds, prior.startup_seconds,
            SKIP_SECONDS, 0, f"prior ({prior.source})",
        )  # fmt: skip
        for lane in range(lanes):
            self._dispatch(lane, now)

    @property
    def fit(self) -> DayCostFit:
        return self._fit

    def _fresh_on(self, tasks: int | None) -> bool:
        return tasks is None or (
            self.tasks_per_worker is not None and tasks >= self.tasks_per_worker
        )

    def _dispatch(self, lane: int, now: float) -> None:
        if self._next >= len(self.rows):
            return
        index, self._next = self._next, self._next + 1
        tasks = self._worker_tasks[lane]
        fresh = self._fresh_on(tasks)
        self._worker_tasks[lane] = 1 if fresh or tasks is None else tasks + 1
        self._start[index], self._lane[index], self._fresh[index] = now, lane, fresh
        self._running[lane] = index

    def done(self, index: int, now: float) -> None:
        """Day ``index`` finished at ``now``: record its duration, start the next day."""
        start = self._start[index]
        if start is None or self._duration[index] is not None:
            return  # not dispatched by this model (or told twice): nothing to learn
        self._duration[index] = max(0.0, now - start)
        self.done_count += 1
        self._last_done_at = max(self._last_done_at, now)
        lane = self._lane[index]
        if self._running.get(lane) == index:
            del self._running[lane]
        self._dispatch(lane, now)
        # Refitting is O(days done): after the first hundred, every tenth day is enough.
        if self.done_count <= REFIT_EVERY_DAY_UNTIL or self.done_count % 10 == 0:
            self._refit()

    def _refit(self) -> None:
        steady, fresh, skipped = [], [], []
        for i, seconds in enumerate(self._duration):
            if seconds is None:
                continue
            if self._fresh[i]:
                fresh.append(i)
            elif self.runnable[i]:
                steady.append((self.rows[i], seconds))
            else:
                skipped.append(seconds)
        fixed, per_row = self.prior.fixed_seconds, self.prior.per_row_seconds
        source = f"prior ({self.prior.source})"
        if steady:
            fixed, per_row = fit_day_cost(steady)
            source = f"fit on {len(steady)} day(s)"
        skip = sum(skipped) / len(skipped) if skipped else SKIP_SECONDS
        startup = self.prior.startup_seconds
        if fresh:
            excess = []
            for i in fresh:
                steady_cost = day_cost(fixed, per_row, self.rows[i]) if self.runnable[i] else skip
                excess.append(max(0.0, (self._duration[i] or 0.0) - steady_cost))
            startup = sum(excess) / len(excess)
        self._fit = DayCostFit(fixed, per_row, startup, skip, len(steady), source)

    def cost(self, index: int, *, fresh: bool) -> float:
        """Predicted seconds of day ``index`` (plus the start-up on a fresh worker)."""
        fit = self._fit
        steady = (
            day_cost(fit.fixed_seconds, fit.per_row_seconds, self.rows[index])
            if self.runnable[index]
            else fit.skip_seconds
        )
        return steady + (fit.startup_seconds if fresh else 0.0)

    def remaining_seconds(self, now: float) -> float:
        """Predicted wall seconds from ``now`` until the run ends.

        Until the last day finishes, plus ``tail_seconds`` (what a run does after it);
        once every day is done, what is left of the tail.
        """
        if self.done_count >= len(self.rows):
            return max(0.0, self.tail_seconds - (now - self._last_done_at))
        return self._days_seconds(now) + self.tail_seconds

    def _days_seconds(self, now: float) -> float:
        """Predicted wall seconds from ``now`` until the last day finishes."""
        lanes: list[tuple[float, int]] = []
        for lane in range(self.lanes):
            index = self._running.get(lane)
            left = 0.0
            started = None if index is None else self._start[index]
            if index is not None and started is not None:
                ran = now - started
                left = max(0.0, self.cost(index, fresh=self._fresh[index]) - ran)
            lanes.append((left, lane))
        heapq.heapify(lanes)
        tasks = list(self._worker_tasks)
        for index in range(self._next, len(self.rows)):
            free_at, lane = heapq.heappop(lanes)
            fresh = self._fresh_on(tasks[lane])
            tasks[lane] = 1 if fresh or tasks[lane] is None else (tasks[lane] or 0) + 1
            heapq.heappush(lanes, (free_at + self.cost(index, fresh=fresh), lane))
        return max(free_at for free_at, _ in lanes)


class RunEta:
    """An :class:`EtaModel` on a clock, fed by a run's ``progress`` states (``"day"``)."""

    def __init__(
        self,
        days: Sequence[str],
        model: EtaModel,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self._index = {d: i for i, d in enumerate(days)}
        self._clock = clock
        self._started = clock()

    def fields(self) -> dict[str, Any]:
        """``eta_seconds``, ``elapsed_seconds`` and ``eta_model`` as of now."""
        return self._fields(self._clock() - self._started)

    def _fields(self, elapsed: float) -> dict[str, Any]:
        return {
            "eta_seconds": round(self.model.remaining_seconds(elapsed), 1),
            "elapsed_seconds": round(elapsed, 1),
            "eta_model": self.model.fit.as_dict(),
        }

    def observe(self, state: dict[str, Any]) -> dict[str, Any]:
        """Record the day a progress state reports as done; return the ETA fields."""
        elapsed = self._clock() - self._started
        index = self._index.get(str(state.get("day")))
        if index is not None:
            self.model.done(index, elapsed)
        return self._fields(elapsed)

    def wrap(self, progress: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
        """A progress callback passing each state on with the ETA fields added."""
        return lambda state: progress({**state, **self.observe(state)})


def prior_from_runs(lake: Lake, *, kind: str = "backtest", variants: int = 1) -> DayCostPrior:
    """The day cost of the lake's most recent run of this ``kind`` (else the default).

    Fitted on that run's days that loaded data (``seconds`` in its ledger, rows from the
    manifests), leaving out each worker's first day (kernel warm-up). A sweep's cost is
    scaled by the ratio of variant counts (an upper bound: a day loads once for all).
    """
    runs = sorted(
        (lake.root / RUNS_DIR).glob("*/run.json"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for path in runs[:PRIOR_RUNS_LOOKED_AT]:
        prior = _prior_of(lake, path, kind, variants)
        if prior is not None:
            return prior
    return DEFAULT_PRIOR


def _prior_of(lake: Lake, path: Path, kind: str, variants: int) -> DayCostPrior | None:
    try:
        ledger = json.loads(path.read_text())
        if ledger.get("kind", "backtest") != kind:
            return None
        spec = parse_spec(json.loads((path.parent / "spec.json").read_text()))
        manifests = {
            p.date.isoformat(): p.rows for p in lake.partitions(spec.universe.options_dataset)
        }
    except (OSError, ValueError, TypeError, KeyError, ConfigError):
        return None  # unreadable, foreign or of a dataset gone since: not a prior
    timed = [
        (manifests[day], float(entry["seconds"]))
        for day, entry in sorted(ledger.get("days", {}).items())
        if entry.get("status") == "done"
        and not entry.get("cached")
        and manifests.get(day, 0) > 0
        and WEEKDAY_NAMES[date.fromisoformat(day).weekday()] in spec.time.weekdays
        and isinstance(entry.get("seconds"), int | float)
    ]
    lanes = 1 if ledger.get("executor") == "serial" else int(ledger.get("workers") or 1)
    if len(timed) > lanes:
        timed = timed[lanes:]  # each worker's first day carries the kernel warm-up
    if not timed:
        return None
    fixed, per_row = fit_day_cost(timed)
    scale = max(1.0, variants / int(ledger.get("variants") or 1)) if kind == "sweep" else 1.0
    source = f"run {ledger.get('run_id', path.parent.name)}"
    return replace(DEFAULT_PRIOR, fixed_seconds=fixed * scale, per_row_seconds=per_row * scale,
                   source=source)  # fmt: skip


def run_eta(
    lake: Lake,
    specs: Sequence[StrategySpec],
    days: Sequence[str],
    *,
    executor: str | None,
    workers: int | None,
    use_cache: bool,
    kind: str = "backtest",
    clock: Callable[[], float] = time.monotonic,
) -> RunEta:
    """The ETA of a run whose pending ``days`` (ISO, the run's order) run ``specs``.

    ``executor`` and ``workers`` resolve as the runner resolves them (the lake's
    settings when None). A single strategy's cached days are found as the runner finds
    them; a sweep's are not looked up (its cache is per day and variant set).
    """
    settings = lake.settings.execution
    name = executor or settings.executor
    lanes = 1 if name == "serial" else max(1, workers or settings.workers)
    planned = [date.fromisoformat(d) for d in days]
    rows, runnable, _ = plan_day_rows(
        lake, specs, planned, check_cache=use_cache and kind == "backtest" and len(specs) == 1
    )
    model = EtaModel(
        rows,
        lanes=lanes,
        prior=prior_from_runs(lake, kind=kind, variants=len(specs)),
        runnable=runnable,
        tasks_per_worker=None if name == "serial" else settings.day_tasks_per_worker,
        tail_seconds=TAIL_SECONDS["serial" if name == "serial" else "pool"],
    )
    return RunEta(days, model, clock=clock)


def resume_eta(
    lake: Lake,
    run_dir: Path,
    *,
    executor: str | None,
    workers: int | None,
    clock: Callable[[], float] = time.monotonic,
) -> RunEta:
    """The ETA of resuming the run in ``run_dir``: its days not done, in the run's order."""
    ledger = json.loads((run_dir / "run.json").read_text())
    pending = sorted(d for d, e in ledger["days"].items() if e.get("status") != "done")
    if (run_dir / "sweep.json").is_file():
        info = json.loads((run_dir / "sweep.json").read_text())
        specs = [parse_spec(s) for s in info["specs"]]
        kind = "sweep"
    else:
        specs = [parse_spec(json.loads((run_dir / "spec.json").read_text()))]
        kind = "backtest"
    return run_eta(
        lake, specs, pending, executor=executor, workers=workers, use_cache=True, kind=kind,
        clock=clock,
    )  # fmt: skip


__all__ = [
    "DEFAULT_PRIOR",
    "PRIOR_RUNS_LOOKED_AT",
    "SKIP_SECONDS",
    "DayCostFit",
    "DayCostPrior",
    "EtaModel",
    "RunEta",
    "prior_from_runs",
    "resume_eta",
    "run_eta",
]
