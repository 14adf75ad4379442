"""Frame-level bar kernels: trades, option snapshots and price series to bars; roll-ups.

Every function takes in-memory Polars frames in a canonical schema and returns a frame
in the canonical ``bars`` schema (``ts`` = open, ``ts_end`` = exclusive close, UTC),
sorted by ``(ts, instrument)``. The lake-level driver (:mod:`ticklake.bars.build`)
feeds them one trading day at a time.

Order is explicit: open/close are the first/last row by ``ts`` and, between rows
sharing a timestamp, by the key (a trade's ``trade_id`` in numeric order: shorter ids
first, so "9" comes before "10"; a quote's ``seq``). Polars' ``group_by`` keeps each
group's rows in frame order, so the kernels put the frame in that order first and
never rely on an unordered ``first()``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa

from ticklake.bars._kernels import LONG_KEY, OUT_OF_ORDER, bar_order, trade_bars
from ticklake.bars.alignment import BarGrid, DayTable
from ticklake.errors import ConfigError
from ticklake.schemas import get_schema

FillMode = Literal["none", "forward"]
FILL_MODES: tuple[str, ...] = ("none", "forward")

BAR_COLUMNS: tuple[str, ...] = tuple(get_schema("bars").column_names)
_OPEN = "__open_ns"
_UTC = pl.Datetime("ns", "UTC")
_TS_NS = pl.col("ts").dt.epoch("ns")


def empty_bars() -> pl.DataFrame:
    """A frame with the ``bars`` schema and no rows."""
    return pl.DataFrame(schema=get_schema("bars").polars_schema())


def _day_table(frame: pl.DataFrame, grid: BarGrid, column: str = "ts") -> DayTable:
    bounds = frame.select(
        pl.col(column).dt.epoch("ns").min().alias("lo"), pl.col(column).dt.epoch("ns").max()
    ).row(0)
    return grid.day_table(int(bounds[0]), int(bounds[1]))


def _sum_or_null(column: pl.Expr) -> pl.Expr:
    """Sum that stays null when every input is null (an index has no volume, not 0)."""
    return pl.when(column.is_not_null().any()).then(column.sum())


def _finish(aggregated: pl.LazyFrame, grid: BarGrid, table: DayTable) -> pl.DataFrame:
    """Add ``ts``/``ts_end`` from the open key, fill absent columns, order like the schema."""
    open_ns = pl.col(_OPEN)
    frame = aggregated.with_columns(
        pl.from_epoch(open_ns, time_unit="ns").dt.replace_time_zone("UTC").alias("ts"),
        pl.from_epoch(grid.end_ns_expr(open_ns, table), time_unit="ns")
        .dt.replace_time_zone("UTC")
        .alias("ts_end"),
    ).collect()
    schema = get_schema("bars").polars_schema()
    return (
        frame.with_columns(
            pl.lit(None, dtype=schema[name]).alias(name)
            for name in BAR_COLUMNS
            if name not in frame.columns
        )
        .select(pl.col(name).cast(schema[name]) for name in BAR_COLUMNS)
        .sort(["ts", "instrument"])
    )


# ------------------------------------------------------------------ trades
def order_trades(trades: pl.DataFrame) -> pl.DataFrame:
    """Return ``trades`` in (ts, trade_id numeric-aware) order, sorting only if needed.

    Checking is O(n) and cheap; a full sort happens only when the frame is out of order
    (ts not monotonic, or rows sharing an instrument and ts not in trade_id order).
    """
    if trades.height < 2:
        return trades
    ts = trades["ts"]
    if ts.is_sorted():
        tie = trades.select(
            (pl.col("ts") == pl.col("ts").shift(1)) | (pl.col("ts") == pl.col("ts").shift(-1))
        )
        tied = trades.filter(tie.to_series())
        if tied.height == 0:
            return trades
        tied = tied.with_row_index("__row").with_columns(
            pl.col("trade_id").str.len_bytes().alias("__id_length")
        )
        wanted = tied.sort(["instrument", "ts", "__id_length", "trade_id"])["__row"]
        stored = tied.sort(["instrument", "ts"], maintain_order=True)["__row"]
        if wanted.equals(stored):
            return trades
    return (
        trades.with_columns(pl.col("trade_id").str.len_bytes().alias("__id_length"))
        .sort(["ts", "__id_length", "trade_id"], maintain_order=True)
        .drop("__id_length")
    )


def trades_to_bars(
    trades: pl.DataFrame,
    grid: BarGrid,
    *,
    quotes: pl.DataFrame | None = None,
    fill: FillMode = "none",
    quote_max_age_ns: int | None = None,
) -> pl.DataFrame:
    """Aggregate canonical ``trades`` into bars on ``grid``.

    OHLC from the ordered prints; volume = Σ size; quote_volume = Σ price × size;
    vwap = quote_volume / volume; buy/sell volume from the aggressor side (null in a bar
    where no trade has a known side); bid/ask = the last quote strictly before the bar's
    close (backward as-of, no look-ahead), when ``quotes`` are given.

    Examples:
        >>> from datetime import datetime, UTC
        >>> t = pl.DataFrame({"ts": [datetime(2024, 1, 2, 0, 0, 1, tzinfo=UTC)] * 2,
        ...     "instrument": ["X", "X"], "trade_id": ["10", "9"], "price": [2.0, 1.0],
        ...     "size": [1.0, 3.0], "side": ["buy", None]}).with_columns(
        ...     pl.col("ts").dt.cast_time_unit("ns"))
        >>> trades_to_bars(t, BarGrid.create("1m")).select("open", "close", "vwap").row(0)
        (1.0, 2.0, 1.25)
    """
    if trades.height == 0:
        return empty_bars()
    table = _day_table(trades, grid)
    bars = _kernel_bars(trades, grid, table, check_order=True)
    if bars is None:  # out of order: sort once, then the pass cannot fail
        trades = order_trades(trades)
        bars = _kernel_bars(trades, grid, table, check_order=False)
        assert bars is not None
    if fill == "forward":
        bars = forward_fill(bars, grid)
    if quotes is not None:
        bars = attach_quotes(bars, quotes, max_age_ns=quote_max_age_ns)
    return bars


_NO_VIEWS = np.empty((0, 2), dtype=np.uint64)
_EMPTY_BYTES = np.empty(0, dtype=np.uint8)


def _string_views(series: pl.Series) -> tuple[np.ndarray, np.ndarray, int] | None:
    """A String column's Arrow views as ``uint64[n, 2]``, validity bitmap and bit offset.

    Zero-copy for a single-chunk column; ``None`` when the column is not a string.
    """
    if series.dtype != pl.String:
        return None
    array = series.to_arrow(compat_level=pl.CompatLevel.newest())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not pa.types.is_string_view(array.type):
        return None
    validity, views = array.buffers()[:2]
    assert views is not None
    words = np.frombuffer(views, dtype=np.uint64).reshape(-1, 2)
    words = words[array.offset : array.offset + len(array)]
    bitmap = _EMPTY_BYTES if validity is None else np.frombuffer(validity, dtype=np.uint8)
    return words, bitmap, array.offset


def _kernel_bars(
    trades: pl.DataFrame, grid: BarGrid, table: DayTable, *, check_order: bool
) -> pl.DataFrame | None:
    """Run the one-pass kernel; ``None`` when the rows are not in (ts, trade id) order."""
    ts = trades["ts"].dt.epoch("ns").to_numpy()
    if table.is_uniform:
        opens = np.empty(0, dtype=np.int64)
        start0 = int(table.starts_ns[0])
        offset = int(table.origins_ns[0] - start0)
    else:
        opens = trades.select(grid.open_ns_expr(_TS_NS, table)).to_series().to_numpy()
        start0 = offset = 0
    instrument = trades["instrument"]
    symbol_views = _string_views(instrument) if instrument.null_count() == 0 else None
    side_views, side_valid, side_offset = _NO_VIEWS, _EMPTY_BYTES, 0
    sides_known = "side" in trades.columns and trades["side"].null_count() < trades.height
    if sides_known:
        views = _string_views(trades["side"]) or _string_views(trades["side"].cast(pl.String))
        assert views is not None
        side_views, side_valid, side_offset = views
    id_views = _NO_VIEWS.view(np.uint8)
    if check_order and "trade_id" in trades.columns and trades["trade_id"].null_count() == 0:
        views = _string_views(trades["trade_id"])
        if views is not None:
            id_views = views[0].view(np.uint8)

    def run(keys: np.ndarray, inline_keys: bool) -> tuple[Any, ...]:
        return trade_bars(
            ts, opens, start0, offset, grid.interval.nanoseconds, grid.interval.is_daily,
            keys, inline_keys, trades["price"].to_numpy(), trades["size"].to_numpy(),
            side_views, side_valid, side_offset, id_views, check_order,
        )  # fmt: skip

    result = None
    if symbol_views is not None:
        result = run(symbol_views[0], True)
    if result is None or result[0] == LONG_KEY:
        # Symbols beyond 12 bytes (or with nulls): two independent 64-bit hashes make a
        # 128-bit key; a collision among even millions of symbols is below 2^-80.
        hashes = np.column_stack(
            [instrument.hash(0x5EED).to_numpy(), instrument.hash(0xB0A7).to_numpy()]
        )
        result = run(hashes, False)
    (status, bar_open, bar_end, first_row, bar_code, o, h, lo, c, volume, quote_volume, count,
     buy, sell, known, code_row, defer_first, defer_second) = result  # fmt: skip
    if status == OUT_OF_ORDER:
        return None
    if defer_first.shape[0] and not _ids_ascending(trades["trade_id"], defer_first, defer_second):
        return None
    if code_row.shape[0] > 1:  # (ts, instrument) order: rank the symbols, sort ties of ts
        rank = np.empty(code_row.shape[0], dtype=np.int64)
        rank[instrument.gather(code_row).arg_sort().to_numpy()] = np.arange(code_row.shape[0])
        order = bar_order(bar_open, rank[bar_code])
        (bar_open, bar_end, first_row, o, h, lo, c, volume, quote_volume, count, buy, sell,
         known) = (a[order] for a in (bar_open, bar_end, first_row, o, h, lo, c, volume,
                                      quote_volume, count, buy, sell, known))  # fmt: skip
    frame = pl.DataFrame(
        {
            "ts": bar_open,
            "ts_end": bar_end,
            "instrument": instrument.gather(first_row),
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "volume": volume,
            "quote_volume": quote_volume,
            "trade_count": count,
            "buy_volume": buy,
            "sell_volume": sell,
        }
    )
    if not table.is_uniform:
        frame = frame.with_columns(grid.end_ns_expr(pl.col("ts"), table).alias("ts_end"))
    known_side = pl.Series(known) if sides_known else pl.lit(False)
    return frame.select(
        pl.col("ts", "ts_end").cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"),
        "instrument", "open", "high", "low", "close", "volume", "quote_volume", "trade_count",
        pl.when(pl.col("volume") > 0).then(pl.col("quote_volume") / pl.col("volume")).alias("vwap"),
        pl.when(known_side).then(pl.col("buy_volume")).alias("buy_volume"),
        pl.when(known_side).then(pl.col("sell_volume")).alias("sell_volume"),
        *(pl.lit(None, pl.Float64).alias(n) for n in ("bid_price", "ask_price", "open_interest")),
    )  # fmt: skip


def _ids_ascending(ids: pl.Series, first: np.ndarray, second: np.ndarray) -> bool:
    """True when each tie pair's ids are in numeric-aware order (shorter first, then text)."""
    a, b = ids.gather(first), ids.gather(second)
    a_length, b_length = a.str.len_bytes(), b.str.len_bytes()
    ordered = (a_length < b_length) | ((a_length == b_length) & (a < b))
    return bool(ordered.all())


