"""Bars from trades (+ quotes) against DuckDB SQL and pandas re-implementations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest
from _bars_data import make_quotes, make_trades
from hypothesis import given, settings
from hypothesis import strategies as st

from ticklake.bars import BarGrid, trades_to_bars
from ticklake.bars._kernels import trade_bars

_EXACT = ["open", "high", "low", "close", "trade_count"]


def _as_utc_ns(ts: pl.Expr) -> pl.Expr:
    # DuckDB and pandas hand back "Etc/UTC" or µs; the bars schema is ns "UTC".
    return (
        ts.dt.cast_time_unit("ns")
        .dt.convert_time_zone("UTC")
        .dt.replace_time_zone(None)
        .dt.replace_time_zone("UTC")
    )


def _duckdb_bars(trades: pl.DataFrame, width: str) -> pl.DataFrame:
    """Independent SQL: arg_min/arg_max over an explicit (ts, numeric id) rank, UTC buckets."""
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.register("trades", trades.to_arrow())
    return (
        con.sql(
            f"""
        WITH ranked AS (
            SELECT *, row_number() OVER (
                       PARTITION BY instrument ORDER BY ts, CAST(trade_id AS BIGINT)) AS rn,
                   time_bucket(INTERVAL '{width}', ts::TIMESTAMPTZ) AS bucket
            FROM trades)
        SELECT instrument, bucket AS ts,
               arg_min(price, rn) AS open, max(price) AS high, min(price) AS low,
               arg_max(price, rn) AS close, sum(size) AS volume,
               sum(price * size) AS quote_volume, count(*) AS trade_count,
               sum(price * size) / sum(size) AS vwap,
               CASE WHEN count(side) > 0
                    THEN coalesce(sum(size) FILTER (WHERE side = 'buy'), 0) END AS buy_volume,
               CASE WHEN count(side) > 0
                    THEN coalesce(sum(size) FILTER (WHERE side = 'sell'), 0) END AS sell_volume
        FROM ranked GROUP BY ALL ORDER BY ts, instrument
        """
        )
        .pl()
        .with_columns(_as_utc_ns(pl.col("ts")))
    )


def _assert_matches(ours: pl.DataFrame, oracle: pl.DataFrame, columns: list[str]) -> None:
    assert ours.height == oracle.height
    joined = ours.join(oracle, on=["instrument", "ts"], how="inner", suffix="_oracle")
    assert joined.height == ours.height, "bars labelled differently from the oracle"
    for name in columns:
        left, right = joined[name], joined[f"{name}_oracle"].cast(left_dtype := joined[name].dtype)
        assert left_dtype is not None
        if name in _EXACT:
            assert (left == right).all(), name
        else:
            np.testing.assert_allclose(left.to_numpy(), right.to_numpy(), rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("width", ["1 second", "1 minute"])
def test_trade_bars_match_duckdb_sql(trades: pl.DataFrame, width: str) -> None:
    # Shuffled input: the kernel must order the prints itself, never take an arbitrary first.
    shuffled = trades.sample(fraction=1.0, shuffle=True, seed=3)
    interval = {"1 second": "1s", "1 minute": "1m"}[width]
    ours = trades_to_bars(shuffled, BarGrid.create(interval))
    oracle = _duckdb_bars(trades, width)
    columns = [*_EXACT, "volume", "quote_volume", "vwap", "buy_volume", "sell_volume"]
    _assert_matches(ours, oracle, columns)
    assert (ours["ts_end"] - ours["ts"]).unique().to_list() == [
        pd.Timedelta(width).to_pytimedelta()
    ]


def test_ties_resolve_by_numeric_trade_id_not_text() -> None:
    moment = datetime(2024, 1, 2, 10, 0, 0, 123000, tzinfo=UTC)
    trades = pl.DataFrame(
        {
            "ts": pl.Series([moment] * 3).dt.cast_time_unit("ns"),
            "instrument": ["X"] * 3,
            "trade_id": ["10", "9", "100"],
            "price": [2.0, 1.0, 3.0],
            "size": [1.0, 1.0, 1.0],
        }
    )
    bar = trades_to_bars(trades, BarGrid.create("1s")).row(0, named=True)
    assert (bar["open"], bar["close"]) == (1.0, 3.0)


def _pandas_bars(
    trades: pl.DataFrame, rule: str, timezone: str, offset: str | None
) -> pl.DataFrame:
    """Independent pandas: resample with explicit label/closed in the exchange time zone."""
    frame = trades.to_pandas()
    frame["id_number"] = frame["trade_id"].astype(int)
    frame = frame.sort_values(["ts", "id_number"], kind="stable")
    frame["notional"] = frame["price"] * frame["size"]
    out = []
    for instrument, group in frame.groupby("instrument"):
        local = group.set_index(group["ts"].dt.tz_convert(timezone))
        resampled = local.resample(rule, label="left", closed="left", offset=offset)
        bars = pd.DataFrame(
            {
                "open": resampled["price"].first(),
                "high": resampled["price"].max(),
                "low": resampled["price"].min(),
                "close": resampled["price"].last(),
                "volume": resampled["size"].sum(),
                "quote_volume": resampled["notional"].sum(),
                "trade_count": resampled["price"].count(),
            }
        )
        bars = bars[bars["trade_count"] > 0]
        bars["vwap"] = bars["quote_volume"] / bars["volume"]
        bars.index = bars.index.tz_convert("UTC")
        bars = bars.rename_axis("ts").reset_index()
        bars["instrument"] = instrument
        out.append(bars)
    result = pl.from_pandas(pd.concat(out))
    return result.with_columns(
        _as_utc_ns(pl.col("ts")),
        pl.col("trade_count").cast(pl.Int64),
    )


def test_anchored_hourly_bars_in_kolkata_match_pandas_resample() -> None:
    # A full NSE session 09:15-15:30 IST = 03:45-10:00 UTC, plus pre-open prints.
    trades = make_trades(
        start=datetime(2024, 1, 2, 3, 30, tzinfo=UTC), seconds=6 * 3600 + 30 * 60, rows=8000, seed=5
    )
    ours = trades_to_bars(trades, BarGrid.create("1h", timezone="Asia/Kolkata", anchor="09:15"))
    oracle = _pandas_bars(trades, "1h", "Asia/Kolkata", offset="15min")
    _assert_matches(ours, oracle, [*_EXACT, "volume", "quote_volume", "vwap"])
    ist_opens = {t.astimezone(tz=None).minute for t in ours["ts"]}
    assert ist_opens == {45}  # :15 IST is :45 UTC


def test_forward_fill_matches_pandas_and_is_marked() -> None:
    sparse = make_trades(
        start=datetime(2024, 1, 2, 10, tzinfo=UTC),
        seconds=1800,
        rows=60,
        instruments=("AAA",),
        seed=9,
    )
    ours = trades_to_bars(sparse, BarGrid.create("1m"), fill="forward")
    plain = trades_to_bars(sparse, BarGrid.create("1m"))
    frame = sparse.to_pandas().sort_values(["ts"], kind="stable")
    frame["id_number"] = frame["trade_id"].astype(int)
    frame = frame.sort_values(["ts", "id_number"], kind="stable").set_index("ts")
    resampled = frame.resample("1min", label="left", closed="left")
    close = resampled["price"].last().ffill()
    count = resampled["price"].count()
    assert ours.height == len(close) > plain.height
    assert ours["close"].to_list() == close.tolist()
    assert ours["trade_count"].to_list() == count.tolist()
    empty = ours.filter(pl.col("trade_count") == 0)
    assert (empty["open"] == empty["close"]).all() and (empty["high"] == empty["close"]).all()
    assert (empty["volume"] == 0).all() and empty["vwap"].is_null().all()


def _duckdb_last_quotes(bars: pl.DataFrame, quotes: pl.DataFrame) -> pl.DataFrame:
    con = duckdb.connect()
    con.register("bars", bars.select("instrument", "ts", "ts_end").to_arrow())
    con.register("quotes", quotes.to_arrow())
    return (
        con.sql(
            """
        SELECT b.instrument, b.ts,
               arg_max(q.bid_price, epoch_ns(q.ts)::HUGEINT * 1000000000 + q.seq) AS bid_price,
               arg_max(q.ask_price, epoch_ns(q.ts)::HUGEINT * 1000000000 + q.seq) AS ask_price
        FROM bars b LEFT JOIN quotes q ON q.instrument = b.instrument AND q.ts < b.ts_end
        GROUP BY ALL
        """
        )
        .pl()
        .with_columns(_as_utc_ns(pl.col("ts")))
    )


def test_last_bid_ask_is_the_quote_in_force_before_the_close(trades: pl.DataFrame) -> None:
    start = datetime(2024, 1, 2, 9, 20, tzinfo=UTC)
    quotes = make_quotes(start=start, seconds=1200, rows=3000)
    # A quote exactly at a bar's close belongs to the next bar: no look-ahead.
    boundary = pl.DataFrame(
        {"ts": [datetime(2024, 1, 2, 9, 21, tzinfo=UTC)], "instrument": ["AAA"], "seq": [10**9],
         "bid_price": [999.0], "bid_size": [1.0], "ask_price": [1000.0], "ask_size": [1.0]}
    ).with_columns(pl.col("ts").dt.cast_time_unit("ns"))  # fmt: skip
    quotes = pl.concat([quotes, boundary]).sort("ts")
    ours = trades_to_bars(trades, BarGrid.create("1m"), quotes=quotes)
    oracle = _duckdb_last_quotes(ours, quotes)
    joined = ours.join(oracle, on=["instrument", "ts"], suffix="_oracle")
    assert joined.height == ours.height
    assert (joined["bid_price"] == joined["bid_price_oracle"]).all()
    assert (joined["ask_price"] == joined["ask_price_oracle"]).all()
    assert 999.0 not in ours["bid_price"].to_list()


def test_binance_sample_trades_and_quotes(shared_data: Path) -> None:
    """The real BTCUSDT minute: trades and book ticker from nautilus' test data."""
    folder = shared_data / "nautilus-crypto-samples" / "binance"
    raw = pl.read_parquet(folder / "btcusdt-trades.parquet")
    trades = raw.select(
        pl.col("timestamp").dt.cast_time_unit("ns").dt.convert_time_zone("UTC").alias("ts"),
        pl.lit("BTCUSDT").alias("instrument"),
        pl.col("trade_id").cast(pl.String),
        pl.col("price").cast(pl.Float64),
        pl.col("quantity").cast(pl.Float64).alias("size"),
        pl.when(pl.col("buyer_maker") == "True")
        .then(pl.lit("sell"))
        .otherwise(pl.lit("buy"))
        .alias("side"),
    )
    book = pl.read_parquet(folder / "btcusdt-quotes.parquet")
    quotes = book.select(
        pl.col("timestamp").dt.cast_time_unit("ns").dt.convert_time_zone("UTC").alias("ts"),
        pl.lit("BTCUSDT").alias("instrument"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("seq"),
        pl.col("bid").cast(pl.Float64).alias("bid_price"),
        pl.col("ask").cast(pl.Float64).alias("ask_price"),
    )
    ours = trades_to_bars(trades, BarGrid.create("1s"), quotes=quotes)
    oracle = _duckdb_bars(trades, "1 second")
    _assert_matches(ours, oracle, [*_EXACT, "volume", "quote_volume", "vwap", "buy_volume"])
    last = _duckdb_last_quotes(ours, quotes)
    joined = ours.join(last, on=["instrument", "ts"], suffix="_oracle")
    both_null = joined["bid_price"].is_null() & joined["bid_price_oracle"].is_null()
    assert ((joined["bid_price"] == joined["bid_price_oracle"]) | both_null).all()
    # Hand check of the first second from the raw rows with plain Python.
    rows = sorted(raw.rows(named=True), key=lambda r: (r["timestamp"], int(r["trade_id"])))
    first_second = [
        r
        for r in rows
        if r["timestamp"].replace(microsecond=0) == rows[0]["timestamp"].replace(microsecond=0)
    ]
    bar = ours.row(0, named=True)
    assert bar["open"] == float(first_second[0]["price"])
    assert bar["close"] == float(first_second[-1]["price"])
    assert bar["trade_count"] == len(first_second)


def test_kernel_runs_the_same_compiled_and_as_plain_python(trades: pl.DataFrame) -> None:
    small = trades.head(400)
    ts = small["ts"].dt.epoch("ns").to_numpy()
    grid = BarGrid.create("1s")
    table = grid.day_table(int(ts.min()), int(ts.max()))
    opens = (ts // 1_000_000_000) * 1_000_000_000  # UTC seconds: the 1 s bar opens
    views = {
        name: np.frombuffer(
            small[name].to_arrow(compat_level=pl.CompatLevel.newest()).buffers()[1], np.uint64
        ).reshape(-1, 2)
        for name in ("instrument", "side", "trade_id")
    }
    validity = small["side"].to_arrow(compat_level=pl.CompatLevel.newest()).buffers()[0]
    for given_opens in (np.empty(0, np.int64), opens):
        args = (
            ts, given_opens, int(table.starts_ns[0]), 0, 1_000_000_000, False,
            views["instrument"], True,
            small["price"].to_numpy(), small["size"].to_numpy(),
            views["side"], np.frombuffer(validity, np.uint8), 0,
            views["trade_id"].view(np.uint8), True,
        )  # fmt: skip
        compiled, plain = trade_bars(*args), trade_bars.py_func(*args)
        assert compiled[0] == plain[0] == 0
        assert compiled[1].shape[0] > 100  # a real run, not an early stop
        for index, (left, right) in enumerate(zip(compiled[1:], plain[1:], strict=True)):
            if index == 1 and given_opens.shape[0]:
                continue  # bar ends are the caller's job when opens are given
            np.testing.assert_array_equal(left, right)
        np.testing.assert_array_equal(compiled[1], opens[compiled[3]])


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 5_000),  # ms after the start: many shared timestamps
            st.sampled_from(["X", "Y"]),
            st.integers(1, 120),  # price ticks
            st.sampled_from(["buy", "sell", None]),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_bars_equal_a_plain_python_fold_for_any_order(rows: list[tuple]) -> None:
    start = datetime(2024, 1, 2, 23, 59, 58, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "ts": [start + timedelta(milliseconds=ms) for ms, *_ in rows],
            "instrument": [r[1] for r in rows],
            "trade_id": [str(1000 - i) for i in range(len(rows))],  # reversed id order
            "price": [r[2] / 4 for r in rows],
            "size": [1.0 + i % 3 for i in range(len(rows))],
            "side": [r[3] for r in rows],
        },
        schema_overrides={"side": pl.String},
    ).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
    ours = trades_to_bars(frame, BarGrid.create("1s"))
    expected: dict[tuple[str, datetime], list] = {}
    ordered = sorted(frame.iter_rows(named=True), key=lambda r: (r["ts"], int(r["trade_id"])))
    for row in ordered:
        second = row["ts"].replace(microsecond=0)
        bar = expected.setdefault(
            (row["instrument"], second), [row["price"], row["price"], row["price"], 0.0, 0, None]
        )
        bar[1], bar[2] = max(bar[1], row["price"]), min(bar[2], row["price"])
        bar[3] += row["size"]
        bar[4] += 1
        bar.append(row["price"])
        if row["side"] == "buy":
            bar[5] = (bar[5] or 0.0) + row["size"]
        elif row["side"] == "sell":
            bar[5] = bar[5] or 0.0
    assert ours.height == len(expected)
    for bar in ours.iter_rows(named=True):
        o, h, low, volume, count, buy, *prices = expected[(bar["instrument"], bar["ts"])]
        assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (o, h, low, prices[-1])
        assert (bar["volume"], bar["trade_count"], bar["buy_volume"]) == (volume, count, buy)
