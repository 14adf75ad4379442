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
                "add | modify | cancel | delete | fill | fill_hidden | trade | clear | halt | "
                "fill_report (an execution that leaves the book as it is: Databento F) | "
                "fill_removal (a filled order's quantity taken off the book: Databento's C "
                "after its F; an execution, not a cancel)",
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


#: Row groups of option snapshot datasets (see ``DatasetSchema.row_group_rows``).
OPTION_ROW_GROUP_ROWS = 65_536


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
        # ≈ 3 contracts of a 1-second day per group: a backtest's strike band skips most
        # of the expiry (262,144 rows ≈ 11 contracts left 6 of 15 groups to decode).
        row_group_rows=OPTION_ROW_GROUP_ROWS,
    )


# ------------------------------------------------------------------ results as datasets
# What a backtest run publishes into gold (``ticklake backtest publish``): money is exact
# integer paise (``*_paise``, int64); a ``*_rupees`` float is the same amount ÷ 100 for
# display and for joins with market data, which holds rupee floats. Every row names its
# run and the hash of the strategy spec that produced it, so several runs share a dataset.
RUN_ID = Column("run_id", "string", False, "backtest run id (runs/<run_id>/ in the lake)")
STRATEGY = Column("strategy", "string", False, "strategy name from the spec")
SPEC_HASH = Column("spec_hash", "string", False, "hash of the strategy spec (run.json)")
TRADING_DATE = Column("date", "date32", False, "trading day in the exchange time zone")
LEG = Column("leg", "string", False, "leg name from the spec")
SYMBOL = Column("symbol", "string", False, "contract symbol, e.g. BANKNIFTY24JAN48000CE")
EXPIRY = Column("expiry", "date32", True, "contract expiry (null: not an expiring contract)")
STRIKE = Column("strike", "float64", True, "strike price in rupees (null: not an option)")
OPT_TYPE = Column("opt_type", "string", True, "'CE' or 'PE' (null: not an option)")
LOTS = Column("lots", "int64", False, "quantity in lots")
QUANTITY = Column("quantity", "int64", False, "quantity in units (lots × lot size)")
FILL_REASONS = (
    "entry, rebalance_open, rebalance_close, exit_time, exit_condition, leg_stop, stop_loss, "
    "trailing_stop, leg_target, target, forced_end_of_day, marked_end_of_day"
)
REASON_GROUPS = "entry | re_target | exit | stop | target | forced_close"


def _optional(column: Column) -> Column:
    return Column(column.name, column.type, True, column.description)


def orders() -> DatasetSchema:
    """Orders sent, whether or not they filled (for order logs from a live system).

    A backtest does not publish this dataset: its engine fills every order in full at the
    second it decides to trade, so an order would be its fill row for row (see ``fills``),
    and the orders that could not trade are recorded per leg and reason only
    (``attempts.parquet``: no contract, side or quantity).
    """
    return DatasetSchema(
        name="orders",
        columns=(
            Column("ts", TIMESTAMP, False, "time the order was sent, UTC ns"),
            RUN_ID,
            STRATEGY,
            SPEC_HASH,
            Column("order_id", "string", False, "order id, unique within the run"),
            LEG,
            SYMBOL,
            Column("side", "string", False, "'buy' or 'sell'"),
            Column("order_type", "string", False, "'market' or 'limit'"),
            LOTS,
            QUANTITY,
            Column("limit_price_paise", "int64", True, "limit price (null: market order)"),
            Column("status", "string", False, "filled | partially_filled | rejected | cancelled"),
            Column("filled_quantity", "int64", True, "units filled"),
            Column("reason", "string", True, f"why the order was sent: {FILL_REASONS}"),
            Column("reject_reason", "string", True, "why it did not fill, if it did not"),
        ),
        key=("run_id", "ts", "order_id"),
        sort=("run_id", "ts", "order_id"),
        description="Orders of a strategy run; key (run_id, ts, order_id).",
    )


def fills() -> DatasetSchema:
    """One row per fill of a backtest run, and per close at a mark (``filled`` false).

    Orders and fills are the same thing in this engine (immediate, complete fills at the
    decision second), so this dataset is also the run's order log. Only the key, the
    symbol, side, quantity and price are required: fills from elsewhere (a broker's
    PostgreSQL) fit it too; a published backtest fills every column.
    """
    return DatasetSchema(
        name="fills",
        columns=(
            Column("ts", TIMESTAMP, False, "the grid second the order filled, UTC ns"),
            _optional(TRADING_DATE),
            RUN_ID,
            _optional(STRATEGY),
            _optional(SPEC_HASH),
            Column("fill_index", "int64", False, "order of the fill within the day (0, 1, ...)"),
            Column("position_id", "int64", True, "round trip within the day (see positions)"),
            _optional(LEG),
            SYMBOL,
            Column("underlying", "string", True, "the strategy's underlying, e.g. BANKNIFTY"),
            EXPIRY,
            STRIKE,
            OPT_TYPE,
            Column("side", "string", False, "'buy' or 'sell' (this fill)"),
            Column("action", "string", True, "'open' or 'close' (of the position)"),
            _optional(LOTS),
            QUANTITY,
            Column("price_paise", "int64", False, "price per unit (the mark if not filled)"),
            Column("price_rupees", "float64", True, "price_paise / 100"),
            Column("value_paise", "int64", True, "quantity × price_paise (premium traded)"),
            Column("bid_paise", "int64", True, "bid of the quote it traded against (0: none)"),
            Column("ask_paise", "int64", True, "ask of the quote it traded against (0: none)"),
            Column("quote_age_seconds", "int64", True, "age of that quote at the fill (−1: none)"),
            Column(
                "quote_asof_ts",
                TIMESTAMP,
                True,
                "ts − quote_age_seconds: the quote traded against is the symbol's latest "
                "snapshot at or before this instant (an as-of join key; null: no quote)",
            ),
            Column("spot_paise", "int64", True, "underlying at the fill"),
            Column("underlying_source", "string", True, "'spot' or 'parity'"),
            Column("reason", "string", True, f"why, as the engine records it: {FILL_REASONS}"),
            Column("reason_group", "string", True, f"the reason coarsely: {REASON_GROUPS}"),
            Column("filled", "bool", True, "false: closed at its last mark, no order and no costs"),
            Column("cash_flow_paise", "int64", True, "−side × quantity × price (sell positive)"),
            Column("costs_paise", "int64", True, "fees, taxes and charges of this fill"),
            Column("realized_pnl_paise", "int64", True, "closing fill: the round trip's gross"),
        ),
        key=("run_id", "ts", "fill_index"),
        sort=("run_id", "ts", "fill_index"),
        description=(
            "Fills of backtest runs (orders fill immediately); key (run_id, ts, fill_index)."
        ),
    )


