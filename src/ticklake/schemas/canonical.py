"""The canonical schemas every reader produces and every later stage consumes.

Conventions (all schemas):

- ``ts`` is the event time in UTC nanoseconds. Exchange time zones are dataset
  metadata, applied on read (``Lake.scan(..., tz=...)``).
- ``instrument`` is the venue's symbol as a string (``BTCUSDT``, ``AAPL``,
  ``BANKNIFTY24JAN48000CE``).
- ``seq`` orders events that share a timestamp: the venue's sequence number where the
  source has one, else the row order in the source file. It is part of the key of
  event datasets, so two distinct events at the same nanosecond are never merged.
- Prices are float64 in the instrument's quote currency (already descaled: LOBSTER's
  ×10000 and Databento's ×1e9 are undone by the readers). Exact money arithmetic
  happens in integer ticks inside the backtest kernels.
"""

from __future__ import annotations

from ticklake.schemas.base import TIMESTAMP, Column, DatasetSchema

TS = Column("ts", TIMESTAMP, False, "event time, UTC ns")
INSTRUMENT = Column("instrument", "string", False, "venue symbol")
SEQ = Column("seq", "int64", False, "order of events sharing a timestamp")


def trades() -> DatasetSchema:
    """Executed trades (prints)."""
    return DatasetSchema(
        name="trades",
        columns=(
            TS,
            INSTRUMENT,
            Column("trade_id", "string", False, "venue trade id, or source row number"),
            Column("price", "float64", False, "trade price"),
            Column("size", "float64", False, "quantity in base units"),
            Column("side", "string", True, "aggressor side: 'buy', 'sell' or null"),
            Column("venue", "string", True, "exchange / venue code"),
            Column("recv_ts", TIMESTAMP, True, "local receive time, UTC ns"),
        ),
        key=("instrument", "ts", "trade_id"),
        sort=("ts", "instrument", "trade_id"),
        description="Executed trades; key (instrument, ts, trade_id).",
    )


def quotes() -> DatasetSchema:
    """Top-of-book (L1) quotes."""
    return DatasetSchema(
        name="quotes",
        columns=(
            TS,
            INSTRUMENT,
            SEQ,
            Column("bid_price", "float64", True, "best bid price"),
            Column("bid_size", "float64", True, "best bid quantity"),
            Column("ask_price", "float64", True, "best ask price"),
            Column("ask_size", "float64", True, "best ask quantity"),
            Column("venue", "string", True, "exchange / venue code"),
            Column("recv_ts", TIMESTAMP, True, "local receive time, UTC ns"),
        ),
        key=("instrument", "ts", "seq"),
        sort=("ts", "instrument", "seq"),
        description="Best bid/offer updates; key (instrument, ts, seq).",
    )


def l2(levels: int = 10) -> DatasetSchema:
    """Order-book snapshots with ``levels`` price levels per side (level 0 is best)."""
    cols = [TS, INSTRUMENT, SEQ]
    for side in ("bid", "ask"):
        for i in range(levels):
            cols.append(Column(f"{side}_price_{i}", "float64", True, f"{side} price, level {i}"))
            cols.append(Column(f"{side}_size_{i}", "float64", True, f"{side} size, level {i}"))
    return DatasetSchema(
        name=f"l2_{levels}",
        columns=tuple(cols),
        key=("instrument", "ts", "seq"),
        sort=("ts", "instrument", "seq"),
        description=f"L2 book snapshots, {levels} levels; key (instrument, ts, seq).",
    )


def l3() -> DatasetSchema:
    """Market-by-order events (adds, modifies, cancels, fills)."""
    return DatasetSchema(
        name="l3",
        columns=(
            TS,
            INSTRUMENT,
            SEQ,
            Column(
                "action",
                "string",
                False,
                "add | modify | cancel | delete | fill | fill_hidden | trade | clear | halt",
            ),
            Column("side", "string", True, "'bid', 'ask' or null"),
            Column("order_id", "uint64", True, "venue order id"),
            Column("price", "float64", True, "order price (null where the venue sends none)"),
            Column("size", "float64", True, "quantity the event refers to"),
            Column("flags", "int32", True, "venue flags, raw"),
            Column("venue", "string", True, "exchange / venue code"),
        ),
        key=("instrument", "ts", "seq"),
        sort=("ts", "instrument", "seq"),
        description="L3 order events; key (instrument, ts, seq).",
    )