def attach_quotes(
    bars: pl.DataFrame, quotes: pl.DataFrame, *, max_age_ns: int | None = None
) -> pl.DataFrame:
    """Set bid/ask to the last quote with ``ts < ts_end`` of each bar (backward as-of).

    Quotes sharing a timestamp resolve by ``seq`` (the last one wins). ``max_age_ns``
    leaves bid/ask null when the last quote is older than that at the bar's close.
    """
    if bars.height == 0:
        return bars
    instruments = bars["instrument"].unique()
    book = (
        quotes.lazy()
        .filter(pl.col("instrument").is_in(instruments.implode()))
        .select("ts", "instrument", "seq", "bid_price", "ask_price")
        .sort(["ts", "seq"])
        .unique(subset=["instrument", "ts"], keep="last", maintain_order=True)
        .select(
            pl.col("ts").alias("__quote_ts"),
            "instrument",
            pl.col("bid_price").alias("__bid"),
            pl.col("ask_price").alias("__ask"),
        )
        .collect()
    )
    # ts_end is exclusive: a quote stamped exactly at the close belongs to the next bar.
    left = bars.with_columns((pl.col("ts_end") - pl.duration(nanoseconds=1)).alias("__asof"))
    joined = left.sort("__asof").join_asof(
        book,
        left_on="__asof",
        right_on="__quote_ts",
        by="instrument",
        strategy="backward",
        tolerance=None if max_age_ns is None else timedelta(microseconds=max_age_ns / 1000),
        check_sortedness=False,
    )
    return (
        joined.with_columns(pl.col("__bid").alias("bid_price"), pl.col("__ask").alias("ask_price"))
        .select(BAR_COLUMNS)
        .sort(["ts", "instrument"])
    )


