from __future__ import annotations

import duckdb
import polars as pl
from _quality_helpers import Validate, at


def _bars(rows: list[tuple[float, float, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [at(60 * i) for i in range(len(rows))],
            "ts_end": [at(60 * (i + 1)) for i in range(len(rows))],
            "instrument": ["X"] * len(rows),
            "open": [r[0] for r in rows],
            "high": [r[1] for r in rows],
            "low": [r[2] for r in rows],
            "close": [r[3] for r in rows],
        }
    )


def test_r1_counts_each_bad_bar_once_and_passes_clean_bars(validate: Validate) -> None:
    rows = [
        (10.0, 11.0, 9.0, 10.5),  # fine
        (10.0, 9.5, 9.0, 9.2),  # open above high
        (10.0, 11.0, 10.2, 10.5),  # low above open
        (12.0, 11.0, 12.5, 11.5),  # breaks three inequalities: still one bar
        (10.0, 10.0, 10.0, 10.0),  # flat bar is fine
    ]
    frame = _bars(rows)
    expected = (
        duckdb.connect()
        .sql(
            "select count(*) from frame where not (low <= least(open, close) "
            "and greatest(open, close) <= high and low <= high)"
        )
        .fetchall()[0]
    )
    report = validate(frame, "bars", ["R1"])
    summary = report.rule("R1")
    assert expected == (3,)
    assert (summary.checked, summary.violations) == (5, 3)
    assert report.verdict == "FAIL"
    # the worst breach (bar 3: low 12.5 vs high 11.0 = 1.5 / 11.5 of the close) ranks first
    assert summary.offending["open"][0] == 12.0
    assert round(summary.offending["breach_bps"][0], 3) == round(1.5 / 11.5 * 1e4, 3)

    clean = validate(_bars([rows[0], rows[4]]), "bars", ["R1"], dataset="clean")
    assert clean.rule("R1").violations == 0 and clean.verdict == "PASS"


def test_r2_flags_nonpositive_prices_but_not_empty_book_levels(validate: Validate) -> None:
    frame = pl.DataFrame(
        {
            "ts": [at(i) for i in range(5)],
            "instrument": ["X"] * 5,
            "seq": list(range(5)),
            "bid_price": [10.0, 0.0, -1.0, 10.0, 0.0],
            "bid_size": [1.0, 0.0, 1.0, 1.0, 5.0],
            "ask_price": [10.5, 10.5, 10.5, 0.0, 10.5],
            "ask_size": [1.0, 1.0, 1.0, 2.0, 1.0],
        }
    )
    # row 1: empty bid level (0 @ 0) is fine; row 2: negative bid; row 3: ask 0 with size 2;
    # row 4: bid 0 with size 5 -> 3 bad rows
    report = validate(frame, "quotes", ["R2"])
    summary = report.rule("R2")
    assert (summary.checked, summary.violations) == (5, 3)
    assert summary.statistics == {"nonpositive_bid_price": 2, "nonpositive_ask_price": 1}
    strict = validate(
        frame, "quotes", ["R2"], {"R2": {"empty_level_zero_ok": False}}, dataset="strict"
    )
    assert strict.rule("R2").violations == 4


def test_r4_finds_nan_inf_and_null_in_required_fields(validate: Validate) -> None:
    frame = _bars([(10.0, 11.0, 9.0, 10.5)] * 6).with_columns(
        pl.Series("close", [10.5, float("nan"), float("inf"), None, 10.5, float("-inf")]),
        pl.Series("high", [11.0, float("nan"), 11.0, 11.0, 11.0, 11.0]),
    )
    report = validate(frame, "bars", ["R4"])
    summary = report.rule("R4")
    assert (summary.checked, summary.violations) == (6, 4)
    assert summary.statistics == {"nan_close": 1, "nan_high": 1, "inf_close": 2, "null_close": 1}
    # volume is nullable and not required for bars: a null volume everywhere passes
    clean = validate(_bars([(10.0, 11.0, 9.0, 10.5)] * 3), "bars", ["R4"], dataset="clean")
    assert clean.rule("R4").violations == 0