def book_updates() -> DatasetSchema:
    """Incremental L2 (price-level) book updates: the new total size at a price level.

    ``size == 0`` removes the level. ``is_snapshot`` marks rows that belong to a full
    book snapshot (a reader emitting a snapshot first clears the book with it).
    """
    return DatasetSchema(
        name="book_updates",
        columns=(
            TS,
            INSTRUMENT,
            SEQ,
            Column("side", "string", False, "'bid' or 'ask'"),
            Column("price", "float64", False, "price level"),
            Column("size", "float64", False, "new total size at the level (0 removes it)"),
            Column("is_snapshot", "bool", False, "row is part of a full snapshot"),
            Column("venue", "string", True, "exchange / venue code"),
            Column("recv_ts", TIMESTAMP, True, "local receive time, UTC ns"),
        ),
        key=("instrument", "ts", "seq"),
        sort=("ts", "instrument", "seq"),
        description="Incremental price-level book updates; key (instrument, ts, seq).",
    )


def prices() -> DatasetSchema:
    """A plain price series: index values, spot, futures last price."""
    return DatasetSchema(
        name="prices",
        columns=(
            TS,
            INSTRUMENT,
            Column("price", "float64", False, "value / last price"),
            Column("volume", "float64", True, "cumulative or per-tick volume, if any"),
        ),
        key=("instrument", "ts"),
        sort=("ts", "instrument"),
        description="Univariate price series (index, spot, futures LTP); key (instrument, ts).",
    )


def funding() -> DatasetSchema:
    """Perpetual-futures mark price, index price and funding rate updates."""
    return DatasetSchema(
        name="funding",
        columns=(
            TS,
            INSTRUMENT,
            Column("mark_price", "float64", True, "mark price"),
            Column("index_price", "float64", True, "index (spot basket) price"),
            Column("funding_rate", "float64", True, "funding rate of the current period"),
            Column("next_funding_ts", TIMESTAMP, True, "next funding time, UTC ns"),
            Column("venue", "string", True, "exchange / venue code"),
            Column("recv_ts", TIMESTAMP, True, "local receive time, UTC ns"),
        ),
        key=("instrument", "ts"),
        sort=("ts", "instrument"),
        description="Mark price, index price and funding rate; key (instrument, ts).",
    )


def open_interest() -> DatasetSchema:
    """Open interest of a futures contract over time."""
    return DatasetSchema(
        name="open_interest",
        columns=(
            TS,
            INSTRUMENT,
            Column("open_interest", "float64", False, "open interest, contracts / base units"),
            Column("open_interest_value", "float64", True, "open interest in quote currency"),
            Column("venue", "string", True, "exchange / venue code"),
            Column("recv_ts", TIMESTAMP, True, "local receive time, UTC ns"),
        ),
        key=("instrument", "ts"),
        sort=("ts", "instrument"),
        description="Open interest over time; key (instrument, ts).",
    )


def bars() -> DatasetSchema:
    """OHLCV bars. ``ts`` is the bar's open time and ``ts_end`` its close time.

    A bar's values are known only at ``ts_end``: as-of joins against bars must use
    ``ts_end`` or they look ahead by one bar.
    """
    return DatasetSchema(
        name="bars",
        columns=(
            TS,
            Column("ts_end", TIMESTAMP, False, "bar close time (exclusive), UTC ns"),
            INSTRUMENT,
            Column("open", "float64", True, "first price"),
            Column("high", "float64", True, "highest price"),
            Column("low", "float64", True, "lowest price"),
            Column("close", "float64", True, "last price"),
            Column("volume", "float64", True, "base volume"),
            Column("quote_volume", "float64", True, "quote volume (sum of price × size)"),
            Column("trade_count", "int64", True, "number of trades"),
            Column("vwap", "float64", True, "quote_volume / volume"),
            Column("buy_volume", "float64", True, "aggressor-buy base volume"),
            Column("sell_volume", "float64", True, "aggressor-sell base volume"),
            Column("bid_price", "float64", True, "last best bid in the bar"),
            Column("ask_price", "float64", True, "last best ask in the bar"),
            Column("open_interest", "float64", True, "open interest at bar close"),
        ),
        key=("instrument", "ts"),
        sort=("ts", "instrument"),
        description="OHLCV bars labelled by open time; key (instrument, ts).",
    )