# ------------------------------------------------------- option snapshots
def snapshots_to_bars(
    snapshots: pl.DataFrame, grid: BarGrid, *, fill: FillMode = "none"
) -> pl.DataFrame:
    """Bars per contract (``instrument`` = ``symbol``) from option snapshots.

    OHLC from ``last_price`` (nulls skipped); volume = the increase of the cumulative
    ``volume`` within the bar, counted from 0 at each trading day's start, reset-safe:
    a drop starts a new count (the increment is the new cumulative value), never a
    negative volume. Open interest, bid and ask are the last snapshot's values in the
    bar (its state at the close). Trade count and VWAP are unknown from snapshots.
    """
    if snapshots.height == 0:
        return empty_bars()
    table = _day_table(snapshots, grid)
    day = grid.day_start_ns_expr(_TS_NS, table)
    cumulative = pl.col("volume").cast(pl.Float64).forward_fill().over(["symbol", "__day"])
    previous = cumulative.shift(1).over(["symbol", "__day"]).fill_null(0.0)
    increment = (
        pl.when(cumulative.is_null())
        .then(0.0)
        .when(cumulative >= previous)
        .then(cumulative - previous)
        .otherwise(cumulative)  # a reset: the new count started from 0
    )
    last_price = pl.col("last_price")
    aggregated = (
        snapshots.lazy()
        .sort(["symbol", "ts"])
        .with_columns(day.alias("__day"))
        .with_columns(
            increment.alias("__volume"),
            grid.open_ns_expr(_TS_NS, table).alias(_OPEN),
        )
        .group_by([pl.col("symbol").alias("instrument"), _OPEN])
        .agg(
            last_price.drop_nulls().first().alias("open"),
            last_price.max().alias("high"),
            last_price.min().alias("low"),
            last_price.drop_nulls().last().alias("close"),
            pl.col("__volume").sum().alias("volume"),
            pl.col("bid_price_0").last().alias("bid_price"),
            pl.col("ask_price_0").last().alias("ask_price"),
            pl.col("oi").drop_nulls().last().cast(pl.Float64).alias("open_interest"),
        )
    )
    bars = _finish(aggregated, grid, table)
    return forward_fill(bars, grid) if fill == "forward" else bars


