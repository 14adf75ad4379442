"""``estimate_run`` and ``ticklake backtest estimate``: the days, rows, fit and ETA model."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from _engine_fixtures import (
    GENERATED_DAYS,
    OPTIONS,
    SPOT,
    copy_lake,
    generated_lake_root,
    merge,
)
from typer.testing import CliRunner

from ticklake.backtest.estimate import (
    TAIL_SECONDS,
    estimate_run,
    fit_day_cost,
    pick_samples,
    predict_wall,
)
from ticklake.backtest.runner import run_backtest
from ticklake.backtest.spec import parse_spec
from ticklake.cli import app
from ticklake.errors import ConfigError
from ticklake.lake import Lake

__all__ = ["generated_lake_root"]  # the session fixture, imported for pytest

#: Friday to Friday: the three generated days plus trading days without data around them.
SPEC: dict[str, Any] = {
    "name": "estimate_straddle",
    "universe": {"underlying": "BANKNIFTY", "options_dataset": OPTIONS, "underlying_dataset": SPOT},
    "time": {
        "start": "2024-01-05",
        "end": "2024-01-12",
        "entry_windows": ["09:20-09:25"],
        "exit_time": "15:20",
    },
    "legs": [
        {"name": "ce", "opt_type": "CE", "side": "sell"},
        {"name": "pe", "opt_type": "PE", "side": "sell"},
    ],
}


@pytest.fixture
def lake(generated_lake_root: Path, tmp_path: Path) -> Lake:
    return copy_lake(generated_lake_root, tmp_path / "lake")


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_days_equal_what_run_backtest_runs(lake: Lake) -> None:
    spec = parse_spec(SPEC)
    result = estimate_run(lake, spec, sample_days=1, executors=(("serial", 1),))
    run = run_backtest(lake, spec, executor="serial", use_cache=False)
    assert [d.isoformat() for d in result.days] == sorted(run.ledger["days"])
    assert set(GENERATED_DAYS) < set(result.days)  # days without data are planned too
    assert result.data_days == len(GENERATED_DAYS)


def test_rows_per_day_are_the_files_rows(lake: Lake) -> None:
    result = estimate_run(lake, parse_spec(SPEC), sample_days=1, executors=(("serial", 1),))
    base = lake.root / "bronze" / OPTIONS
    expected = {}
    for data in base.rglob("data.parquet"):
        day = date.fromisoformat(data.parent.name.split("=")[-1])
        expected[day] = pq.ParquetFile(data).metadata.num_rows
    assert set(expected) == set(GENERATED_DAYS)
    for day, rows in zip(result.days, result.rows, strict=True):
        assert rows == expected.get(day, 0), day
    assert result.total_rows == sum(expected.values()) > 0


def test_fit_is_exact_on_a_hand_case() -> None:
    rows = [1_000_000, 2_500_000, 4_000_000, 7_000_000]
    fixed, per_row = fit_day_cost([(r, 0.5 + 1e-6 * r) for r in rows])
    assert fixed == pytest.approx(0.5, abs=1e-9)
    assert per_row == pytest.approx(1e-6, rel=1e-9)
    assert fit_day_cost([(2_000_000, 3.0)]) == (0.0, pytest.approx(1.5e-6))  # proportional
    assert fit_day_cost([(0, 0.2), (0, 0.4)]) == (pytest.approx(0.3), 0.0)


def test_samples_spread_by_rows() -> None:
    days = [date(2024, 1, d) for d in range(1, 8)]
    rows = [70, 10, 40, 20, 60, 30, 50]
    picked = pick_samples(days, rows, 3)
    assert [rows[i] for i in picked] == [10, 40, 70]
    assert len(pick_samples(days, rows, 10)) == len(days)


def test_wall_model_per_executor() -> None:
    costs = [1.0] * 10
    serial = predict_wall(costs, "serial", 1, startup=5.0, tasks_per_worker=100)
    serial_tail, pool_tail = TAIL_SECONDS["serial"], TAIL_SECONDS["pool"]
    assert serial.wall_seconds == pytest.approx(10.0 + serial_tail)
    assert serial.startup_seconds == 0.0
    two = predict_wall(costs, "process", 2, startup=2.0, tasks_per_worker=100)
    assert two.wall_seconds == pytest.approx(5.0 + 2.0 + pool_tail)
    # A fresh worker per 3 days: 4 workers started over 2 lanes, 2 start-ups per lane.
    fresh = predict_wall(costs, "process", 2, startup=2.0, tasks_per_worker=3)
    assert fresh.wall_seconds == pytest.approx(5.0 + 4.0 + pool_tail)
    # One long day bounds the parallel wall from below.
    long = predict_wall([9.0, 1.0], "process", 2, startup=0.0, tasks_per_worker=100)
    assert long.wall_seconds == pytest.approx(9.0 + pool_tail)
    with pytest.raises(ConfigError, match="unknown executor"):
        predict_wall(costs, "threads", 2, startup=0.0, tasks_per_worker=100)


def test_estimate_writes_nothing(lake: Lake) -> None:
    before = _files(lake.root)
    result = estimate_run(lake, parse_spec(SPEC), sample_days=3, worker_startup_seconds=1.5)
    assert _files(lake.root) == before
    assert not (lake.root / "runs").exists() or not any((lake.root / "runs").iterdir())
    assert len(result.samples) == 3 and all(s.wall_seconds > 0 for s in result.samples)
    assert {s.day for s in result.samples} == set(GENERATED_DAYS)
    serial = result.prediction("serial", 1)
    days = sum(result.day_seconds())
    assert serial.wall_seconds == pytest.approx(days + TAIL_SECONDS["serial"])
    process = result.prediction("process", 2)
    assert process.startup_seconds == 1.5
    assert process.wall_seconds == pytest.approx(
        max(days / 2, max(result.day_seconds())) + 1.5 + TAIL_SECONDS["pool"]
    )


def test_cached_days_cost_nothing(lake: Lake) -> None:
    spec = parse_spec(SPEC)
    run_backtest(lake, spec, executor="serial")  # fills the day cache
    result = estimate_run(lake, spec, executors=(("serial", 1),))
    assert set(result.cached_days) == set(GENERATED_DAYS)
    assert result.samples == () and result.prediction("serial").wall_seconds == 0.0


def test_no_data_days_is_a_clear_error(lake: Lake) -> None:
    spec = parse_spec(merge(SPEC, {"time": {"start": "2023-06-01", "end": "2023-06-30"}}))
    with pytest.raises(ConfigError, match="no data days") as info:
        estimate_run(lake, spec)
    assert OPTIONS in str(info.value) and "2023-06-01" in str(info.value)


def test_cli_prints_the_table(lake: Lake, tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    args = ["backtest", "estimate", str(path), "--sample-days", "2", "--workers", "2"]
    result = CliRunner().invoke(app, [*args, "--lake", str(lake.root)])
    assert result.exit_code == 0, result.output
    for text in ("sampled days", "ETA", "serial", "process", "predicted wall", "option rows"):
        assert text in result.output
    assert not (lake.root / "runs").exists() or not any((lake.root / "runs").iterdir())


def test_cli_no_data_days_exits_non_zero(lake: Lake, tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    args = ["backtest", "estimate", str(path), "--start", "2023-06-01", "--end", "2023-06-30"]
    result = CliRunner().invoke(app, [*args, "--lake", str(lake.root)])
    assert result.exit_code != 0
    assert "no data days" in result.output


def test_facade_estimate(lake: Lake) -> None:
    import ticklake

    session = ticklake.open_lake(lake.root)
    result = session.estimate(SPEC, sample_days=1, executors=(("serial", 1),))
    assert result.spec_name == "estimate_straddle" and len(result.samples) == 1
