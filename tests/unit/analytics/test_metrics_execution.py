"""Execution metrics on real Binance BTCUSDT trades and quotes, checked against a plain
Python bisect walk."""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from ticklake.analytics.buckets import BucketSpec
from ticklake.analytics.metrics import execution
from ticklake.analytics.registry import get_metric

WIDTH_NS = 10_000_000_000


@pytest.fixture(scope="module")
def binance(shared_data: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    folder = shared_data / "nautilus-crypto-samples" / "binance"
    trades = pl.read_parquet(folder / "btcusdt-trades.parquet").select(
        ts=pl.col("timestamp").cast(pl.Datetime("ns", "UTC")),
        instrument=pl.lit("BTCUSDT"),
        price="price",
        size="quantity",
        side=pl.when(pl.col("buyer_maker") == "True").then(pl.lit("sell")).otherwise(pl.lit("buy")),
    )
    quotes = pl.read_parquet(folder / "btcusdt-quotes.parquet").select(
        ts=pl.col("timestamp").cast(pl.Datetime("ns", "UTC")),
        instrument=pl.lit("BTCUSDT"),
        bid_price="bid",
        ask_price="ask",
    )
    return trades, quotes


def _oracle(trades: pl.DataFrame, quotes: pl.DataFrame, horizon_ns: int) -> dict[str, dict]:
    q_ns = quotes["ts"].dt.epoch("ns").to_list()
    mids = ((quotes["bid_price"] + quotes["ask_price"]) / 2).to_list()
    values: dict[str, dict[int, list[float]]] = {
        k: {} for k in ("effective", "markout", "realised", "impact")
    }
    for ns, price, side in trades.select(pl.col("ts").dt.epoch("ns"), "price", "side").rows():
        before = bisect.bisect_left(q_ns, ns) - 1  # strictly before the trade
        mid0 = mids[before] if before >= 0 else None
        sign = 1.0 if side == "buy" else -1.0
        label = (ns + WIDTH_NS - 1) // WIDTH_NS * WIDTH_NS
        after = bisect.bisect_right(q_ns, ns + horizon_ns) - 1
        # nothing observed that late, or no quote yet at the horizon
        mid_h = mids[after] if ns + horizon_ns <= q_ns[-1] and after >= 0 else None
        if mid_h is not None:
            values["markout"].setdefault(label, []).append(sign * (mid_h - price) / price * 1e4)
        if mid0 is None:
            continue
        values["effective"].setdefault(label, []).append(2 * sign * (price - mid0) / mid0 * 1e4)
        if mid_h is not None:
            realised = 2 * sign * (price - mid_h) / mid0 * 1e4
            values["realised"].setdefault(label, []).append(realised)
            values["impact"].setdefault(label, []).append(2 * sign * (mid_h - mid0) / mid0 * 1e4)
    return {k: {b: sum(v) / len(v) for b, v in d.items()} for k, d in values.items()}


@pytest.mark.shared_data
@pytest.mark.parametrize("horizon_ms", [100, 1000, 5000])
def test_execution_metrics_match_a_bisect_walk(
    binance: tuple[pl.DataFrame, pl.DataFrame], horizon_ms: int
) -> None:
    trades, quotes = binance
    expected = _oracle(trades, quotes, horizon_ms * 1_000_000)
    spec = BucketSpec(width="10s")
    params = execution.HorizonParams(horizon_ms=horizon_ms)
    cases = {
        "effective": (get_metric("effective_spread_bps"), execution.NoParams()),
        "markout": (get_metric("post_trade_markout_bps"), params),
        "realised": (get_metric("post_trade_realised_spread_bps"), params),
        "impact": (get_metric("post_trade_price_impact_bps"), params),
    }
    for key, (m, p) in cases.items():
        out = m.fn(trades, p, spec, quotes=quotes)
        name = m.output_name(p)
        assert out.columns == ["instrument", "ts", name]
        got = dict(out.select(pl.col("ts").dt.epoch("ns"), name).rows())
        assert got.keys() == expected[key].keys(), key
        for label, value in expected[key].items():
            assert got[label] == pytest.approx(value, rel=1e-9, abs=1e-9), (key, label)


def test_quote_rule_signs_trades_without_a_side_and_horizons_past_the_data_are_null() -> None:
    t0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    at = lambda s: t0 + timedelta(seconds=s)  # noqa: E731
    quotes = pl.DataFrame(
        {
            "ts": [at(1), at(2), at(4)],
            "instrument": "X",
            "bid_price": [99.0, 99.0, 101.0],
            "ask_price": [101.0, 101.0, 103.0],
        }
    )
    trades = pl.DataFrame(
        {
            "ts": [at(2), at(3), at(3.5), at(3.9)],
            "instrument": "X",
            "price": [99.0, 101.0, 100.0, 101.0],
            "size": 1.0,
            "side": [None, None, None, "buy"],
        },
        schema_overrides={"side": pl.String},
    )
    rows = execution.trade_markouts(trades, quotes, (1000,))
    # the quote at 2 s is not "before" the trade at 2 s: the 1 s quote is used
    assert rows["mid_before"].to_list() == [100.0, 100.0, 100.0, 100.0]
    # below the mid: sell; above: buy; at the mid: unsigned
    assert rows["sign"].to_list() == [-1.0, 1.0, None, 1.0]
    # 3.5 s + 1 s and 3.9 s + 1 s are after the last quote (4 s): unknown, not stale
    assert rows["mid_after_1000ms"].to_list() == [100.0, 102.0, None, None]
