from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from ticklake.backtest.compare import (
    ABSENT,
    SpecDifference,
    compare_runs,
    diff_specs,
    print_comparison,
)


@pytest.fixture
def two_fake_runs(fake_run_factory: Callable[..., Path]) -> tuple[Path, Path]:
    run_a = fake_run_factory("run-a", seed=7)
    run_b = fake_run_factory(
        "run-b",
        seed=11,
        spec_overrides={
            "time": {"exit_time": "15:00", "entry_windows": ["09:20-09:25", "11:00-11:05"]},
            "legs": [
                {"name": "ce", "opt_type": "CE", "side": "sell", "lots": 2},
                {
                    "name": "pe",
                    "opt_type": "PE",
                    "side": "sell",
                    "selector": {"kind": "otm", "steps": 2},
                },
            ],
            "exits": {"stop_loss": {"pct": 50}},
            "fills": {"mode": "mid"},
        },
    )
    return run_a, run_b


def _total_net(run_dir: Path) -> int:
    daily = pd.read_parquet(run_dir / "daily.parquet")
    return int(daily[daily.status == "traded"].net_pnl_paise.sum())


def test_compare_runs_statistics_and_spec(two_fake_runs: tuple[Path, Path]) -> None:
    run_a, run_b = two_fake_runs
    comparison = compare_runs(run_a, run_b)
    assert (comparison.run_id_a, comparison.run_id_b) == ("run-a", "run-b")

    rows = {row.name: row for row in comparison.statistics}
    total_a, total_b = _total_net(run_a), _total_net(run_b)
    assert total_a != total_b  # different seeds: the comparison has something to show
    net = rows["total_net_pnl_paise"]
    assert (net.value_a, net.value_b, net.difference) == (total_a, total_b, total_b - total_a)
    trades_a = pd.read_parquet(run_a / "trades.parquet")
    trades_b = pd.read_parquet(run_b / "trades.parquet")
    assert rows["fills"].difference == len(trades_b) - len(trades_a)
    assert rows["max_drawdown_peak_date"].difference is None  # dates have no difference
    assert rows["skip_reasons.exchange holiday"].value_a == 2
    assert rows["skip_reasons.exchange holiday"].difference == 0

    # The base spec is parsed and dumped with defaults, so paths cover the full spec.
    assert list(comparison.spec_differences) == [
        SpecDifference("time.entry_windows.1", ABSENT, "11:00-11:05"),
        SpecDifference("time.exit_time", "15:20", "15:00"),
        SpecDifference("legs.0.lots", 1, 2),
        SpecDifference("legs.1.selector.kind", "atm", "otm"),
        SpecDifference("legs.1.selector.steps", ABSENT, 2),
        SpecDifference("exits.stop_loss", None, {"points": None, "pct": 50.0, "money": None}),
        SpecDifference("fills.mode", "cross", "mid"),
    ]


def test_compare_a_run_with_itself(fake_run_dir: Path) -> None:
    comparison = compare_runs(fake_run_dir, fake_run_dir)
    assert comparison.spec_differences == ()
    numeric = [row for row in comparison.statistics if row.difference is not None]
    assert numeric and all(row.difference == 0 for row in numeric)


def test_diff_specs_on_nested_values() -> None:
    a = {"x": {"y": [1, {"z": True}], "w": 1}, "only_a": "a", "same": [1, 2]}
    b = {"x": {"y": [1, {"z": False}, 3], "w": 1.0}, "only_b": None, "same": [1, 2]}
    assert diff_specs(a, b) == [
        SpecDifference("x.y.1.z", True, False),
        SpecDifference("x.y.2", ABSENT, 3),
        SpecDifference("x.w", 1, 1.0),  # 1 and 1.0 are different JSON
        SpecDifference("only_a", "a", ABSENT),
        SpecDifference("only_b", ABSENT, None),  # null is a value, not an absence
    ]
    assert diff_specs({"k": [1]}, {"k": {"0": 1}}) == [SpecDifference("k", [1], {"0": 1})]
    assert diff_specs(5, 6) == [SpecDifference("(root)", 5, 6)]
    assert diff_specs(a, a) == []
    assert pickle.loads(pickle.dumps(ABSENT)) is ABSENT


def test_print_comparison(two_fake_runs: tuple[Path, Path]) -> None:
    run_a, run_b = two_fake_runs
    console = Console(record=True, width=200)
    print_comparison(compare_runs(run_a, run_b), console)
    output = console.export_text()
    total_a, total_b = _total_net(run_a), _total_net(run_b)
    difference = total_b - total_a
    shown = f"{'+' if difference > 0 else '-'}₹{abs(difference) / 100:,.2f}"
    assert shown in output
    assert "A: atm_straddle run-a" in output and "B: atm_straddle run-b" in output
    rate_a = (
        pd.read_parquet(run_a / "daily.parquet").query("status == 'traded'").net_pnl_paise > 0
    ).mean()
    rate_b = (
        pd.read_parquet(run_b / "daily.parquet").query("status == 'traded'").net_pnl_paise > 0
    ).mean()
    assert f"{(rate_b - rate_a) * 100:+.2f} pp" in output
    assert "legs.1.selector.steps" in output
    assert "(absent)" in output
    assert '"15:20"' in output and '"15:00"' in output

    console = Console(record=True, width=200)
    print_comparison(compare_runs(run_a, run_a), console)
    assert "specs are identical" in console.export_text()
