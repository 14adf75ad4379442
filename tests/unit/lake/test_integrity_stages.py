"""Stages that open partition files by path check them first (issue 13).

Bars build, the quality runner, ``promote``, the analytics export of gold days and the
window statistics each read ``Lake.partitions(...)[i].path`` themselves (their workers
get paths, not frames). A byte flipped so that plain Polars reads altered values without
an error must make each of them fail with ``CorruptPartitionError`` naming the day, not
compute a wrong number. ``lake.verify_reads = false`` turns the check off (and then the
altered values go through, which is what the setting's documentation says).
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from lakegen import make_trades

import ticklake
from ticklake.analytics.targets import gold_days
from ticklake.errors import CorruptPartitionError
from ticklake.lake import integrity
from ticklake.lake.lake import Lake
from ticklake.stats import window_statistics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_integrity import silent_flip

DAMAGED = r"date=2024-01-03/data\.parquet: its sha256 .* verify --repair"


@pytest.fixture
def damaged(lake: Lake) -> Lake:
    """Three days of trades, the middle day's price page silently altered."""
    lake.write(
        "nifty",
        make_trades(days=3, rows_per_day=400, seed=21),
        schema="trades",
        timezone="Asia/Kolkata",
    )
    integrity.forget_verified()
    silent_flip(lake.partitions("nifty")[1].path)
    integrity.forget_verified()
    return lake


def test_bars_build_refuses_a_damaged_source_day(damaged: Lake) -> None:
    session = ticklake.open_lake(damaged.root)
    with pytest.raises(CorruptPartitionError, match=DAMAGED):
        session.bars("nifty", "1m", executor="serial")
    assert not any(d.name == "bars_1m" and damaged.partitions("bars_1m", "silver")
                   for d in damaged.datasets())  # fmt: skip
    # The intact days alone still build.
    summary = session.bars("nifty", "1m", start="2024-01-04", end="2024-01-04", executor="serial")
    assert [d.status for d in summary.days] == ["built"]


def test_validate_refuses_a_damaged_day(damaged: Lake) -> None:
    session = ticklake.open_lake(damaged.root)
    with pytest.raises(CorruptPartitionError, match=DAMAGED):
        session.validate("nifty", executor="serial")
    report = session.validate("nifty", start="2024-01-02", end="2024-01-02", executor="serial")
    assert (report.days, report.rows) == ([date(2024, 1, 2)], 400)


def test_promote_never_copies_altered_bronze_rows(damaged: Lake) -> None:
    session = ticklake.open_lake(damaged.root)
    with pytest.raises(CorruptPartitionError, match=DAMAGED):
        session.promote("nifty", [date(2024, 1, 3)])
    assert "silver" not in damaged.layers_of("nifty")


def test_analytics_export_reads_only_committed_gold(lake: Lake) -> None:
    lake.write(
        "flow",
        make_trades(days=2, rows_per_day=50, seed=4),
        layer="gold",
        schema="trades",
    )
    integrity.forget_verified()
    day = lake.partitions("flow", layer="gold")[1]
    silent_flip(day.path)
    with pytest.raises(CorruptPartitionError, match=f"date={day.date}"):
        gold_days(lake, "flow", [day.date])
    assert gold_days(lake, "flow", [lake.partitions("flow", layer="gold")[0].date]).height == 50


def test_window_statistics_refuse_a_damaged_day(lake: Lake) -> None:
    trades = make_trades(days=3, rows_per_day=400, seed=21)
    prices = trades.select("ts", "instrument", "price", pl.col("size").alias("volume"))
    lake.write("spot", prices, schema="prices", timezone="Asia/Kolkata")
    integrity.forget_verified()
    silent_flip(lake.partitions("spot")[1].path)
    with pytest.raises(CorruptPartitionError, match=DAMAGED):
        window_statistics(lake, "spot", windows=["09:15-09:30"], measures=["return"])


def test_verify_reads_off_trusts_the_files(damaged: Lake) -> None:
    """The opt-out does what it says: no hashing, and so the altered values are read."""
    trusting = ticklake.open_lake(damaged.root, lake={"verify_reads": False})
    altered = trusting.read("nifty", start="2024-01-03", end="2024-01-03")
    plain = pl.read_parquet(damaged.partitions("nifty")[1].path)
    assert altered["price"].to_list() == plain["price"].to_list()
    assert trusting.sql("SELECT count(*) AS n FROM bronze.nifty")["n"].item() == 1200
    with pytest.raises(CorruptPartitionError, match=DAMAGED):
        damaged.read("nifty", start="2024-01-03", end="2024-01-03")
    # `lake verify` checks whatever the setting says.
    assert any("2024-01-03" in p.path for p in trusting.verify().problems)
