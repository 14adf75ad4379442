"""Pipelines and passes: bucketing, multi-pass re-aggregation, series sampling, batching,
errors. Oracles are hand-computed values and independent DuckDB / pandas computations."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

sys.path.insert(0, str(Path(__file__).parent))
from _pipeline_helpers import make_trades, registered_test_metrics

from ticklake import init_lake
from ticklake.analytics.pipeline import load_pipeline, parse_pipeline
from ticklake.analytics.run import (
    choose_batch_frequency,
    estimate_rows_per_day,
    make_batches,
    run_pipeline,
)
from ticklake.errors import ConfigError
from ticklake.lake import Lake

DAYS = [date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)]


@pytest.fixture
def metrics() -> Iterator[None]:
    with registered_test_metrics():
        yield


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return init_lake(tmp_path / "lake")


@pytest.fixture
def trades_lake(lake: Lake) -> Lake:
    lake.write(
        "trades",
        make_trades(DAYS, ["AAA", "BBB", "CCC"]),
        schema="trades",
        timezone="America/New_York",
    )
    return lake


def pipeline(**overrides: Any) -> Any:
    base: dict[str, Any] = {
        "name": "test",
        "metric_modules": ["_pipeline_test_metrics"],
        "executor": "serial",
        "passes": [
            {
                "name": "minute",
                "input": "trades",
                "modules": [
                    {"metric": "pipeline_test_volume"},
                    {"metric": "pipeline_test_trade_count"},
                    {"metric": "pipeline_test_last_price"},
                    {"metric": "pipeline_test_cumulative_volume"},
                ],
            }
        ],
    }
    return parse_pipeline(base | overrides)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ------------------------------------------------------------------------ bucketing
def _hand_trades(lake: Lake) -> None:
    times = ["10:00:00", "10:00:30", "10:01:00", "10:01:30", "10:02:00"]
    lake.write(
        "trades",
        pl.DataFrame(
            {
                "ts": [at(f"2024-01-02T{t}") for t in times],
                "instrument": "X",
                "trade_id": [str(i) for i in range(5)],
                "price": [10.0, 11.0, 12.0, 13.0, 14.0],
                "size": [1.0, 2.0, 4.0, 8.0, 16.0],
            }
        ),
        schema="trades",
        timezone="UTC",
    )


@pytest.mark.parametrize(
    ("label", "closed", "expected"),
    [
        # (start, end] labelled end: a trade on a boundary closes the bucket ending there.
        ("end", "right", {"10:00": 1.0, "10:01": 2.0 + 4.0, "10:02": 8.0 + 16.0}),
        # [start, end) labelled start: a trade on a boundary opens the next bucket.
        ("start", "left", {"10:00": 1.0 + 2.0, "10:01": 4.0 + 8.0, "10:02": 16.0}),
        ("end", "left", {"10:01": 1.0 + 2.0, "10:02": 4.0 + 8.0, "10:03": 16.0}),
    ],
)
def test_bucket_labels_follow_label_and_closed_side(
    lake: Lake, metrics: None, label: str, closed: str, expected: dict[str, float]
) -> None:
    _hand_trades(lake)
    spec = pipeline(bucket={"width": "1m", "label": label, "closed": closed})
    run_pipeline(lake, spec)
    out = lake.read("gold.test_minute").sort("ts")
    got = dict(zip(out["ts"].dt.strftime("%H:%M"), out["pipeline_test_volume"], strict=True))
    assert got == expected
    last = dict(zip(out["ts"].dt.strftime("%H:%M"), out["pipeline_test_last_price"], strict=True))
    assert last[next(iter(expected))] == (10.0 if label == "end" and closed == "right" else 11.0)


def test_end_label_at_midnight_belongs_to_the_day_that_ends(lake: Lake, metrics: None) -> None:
    lake.write(
        "trades",
        pl.DataFrame(
            {
                "ts": [
                    at("2024-01-02T23:59:30"),
                    at("2024-01-03T00:00:00"),
                    at("2024-01-03T00:00:01"),
                ],
                "instrument": "BTC",
                "trade_id": ["1", "2", "3"],
                "price": [1.0, 2.0, 3.0],
                "size": [1.0, 2.0, 4.0],
            }
        ),
        schema="trades",
        timezone="UTC",
    )
    run_pipeline(lake, pipeline(start="2024-01-02", end="2024-01-03"), batch_frequency="D")
    parts = {p.date: pl.read_parquet(p.path) for p in lake.partitions("gold.test_minute")}
    # (23:59, 00:00] is the last bucket of Jan 2: both its trades, in Jan 2's partition.
    assert parts[date(2024, 1, 2)]["pipeline_test_volume"].to_list() == [3.0]
    assert parts[date(2024, 1, 2)]["ts"].to_list() == [at("2024-01-03T00:00:00")]
    assert parts[date(2024, 1, 3)]["pipeline_test_volume"].to_list() == [4.0]
    # The series restarts each day: Jan 3 starts from its own first trade.
    assert parts[date(2024, 1, 3)]["pipeline_test_cumulative_volume"].to_list() == [4.0]


# ------------------------------------------------------------------------ multi-pass
def test_two_pass_reaggregate_matches_duckdb(trades_lake: Lake, metrics: None) -> None:
    spec = pipeline(
        passes=[
            {
                "name": "minute",
                "input": "trades",
                "modules": [
                    {"metric": "pipeline_test_volume"},
                    {"metric": "pipeline_test_trade_count"},
                    {"metric": "pipeline_test_last_price"},
                ],
            },
            {
                "name": "five",
                "input": "minute",
                "modules": [],
                "postprocess": [
                    {
                        "kind": "reaggregate",
                        "bucket": {"width": "5m"},
                        "columns": {
                            "pipeline_test_volume": {"how": "sum"},
                            "pipeline_test_trade_count": {"how": "sum"},
                            "pipeline_test_last_price": {"how": "last"},
                            "price_volume_weighted": {
                                "how": "mean",
                                "source": "pipeline_test_last_price",
                                "weight": "pipeline_test_volume",
                            },
                        },
                    }
                ],
            },
        ]
    )
    run = run_pipeline(trades_lake, spec)
    assert run.frequency == "Y" and len(run.batches) == 1
    got = trades_lake.read("gold.test_five").sort("instrument", "ts")
    con = duckdb.connect()
    trades = trades_lake.read("trades").to_arrow()  # noqa: F841 (DuckDB reads it by name)
    want = pl.from_arrow(
        con.sql(
            """
            WITH t AS (
              SELECT instrument, price, size, epoch_ns(ts) AS ns FROM trades
            ), m AS (  -- 1-minute buckets (start, end], labelled by their end
              SELECT instrument, ceil(ns / 60e9)::BIGINT * 60 AS minute_end, sum(size) AS v,
                     count(*) AS n, arg_max(price, ns) AS last_price
              FROM t GROUP BY ALL
            )
            SELECT instrument,
                   make_timestamp(ceil(minute_end / 300)::BIGINT * 300 * 1000000) AS ts,
                   sum(v) AS volume, sum(n) AS count, arg_max(last_price, minute_end) AS last,
                   sum(last_price * v) / sum(v) AS weighted
            FROM m GROUP BY ALL ORDER BY instrument, ts
            """
        ).arrow()
    )
    assert isinstance(want, pl.DataFrame)
    assert got.height == want.height > 3 * 60
    assert (
        got["ts"].dt.replace_time_zone(None).dt.cast_time_unit("us").to_list()
        == want["ts"].to_list()
    )
    assert got["pipeline_test_volume"].to_list() == want["volume"].to_list()
    assert got["pipeline_test_trade_count"].to_list() == want["count"].to_list()
    assert got["pipeline_test_last_price"].to_list() == want["last"].to_list()
    assert got["price_volume_weighted"].to_numpy() == pytest.approx(want["weighted"].to_numpy())
    # Every 5-minute label is end-aligned, not a truncated start.
    assert (got["ts"].dt.minute() % 5 == 0).all()


def test_reaggregate_rejects_unlisted_columns_and_uneven_widths(
    trades_lake: Lake, metrics: None
) -> None:
    second_pass = {
        "name": "coarse",
        "input": "minute",
        "modules": [],
        "postprocess": [
            {
                "kind": "reaggregate",
                "bucket": {"width": "5m"},
                "columns": {"pipeline_test_volume": {"how": "sum"}},
            }
        ],
    }
    first = pipeline().passes[0].model_dump()
    with pytest.raises(ConfigError, match=r"no rule for column\(s\) \['pipeline_test_trade_count'"):
        run_pipeline(trades_lake, pipeline(passes=[first, second_pass]))
    second_pass["postprocess"][0]["bucket"] = {"width": "90s"}  # type: ignore[index]
    second_pass["postprocess"][0]["drop_unlisted"] = True  # type: ignore[index]
    with pytest.raises(ConfigError, match="whole multiple"):
        run_pipeline(trades_lake, pipeline(name="uneven", passes=[first, second_pass]))


def test_instrument_groups_and_cross_section_match_pandas(trades_lake: Lake, metrics: None) -> None:
    spec = pipeline(
        passes=[
            {
                "name": "minute",
                "input": "trades",
                "bucket": {"width": "15m"},
                "modules": [{"metric": "pipeline_test_volume"}],
                "postprocess": [
                    {"kind": "cross_section", "columns": ["pipeline_test_volume"]},
                    {
                        "kind": "cross_section",
                        "columns": ["pipeline_test_volume"],
                        "method": "rank",
                    },
                ],
            },
            {
                "name": "groups",
                "input": "minute",
                "modules": [],
                "postprocess": [
                    {
                        "kind": "reaggregate",
                        "instrument_groups": {"AAA": "first", "BBB": "first", "CCC": "second"},
                        "columns": {"pipeline_test_volume": {"how": "sum"}},
                        "drop_unlisted": True,
                    }
                ],
            },
        ]
    )
    run_pipeline(trades_lake, spec)
    got = trades_lake.read("gold.test_minute").to_pandas()
    by_ts = got.groupby("ts")["pipeline_test_volume"]
    z = (got["pipeline_test_volume"] - by_ts.transform("mean")) / by_ts.transform("std")
    assert got["pipeline_test_volume_zscore"].to_numpy() == pytest.approx(z.to_numpy(), nan_ok=True)
    assert got["pipeline_test_volume_rank"].tolist() == by_ts.rank(method="average").tolist()
    groups = trades_lake.read("gold.test_groups").to_pandas().set_index(["instrument", "ts"])
    mapping = {"AAA": "first", "BBB": "first", "CCC": "second"}
    want = got.assign(g=got["instrument"].map(mapping)).groupby(["g", "ts"])["pipeline_test_volume"]
    assert groups["pipeline_test_volume"].sort_index().tolist() == want.sum().sort_index().tolist()


# --------------------------------------------------------------------------- series
def test_series_metrics_are_sampled_without_look_ahead(trades_lake: Lake, metrics: None) -> None:
    run_pipeline(trades_lake, pipeline(name="before"))
    before = trades_lake.read("gold.before_minute")
    raw = trades_lake.read("trades")
    # Oracle: cumulative volume of the day at each label = sizes of the day's trades with
    # ts <= label (pandas, straight from the raw rows).
    frame = raw.to_pandas()
    frame["day"] = frame["ts"].dt.tz_convert("America/New_York").dt.date
    sample = before.sample(40, seed=3).to_pandas()
    for row in sample.itertuples():
        day = row.ts.tz_convert("America/New_York").date()
        mine = frame[(frame.instrument == row.instrument) & (frame.day == day)]
        assert row.pipeline_test_cumulative_volume == mine[mine.ts <= row.ts]["size"].sum()

    # Perturb everything after a cut: change sizes and add trades. Outputs at or before
    # the cut must not move.
    cut = at("2024-03-05T17:00:00")
    later = raw.filter(pl.col("ts") > cut)
    extra = later.head(50).with_columns(
        pl.col("trade_id") + "-extra", pl.col("ts").dt.offset_by("1us")
    )
    changed = pl.concat([later.with_columns(pl.col("size") * 7 + 1), extra])
    trades_lake.write("trades", changed)
    run_pipeline(trades_lake, pipeline(name="after"))
    after = trades_lake.read("gold.after_minute")
    early = pl.col("ts") <= cut
    assert_frame_equal(before.filter(early), after.filter(early))
    assert not before.filter(~early).equals(after.filter(~early))


# ------------------------------------------------------------------------- batching
def test_auto_batch_rule_and_batches_clipped_to_the_range(trades_lake: Lake) -> None:
    assert choose_batch_frequency(1_000, 300) == "Y"
    assert choose_batch_frequency(600_000, 300) == "M"
    assert choose_batch_frequency(2_500_000, 300) == "W"
    assert choose_batch_frequency(3_000_000, 300) == "D"
    batches = make_batches(date(2024, 1, 30), date(2024, 3, 2), "M")
    assert [(b[0], b[-1]) for b in batches] == [
        (date(2024, 1, 30), date(2024, 1, 31)),
        (date(2024, 2, 1), date(2024, 2, 29)),
        (date(2024, 3, 1), date(2024, 3, 2)),
    ]
    # Rows per day come from the manifests, scaled to the universe (1 of 3 instruments).
    rows = trades_lake.read("trades").height / 3
    spec = pipeline(universe=["AAA"])
    estimate = estimate_rows_per_day(trades_lake, spec, DAYS[0], DAYS[-1])
    assert estimate == pytest.approx(rows / 3)


@pytest.mark.parametrize("frequency", ["2W", "3D", "2M", "Q", "2Q", "2Y", "1W", "w"])
def test_batch_multiples_match_fixed_origin_pandas_periods(frequency: str) -> None:
    import pandas as pd

    start, end = date(2023, 11, 20), date(2024, 8, 3)
    got = make_batches(start, end, frequency)
    # Independent: pandas periods (W-SUN weeks end on Sunday, i.e. ISO weeks), their
    # ordinal from pandas' own origin re-based to ours, grouped N at a time.
    multiple = int(frequency[:-1] or 1)
    unit = frequency[-1].upper()
    days = pd.date_range(start, end, freq="D")
    alias = {"D": "D", "W": "W-SUN", "M": "M", "Q": "Q", "Y": "Y"}[unit]
    periods = days.to_period(alias)
    if unit == "W":
        # pandas numbers the week 1969-12-29/1970-01-04 as 1: re-base to 0001-01-01.
        origin = (date(1969, 12, 29).toordinal() - 1) // 7
        ordinal = periods.asi8 - 1 + origin
    elif unit == "D":
        ordinal = periods.asi8 + date(1970, 1, 1).toordinal()
    elif unit == "M":
        ordinal = periods.asi8 + 1970 * 12
    elif unit == "Q":
        ordinal = periods.asi8 + 1970 * 4
    else:
        ordinal = periods.asi8 + 1970
    keys = ordinal // multiple
    want: list[tuple[date, ...]] = []
    for day, key in zip(days, keys, strict=True):
        if want and (keys[list(days).index(pd.Timestamp(want[-1][-1]))] == key):
            want[-1] = (*want[-1], day.date())
        else:
            want.append((day.date(),))
    assert got == want
    assert sum(len(b) for b in got) == (end - start).days + 1


@pytest.mark.parametrize("bad", ["0W", "2X", "W2", "", "10000D", "-1D"])
def test_a_bad_batch_frequency_says_what_is_accepted(bad: str) -> None:
    from ticklake.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[N\]D\|W\|M\|Q\|Y"):
        make_batches(date(2024, 1, 1), date(2024, 1, 31), bad)


def test_a_two_week_batch_gives_the_daily_result(trades_lake: Lake, metrics: None) -> None:
    daily = run_pipeline(trades_lake, pipeline(name="daily2"), batch_frequency="D")
    fortnight = run_pipeline(trades_lake, pipeline(name="fortnight"), batch_frequency="2W")
    assert len(fortnight.batches) < len(daily.batches)
    assert_frame_equal(
        trades_lake.read("gold.fortnight_minute"), trades_lake.read("gold.daily2_minute")
    )
    assert pipeline(batch_frequency="2W").batch_frequency == "2W"


def test_result_does_not_depend_on_batching_or_executor(trades_lake: Lake, metrics: None) -> None:
    yearly = run_pipeline(trades_lake, pipeline(name="yearly"), batch_frequency="Y")
    daily = run_pipeline(trades_lake, pipeline(name="daily"), batch_frequency="D")
    assert (len(yearly.batches), len(daily.batches)) == (1, 3)
    assert_frame_equal(
        trades_lake.read("gold.yearly_minute"), trades_lake.read("gold.daily_minute")
    )
    assert [p.date for p in trades_lake.partitions("gold.daily_minute")] == DAYS


def test_universe_and_date_range_limit_the_output(trades_lake: Lake, metrics: None) -> None:
    run_pipeline(trades_lake, pipeline(universe=["BBB"], start="2024-03-05", end="2024-03-05"))
    out = trades_lake.read("gold.test_minute")
    assert set(out["instrument"]) == {"BBB"}
    assert [p.date for p in trades_lake.partitions("gold.test_minute")] == [date(2024, 3, 5)]
    raw = trades_lake.read("trades", start=date(2024, 3, 5), end=date(2024, 3, 5))
    assert (
        out["pipeline_test_volume"].sum() == raw.filter(pl.col("instrument") == "BBB")["size"].sum()
    )


# --------------------------------------------------------------------------- errors
def test_unknown_metric_and_parameter_errors_name_the_pass_and_module(
    trades_lake: Lake, metrics: None
) -> None:
    modules = [{"metric": "pipeline_test_volume"}, {"metric": "pipeline_test_volumee"}]
    bad = pipeline(passes=[{"name": "minute", "input": "trades", "modules": modules}])
    with pytest.raises(
        ConfigError,
        match=r"pass 'minute', module 2 \(metric 'pipeline_test_volumee'\): unknown metric",
    ):
        run_pipeline(trades_lake, bad)
    modules = [{"metric": "pipeline_test_scaled_notional", "params": {"factr": 2}}]
    bad = pipeline(passes=[{"name": "minute", "input": "trades", "modules": modules}])
    with pytest.raises(
        ConfigError,
        match=r"pass 'minute', module 1 .*unknown parameter 'factr' \(parameters: factor\)",
    ):
        run_pipeline(trades_lake, bad)
    modules = [{"metric": "spread"}]  # an L1 metric needs bid/ask, trades have none
    bad = pipeline(passes=[{"name": "minute", "input": "trades", "modules": modules}])
    with pytest.raises(
        ConfigError, match=r"pass 'minute', module 1 \(metric 'spread'.*input columns are ts, "
    ):
        run_pipeline(trades_lake, bad)


def test_spec_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text("name: x\npasses:\n  - name: a\n    input: trades\n    modulez: []\n")
    with pytest.raises(ConfigError, match=r"p.yml: .*unknown key 'passes.0.modulez'"):
        load_pipeline(path)
    with pytest.raises(ConfigError, match="reads pass 'b', which does not run before it"):
        parse_pipeline(
            {
                "name": "x",
                "passes": [
                    {"name": "a", "input": "b", "modules": []},
                    {"name": "b", "input": "trades", "modules": []},
                ],
            }
        )


def test_pipeline_from_a_python_module(tmp_path: Path, trades_lake: Lake, metrics: None) -> None:
    path = tmp_path / "my_pipeline.py"
    path.write_text(
        "PIPELINE = {'name': 'frompy', 'metric_modules': ['_pipeline_test_metrics'],\n"
        " 'passes': [{'name': 'hourly', 'input': 'trades', 'bucket': {'width': '1h'},\n"
        "             'modules': [{'family': 'pipeline_test'}]}]}\n"
    )
    spec = load_pipeline(path)
    run_pipeline(trades_lake, spec)
    out = trades_lake.read("gold.frompy_hourly")
    assert {"pipeline_test_volume", "pipeline_test_slow_count", "pipeline_test_notional_x1"} <= set(
        out.columns
    )
    # Hourly buckets follow the dataset's zone (New York): labels on local whole hours.
    local = out["ts"].dt.convert_time_zone("America/New_York")
    assert (local.dt.minute() == 0).all()
    assert out["pipeline_test_slow_count"].to_list() == out["pipeline_test_trade_count"].to_list()


def test_hourly_buckets_match_pandas_in_the_exchange_zone(trades_lake: Lake, metrics: None) -> None:
    spec = pipeline(bucket={"width": "1h"})
    run_pipeline(trades_lake, spec)
    got = trades_lake.read("gold.test_minute").to_pandas().set_index(["instrument", "ts"])
    raw = trades_lake.read("trades").to_pandas()
    local = raw["ts"].dt.tz_convert("America/New_York")
    label = local.dt.ceil("h").dt.tz_convert("UTC")
    want = raw.assign(ts=label).groupby(["instrument", "ts"])["size"].sum()
    pd.testing.assert_series_equal(
        got["pipeline_test_volume"].sort_index(), want.sort_index(), check_names=False
    )


def test_cli_runs_a_pipeline_and_reports_errors(
    tmp_path: Path, trades_lake: Lake, metrics: None
) -> None:
    from typer.testing import CliRunner

    from ticklake.cli import app

    path = tmp_path / "cli.yml"
    path.write_text(
        "name: cli\nmetric_modules: [_pipeline_test_metrics]\npasses:\n"
        "  - {name: hourly, input: trades, bucket: {width: 1h},\n"
        "     modules: [{metric: pipeline_test_volume}]}\n"
    )
    runner = CliRunner()
    args = ["analytics", "run", str(path), "--lake", str(trades_lake.root), "--executor", "serial"]
    result = runner.invoke(app, [*args, "--start", "2024-03-05", "--end", "2024-03-05"])
    assert result.exit_code == 0, result.output
    rows = trades_lake.read("gold.cli_hourly").height
    assert "gold.cli_hourly" in result.output and f" {rows} " in result.output
    assert "1 batch(es) (Y) from 2024-03-05 to 2024-03-05" in result.output
    path.write_text(path.read_text().replace("pipeline_test_volume", "pipeline_test_volum"))
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "pass 'hourly', module 1 (metric 'pipeline_test_volum'): unknown metric" in result.output


@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_rerun_with_new_settings_merges_or_replaces_gold(
    trades_lake: Lake, metrics: None, mode: str
) -> None:
    """A re-run with 5-minute buckets over a 1-minute run: merge keeps the old 1-minute
    buckets beside the new ones; replace leaves exactly the 5-minute result (DuckDB oracle),
    and only for the instruments and days the re-run computed."""
    targets = [{"type": "lake", "mode": mode}]
    run_pipeline(trades_lake, pipeline(targets=targets, bucket={"width": "1m"}))
    first = trades_lake.read("gold.test_minute")
    run_pipeline(
        trades_lake,
        pipeline(targets=targets, bucket={"width": "5m"}, universe=["AAA", "BBB"], start=DAYS[1]),
    )
    out = trades_lake.read("gold.test_minute")
    trades = trades_lake.read("trades").with_columns(  # noqa: F841 - read by DuckDB below
        pl.col("ts").dt.cast_time_unit("us")
    )
    five = duckdb.sql(
        """
        SELECT instrument, time_bucket(INTERVAL 5 MINUTE, ts - INTERVAL 1 MICROSECOND)
                   + INTERVAL 5 MINUTE AS ts, sum(size) AS volume
        FROM trades
        WHERE instrument IN ('AAA', 'BBB')
          AND CAST(timezone('America/New_York', ts) AS DATE) >= DATE '2024-03-05'
        GROUP BY ALL
        """
    ).pl()
    rebuilt = (pl.col("instrument").is_in(["AAA", "BBB"])) & (
        pl.col("ts").dt.convert_time_zone("America/New_York").dt.date() >= DAYS[1]
    )
    got = out.filter(rebuilt).select("instrument", "ts", "pipeline_test_volume")
    untouched = out.filter(~rebuilt).sort("instrument", "ts")
    assert_frame_equal(untouched, first.filter(~rebuilt).sort("instrument", "ts"))
    if mode == "replace":
        assert got.height == five.height
    else:
        assert got.height == five.height + first.filter(rebuilt).height - _shared(first, five)
    joined = five.with_columns(pl.col("ts").dt.convert_time_zone("UTC")).join(
        got.with_columns(pl.col("ts").dt.cast_time_unit("us")),
        on=["instrument", "ts"],
        how="left",
    )
    assert joined["pipeline_test_volume"].null_count() == 0
    assert (joined["pipeline_test_volume"] == joined["volume"]).all()


def _shared(first: pl.DataFrame, five: pl.DataFrame) -> int:
    """1-minute buckets whose label is also a 5-minute label (merge overwrites those)."""
    labels = five.select(
        "instrument", pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("ns")
    )
    return first.join(labels, on=["instrument", "ts"], how="semi").height


# ------------------------------------------------------- what a pipeline produces
def test_the_listed_columns_are_the_columns_a_run_writes(trades_lake: Lake, metrics: None) -> None:
    from ticklake.analytics.columns import KEY_COLUMNS, pipeline_columns

    spec = pipeline(name="listed")
    (listed,) = pipeline_columns(spec)
    assert listed.dataset == "listed_minute"
    run_pipeline(trades_lake, spec)
    written = trades_lake.read(f"gold.{listed.dataset}").columns
    names = [*KEY_COLUMNS, *(c.column for c in listed.columns)]
    assert sorted(names) == sorted(written)
    assert [c.metric for c in listed.columns] == [
        "pipeline_test_volume",
        "pipeline_test_trade_count",
        "pipeline_test_last_price",
        "pipeline_test_cumulative_volume",
    ]


def test_a_column_name_finds_the_metric_and_parameters_that_make_it() -> None:
    from ticklake.analytics.columns import metrics_for_column
    from ticklake.analytics.registry import get_metric

    depth = get_metric("book_depth")
    params = depth.parse_params({"levels": 3, "side": "ask"})
    column = depth.output_name(params)
    matches = metrics_for_column(column)
    assert [m.metric.name for m in matches] == ["book_depth"]
    assert matches[0].parameters["levels"] == "3" and matches[0].parameters["side"] == "ask"
    # A template with a format spec ({bps:g}) matches too.
    within = get_metric("book_depth_within_bps")
    column = within.output_name(within.parse_params({"bps": 2.5}))
    assert "book_depth_within_bps" in [m.metric.name for m in metrics_for_column(column)]
    assert metrics_for_column("no_such_column_anywhere") == []


def test_cli_lists_a_pipelines_columns_and_explains_a_column(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from ticklake.cli import app

    spec = {
        "name": "cli",
        "passes": [
            {
                "name": "book",
                "input": "l2",
                "modules": [{"metric": "book_depth", "params": {"levels": 3, "side": "ask"}}],
            }
        ],
    }
    path = tmp_path / "p.yml"
    path.write_text(yaml.safe_dump(spec))
    runner = CliRunner()
    listed = runner.invoke(
        app, ["analytics", "list", "--pipeline", str(path)], env={"COLUMNS": "200"}
    )
    assert listed.exit_code == 0, listed.output
    from ticklake.analytics.registry import get_metric

    depth = get_metric("book_depth")
    column = depth.output_name(depth.parse_params({"levels": 3, "side": "ask"}))
    assert column in listed.output and "cli_book" in listed.output
    explained = runner.invoke(app, ["analytics", "explain", column], env={"COLUMNS": "200"})
    assert explained.exit_code == 0, explained.output
    assert f"column '{column}' is the output of metric 'book_depth'" in explained.output
    unknown = runner.invoke(app, ["analytics", "explain", "no_such_column"])
    assert unknown.exit_code != 0 and "unknown metric 'no_such_column'" in unknown.output


# ------------------------------------------------------------------ dense output
def _minute_labels(trades: pl.DataFrame) -> pl.DataFrame:
    """(instrument, label) of each trade: (start, end] minutes labelled by their end."""
    ts = pl.col("ts")
    floor = ts.dt.truncate("1m")
    label = pl.when(floor == ts).then(ts).otherwise(floor.dt.offset_by("1m"))
    return trades.select("instrument", label.alias("ts")).unique()


def _dense_pipeline(name: str, **pass_fields: Any) -> Any:
    spec = pipeline(name=name)
    data = spec.model_dump(mode="json", exclude_none=True)
    data["passes"][0].update(pass_fields)
    return parse_pipeline(data)


def test_dense_output_has_every_minute_between_the_first_and_last_and_marks_empties(
    trades_lake: Lake, metrics: None
) -> None:
    run_pipeline(trades_lake, pipeline(name="sparse"))
    run_pipeline(trades_lake, _dense_pipeline("dense", dense=True))
    sparse = trades_lake.read("gold.sparse_minute")
    dense = trades_lake.read("gold.dense_minute")
    # Independent: the minutes that hold a trade, straight from the raw rows.
    raw = _minute_labels(trades_lake.read("trades"))
    local_day = pl.col("ts").dt.convert_time_zone("America/New_York").dt.offset_by("-1ns").dt.date()
    spans = raw.group_by("instrument", local_day.alias("day")).agg(
        pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last")
    )
    expected_rows = int(
        spans.select(((pl.col("last") - pl.col("first")).dt.total_minutes() + 1).sum()).item()
    )
    assert dense.height == expected_rows
    assert dense.height > sparse.height  # the generated days do have empty minutes
    occupied = dense.filter(~pl.col("empty")).select("instrument", "ts")
    assert occupied.sort("instrument", "ts").equals(
        raw.select("instrument", pl.col("ts").dt.cast_time_unit("ns")).sort("instrument", "ts")
    )
    # Occupied rows carry exactly the sparse run's values; empty ones null bucket values.
    assert_frame_equal(
        dense.filter(~pl.col("empty")).drop("empty").sort("instrument", "ts"),
        sparse.sort("instrument", "ts"),
    )
    empties = dense.filter(pl.col("empty"))
    assert empties.height > 0 and empties["pipeline_test_volume"].null_count() == empties.height


def test_dense_output_over_a_session(trades_lake: Lake, metrics: None) -> None:
    run_pipeline(trades_lake, _dense_pipeline("session", dense=True, session="09:30-16:00"))
    out = trades_lake.read("gold.session_minute")
    per = out.group_by("instrument", pl.col("ts").dt.date()).len()
    # 09:31 ... 16:00 New York: 390 minutes a day, each instrument, each day (the data
    # has nothing outside the session).
    assert sorted(set(per["len"].to_list())) == [390]
    assert per.height == 3 * len(DAYS)
    with pytest.raises(ConfigError, match=r"start is not before"):
        run_pipeline(trades_lake, _dense_pipeline("bad", dense=True, session="16:00-09:30"))


# ------------------------------------------------------------------ --profile
def test_profile_without_viztracer_is_one_line_and_leaves_no_running_run(
    trades_lake: Lake, metrics: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from ticklake.cli import app

    monkeypatch.setitem(sys.modules, "viztracer", None)  # import viztracer -> ImportError
    runs = trades_lake.root / "runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    with pytest.raises(ConfigError, match=r"pip install 'ticklake\[profile\]'"):
        run_pipeline(trades_lake, pipeline(name="profiled"), profile=True)
    after = set(runs.iterdir()) if runs.is_dir() else set()
    assert after == before  # nothing written, so nothing is left "running"
    for run_json in runs.glob("*/run.json") if runs.is_dir() else ():
        assert json.loads(run_json.read_text())["status"] != "running"
    spec_path = trades_lake.root / "profiled.yml"
    spec_path.write_text(pipeline(name="profiled").to_json())
    result = CliRunner().invoke(
        app, ["analytics", "run", str(spec_path), "--profile", "--lake", str(trades_lake.root)]
    )
    assert result.exit_code != 0
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert any("pip install 'ticklake[profile]'" in line for line in lines), result.output
    assert "Traceback" not in result.output