# The vendor's 52 columns, mapped to canonical names. Lean columns are always kept.
OPTION_LEAN_COLUMNS: tuple[Column, ...] = (
    TS,
    Column("symbol", "string", False, "contract symbol, e.g. BANKNIFTY24JAN48000CE"),
    Column("underlying", "string", False, "underlying, e.g. BANKNIFTY"),
    Column("expiry", "date32", False, "expiry date"),
    Column("strike", "float64", False, "strike price"),
    Column("opt_type", "string", False, "'CE' (call) or 'PE' (put)"),
    Column("last_price", "float64", True, "last traded price (vendor: price)"),
    Column("volume", "int64", True, "cumulative day volume (vendor: volume)"),
    Column("oi", "int64", True, "open interest (vendor: oi)"),
    *(
        Column(f"{side}_{what}_{i}", typ, True, f"{side} {what}, level {i} (vendor: {v}{i})")
        for side, pfx in (("bid", "b"), ("ask", "s"))
        for i in range(5)
        for what, typ, v in (("price", "float64", pfx + "p"), ("qty", "int64", pfx + "q"))
    ),
)

OPTION_EXTRA_COLUMNS: tuple[Column, ...] = (
    Column("last_qty", "int64", True, "last trade quantity (vendor: qty)"),
    Column("avg_price", "float64", True, "average traded price (vendor: avgPrice)"),
    Column("total_bid_qty", "int64", True, "total bid quantity (vendor: bQty)"),
    Column("total_ask_qty", "int64", True, "total ask quantity (vendor: sQty)"),
    Column("open", "float64", True, "session open (vendor: open)"),
    Column("high", "float64", True, "session high (vendor: high)"),
    Column("low", "float64", True, "session low (vendor: low)"),
    Column("close", "float64", True, "previous close (vendor: close)"),
    Column("change_pct", "float64", True, "change % (vendor: changeper)"),
    Column("last_trade_ts", TIMESTAMP, True, "last trade time (vendor: lastTradeTime)"),
    Column("oi_high", "int64", True, "day high of OI (vendor: oiHigh)"),
    Column("oi_low", "int64", True, "day low of OI (vendor: oiLow)"),
    Column("vendor_ts", TIMESTAMP, True, "the vendor's other time column (timestamp or ts)"),
    *(
        Column(f"{side}_orders_{i}", "int64", True, f"{side} orders, level {i} (vendor: {v}{i})")
        for side, v in (("bid", "bo"), ("ask", "so"))
        for i in range(5)
    ),
)


def option_snapshots(full: bool = False) -> DatasetSchema:
    """Per-second option snapshots (the users' 52-column vendor format, normalised).

    The lean form keeps instrument keys, last price, cumulative volume, OI and 5 levels
    of bid/ask price and quantity; ``full=True`` keeps every vendor field.
    """
    cols = OPTION_LEAN_COLUMNS + (OPTION_EXTRA_COLUMNS if full else ())
    return DatasetSchema(
        name="option_snapshots_full" if full else "option_snapshots",
        columns=cols,
        key=("symbol", "ts"),
        sort=("underlying", "expiry", "opt_type", "strike", "ts"),
        description=(
            "Option chain snapshots; key (symbol, ts); sorted by "
            "(underlying, expiry, opt_type, strike, ts) so strike-range filters skip row groups."
        ),
    )
