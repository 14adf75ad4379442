from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import polars as pl
from _quality_helpers import Validate, at


def test_r5_gaps_are_relative_to_the_typical_interval(validate: Validate) -> None:
    seconds = [float(s) for s in range(100)] + [106.0, 107.0, 120.0, 121.0]
    frame = pl.DataFrame(
        {"ts": [at(s) for s in seconds], "instrument": ["X"] * 104, "price": [1.0] * 104}
    )
    # typical interval 1 s -> gaps above 5 s: 99->106 (7 s) and 107->120 (13 s)
    report = validate(frame, "prices", ["R5.gaps"])
    summary = report.rule("R5.gaps")
    assert (summary.checked, summary.violations) == (103, 2)
    assert summary.offending["gap_seconds"].to_list() == [13.0, 7.0]
    assert summary.statistics["max_gap_seconds"] == 13.0
    wide = validate(frame, "prices", ["R5.gaps"], {"R5.gaps": {"gap_factor": 10}}, dataset="w")
    assert wide.rule("R5.gaps").violations == 1


def test_r5_order_follows_seq_within_an_instrument(validate: Validate) -> None:
    # Events in seq order; the ts of seq 3 is earlier than seq 2 (a late-stamped event).
    frame = pl.DataFrame(
        {
            "ts": [at(0), at(1), at(3), at(2), at(4), at(0.5)],
            "instrument": ["X", "X", "X", "X", "X", "Y"],
            "seq": [1, 2, 3, 4, 5, 6],
            "action": ["add"] * 6,
            "price": [1.0] * 6,
            "size": [1.0] * 6,
        }
    )
    expected = (
        duckdb.connect()
        .sql(
            "select count(*) from (select ts < lag(ts) over (partition by instrument order by seq) "
            "as back from frame) where back"
        )
        .fetchall()[0][0]
    )
    report = validate(frame, "l3", ["R5.order"])
    assert report.rule("R5.order").violations == expected == 1
    assert report.rule("R5.order").offending["backwards_ms"].to_list() == [1000.0]


def test_r5_duplicates_on_a_chosen_key(validate: Validate) -> None:
    frame = pl.DataFrame(
        {
            "ts": [at(0), at(0), at(0), at(1)],
            "instrument": ["X"] * 4,
            "seq": [1, 2, 3, 4],
            "bid_price": [1.0, 1.0, 1.0, 1.0],
            "ask_price": [2.0, 2.0, 2.0, 2.0],
        }
    )
    on_key = validate(frame, "quotes", ["R5.duplicates"])
    assert on_key.rule("R5.duplicates").violations == 0  # the schema key includes seq
    by_time = validate(
        frame,
        "quotes",
        ["R5.duplicates"],
        {"R5.duplicates": {"key_columns": ["instrument", "ts"]}},
        dataset="by_time",
    )
    assert by_time.rule("R5.duplicates").violations == 2  # three at ts 0: two repeats


def test_r5_alignment_in_the_exchange_time_zone(validate: Validate) -> None:
    # 1-minute NSE bars (IST = UTC+5:30): 03:45 UTC = 09:15 IST is on the grid.
    start = datetime(2024, 1, 2, 3, 45, tzinfo=UTC)
    ts = [start, at(60, start), at(150, start), at(180, start)]
    ts_end = [at(60, start), at(120, start), at(210, start), at(300, start)]
    frame = pl.DataFrame(
        {
            "ts": ts,
            "ts_end": ts_end,
            "instrument": ["X"] * 4,
            "open": [1.0] * 4,
            "high": [1.0] * 4,
            "low": [1.0] * 4,
            "close": [1.0] * 4,
        }
    )
    report = validate(frame, "bars", ["R5.alignment"], timezone="Asia/Kolkata")
    summary = report.rule("R5.alignment")
    # bar 2 starts at :30 s (off grid); bar 3 lasts 2 minutes (wrong length)
    assert (summary.checked, summary.violations) == (4, 2)
    assert summary.statistics["off_grid_bars"] == 1
    assert summary.statistics["wrong_length_bars"] == 1
    hourly = validate(
        frame.head(1).with_columns(pl.col("ts").dt.offset_by("1h").alias("ts_end")),
        "bars",
        ["R5.alignment"],
        {"R5.alignment": {"anchor_offset_seconds": 900}},
        timezone="Asia/Kolkata",
        dataset="hourly",
    )
    assert hourly.rule("R5.alignment").violations == 0  # NSE hourly bars start 09:15
