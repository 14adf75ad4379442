"""The online ETA model (``ticklake.backtest.eta``): hand cases, a simulated run, the prior."""

from __future__ import annotations

import heapq
import random
from pathlib import Path
from typing import Any

import pytest
from _engine_fixtures import GENERATED_DAYS, OPTIONS, copy_lake, generated_lake_root
from test_estimate import SPEC as ESTIMATE_SPEC

from ticklake.backtest.eta import (
    DEFAULT_PRIOR,
    SKIP_SECONDS,
    DayCostPrior,
    EtaModel,
    RunEta,
    prior_from_runs,
    resume_eta,
    run_eta,
)
from ticklake.backtest.run_ledger import plan_days
from ticklake.backtest.runner import run_backtest
from ticklake.backtest.spec import parse_spec
from ticklake.errors import ConfigError
from ticklake.lake import Lake

__all__ = ["generated_lake_root"]  # the session fixture, imported for pytest

# The estimate tests' straddle (the three generated days and trading days around them).
SPEC: dict[str, Any] = {**ESTIMATE_SPEC, "name": "eta_straddle"}
M = 1_000_000
NO_STARTUP = DayCostPrior(0.5, 1e-6, 0.0, "hand")


def test_serial_hand_case() -> None:
    # True cost 0.2 s + 0.5 s per M rows, first day +1.0 s warm-up: the days end at
    # 1.7, 3.4, 4.6, 6.8, 7.5 s.
    rows = [1 * M, 3 * M, 2 * M, 4 * M, 1 * M]
    model = EtaModel(rows, prior=DayCostPrior(0.5, 1e-6, 2.0, "hand"))
    # Prior: 2.0 start-up + (1.5 + 3.5 + 2.5 + 4.5 + 1.5).
    assert model.remaining_seconds(0.0) == pytest.approx(15.5)
    model.done(0, 1.7)  # a fresh day: its excess over the prior cost is the start-up
    assert model.fit.startup_seconds == pytest.approx(0.2)
    assert model.remaining_seconds(1.7) == pytest.approx(3.5 + 2.5 + 4.5 + 1.5)
    model.done(1, 3.4)  # one steady day, 3 M rows in 1.7 s: proportional
    assert model.fit.fixed_seconds == 0.0
    assert model.remaining_seconds(3.4) == pytest.approx(7 * M * 1.7 / (3 * M))
    model.done(2, 4.6)  # two steady days on a line: the true cost, exactly
    assert model.fit.fixed_seconds == pytest.approx(0.2)
    assert model.fit.per_row_seconds == pytest.approx(0.5e-6)
    assert model.remaining_seconds(4.6) == pytest.approx(2.2 + 0.7)
    assert model.remaining_seconds(5.6) == pytest.approx(1.2 + 0.7)  # 1 s into day 3
    # (The naive rate would say 4.6 s / 3 days × 2 days = 3.07 s here.)
    model.done(3, 6.8)
    model.done(4, 7.5)
    assert model.remaining_seconds(7.5) == 0.0


def test_two_lanes_hand_case() -> None:
    model = EtaModel([1 * M, 1 * M, 2 * M, 2 * M], lanes=2, prior=NO_STARTUP)
    # Days 0 and 1 run side by side (1.5 s each), days 2 and 3 follow (2.5 s each).
    assert model.remaining_seconds(0.0) == pytest.approx(1.5 + 2.5)
    model.done(0, 1.6)  # fresh worker: 0.1 s start-up; day 2 starts on lane 0
    assert model.fit.startup_seconds == pytest.approx(0.1)
    # Lane 1: day 1 has run 1.6 of 1.6 s, then day 3 (2.5 s); lane 0: day 2, 2.5 s.
    assert model.remaining_seconds(1.6) == pytest.approx(2.5)
    model.done(1, 1.8)  # start-up now the mean of 0.1 and 0.3
    assert model.fit.startup_seconds == pytest.approx(0.2)
    assert model.remaining_seconds(1.8) == pytest.approx(2.5)  # day 3, just started
    model.done(2, 4.6)  # steady: 2 M rows in 3.0 s, 1.5 s per M rows through 0
    assert model.fit.per_row_seconds == pytest.approx(1.5e-6)
    assert model.remaining_seconds(4.6) == pytest.approx(3.0 - (4.6 - 1.8))


def _simulate(
    rows: list[int],
    lanes: int,
    tasks_per_worker: int | None,
    *,
    fixed: float,
    per_row: float,
    startup: float,
    seed: int,
) -> list[tuple[float, int]]:
    """Completions ``(time, day)`` of a greedy in-order executor with noisy day costs."""
    noise = random.Random(seed)
    free: list[tuple[float, int]] = [(0.0, lane) for lane in range(lanes)]
    tasks: list[int | None] = [None] * lanes
    done = []
    for index, n in enumerate(rows):
        at, lane = heapq.heappop(free)
        fresh = tasks[lane] is None or (
            tasks_per_worker is not None and tasks[lane] == tasks_per_worker
        )
        tasks[lane] = 1 if fresh else (tasks[lane] or 0) + 1
        seconds = (fixed + per_row * n) * noise.uniform(0.9, 1.1) + (startup if fresh else 0.0)
        done.append((at + seconds, index))
        heapq.heappush(free, (at + seconds, lane))
    return sorted(done)


#: Four weeks of Monday … Friday: expiry Thursdays are the big days (1.3–4.8 M rows).
WEEKS = [1_300_000, 1_900_000, 2_600_000, 4_800_000, 1_500_000] * 4


