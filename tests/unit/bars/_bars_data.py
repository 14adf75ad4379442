"""Realistic generated trades and quotes for the bar tests (imported by tests and conftest)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

NS = 1_000_000_000


def make_trades(
    *,
    start: datetime,
    seconds: int,
    rows: int,
    instruments: tuple[str, ...] = ("AAA", "BBB"),
    seed: int = 1,
) -> pl.DataFrame:
    """Trades with bursts (many prints in one ms), shared timestamps, random sides.

    ``trade_id`` is a per-instrument running number as text, so ties at one timestamp
    cross digit counts ("9", "10"): order by id must be numeric-aware. Sides are buy,
    sell or unknown (null); prices follow a random walk on a 0.01 grid.
    """
    rng = np.random.default_rng(seed)
    start_ns = int(start.timestamp()) * NS
    # Bursts: a third of the prints share a timestamp with the previous one.
    gaps = rng.exponential(seconds * NS / rows, rows).astype(np.int64)
    gaps[rng.random(rows) < 0.33] = 0
    ts = start_ns + np.cumsum(gaps)
    ts = np.minimum(ts, start_ns + seconds * NS - 1)
    instrument = rng.choice(list(instruments), rows)
    steps = rng.choice([-1, 0, 1], rows, p=[0.3, 0.4, 0.3])
    price = np.round(100 + np.cumsum(steps) * 0.01, 2)
    price = np.where(instrument == instruments[0], price, np.round(price * 3.1, 2))
    size = np.round(rng.lognormal(0.0, 1.0, rows), 4) + 0.0001
    side = rng.choice(np.array(["buy", "sell", None], dtype=object), rows, p=[0.45, 0.45, 0.1])
    frame = pl.DataFrame(
        {
            "ts": pl.Series(ts).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"),
            "instrument": instrument,
            "price": price,
            "size": size,
            "side": pl.Series(side.tolist(), dtype=pl.String),
        }
    )
    frame = frame.with_columns(
        (pl.int_range(pl.len()).over("instrument") + 1).cast(pl.String).alias("trade_id")
    )
    return frame.select("ts", "instrument", "trade_id", "price", "size", "side")


def make_quotes(
    *, start: datetime, seconds: int, rows: int, instruments: tuple[str, ...] = ("AAA", "BBB")
) -> pl.DataFrame:
    """Top-of-book quotes, some sharing a timestamp (seq breaks the tie)."""
    rng = np.random.default_rng(11)
    start_ns = int(start.timestamp()) * NS
    ts = np.sort(rng.integers(start_ns - 5 * NS, start_ns + seconds * NS, rows))
    ts[1::7] = ts[0:-1:7]  # equal timestamps
    ts = np.sort(ts)
    bid = np.round(100 + rng.normal(0, 0.05, rows), 2)
    return pl.DataFrame(
        {
            "ts": pl.Series(ts).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"),
            "instrument": rng.choice(list(instruments), rows),
            "seq": np.arange(rows, dtype=np.int64),
            "bid_price": bid,
            "bid_size": rng.integers(1, 50, rows).astype(float),
            "ask_price": bid + 0.01 * rng.integers(1, 4, rows),
            "ask_size": rng.integers(1, 50, rows).astype(float),
        }
    )
