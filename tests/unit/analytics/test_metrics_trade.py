"""Trade metrics on real Binance BTCUSDT trades, checked against DuckDB SQL and a plain
Python time-weighting loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from ticklake.analytics.buckets import BucketSpec
from ticklake.analytics.metrics import trade
from ticklake.analytics.registry import all_metrics, get_metric

WIDTH_NS = 5_000_000_000  # 5 s buckets: ~10 buckets over the ~46 s sample


@pytest.fixture(scope="module")
def binance_trades(shared_data: Path) -> pl.DataFrame:
    raw = pl.read_parquet(shared_data / "nautilus-crypto-samples/binance/btcusdt-trades.parquet")
    return raw.select(
        ts=pl.col("timestamp").cast(pl.Datetime("ns", "UTC")),
        instrument=pl.lit("BTCUSDT"),
        trade_id=pl.col("trade_id").cast(pl.String),
        price="price",
        size="quantity",
        # the buyer was the maker: a seller hit the bid
        side=pl.when(pl.col("buyer_maker") == "True").then(pl.lit("sell")).otherwise(pl.lit("buy")),
    )


def _bucket_metrics(frame: pl.DataFrame, width: str) -> pl.DataFrame:
    exprs = []
    for m in all_metrics("trade"):
        if m.kind == "bucket":
            exprs += m.expressions(m.params_model())
    exprs += get_metric("large_trade_count_min_size").expressions(
        trade.LargeTradeSizeParams(min_size=0.05)
    )
    spec = BucketSpec(width=width)
    return (
        frame.sort("ts")
        .group_by_dynamic("ts", group_by="instrument", **spec.group_by_dynamic_args())
        .agg(exprs)
        .with_columns(label_ns=pl.col("ts").dt.epoch("ns"))
    )


DUCKDB_ORACLE = f"""
WITH t AS (
  SELECT *, row_number() OVER () AS row_no,
         epoch_ns(ts) AS ns,
         -- (start, end] labelled end: ceil to the bucket width
         (epoch_ns(ts) + {WIDTH_NS} - 1) // {WIDTH_NS} * {WIDTH_NS} AS label_ns
  FROM trades
)
SELECT label_ns,
  sum(size) AS trade_volume,
  sum(price * size) AS trade_notional,
  count(*) AS trade_count,
  arg_min(price, ns::HUGEINT * 1000000 + row_no) AS open_price,
  max(price) AS high_price,
  min(price) AS low_price,
  arg_max(price, ns::HUGEINT * 1000000 + row_no) AS close_price,
  sum(price * size) / sum(size) AS vwap_price,
  coalesce(sum(size) FILTER (WHERE side = 'buy'), 0) AS buy_volume,
  coalesce(sum(size) FILTER (WHERE side = 'sell'), 0) AS sell_volume,
  avg(size) AS trade_size_mean,
  quantile_cont(size, 0.9) AS q90,
  count(*) FILTER (WHERE size >= 0.05) AS large_trade_count_min_size_0_05
FROM t GROUP BY label_ns ORDER BY label_ns
"""


@pytest.mark.shared_data
def test_trade_bucket_metrics_match_duckdb_on_binance(binance_trades: pl.DataFrame) -> None:
    ours = _bucket_metrics(binance_trades, "5s")
    con = duckdb.connect()
    con.register("trades", binance_trades.to_arrow())
    expected = con.sql(DUCKDB_ORACLE).pl()
    q90 = {row["label_ns"]: row["q90"] for row in expected.iter_rows(named=True)}
    big = (
        binance_trades.with_columns(
            label_ns=(pl.col("ts").dt.epoch("ns") + WIDTH_NS - 1) // WIDTH_NS * WIDTH_NS
        )
        .with_columns(q=pl.col("label_ns").replace_strict(q90))
        .group_by("label_ns")
        .agg((pl.col("size") >= pl.col("q")).sum().alias("large"))
    )
    large = dict(big.rows())
    assert ours["label_ns"].to_list() == expected["label_ns"].to_list()
    for mine, theirs in zip(
        ours.iter_rows(named=True), expected.iter_rows(named=True), strict=True
    ):
        for name in (
            "trade_volume",
            "trade_notional",
            "trade_count",
            "open_price",
            "high_price",
            "low_price",
            "close_price",
            "vwap_price",
            "buy_volume",
            "sell_volume",
            "trade_size_mean",
        ):
            assert mine[name] == pytest.approx(theirs[name], rel=1e-12), name
        buy, sell = theirs["buy_volume"], theirs["sell_volume"]
        assert mine["trade_imbalance"] == pytest.approx((buy - sell) / (buy + sell))
        assert mine["large_trade_count_min_size_0.05"] == theirs["large_trade_count_min_size_0_05"]
        assert mine["large_trade_count_quantile_0.9"] == large[theirs["label_ns"]]


def test_open_and_close_follow_time_not_row_order() -> None:
    t0 = datetime(2024, 5, 1, 9, 0, 1, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "ts": [t0 + timedelta(seconds=s) for s in (3, 1, 1, 2)],
            "instrument": "X",
            "price": [13.0, 11.0, 11.5, 12.0],
            "size": [1.0, 1.0, 1.0, 1.0],
            "side": [None, None, None, None],
        }
    ).with_columns(pl.col("side").cast(pl.String))
    out = frame.select(
        trade.open_price(trade.NoParams()),
        trade.close_price(trade.NoParams()),
        trade.trade_imbalance(trade.NoParams()),
    )
    # ties at 1 s keep their stored order; no side known -> no imbalance
    assert out.row(0) == (11.0, 13.0, None)


@pytest.mark.shared_data
def test_twap_against_a_python_loop(binance_trades: pl.DataFrame) -> None:
    out = trade.twap_price(binance_trades, trade.NoParams(), BucketSpec(width="5s"))
    rows = binance_trades.sort("ts").select(pl.col("ts").dt.epoch("ns"), "price").rows()
    sums: dict[int, list[float]] = {}
    for i, (ns, price) in enumerate(rows):
        end = (ns + WIDTH_NS - 1) // WIDTH_NS * WIDTH_NS
        following = rows[i + 1][0] if i + 1 < len(rows) else end
        weight = min(following, end) - ns
        total = sums.setdefault(end, [0.0, 0.0])
        total[0] += price * weight
        total[1] += weight
    expected = {k: v[0] / v[1] for k, v in sums.items() if v[1] > 0}
    got = dict(out.select(pl.col("ts").dt.epoch("ns"), "twap_price").rows())
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12)


def test_trade_size_statistics_and_quantile_threshold() -> None:
    frame = pl.DataFrame({"size": [1.0, 2.0, 3.0, 4.0, 100.0]})
    stats = frame.select(
        trade.trade_size(trade.SizeStatisticParams(statistic="median")),
        trade.trade_size(trade.SizeStatisticParams(statistic="max")),
        trade.large_trade_count_quantile(trade.LargeTradeQuantileParams(quantile=0.75)),
    )
    # the 0.75 quantile of 1..4,100 is 4 (linear): two trades reach it
    assert stats.row(0) == (3.0, 100.0, 2)