# ----------------------------------------------------------- price series
def prices_to_bars(prices: pl.DataFrame, grid: BarGrid, *, fill: FillMode = "none") -> pl.DataFrame:
    """OHLC of a value series (``prices`` schema: index levels, spot); no volume."""
    if prices.height == 0:
        return empty_bars()
    table = _day_table(prices, grid)
    price = pl.col("price")
    aggregated = (
        prices.lazy()
        .sort("ts")  # key (instrument, ts) is unique: time alone orders each series
        .with_columns(grid.open_ns_expr(_TS_NS, table).alias(_OPEN))
        .group_by(["instrument", _OPEN])
        .agg(
            price.first().alias("open"),
            price.max().alias("high"),
            price.min().alias("low"),
            price.last().alias("close"),
        )
    )
    bars = _finish(aggregated, grid, table)
    return forward_fill(bars, grid) if fill == "forward" else bars


# ----------------------------------------------------------------- roll-up
def rollup(bars: pl.DataFrame, grid: BarGrid, *, fill: FillMode = "none") -> pl.DataFrame:
    """Roll bars up to the larger bars of ``grid``.

    A bar goes to the larger bar containing its ``ts`` (open labels on both sides).
    open = the first bar's open, close = the last bar's close (by ``ts``), high/low =
    max/min, volumes and counts summed, vwap = Σ quote_volume / Σ volume, bid/ask and
    open interest from the last bar. A bar that would straddle a larger bar's boundary
    (its ``ts_end`` beyond the larger bar's close) is an error, not a silent mix.
    """
    if bars.height == 0:
        return empty_bars()
    bars = bars if bars["ts"].is_sorted() else bars.sort("ts", maintain_order=True)
    table = _day_table(bars, grid)
    keyed = bars.with_columns(grid.open_ns_expr(_TS_NS, table).alias(_OPEN))
    straddling = keyed.filter(
        pl.col("ts_end").dt.epoch("ns") > grid.end_ns_expr(pl.col(_OPEN), table)
    )
    if straddling.height:
        example = straddling.row(0, named=True)
        raise ConfigError(
            f"{straddling.height} input bar(s) cross a {grid.interval.label} bar boundary, "
            f"e.g. {example['instrument']} [{example['ts']}, {example['ts_end']}); the input "
            "bars are longer than, or not aligned with, the target grid. Roll up to a "
            "multiple of the input interval with the same --anchor.",
            interval=grid.interval.label,
        )
    volume, quote_volume = pl.col("volume"), pl.col("quote_volume")
    aggregated = (
        keyed.lazy()
        .group_by(["instrument", _OPEN])
        .agg(
            pl.col("open").drop_nulls().first().alias("open"),
            pl.col("high").max().alias("high"),
            pl.col("low").min().alias("low"),
            pl.col("close").drop_nulls().last().alias("close"),
            _sum_or_null(volume).alias("volume"),
            _sum_or_null(quote_volume).alias("quote_volume"),
            _sum_or_null(pl.col("trade_count")).alias("trade_count"),
            _sum_or_null(pl.col("buy_volume")).alias("buy_volume"),
            _sum_or_null(pl.col("sell_volume")).alias("sell_volume"),
            pl.col("bid_price").last().alias("bid_price"),
            pl.col("ask_price").last().alias("ask_price"),
            pl.col("open_interest").drop_nulls().last().alias("open_interest"),
        )
        .with_columns(
            pl.when(pl.col("volume") > 0)
            .then(pl.col("quote_volume") / pl.col("volume"))
            .alias("vwap")
        )
    )
    rolled = _finish(aggregated, grid, table)
    return forward_fill(rolled, grid) if fill == "forward" else rolled