@pytest.mark.parametrize(("lanes", "tasks_per_worker"), [(1, None), (2, 6)])
def test_beats_the_naive_rate_on_unequal_days(lanes: int, tasks_per_worker: int | None) -> None:
    rows = sorted(WEEKS[:10]) + WEEKS[10:]  # the small days first: a naive rate is fooled
    events = _simulate(
        rows, lanes, tasks_per_worker, fixed=0.15, per_row=6e-8, startup=2.5, seed=16
    )
    end = events[-1][0]
    prior = DayCostPrior(0.1, 1e-7, 4.0, "default-like")
    model = EtaModel(rows, lanes=lanes, prior=prior, tasks_per_worker=tasks_per_worker)
    model_errors, naive_errors = [], []
    for done, (now, index) in enumerate(events[:-1], start=1):
        model.done(index, now)
        truth = end - now
        predicted = model.remaining_seconds(now)
        naive = now / done * (len(rows) - done)
        if done >= 4:
            model_errors.append(abs(predicted - truth))
            naive_errors.append(abs(naive - truth))
            assert abs(predicted - truth) <= 0.2 * truth + 0.5, (done, predicted, truth)
    assert sum(model_errors) < 0.5 * sum(naive_errors)


def test_bad_inputs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="at least one lane"):
        EtaModel([M], lanes=0)
    with pytest.raises(ConfigError, match="one flag per day"):
        EtaModel([M, M], runnable=[True])


def test_run_eta_on_a_clock_adds_fields() -> None:
    clock = iter([10.0, 11.0, 11.0, 14.0]).__next__
    days = ["2024-01-01", "2024-01-02"]
    eta = RunEta(days, EtaModel([2 * M, 2 * M], prior=NO_STARTUP), clock=clock)
    seen = []
    progress = eta.wrap(seen.append)
    assert eta.fields()["eta_seconds"] == pytest.approx(2 * 2.5 - 1.0)  # 1 s into day 0
    progress({"days_done": 1, "day": "2024-01-01"})  # day 0 took 1 s: fresh, start-up 0
    progress({"days_done": 2, "day": "2024-01-02"})  # day 1 took 3 s
    assert [s["eta_seconds"] for s in seen] == [2.5, 0.0]
    assert seen[1]["elapsed_seconds"] == 4.0
    assert seen[1]["eta_model"]["source"] == "fit on 1 day(s)"
    assert seen[1]["days_done"] == 2


@pytest.fixture
def lake(generated_lake_root: Path, tmp_path: Path) -> Lake:
    return copy_lake(generated_lake_root, tmp_path / "lake")


def test_prior_comes_from_the_lakes_last_run(lake: Lake) -> None:
    spec = parse_spec(SPEC)
    assert prior_from_runs(lake) == DEFAULT_PRIOR  # no run yet
    run = run_backtest(lake, spec, executor="serial", use_cache=False)
    prior = prior_from_runs(lake)
    assert prior.source == f"run {run.run_id}"
    timed = [run.ledger["days"][d.isoformat()]["seconds"] for d in GENERATED_DAYS]
    # The prior prices a generated day within the range of the run's own day times.
    rows = {p.date: p.rows for p in lake.partitions(spec.universe.options_dataset)}
    typical = prior.fixed_seconds + prior.per_row_seconds * rows[GENERATED_DAYS[-1]]
    assert 0 < typical <= max(timed)
    assert prior_from_runs(lake, kind="sweep") == DEFAULT_PRIOR  # a different kind


def test_run_eta_reads_rows_and_skips_cached_days(lake: Lake) -> None:
    spec = parse_spec(SPEC)
    days = [d.isoformat() for d in plan_days(spec)]
    before = run_eta(lake, [spec], days, executor="serial", workers=None, use_cache=True)
    before_eta = before.fields()["eta_seconds"]  # at once: the clock runs
    rows = {p.date.isoformat(): p.rows for p in lake.partitions(spec.universe.options_dataset)}
    assert before.model.rows == [rows.get(d, 0) for d in days]
    assert sum(before.model.runnable) == len(GENERATED_DAYS)
    run_backtest(lake, spec, executor="serial", use_cache=True)  # fills the day cache
    after = run_eta(lake, [spec], days, executor="serial", workers=None, use_cache=True)
    after_eta = after.fields()["eta_seconds"]
    assert not any(after.model.runnable)
    # Every day is a cache copy now: the first day's start-up and a skip cost per day.
    assert after_eta == pytest.approx(
        DEFAULT_PRIOR.startup_seconds + SKIP_SECONDS * len(days), abs=0.1
    )
    assert before_eta > after_eta
    parallel = run_eta(lake, [spec], days, executor="process", workers=2, use_cache=False)
    assert parallel.model.lanes == 2
    assert parallel.model.tasks_per_worker == lake.settings.execution.day_tasks_per_worker
    assert sum(parallel.model.runnable) == len(GENERATED_DAYS)  # no cache look-up


def test_resume_eta_prices_the_days_not_done(lake: Lake) -> None:
    import json

    spec = parse_spec(SPEC)
    run = run_backtest(lake, spec, executor="serial", use_cache=False)
    ledger = json.loads((run.run_dir / "run.json").read_text())
    reopened = [d.isoformat() for d in GENERATED_DAYS[1:]]
    for day in reopened:
        ledger["days"][day] = {"status": "pending"}
    (run.run_dir / "run.json").write_text(json.dumps(ledger))
    eta = resume_eta(lake, run.run_dir, executor=None, workers=None)
    rows = {p.date.isoformat(): p.rows for p in lake.partitions(OPTIONS)}
    assert eta.model.rows == [rows[d] for d in reopened]
    assert eta.model.runnable == [True] * len(reopened)  # use_cache=False: nothing cached
    assert eta.model.prior.source == f"run {run.run_id}"
