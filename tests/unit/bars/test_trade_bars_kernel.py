"""The one-pass trade-bar kernel against a plain-Python fold, on awkward random input.

The oracle sorts the rows by (ts, numeric trade id) with ``sorted`` and folds them into
dicts; bar bounds come from ``zoneinfo`` wall-clock arithmetic written out here, not
from :mod:`ticklake.bars.alignment`. The cases cover what the kernel special-cases:
inline (≤ 12 bytes) and long symbols, many symbols (its symbol table grows), ids too
long to compare inline, null and unknown sides, zero-size prints, equal timestamps,
sorted and unsorted input, sliced and multi-chunk frames, and session boundaries
(an anchored grid across the exchange's midnight, a daylight-saving change).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from _bars_data import make_trades
from hypothesis import given, settings
from hypothesis import strategies as st

from ticklake.bars import BarGrid, trades_to_bars
from ticklake.bars._kernels import bar_order

NS = 1_000_000_000
# (interval, step ns, time zone, anchor, first trade, span in seconds)
GRIDS = {
    "1s UTC across midnight": ("1s", NS, "UTC", None, datetime(2024, 1, 2, 23, 59, 58), 5),
    "5m Kolkata anchored 09:17 across its midnight": (
        "5m", 300 * NS, "Asia/Kolkata", time(9, 17), datetime(2024, 1, 2, 17, 40), 3 * 3600,
    ),
    "1h New York on the spring-forward day": (
        "1h", 3600 * NS, "America/New_York", None, datetime(2024, 3, 10, 4, 30), 8 * 3600,
    ),
}  # fmt: skip
SYMBOLS = ["X", "Y", "BTCUSDT", "TWELVE_BYTES", "THIRTEEN_BYTES", "NIFTY24JAN21500CE"]


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * NS + moment.microsecond * 1000


def _bounds(ts_ns: int, step: int, timezone: str, anchor: time | None) -> tuple[int, int]:
    """(open, end) of the bar holding ``ts_ns``: the grid restarts at local midnight."""
    zone = ZoneInfo(timezone)
    local_day = datetime.fromtimestamp(ts_ns / NS, zone).date()
    start = _ns(datetime.combine(local_day, time(), zone))
    next_start = _ns(datetime.combine(local_day + timedelta(days=1), time(), zone))
    origin = start if anchor is None else _ns(datetime.combine(local_day, anchor, zone))
    grid_open = origin + (ts_ns - origin) // step * step
    return max(grid_open, start), min(grid_open + step, next_start)


def _python_bars(frame: pl.DataFrame, step: int, timezone: str, anchor: time | None) -> list:
    rows = sorted(
        frame.with_columns(pl.col("ts").dt.epoch("ns").alias("ns")).iter_rows(named=True),
        key=lambda r: (r["ns"], int(r["trade_id"])),
    )
    bars: dict[tuple[int, str], dict] = {}
    for row in rows:
        bar_open, bar_end = _bounds(row["ns"], step, timezone, anchor)
        bar = bars.setdefault(
            (bar_open, row["instrument"]),
            {"ts_end": bar_end, "open": row["price"], "high": row["price"], "low": row["price"],
             "volume": 0.0, "quote_volume": 0.0, "trade_count": 0, "buy": 0.0, "sell": 0.0,
             "known": False},
        )  # fmt: skip
        bar["high"] = max(bar["high"], row["price"])
        bar["low"] = min(bar["low"], row["price"])
        bar["close"] = row["price"]
        bar["volume"] += row["size"]
        bar["quote_volume"] += row["price"] * row["size"]
        bar["trade_count"] += 1
        if row["side"] in ("buy", "sell"):
            bar["known"] = True
            bar[row["side"]] += row["size"]
    return [
        {
            "ts": key[0],
            "ts_end": bar["ts_end"],
            "instrument": key[1],
            **{name: bar[name] for name in ("open", "high", "low", "close", "volume")},
            "quote_volume": bar["quote_volume"],
            "trade_count": bar["trade_count"],
            "vwap": bar["quote_volume"] / bar["volume"] if bar["volume"] > 0 else None,
            "buy_volume": bar["buy"] if bar["known"] else None,
            "sell_volume": bar["sell"] if bar["known"] else None,
        }
        for key, bar in sorted(bars.items())
    ]


def _ours(frame: pl.DataFrame, grid: BarGrid) -> list[dict]:
    bars = trades_to_bars(frame, grid)
    unset = ("bid_price", "ask_price", "open_interest")
    assert all(bars[name].is_null().all() for name in unset)
    return bars.with_columns(pl.col("ts", "ts_end").dt.epoch("ns")).drop(unset).to_dicts()


@st.composite
def trade_frames(draw: st.DrawFn) -> tuple[str, pl.DataFrame]:
    grid_name = draw(st.sampled_from(sorted(GRIDS)))
    _interval, _step, _zone, _anchor, first, span = GRIDS[grid_name]
    n = draw(st.integers(1, 80))
    many = draw(st.booleans())  # up to 150 symbols: the symbol table must grow
    pool = [f"S{k}" for k in range(150)] if many else SYMBOLS
    # Few distinct instants: many prints share a timestamp; the span crosses a session.
    instants = draw(st.lists(st.integers(0, span * 1000), min_size=1, max_size=12))
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(instants),
                st.sampled_from(pool),
                st.integers(1, 400),
                st.sampled_from([0.0, 0.5, 1.0, 2.25]),
                st.sampled_from(["buy", "sell", None, "unknown"]),
            ),
            min_size=n,
            max_size=n,
        )
    )
    # Unique ids in random order: 1-2 digits (numeric-aware order), 12 (inline in the
    # views), 13 or 16 (not inline: the caller checks those ties).
    digits = draw(st.sampled_from([1, 12, 13, 16]))
    ids = [10 ** (digits - 1) + k for k in draw(st.permutations(range(n)))]
    start = first.replace(tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "ts": [start + timedelta(milliseconds=r[0]) for r in rows],
            "instrument": [r[1] for r in rows],
            "trade_id": [str(i) for i in ids],
            "price": [r[2] / 8 for r in rows],
            "size": [r[3] for r in rows],
            "side": [r[4] for r in rows],
        },
        schema_overrides={"side": pl.String},
    ).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
    order = draw(st.sampled_from(["as drawn", "by ts", "by ts and id"]))
    if order == "by ts":  # ties of a timestamp in random id order: the tie check decides
        frame = frame.sort("ts", maintain_order=True)
    elif order == "by ts and id":  # in order: no sort, the checks only
        frame = frame.sort(pl.col("ts"), pl.col("trade_id").cast(pl.Int64))
    return grid_name, frame


@settings(max_examples=80, deadline=None)
@given(case=trade_frames())
def test_kernel_bars_equal_a_python_fold(case: tuple[str, pl.DataFrame]) -> None:
    grid_name, frame = case
    interval, step, zone, anchor, _first, _span = GRIDS[grid_name]
    grid = BarGrid.create(interval, timezone=zone, anchor=anchor)
    assert _ours(frame, grid) == _python_bars(frame, step, zone, anchor)


def test_single_trade_and_zero_size_bars() -> None:
    frame = pl.DataFrame(
        {
            "ts": [datetime(2024, 1, 2, 9, 0, 0, 500_000, tzinfo=UTC)],
            "instrument": ["X"],
            "trade_id": ["1"],
            "price": [10.0],
            "size": [0.0],
            "side": [None],
        },
        schema_overrides={"side": pl.String},
    ).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
    bar = trades_to_bars(frame, BarGrid.create("1s")).row(0, named=True)
    assert (bar["open"], bar["close"], bar["trade_count"], bar["volume"]) == (10.0, 10.0, 1, 0.0)
    assert bar["vwap"] is None and bar["buy_volume"] is None and bar["sell_volume"] is None
    assert bar["ts"] == datetime(2024, 1, 2, 9, tzinfo=UTC)
    assert bar["ts_end"] == datetime(2024, 1, 2, 9, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize("layout", ["sliced", "two chunks", "categorical side", "no side"])
def test_frame_layouts_give_the_same_bars(layout: str) -> None:
    # Arrow views are read in place: offsets and chunks must not shift rows.
    base = make_trades(start=datetime(2024, 1, 2, 9, 20, tzinfo=UTC), seconds=300, rows=3000)
    grid = BarGrid.create("1s")
    if layout == "sliced":
        frame = base.slice(1001, 1500)
        expected = _python_bars(frame, NS, "UTC", None)
    elif layout == "two chunks":
        frame = pl.concat([base.slice(0, 1234), base.slice(1234)], rechunk=False)
        assert frame["instrument"].n_chunks() == 2
        expected = _python_bars(base, NS, "UTC", None)
    elif layout == "categorical side":
        frame = base.with_columns(pl.col("side").cast(pl.Categorical))
        expected = _python_bars(base, NS, "UTC", None)
    else:
        frame = base.drop("side")
        expected = [
            {**bar, "buy_volume": None, "sell_volume": None}
            for bar in _python_bars(base.with_columns(side=pl.lit(None)), NS, "UTC", None)
        ]
    assert _ours(frame, grid) == expected


@pytest.mark.parametrize("symbols", [2, 40])  # short runs (insertion sort) and long ones
def test_bar_order_equals_a_stable_lexsort(symbols: int) -> None:
    rng = np.random.default_rng(symbols)
    opens = np.sort(rng.integers(0, 500, 5000))
    rank = rng.integers(0, symbols, 5000)
    np.testing.assert_array_equal(bar_order(opens, rank), np.lexsort((rank, opens)))
