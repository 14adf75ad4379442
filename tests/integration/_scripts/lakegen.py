"""Realistic trade frames for the lake tests (shared by tests and subprocess scripts).

Rows look like NSE index-futures prints: trading days in Asia/Kolkata (session
09:15-15:30 IST = 03:45-10:00 UTC), nanosecond timestamps with non-zero sub-microsecond
digits, prices on a 0.05 tick grid, sizes in lots of 25, venue trade ids.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

INSTRUMENTS = ("NIFTY24JANFUT", "BANKNIFTY24JANFUT", "FINNIFTY24JANFUT")
SESSION_OPEN_UTC_NS = (3 * 3600 + 45 * 60) * 1_000_000_000
SESSION_NS = (6 * 3600 + 15 * 60) * 1_000_000_000


def trading_days(first: date, count: int) -> list[date]:
    """The first ``count`` weekdays from ``first`` on."""
    out = []
    day = first
    while len(out) < count:
        if day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return out


def day_start_ns(day: date) -> int:
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return int(midnight.timestamp()) * 1_000_000_000


def make_trades(
    *,
    days: int = 3,
    rows_per_day: int = 400,
    seed: int = 0,
    first_day: date = date(2024, 1, 2),
    id_prefix: str = "",
) -> pl.DataFrame:
    """Trades across ``days`` weekdays; keys (instrument, ts, trade_id) are unique."""
    rng = np.random.default_rng(seed)
    frames = []
    for day_index, day in enumerate(trading_days(first_day, days)):
        offsets = np.sort(rng.integers(0, SESSION_NS, rows_per_day, dtype=np.int64))
        ts = day_start_ns(day) + SESSION_OPEN_UTC_NS + offsets
        instrument = rng.choice(np.array(INSTRUMENTS), rows_per_day)
        ticks = rng.integers(430_000, 440_000, rows_per_day)
        frames.append(
            pl.DataFrame(
                {
                    "ts": ts,
                    "instrument": instrument.tolist(),
                    "trade_id": [
                        f"{id_prefix}{seed}-{day_index}-{i:06d}" for i in range(rows_per_day)
                    ],
                    "price": ticks * 0.05,
                    "size": (rng.integers(1, 40, rows_per_day) * 25).astype(np.float64),
                    "side": pl.Series(
                        [("buy", "sell", None)[k] for k in rng.integers(0, 3, rows_per_day)],
                        dtype=pl.String,
                    ),
                    "venue": ["NSE"] * rows_per_day,
                    "recv_ts": ts + rng.integers(50_000, 900_000, rows_per_day),
                }
            )
        )
    frame = pl.concat(frames)
    return frame.with_columns(
        pl.col("ts").cast(pl.Datetime("ns", "UTC")),
        pl.col("recv_ts").cast(pl.Datetime("ns", "UTC")),
    )


def row_set(frame: pl.DataFrame) -> set[tuple]:
    """Rows as plain Python tuples (timestamps as int ns), the oracle's representation."""
    cols = ["ts", "instrument", "trade_id", "price", "size", "side", "venue", "recv_ts"]
    plain = frame.select(cols).with_columns(
        pl.col("ts").dt.epoch("ns"), pl.col("recv_ts").dt.epoch("ns")
    )
    return set(plain.iter_rows())