# -------------------------------------------------------------------- fill
def forward_fill(bars: pl.DataFrame, grid: BarGrid) -> pl.DataFrame:
    """Insert the empty bars between each instrument's first and last bar of a trading day.

    A filled bar has open = high = low = close = the previous close, volume, quote
    volume, buy/sell volume and trade count 0 (null where the source has no such
    column, e.g. an index), vwap null, and bid/ask/open interest carried. The
    ``trade_count == 0`` marks it. Nothing is filled across trading days (overnight).
    """
    if bars.height == 0:
        return bars
    table = _day_table(bars, grid)
    keyed = bars.with_columns(
        pl.col("ts").dt.epoch("ns").alias(_OPEN),
        grid.day_start_ns_expr(_TS_NS, table).alias("__day"),
    )
    spans = keyed.group_by(["instrument", "__day"]).agg(
        pl.col(_OPEN).min().alias("first"), pl.col(_OPEN).max().alias("last")
    )
    pieces = []
    for instrument, _day, first, last in spans.iter_rows():
        opens = grid.opens_between(first, last, table)
        pieces.append(pl.DataFrame({"instrument": instrument, _OPEN: opens}))
    full = pl.concat(pieces).sort(["instrument", _OPEN])
    merged = full.join(keyed.drop("ts", "ts_end", "__day"), on=["instrument", _OPEN], how="left")
    missing = pl.col("__missing")
    # A real bar may lack a close (an option contract before its first trade); only rows
    # absent from the input are "missing".
    present = keyed.select("instrument", _OPEN).with_columns(pl.lit(True).alias("__present"))
    merged = merged.join(present, on=["instrument", _OPEN], how="left").with_columns(
        pl.col("__present").is_null().alias("__missing")
    )
    carried = pl.col("close").forward_fill().over("instrument")
    zero_columns = ("volume", "quote_volume", "buy_volume", "sell_volume", "trade_count")
    has_values = {name: bars[name].null_count() < bars.height for name in zero_columns}
    filled = merged.with_columns(
        *(
            pl.when(missing).then(carried).otherwise(pl.col(n)).alias(n)
            for n in ("open", "high", "low", "close")
        ),
        *(
            pl.when(missing)
            .then(
                pl.lit(0, dtype=bars.schema[name])
                if has_values[name] or name == "trade_count"
                else None
            )
            .otherwise(pl.col(name))
            .alias(name)
            for name in zero_columns
        ),
        *(
            pl.when(missing)
            .then(pl.col(n).forward_fill().over("instrument"))
            .otherwise(pl.col(n))
            .alias(n)
            for n in ("bid_price", "ask_price", "open_interest")
        ),
    )
    aggregated = filled.drop("__missing", "__present").lazy()
    return _finish(aggregated, grid, table)


def count_filled(bars: pl.DataFrame) -> int:
    """Bars that forward-fill inserted (they are the only ones with ``trade_count == 0``)."""
    return int((bars["trade_count"] == 0).sum())