def positions() -> DatasetSchema:
    """One row per position (an open-to-close round trip of one leg) of a backtest run.

    The engine is flat at every day's end, so every position opens and closes on one day.
    """
    return DatasetSchema(
        name="positions",
        columns=(
            Column("ts", TIMESTAMP, False, "time the position was opened, UTC ns"),
            Column("close_ts", TIMESTAMP, False, "time it was closed, UTC ns"),
            TRADING_DATE,
            RUN_ID,
            STRATEGY,
            SPEC_HASH,
            Column("position_id", "int64", False, "round trip within the day"),
            LEG,
            SYMBOL,
            EXPIRY,
            STRIKE,
            OPT_TYPE,
            Column("direction", "string", False, "'long' (opened by a buy) or 'short'"),
            LOTS,
            QUANTITY,
            Column("open_price_paise", "int64", False, "price of the opening fill"),
            Column("close_price_paise", "int64", False, "price of the close (a mark if marked)"),
            Column("open_reason", "string", False, "entry or rebalance_open"),
            Column("close_reason", "string", False, f"why it closed: {FILL_REASONS}"),
            Column("close_reason_group", "string", True, f"coarsely: {REASON_GROUPS}"),
            Column("closed_at_mark", "bool", False, "closed at a mark, not by a fill"),
            Column("holding_seconds", "int64", False, "close_ts − ts in seconds"),
            Column("gross_pnl_paise", "int64", False, "sum of the two cash flows"),
            Column("costs_paise", "int64", False, "costs of the opening and closing fills"),
            Column("net_pnl_paise", "int64", False, "gross − costs"),
        ),
        key=("run_id", "ts", "position_id"),
        sort=("run_id", "ts", "position_id"),
        description="Round-trip positions of backtest runs; key (run_id, ts, position_id).",
    )


def pnl() -> DatasetSchema:
    """One row per planned day of a backtest run: its P&L, costs and the equity curve."""
    return DatasetSchema(
        name="pnl",
        columns=(
            Column("ts", TIMESTAMP, False, "the day's session end (spec time.session_end), UTC"),
            TRADING_DATE,
            RUN_ID,
            STRATEGY,
            SPEC_HASH,
            Column("status", "string", False, "traded, no_trade or skipped"),
            Column("skip_reason", "string", True, "why skipped / not traded"),
            Column("fills", "int64", False, "fills that day (closes at a mark not counted)"),
            Column("round_trips", "int64", False, "positions closed that day"),
            Column("gross_pnl_paise", "int64", False, "sum of the day's cash flows"),
            Column("costs_paise", "int64", False, "the day's fees, taxes and charges"),
            Column("net_pnl_paise", "int64", False, "gross − costs"),
            Column("net_pnl_rupees", "float64", False, "net_pnl_paise / 100"),
            Column("marked_closes", "int64", False, "closes at a mark that day"),
            Column("marked_pnl_paise", "int64", False, "gross P&L resting on those marks"),
            Column("equity_paise", "int64", False, "cumulative net P&L of the run to this day"),
            Column("drawdown_paise", "int64", False, "running peak (from 0) − equity, ≥ 0"),
            Column("intraday_max_drawdown_paise", "int64", False, "the day's worst drop"),
            Column("exposure_seconds", "int64", False, "seconds with an open position"),
            Column("underlying_source", "string", True, "'spot' or 'parity'"),
            Column("expiry", "date32", True, "expiry traded"),
        ),
        key=("run_id", "ts"),
        sort=("run_id", "ts"),
        description="Daily P&L and equity of backtest runs; key (run_id, ts).",
    )


def portfolio_snapshots() -> DatasetSchema:
    """The run's P&L second by second (runs made with ``--pnl-per-second`` only)."""
    return DatasetSchema(
        name="portfolio_snapshots",
        columns=(
            Column("ts", TIMESTAMP, False, "the second (after its fills), UTC ns"),
            TRADING_DATE,
            RUN_ID,
            STRATEGY,
            SPEC_HASH,
            Column(
                "day_gross_pnl_paise",
                "int64",
                False,
                "the day's gross P&L so far: realized cash flows plus open legs at their "
                "closing price, before costs",
            ),
            Column("in_position", "bool", False, "a position is open after this second"),
        ),
        key=("run_id", "ts"),
        sort=("run_id", "ts"),
        description="Intraday P&L path of backtest runs; key (run_id, ts).",
    )
