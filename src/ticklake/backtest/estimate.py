"""An honest ETA for a backtest: time a few days of the user's own lake, extrapolate.

:func:`estimate_run` plans the days exactly as :func:`~ticklake.backtest.runner.run_backtest`
does (:func:`~ticklake.backtest.run_ledger.plan_days`), reads each day's option rows from
the partition manifests (no data is read), times the engine's per-day work on a few
sampled days and predicts the run's wall time per executor and worker count.

The model (every figure in seconds):

* **Day cost** ``t(rows) = fixed + per_row × rows``, fitted by least squares on the
  sampled days' wall times (one sample, or samples of equal rows: proportional,
  ``per_row = t / rows``). A negative ``fixed`` (noise) falls back to the proportional
  fit through the origin. A day the engine skips before loading anything — no option
  partition, a weekday the spec does not select — costs 0; a day already in the run
  cache (``<lake>/cache/backtest/``, same cache key) costs 0 too (the runner copies it).
* **Serial**: ``Σ t(rows_d)`` over the planned days, in a process that has already
  imported the engine and warmed its kernels (this one, after the warm-up run; a fresh
  ``ticklake backtest run`` adds its own start-up once, see ``worker_startup_seconds``).
* **Process, N workers**: days are handed to the first free worker, so
  ``max(Σ t / N, max t) + ceil(S / N) × startup`` where ``S = max(N, ceil(days /
  day_tasks_per_worker))`` worker processes are started (each replaced after
  ``execution.day_tasks_per_worker`` days) and ``startup`` is the measured wall time of
  one fresh spawned worker (interpreter, imports, first-day kernel warm-up) beyond the
  steady cost of its day. Ray uses the same model; starting the Ray cluster is not in it.

What the model leaves out: the runner's own output writes and hashes per day (small next
to loading a day), the final concatenation of the run's files, and machine load.
Sample days are timing runs only: nothing is written (no run directory, ledger or cache).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date

from ticklake.backtest.engine import WEEKDAY_NAMES, run_day
from ticklake.backtest.run_ledger import CACHE_DIR, _input_hashes, plan_days
from ticklake.backtest.runner import cache_key
from ticklake.backtest.spec import StrategySpec, parse_spec, spec_document
from ticklake.errors import ConfigError
from ticklake.lake import Lake, open_lake

#: Executors (and worker counts) predicted by default.
DEFAULT_EXECUTORS: tuple[tuple[str, int], ...] = (("serial", 1), ("process", 2))


@dataclass(frozen=True)
class SampleTiming:
    """One sampled day: its option rows and what running it cost."""

    day: date
    rows: int
    wall_seconds: float
    cpu_seconds: float


@dataclass(frozen=True)
class Prediction:
    """Predicted wall time of the whole run on one executor with ``workers`` workers."""

    executor: str
    workers: int
    wall_seconds: float
    startup_seconds: float  # the part of wall_seconds spent starting worker processes


@dataclass(frozen=True)
class Estimate:
    """What :func:`estimate_run` found and predicts (see the module docstring's model)."""

    spec_name: str
    days: tuple[date, ...]  # every day the run plans, as run_backtest does
    rows: tuple[int, ...]  # option rows of each planned day (manifests; 0 = no partition)
    runnable: tuple[bool, ...]  # the engine loads the day (data, weekday selected, no cache)
    cached_days: tuple[date, ...]
    samples: tuple[SampleTiming, ...]
    fixed_seconds: float
    per_row_seconds: float
    worker_startup_seconds: float
    predictions: tuple[Prediction, ...]

    @property
    def data_days(self) -> int:
        return sum(1 for r in self.rows if r > 0)

    @property
    def total_rows(self) -> int:
        return sum(self.rows)

    def day_seconds(self) -> list[float]:
        """The modelled cost of each planned day (0 for a day the engine skips)."""
        return [
            day_cost(self.fixed_seconds, self.per_row_seconds, rows) if run else 0.0
            for rows, run in zip(self.rows, self.runnable, strict=True)
        ]

    def prediction(self, executor: str, workers: int = 1) -> Prediction:
        for p in self.predictions:
            if p.executor == executor and p.workers == workers:
                return p
        raise KeyError((executor, workers))


def day_cost(fixed: float, per_row: float, rows: int) -> float:
    return fixed + per_row * rows


def fit_day_cost(samples: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares ``(fixed, per_row)`` of ``seconds = fixed + per_row × rows``.

    Examples:
        >>> fixed, per_row = fit_day_cost([(1_000_000, 1.5), (3_000_000, 3.5)])
        >>> round(fixed, 9), round(per_row, 12)
        (0.5, 1e-06)
        >>> fit_day_cost([(2_000_000, 4.0)])
        (0.0, 2e-06)
    """
    if not samples:
        raise ConfigError("fit_day_cost needs at least one (rows, seconds) sample")
    n = len(samples)
    xs = [float(r) for r, _ in samples]
    ys = [float(s) for _, s in samples]
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx > 0:
        per_row = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
        fixed = mean_y - per_row * mean_x
        if fixed >= 0 and per_row >= 0:
            return fixed, per_row
        if per_row < 0:  # noise swamps the slope: every day costs the mean
            return mean_y, 0.0
    # Proportional (through the origin): one sample, equal rows, or a negative intercept.
    sum_xx = sum(x * x for x in xs)
    if sum_xx == 0:
        return mean_y, 0.0
    return 0.0, sum(x * y for x, y in zip(xs, ys, strict=True)) / sum_xx


def pick_samples(days: Sequence[date], rows: Sequence[int], count: int) -> list[int]:
    """Indexes of ``count`` days spread by rows: the fewest, the median, the most, ...

    Examples:
        >>> d = [date(2024, 1, i) for i in range(1, 6)]
        >>> pick_samples(d, [50, 10, 30, 40, 20], 3)
        [1, 2, 0]
    """
    order = sorted(range(len(days)), key=lambda i: (rows[i], days[i]))
    if count >= len(order):
        return order
    if count == 1:
        return [order[len(order) // 2]]
    picks = [order[round(k * (len(order) - 1) / (count - 1))] for k in range(count)]
    return list(dict.fromkeys(picks))


def plan_day_rows(
    lake: Lake, specs: Sequence[StrategySpec], days: Sequence[date], *, check_cache: bool = True
) -> tuple[list[int], list[bool], list[date]]:
    """Each day's option rows (manifests), whether the engine loads it, and the cached days.

    A day loads when it has rows and a spec selects its weekday; with ``check_cache``
    (one spec), a day whose result is in the run cache (same key) does not.
    """
    wanted = set(days)
    dataset = specs[0].universe.options_dataset
    manifests = {p.date: p.rows for p in lake.partitions(dataset) if p.date in wanted}
    weekdays = {w for spec in specs for w in spec.time.weekdays}
    rows = [manifests.get(d, 0) for d in days]
    cache_root = lake.root / CACHE_DIR
    cached: list[date] = []
    runnable: list[bool] = []
    for d, r in zip(days, rows, strict=True):
        selected = r > 0 and WEEKDAY_NAMES[d.weekday()] in weekdays
        if selected and check_cache:
            key = cache_key(specs[0], d, _input_hashes(lake, specs[0], d))
            if (cache_root / key[:2] / key / "summary.json").is_file():
                cached.append(d)
                selected = False
        runnable.append(selected)
    return rows, runnable, cached


def _time_day(lake: Lake, spec: StrategySpec, day: date) -> tuple[float, float]:
    """Wall and CPU seconds of a day's work in a runner task, without writing anything."""
    wall, cpu = time.perf_counter(), time.process_time()
    cache_key(spec, day, _input_hashes(lake, spec, day))
    run_day(lake, spec, day)
    return time.perf_counter() - wall, time.process_time() - cpu


def _fresh_worker_day(lake_root: str, spec_json: str, day: str) -> float:
    """Run in a spawned worker: open the lake and run one day (as a fresh day task)."""
    lake = open_lake(lake_root)
    run_day(lake, parse_spec(json.loads(spec_json)), date.fromisoformat(day))
    return 0.0


def measure_worker_startup(lake: Lake, spec: StrategySpec, day: date, steady: float) -> float:
    """Wall seconds a fresh spawned worker spends before its first day's steady work."""
    spec_json = json.dumps(spec_document(spec), sort_keys=True)
    started = time.perf_counter()
    spawn = mp.get_context("spawn")  # the process executor's start method
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        pool.submit(_fresh_worker_day, str(lake.root), spec_json, day.isoformat()).result()
    return max(0.0, time.perf_counter() - started - steady)


#: Seconds a run takes after its last day completes (closing the executor, the run's
#: final files), by executor: measured with ``benchmarks/bench_estimate.py`` (20 days,
#: 2026-12-08): 0.04 s serial, 1.04 s on 2 process workers.
TAIL_SECONDS = {"serial": 0.05, "pool": 1.0}


def predict_wall(
    costs: Sequence[float],
    executor: str,
    workers: int,
    *,
    startup: float,
    tasks_per_worker: int,
) -> Prediction:
    """The run's wall time from its per-day costs (the module docstring's model)."""
    total = sum(costs)
    if not costs:
        return Prediction(executor, workers, 0.0, 0.0)
    if executor == "serial":
        return Prediction(executor, workers, total + TAIL_SECONDS["serial"], 0.0)
    if executor not in ("process", "ray"):
        raise ConfigError(f"unknown executor {executor!r}: use serial, process or ray")
    lanes = max(1, min(workers, len(costs)))
    starts = max(lanes, math.ceil(len(costs) / tasks_per_worker))
    start_cost = math.ceil(starts / lanes) * startup
    wall = max(total / lanes, max(costs)) + start_cost + TAIL_SECONDS["pool"]
    return Prediction(executor, workers, wall, start_cost)


def estimate_run(
    lake: Lake,
    spec: StrategySpec,
    *,
    sample_days: int = 3,
    executors: Sequence[tuple[str, int]] = DEFAULT_EXECUTORS,
    worker_startup_seconds: float | None = None,
) -> Estimate:
    """Predict the wall time of ``run_backtest(lake, spec)`` per executor and worker count.

    ``sample_days`` days are run (timing only, nothing written) after one warm-up run;
    ``worker_startup_seconds`` (None: measured by spawning one worker, only when a
    parallel executor is asked for) is a fresh worker's start-up cost.
    """
    if sample_days < 1:
        raise ConfigError(f"sample_days must be at least 1, got {sample_days}")
    days = plan_days(spec)
    rows, runnable, cached = plan_day_rows(lake, [spec], days)
    if not any(rows):
        dataset = spec.universe.options_dataset
        raise ConfigError(
            f"no data days: {dataset!r} has no partition with rows between "
            f"{spec.time.start} and {spec.time.end} ({len(days)} trading days planned); "
            "ingest those days or change time.start/time.end (`ticklake lake ls` lists them)",
            dataset=dataset,
        )
    candidates = [i for i, run in enumerate(runnable) if run]
    if not candidates:  # every data day is cached or on an unselected weekday
        return _estimate(spec, days, rows, runnable, cached, [], 0.0, 0.0, 0.0, executors, lake)
    picks = pick_samples([days[i] for i in candidates], [rows[i] for i in candidates], sample_days)
    sample_index = [candidates[i] for i in picks]
    _time_day(lake, spec, days[sample_index[0]])  # warm-up: imports, kernel cache, first call
    samples = []
    for i in sorted(sample_index, key=lambda i: days[i]):
        wall, cpu = _time_day(lake, spec, days[i])
        samples.append(SampleTiming(days[i], rows[i], wall, cpu))
    fixed, per_row = fit_day_cost([(s.rows, s.wall_seconds) for s in samples])
    startup = worker_startup_seconds
    if startup is None:
        startup = 0.0
        if any(name != "serial" for name, _ in executors):
            smallest = min(samples, key=lambda s: s.rows)
            startup = measure_worker_startup(lake, spec, smallest.day, smallest.wall_seconds)
    return _estimate(
        spec, days, rows, runnable, cached, samples, fixed, per_row, startup, executors, lake
    )


def _estimate(
    spec: StrategySpec,
    days: list[date],
    rows: list[int],
    runnable: list[bool],
    cached: list[date],
    samples: list[SampleTiming],
    fixed: float,
    per_row: float,
    startup: float,
    executors: Sequence[tuple[str, int]],
    lake: Lake,
) -> Estimate:
    costs = [day_cost(fixed, per_row, r) for r, run in zip(rows, runnable, strict=True) if run]
    per_worker = lake.settings.execution.day_tasks_per_worker
    predictions = tuple(
        predict_wall(costs, name, workers, startup=startup, tasks_per_worker=per_worker)
        for name, workers in executors
    )
    return Estimate(
        spec_name=spec.name,
        days=tuple(days),
        rows=tuple(rows),
        runnable=tuple(runnable),
        cached_days=tuple(cached),
        samples=tuple(samples),
        fixed_seconds=fixed,
        per_row_seconds=per_row,
        worker_startup_seconds=startup,
        predictions=predictions,
    )


__all__ = [
    "DEFAULT_EXECUTORS",
    "TAIL_SECONDS",
    "Estimate",
    "Prediction",
    "SampleTiming",
    "day_cost",
    "estimate_run",
    "fit_day_cost",
    "measure_worker_startup",
    "pick_samples",
    "plan_day_rows",
    "predict_wall",
]
