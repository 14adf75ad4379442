"""Parameter sweeps: grid and constraints, shared loading = separate runs, ranking,
resume, out-of-sample choice, heatmap."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _engine_fixtures import (  # type: ignore[import-not-found]
    GENERATED_DAYS,
    OPTIONS,
    SPOT,
    copy_lake,
    generated_lake_root,  # noqa: F401 - fixture
    sha256,
)

from ticklake.backtest.engine import run_day
from ticklake.backtest.report import sweep_heatmap_figure, write_sweep_report
from ticklake.backtest.runner import resume_backtest
from ticklake.backtest.sweep import (
    constraint_holds,
    expand,
    grid_values,
    out_of_sample,
    read_sweep,
    run_sweep,
    substitute,
    sweep_from_data,
    walk_forward,
)
from ticklake.errors import ConfigError
from ticklake.lake import open_lake

TEMPLATE: dict[str, Any] = {
    "name": "momentum",
    "universe": {"underlying": "BANKNIFTY", "options_dataset": OPTIONS, "underlying_dataset": SPOT},
    "time": {
        "start": "2024-01-08",
        "end": "2024-01-10",
        "entry_windows": ["09:20-15:00"],
        "exit_time": "15:20",
    },
    "legs": [{"name": "ce", "opt_type": "CE", "side": "buy", "lots": "${lots}"}],
    "entry": {
        "when": "ce.volume_${volume_lookback_min}m > ${min_volume} and "
        "ema(${ema_fast}) > ema(${ema_slow})"
    },
    "exits": {"when": "position.pnl < -400 or position.pnl > 800"},
    "max_entries_per_day": 3,
}
AXES = {"volume_lookback_min": [1, 2, 3, 4], "ema_fast": [1, 2], "ema_slow": [5, 10]}


def _sweep_data(**axes: Any) -> dict[str, Any]:
    template = json.loads(json.dumps(TEMPLATE))
    template["legs"][0]["lots"] = 1
    template["entry"]["when"] = template["entry"]["when"].replace("${min_volume}", "2000")
    return {**template, "sweep": axes or AXES, "constraints": ["ema_slow - ema_fast >= 4"]}


def test_grid_is_the_product_in_axis_order_pruned_by_constraints() -> None:
    sweep = sweep_from_data(_sweep_data())
    assert sweep.grid_size == 16
    values = grid_values(sweep)
    # (ema_fast, ema_slow) = (2, 5) fails 5 - 2 >= 4: 4 x 3 variants remain.
    assert len(values) == 12
    assert values[:3] == [
        {"volume_lookback_min": 1, "ema_fast": 1, "ema_slow": 5},
        {"volume_lookback_min": 1, "ema_fast": 1, "ema_slow": 10},
        {"volume_lookback_min": 1, "ema_fast": 2, "ema_slow": 10},
    ]
    variants = expand(sweep)
    assert variants[2].spec.entry.when == "ce.volume_1m > 2000 and ema(2) > ema(10)"


def test_substitution_keeps_types_for_whole_placeholders() -> None:
    out = substitute(
        {"lots": "${lots}", "when": "ema(${f}) > ${level}", "x": ["${f}"]},
        {"lots": 3, "f": 2, "level": 1.5},
    )
    assert out == {"lots": 3, "when": "ema(2) > 1.5", "x": [2]}
    with pytest.raises(ConfigError, match=r"spec.when: unknown sweep variable \$\{g\}; axes: f"):
        substitute({"when": "ema(${g}) > 1"}, {"f": 1})


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("a < b", {"a": 1, "b": 2}, True),
        ("a * 2 >= b and not a == 3", {"a": 1, "b": 2}, True),
        ("a + 1 > b or b / a == 4", {"a": 1, "b": 4}, True),
        ("a != b", {"a": 2, "b": 2}, False),
    ],
)
def test_constraints_are_evaluated_by_the_parser(
    text: str, values: dict[str, Any], expected: bool
) -> None:
    assert constraint_holds(text, values) is expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("__import__('os') > 0", "only axis names, numbers and + - * /"),
        ("__import__('os').system('true') > 0", "column 17: expected a comparison"),
        ("c < 1", "unknown axis 'c'; axes: a"),
        ("a crosses_above 1", "has no meaning"),
        ("a < ; 1", "unexpected character ';'"),
    ],
)
def test_constraints_never_evaluate_python(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        constraint_holds(text, {"a": 1})
    assert fragment in str(info.value)


@pytest.fixture(scope="module")
def finished_sweep(generated_lake_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:  # noqa: F811
    lake = copy_lake(generated_lake_root, tmp_path_factory.mktemp("sweep") / "lake")
    result = run_sweep(
        lake,
        sweep_from_data(_sweep_data()),
        executor="serial",
        rank_by="total_net_pnl_paise",
        run_id="sweep-under-test",
    )
    return lake, result


def test_every_variant_equals_its_own_separate_backtest(finished_sweep: Any) -> None:
    lake, result = finished_sweep
    info, _, daily, trades = read_sweep(result.run_dir)
    assert result.status == "complete" and len(info["variants"]) == 12
    assert daily.height == 12 * len(GENERATED_DAYS)
    variants = expand(sweep_from_data(_sweep_data()))
    # The shared-load path must give exactly the frames of a plain one-spec day task.
    for index in (0, 5, 11):
        for day in GENERATED_DAYS:
            alone = run_day(lake, variants[index].spec, day)
            mine = trades.filter((pl.col("variant") == index) & (pl.col("date") == day)).drop(
                "variant"
            )
            assert mine.equals(alone.trades), (index, day)
            row = daily.filter((pl.col("variant") == index) & (pl.col("date") == day)).row(
                0, named=True
            )
            assert row["net_pnl_paise"] == alone.summary["net_pnl_paise"]
            assert row["status"] == alone.summary["status"]
    assert trades["variant"].n_unique() > 1
    # Variants differ: the volume look-back changes which seconds qualify.
    totals = daily.group_by("variant").agg(pl.col("net_pnl_paise").sum())
    assert totals["net_pnl_paise"].n_unique() > 1


def test_process_executor_sweep_writes_the_serial_outputs(
    finished_sweep: Any, tmp_path: Path
) -> None:
    """Two worker processes, each day task evaluating every variant: the daily table,
    the trades and every day's output files are byte-for-byte the serial run's."""
    lake, serial = finished_sweep
    other = copy_lake(lake.root, tmp_path / "lake")
    parallel = run_sweep(
        other,
        sweep_from_data(_sweep_data()),
        executor="process",
        workers=2,
        rank_by="total_net_pnl_paise",
        run_id="sweep-under-test",
    )
    assert parallel.status == "complete"
    _, _, daily_serial, trades_serial = read_sweep(serial.run_dir)
    _, _, daily_parallel, trades_parallel = read_sweep(parallel.run_dir)
    assert trades_parallel.equals(trades_serial)
    assert daily_parallel.equals(daily_serial), daily_serial.columns
    serial_days = sorted(p.relative_to(serial.run_dir) for p in serial.run_dir.rglob("*.parquet"))
    parallel_days = sorted(
        p.relative_to(parallel.run_dir) for p in parallel.run_dir.rglob("*.parquet")
    )
    assert parallel_days == serial_days
    for relative in serial_days:
        assert sha256(parallel.run_dir / relative) == sha256(serial.run_dir / relative), relative


def test_variant_table_is_ranked_by_the_chosen_statistic(finished_sweep: Any) -> None:
    _, result = finished_sweep
    _, variants, daily, _ = read_sweep(result.run_dir)
    by_hand = (
        daily.filter(pl.col("status") == "traded")
        .group_by("variant")
        .agg(pl.col("net_pnl_paise").sum().alias("net"))
        .join(pl.DataFrame({"variant": list(range(12))}), on="variant", how="right")
        .with_columns(pl.col("net").fill_null(0))
        .sort(["net", "variant"], descending=[True, False])
    )
    assert variants["variant"].to_list() == by_hand["variant"].to_list()
    assert variants["total_net_pnl_paise"].to_list() == by_hand["net"].to_list()
    assert variants["rank"].to_list() == list(range(1, 13))
    assert set(AXES) <= set(variants.columns)


def test_resume_redoes_only_the_days_without_verified_outputs(finished_sweep: Any) -> None:
    lake, result = finished_sweep
    ledger = json.loads((result.run_dir / "run.json").read_text())
    before = (result.run_dir / "variants.parquet").read_bytes()
    broken = GENERATED_DAYS[1].isoformat()
    (result.run_dir / "days" / broken / "daily.parquet").unlink()
    kept = {d: e["seconds"] for d, e in ledger["days"].items() if d != broken}
    resumed = resume_backtest(lake, result.run_id, executor="serial")
    after = json.loads((resumed.run_dir / "run.json").read_text())
    assert after["status"] == "complete" and after["resumed_at"]
    assert {d: e["seconds"] for d, e in after["days"].items() if d != broken} == kept
    assert after["days"][broken]["cached"] is True  # recomputed from the day cache
    assert (resumed.run_dir / "variants.parquet").read_bytes() == before


def test_out_of_sample_chooses_on_training_days_and_reports_later_ones(finished_sweep: Any) -> None:
    _, result = finished_sweep
    info, _, daily, trades = read_sweep(result.run_dir)
    from ticklake.backtest.spec import parse_spec

    spec = parse_spec(info["specs"][0])
    train_end = GENERATED_DAYS[1]
    report = out_of_sample(daily, trades, info["variants"], spec, train_end=train_end)

    def totals(rows: pl.DataFrame) -> dict[int, int]:
        sums = (
            rows.filter(pl.col("status") == "traded")
            .group_by("variant")
            .agg(pl.col("net_pnl_paise").sum())
        )
        out = dict.fromkeys(range(12), 0)
        out.update(dict(zip(sums["variant"], sums["net_pnl_paise"], strict=True)))
        return out

    train = totals(daily.filter(pl.col("date") <= train_end))
    test = totals(daily.filter(pl.col("date") > train_end))
    best = max(sorted(train), key=lambda v: (train[v], -v))
    assert report["chosen_variant"] == best
    assert report["train_statistic"] == train[best]
    assert report["test_statistic"] == test[best]
    assert report["test_rank"] == 1 + sum(1 for v in test if (test[v], -v) > (test[best], -best))
    windows = walk_forward(daily, trades, info["variants"], spec, train_days=1, test_days=1)
    assert windows["test_start"].to_list() == list(GENERATED_DAYS[1:])
    assert windows["train_end"].to_list() == list(GENERATED_DAYS[:-1])


def test_heatmap_shows_the_best_variant_per_cell(finished_sweep: Any) -> None:
    _, result = finished_sweep
    _, variants, _, _ = read_sweep(result.run_dir)
    figure = sweep_heatmap_figure(variants, "ema_slow", "volume_lookback_min")
    heat = figure.data[0]
    assert list(heat.x) == ["5", "10"] and list(heat.y) == ["1", "2", "3", "4"]
    for row, lookback in enumerate((1, 2, 3, 4)):
        for column, slow in enumerate((5, 10)):
            cell = variants.filter(
                (pl.col("volume_lookback_min") == lookback) & (pl.col("ema_slow") == slow)
            )
            assert heat.z[row][column] == pytest.approx(cell["total_net_pnl_paise"].max() / 100)
    path = write_sweep_report(result.run_dir, x_axis="ema_slow", y_axis="volume_lookback_min")
    text = path.read_text()
    assert "id='figure-sweep-heatmap'" in text and "total net pnl (₹)" in text


def test_no_variant_left_is_an_error() -> None:
    data = _sweep_data()
    data["constraints"] = ["ema_fast > ema_slow"]
    with pytest.raises(ConfigError, match="the constraints leave no variant"):
        expand(sweep_from_data(data))
    assert date(2024, 1, 8) == GENERATED_DAYS[0]


def test_cli_check_prints_the_grid_and_the_compiled_plans(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from ticklake.cli import app

    path = tmp_path / "sweep.yml"
    path.write_text(yaml.safe_dump(_sweep_data()))
    result = CliRunner().invoke(app, ["backtest", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "sweep grid: 16 combinations, 12 variants after constraints" in result.output
    assert "kernel program:" in result.output and "push position.pnl" in result.output
    assert 'col("ce.volume_1m")' in result.output
    bad = tmp_path / "bad.yml"
    data = _sweep_data()
    data["entry"]["when"] = "ema(${ema_fast}) >> 1"
    bad.write_text(yaml.safe_dump(data))
    failed = CliRunner().invoke(app, ["backtest", "check", str(bad)])
    assert failed.exit_code != 0
    # The column is in the variant's text, shown under the message.
    assert "entry.when: column 9: expected a number" in failed.output


def test_a_day_of_the_4x2x2_grid_is_loaded_once_and_its_series_computed_once(
    generated_lake_root: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The 12 variants left of the 4 x 2 x 2 grid share one ``load_day`` and one
    ``DayMarket``; each distinct metric series is computed once for all of them; a
    variant with another quote tolerance (a different data need) loads its own day."""
    import ticklake.backtest.sweep_days as sweep_module

    loads: list[date] = []
    markets: list[Any] = []
    real_load = sweep_module.load_day

    def counting_load(*args: Any, **kwargs: Any) -> Any:
        loads.append(args[2])
        return real_load(*args, **kwargs)

    class RecordingMarket(sweep_module.DayMarket):  # type: ignore[misc, name-defined]
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            markets.append(self)

    monkeypatch.setattr(sweep_module, "load_day", counting_load)
    monkeypatch.setattr(sweep_module, "DayMarket", RecordingMarket)
    lake = open_lake(generated_lake_root)
    specs = [v.spec for v in expand(sweep_from_data(_sweep_data()))]
    assert len(specs) == 12
    day = GENERATED_DAYS[0]
    outcomes = sweep_module.run_day_variants(lake, specs, day)
    assert len(outcomes) == 12
    assert loads == [day]
    assert len(markets) == 1
    # By hand: ema_fast in {1, 2}, ema_slow in {5, 10}; (2, 5) is pruned but 2 and 5 each
    # occur in another variant, so the underlying needs four EMAs, each computed once.
    underlying = sorted(markets[0]._underlying)
    assert len(underlying) == 4, underlying
    assert [c for c in underlying if "ema" in c] == underlying
    # The call's volume over 1, 2, 3 and 4 minutes: four leg series, not twelve.
    leg_outputs = {output for output, _ in markets[0]._contract}
    assert len(leg_outputs) == 4, leg_outputs
    # The entry masks' columns (4 EMAs, the call's 4 volumes at the ATM selection) are
    # built once for the 12 variants.
    assert len(markets[0]._columns) == 8, sorted(k[:2] for k in markets[0]._columns)

    loads.clear()
    markets.clear()
    other = specs[0].model_copy(
        update={"fills": specs[0].fills.model_copy(update={"as_of_tolerance_seconds": 2})}
    )
    sweep_module.run_day_variants(lake, [specs[0], other, specs[1]], day)
    assert loads == [day, day]
    assert len(markets) == 2


