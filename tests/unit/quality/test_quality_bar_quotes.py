"""R3 (ask above bid) on bars that carry the last best bid/ask of each bar."""

from __future__ import annotations

import duckdb
import polars as pl
from _quality_helpers import Validate, at


def _bars(bids: list[float | None], asks: list[float | None]) -> pl.DataFrame:
    n = len(bids)
    close = [100.0 + i * 0.01 for i in range(n)]
    return pl.DataFrame(
        {
            "ts": [at(60 * i) for i in range(n)],
            "ts_end": [at(60 * (i + 1)) for i in range(n)],
            "instrument": ["X"] * n,
            "open": close,
            "high": [c + 0.05 for c in close],
            "low": [c - 0.05 for c in close],
            "close": close,
            "volume": [10.0] * n,
            "bid_price": bids,
            "ask_price": asks,
        },
        schema_overrides={"bid_price": pl.Float64, "ask_price": pl.Float64},
    )


def test_r3_runs_on_bars_with_bid_and_ask(validate: Validate) -> None:
    bids = [100.0, 100.0, 100.2, 100.0, None, 0.0, 100.0]
    asks = [100.1, 100.0, 100.1, 99.5, 100.1, 100.1, 100.01]
    frame = _bars(bids, asks)
    report = validate(frame, "bars", ["R3"])
    summary = report.rule("R3")
    # Oracle: plain DuckDB over the same rows (two-sided = both sides > 0).
    oracle = duckdb.sql(
        "select count(*) filter (where bid_price > 0 and ask_price > 0), "
        "count(*) filter (where bid_price > 0 and ask_price > 0 and ask_price < bid_price), "
        "count(*) filter (where bid_price > 0 and ask_price > 0 and ask_price = bid_price) "
        "from frame"
    ).fetchall()[0]
    assert oracle == (5, 2, 1)
    assert summary.status != "skipped"
    assert (summary.checked, summary.violations) == (oracle[0], oracle[1] + oracle[2])
    assert summary.statistics == {"crossed_rows": 2, "locked_rows": 1}
    assert sorted(summary.offending["kind"].to_list()) == ["crossed", "crossed", "locked"]
    assert report.verdict == "FAIL"
    # An ask one tick (0.01) above the bid is fine; a locked bar passes when allowed.
    lenient = validate(frame, "bars", ["R3"], {"R3": {"locked_is_violation": False}}, dataset="b")
    assert lenient.rule("R3").violations == 2


def test_r3_on_bars_without_quotes_checks_nothing(validate: Validate) -> None:
    frame = _bars([None, None], [None, None])
    summary = validate(frame, "bars", ["R3"]).rule("R3")
    assert (summary.checked, summary.violations) == (0, 0)