def test_resume_reads_day_files_written_before_marked_closes(finished_sweep: Any) -> None:
    """A sweep day written before ``filled`` / ``marked_closes`` / ``marked_pnl_paise``
    existed (issue #13): resume finishes, its trades count as fills and it has no marks."""
    lake, result = finished_sweep
    run_json = result.run_dir / "run.json"
    ledger = json.loads(run_json.read_text())
    _, _, daily_before, trades_before = read_sweep(result.run_dir)
    old_day = GENERATED_DAYS[0].isoformat()
    day_dir = result.run_dir / "days" / old_day
    old_columns = {
        "trades.parquet": ["filled"],
        "daily.parquet": ["marked_closes", "marked_pnl_paise"],
    }
    for name, columns in old_columns.items():
        frame = pl.read_parquet(day_dir / name)
        assert set(columns) <= set(frame.columns)
        frame.drop(columns).write_parquet(day_dir / name)
        ledger["days"][old_day]["outputs"][name] = sha256(day_dir / name)  # as the old run recorded
    run_json.write_text(json.dumps(ledger))
    broken = GENERATED_DAYS[1].isoformat()
    (result.run_dir / "days" / broken / "daily.parquet").unlink()
    resumed = resume_backtest(lake, result.run_id, executor="serial")
    after = json.loads((resumed.run_dir / "run.json").read_text())
    assert after["status"] == "complete"
    _, _, daily, trades = read_sweep(resumed.run_dir)
    old_trades = trades.filter(pl.col("date") == GENERATED_DAYS[0])
    assert old_trades.height == trades_before.filter(pl.col("date") == GENERATED_DAYS[0]).height
    assert old_trades["filled"].all()
    old_daily = daily.filter(pl.col("date") == GENERATED_DAYS[0])
    assert old_daily["marked_closes"].to_list() == [0] * old_daily.height
    assert after["totals"]["fills"] == int(trades["filled"].sum())
    assert daily.height == daily_before.height
