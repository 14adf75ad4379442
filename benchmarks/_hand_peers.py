"""Hand-written peers of three strategies, in plain Polars (+ NumPy) and plain DuckDB SQL.

Each function reads the day's partition files itself and returns the strategy's fills
(ts, symbol, side, price_paise, reason); ``bench_backtest_vs_hand.py`` checks them equal
to the engine's before any time counts. The rules they implement are the engine's, as
docs/backtest.md states them, written again from the text (no ticklake code is called):

- the grid is every second of the session (09:15-15:30 IST); a quote at second ``g`` is
  the latest snapshot with ``ts <= g`` no older than 5 s (``as_of_tolerance_seconds``),
  tradeable on a side when that side's price is > 0 and the snapshot is ≤ 5 s old;
- ATM is the spot rounded to the nearest strike step, half up; OTM ``k`` is ATM ± k steps;
- an entry is the first second of 09:20-09:25 at which every leg's contract can be sold
  (the bid); a short leg is bought back at the ask (``cross`` fills);
- ``straddle``: both legs bought back from 15:20, each at its first second with an ask;
- ``strangle_stop``: a combined money stop, checked every second from the entry second:
  cycle P&L = Σ quantity × (entry − mark), the mark being the leg's last tradeable ask
  (its entry price until it has one); the stop fires at the first second before 15:20
  where −P&L ≥ the stop, and each leg is then bought back at its first tradeable ask;
- ``delta``: each leg takes, among ATM ± 20 strikes quoted on both sides, the one whose
  Black–Scholes |delta| (zero rates, volatility implied from the mid by bisection, years
  to the expiry's 15:30 close / 365 days) is nearest the target, the lowest strike on a
  tie; bought back from 15:20.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import polars as pl
from scipy.special import ndtr

IST = ZoneInfo("Asia/Kolkata")
TOLERANCE_SECONDS = 5
STEP_PAISE = 100 * 100  # BANKNIFTY strike step (₹100)
CANDIDATES = 20
QUOTE_COLUMNS = ["ts", "opt_type", "strike", "symbol", "bid_price_0", "ask_price_0"]


def at(day: date, clock: str) -> datetime:
    hour, minute = (int(x) for x in clock.split(":"))
    return datetime.combine(day, datetime.min.time(), IST) + timedelta(hours=hour, minutes=minute)


def grid(day: date, start: str, end: str) -> pl.DataFrame:
    """Seconds ``[start, end)`` of the day (IST wall clock), as UTC ns timestamps."""
    seconds = pl.datetime_range(
        at(day, start), at(day, end), "1s", closed="left", time_unit="ns", eager=True
    )
    return pl.DataFrame({"ts": seconds.dt.convert_time_zone("UTC")})


def _paise(column: str) -> pl.Expr:
    paise = (pl.col(column).cast(pl.Float64) * 100).round(0)
    return pl.when(paise > 0).then(paise).otherwise(0).fill_null(0).fill_nan(0).cast(pl.Int64)


def _book(left: pl.DataFrame, quotes: pl.DataFrame) -> pl.DataFrame:
    """As-of join of ``left`` (ts, opt_type, strike) to the quotes, with age and paise."""
    joined = left.sort("ts").join_asof(
        quotes.sort("ts"),
        on="ts",
        by=["opt_type", "strike"],
        strategy="backward",
        tolerance=timedelta(seconds=TOLERANCE_SECONDS),
    )
    age = (pl.col("ts") - pl.col("quote_ts")).dt.total_seconds()
    return joined.with_columns(
        _paise("bid_price_0").alias("bid"), _paise("ask_price_0").alias("ask"), age.alias("age")
    )


class Day:
    """The day's files, nearest expiry and spot on the entry window (read once per call)."""

    def __init__(self, options_file: list[str], spot_file: list[str], day: date) -> None:
        self.day = day
        self.chain = pl.scan_parquet(options_file)
        expiries = self.chain.select(pl.col("expiry").unique()).collect()["expiry"].to_list()
        self.expiry = min(e for e in expiries if e >= day)
        self.spot = pl.scan_parquet(spot_file).select("ts", "price").collect().sort("ts")
        window = grid(day, "09:20", "09:25").join_asof(
            self.spot,
            on="ts",
            strategy="backward",
            tolerance=timedelta(seconds=TOLERANCE_SECONDS),
        )
        atm = (_paise("price") + STEP_PAISE // 2) // STEP_PAISE * STEP_PAISE
        self.window = window.with_columns(atm.alias("atm")).filter(pl.col("price").is_not_null())

    def quotes(self, strikes: list[float]) -> pl.DataFrame:
        return (
            self.chain.filter((pl.col("expiry") == self.expiry) & pl.col("strike").is_in(strikes))
            .select(QUOTE_COLUMNS)
            .with_columns(pl.col("ts").alias("quote_ts"))
            .collect()
        )


def _fills(frame: pl.DataFrame, side: str, price: str, reason: str | pl.Expr) -> pl.DataFrame:
    reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
    return frame.select(
        "ts",
        "symbol",
        pl.lit(side).alias("side"),
        pl.col(price).alias("price_paise"),
        reason_expr.alias("reason"),
    )


def _first_entry(d: Day, offset_steps: int) -> pl.DataFrame:
    """The entry fills' rows (one per leg) at the first sellable second, or empty."""
    legs = pl.DataFrame({"opt_type": ["CE", "PE"], "sign": [1, -1]})
    left = d.window.join(legs, how="cross").select(
        "ts",
        "opt_type",
        ((pl.col("atm") + pl.col("sign") * offset_steps * STEP_PAISE) / 100).alias("strike"),
    )
    entry = _book(left, d.quotes(left["strike"].unique().to_list()))
    sellable = (pl.col("bid") > 0) & (pl.col("age") <= TOLERANCE_SECONDS)
    ready = entry.group_by("ts").agg(sellable.all().alias("ok"), pl.len().alias("n"))
    first = ready.filter(pl.col("ok") & (pl.col("n") == 2))["ts"].min()
    return entry.filter(pl.col("ts") == first) if first is not None else entry.clear()


def _buy_back(d: Day, held: pl.DataFrame, start: datetime, reason: str) -> pl.DataFrame:
    """Each held contract bought back at its first tradeable ask from ``start`` on."""
    seconds = grid(d.day, "09:15", "15:30").filter(pl.col("ts") >= start.astimezone(UTC))
    closing = _book(
        seconds.join(held.select("opt_type", "strike"), how="cross"),
        d.quotes(held["strike"].to_list()),
    )
    buyable = (pl.col("ask") > 0) & (pl.col("age") <= TOLERANCE_SECONDS)
    closed = closing.filter(buyable).sort("ts").group_by("opt_type").first()
    return _fills(closed, "buy", "ask", reason)


def polars_straddle(d: Day, offset_steps: int = 0) -> pl.DataFrame:
    opened = _first_entry(d, offset_steps)
    if opened.is_empty():
        return pl.DataFrame()
    closed = _buy_back(d, opened, at(d.day, "15:20"), "exit_time")
    return pl.concat([_fills(opened, "sell", "bid", "entry"), closed]).sort("ts", "symbol")


def polars_strangle_stop(
    d: Day, quantity: int, stop_rupees: float, offset_steps: int = 2
) -> pl.DataFrame:
    opened = _first_entry(d, offset_steps)
    if opened.is_empty():
        return pl.DataFrame()
    entry_ts = opened["ts"][0]
    exit_ts = at(d.day, "15:20").astimezone(UTC)
    path = _book(
        grid(d.day, "09:15", "15:30")
        .filter(pl.col("ts") >= entry_ts)
        .join(opened.select("opt_type", "strike", pl.col("bid").alias("entry")), how="cross"),
        d.quotes(opened["strike"].to_list()),
    )
    tradeable_ask = (pl.col("ask") > 0) & (pl.col("age") <= TOLERANCE_SECONDS)
    marks = (
        path.sort("opt_type", "ts")
        .with_columns(
            pl.when(tradeable_ask)
            .then(pl.col("ask"))
            .otherwise(None)
            .forward_fill()
            .over("opt_type")
            .fill_null(pl.col("entry"))
            .alias("mark")
        )
        .group_by("ts")
        .agg((quantity * (pl.col("entry") - pl.col("mark"))).sum().alias("pnl"))
    )
    stop = marks.filter((pl.col("ts") < exit_ts) & (-pl.col("pnl") >= round(stop_rupees * 100)))[
        "ts"
    ].min()
    start, reason = (exit_ts, "exit_time") if stop is None else (stop, "stop_loss")
    closed = _buy_back(d, opened, start, reason)
    return pl.concat([_fills(opened, "sell", "bid", "entry"), closed]).sort("ts", "symbol")


# ------------------------------------------------------------------------------ delta
def _bs_price(
    spot: np.ndarray, strike: np.ndarray, years: np.ndarray, vol: np.ndarray, call: np.ndarray
) -> np.ndarray:
    root = vol * np.sqrt(years)
    d1 = (np.log(spot / strike) + 0.5 * vol * vol * years) / root
    d2 = d1 - root
    calls = spot * ndtr(d1) - strike * ndtr(d2)
    return np.where(call, calls, calls - spot + strike)  # put-call parity, zero rates


def implied_abs_delta(spot, strike, years, price, call) -> np.ndarray:
    """|delta| at the volatility implied by ``price`` (bisection on [1e-4, 5]); NaN if none."""
    intrinsic = np.where(call, np.maximum(spot - strike, 0), np.maximum(strike - spot, 0))
    ok = price > intrinsic
    ok &= _bs_price(spot, strike, years, np.full_like(spot, 5.0), call) >= price
    lo, hi = np.full_like(spot, 1e-4), np.full_like(spot, 5.0)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        below = _bs_price(spot, strike, years, mid, call) < price
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    vol = 0.5 * (lo + hi)
    d1 = (np.log(spot / strike) + 0.5 * vol * vol * years) / (vol * np.sqrt(years))
    delta = np.where(call, ndtr(d1), ndtr(d1) - 1.0)
    return np.where(ok, np.abs(delta), np.nan)


def polars_delta(d: Day, target: float) -> pl.DataFrame:
    """Sell the call and the put nearest |delta| ``target``; buy back from 15:20."""
    close = at(d.expiry, "15:30")
    spot = d.window.select("ts", "atm", _paise("price").alias("spot"))
    k = pl.DataFrame({"k": list(range(-CANDIDATES, CANDIDATES + 1))})
    sides = pl.DataFrame({"opt_type": ["CE", "PE"]})
    left = (
        spot.join(k, how="cross")
        .join(sides, how="cross")
        .with_columns(((pl.col("atm") + pl.col("k") * STEP_PAISE) / 100).alias("strike"))
    )
    book = _book(left, d.quotes(left["strike"].unique().to_list()))
    two_sided = (pl.col("bid") > 0) & (pl.col("ask") > 0) & (pl.col("age") <= TOLERANCE_SECONDS)
    book = book.filter(two_sided)
    close_ns = int(close.timestamp()) * 1_000_000_000
    ts_ns = book["ts"].dt.epoch("ns").to_numpy()
    years = np.maximum((close_ns - ts_ns) / (365.0 * 86_400 * 1e9), 1e-6)
    gap = np.abs(
        implied_abs_delta(
            book["spot"].to_numpy() / 100.0,
            book["strike"].to_numpy(),
            years,
            0.5 * (book["bid"].to_numpy() + book["ask"].to_numpy()) / 100.0,
            (book["opt_type"] == "CE").to_numpy(),
        )
        - target
    )
    chosen = (
        book.with_columns(pl.Series("gap", gap))
        .filter(pl.col("gap").is_not_nan())
        .sort("ts", "opt_type", "gap", "k")
        .group_by("ts", "opt_type", maintain_order=True)
        .first()
    )
    ready = chosen.group_by("ts").agg(pl.len().alias("n"))
    first = ready.filter(pl.col("n") == 2)["ts"].min()
    if first is None:
        return pl.DataFrame()
    opened = chosen.filter(pl.col("ts") == first)
    closed = _buy_back(d, opened, at(d.day, "15:20"), "exit_time")
    return pl.concat([_fills(opened, "sell", "bid", "entry"), closed]).sort("ts", "symbol")


# ----------------------------------------------------------------------------- DuckDB
# Staged in temp tables: DuckDB plans an ASOF join inside a long CTE chain badly (tens
# of seconds a day); each step on a materialised small table takes milliseconds.
_DUCKDB_WANTED = """
CREATE OR REPLACE TEMP TABLE wanted AS
WITH seconds AS (
    SELECT unnest(generate_series($entry_start, $entry_end - INTERVAL 1 SECOND,
                                  INTERVAL 1 SECOND)) AS ts
),
spot AS (SELECT ts::TIMESTAMPTZ AS ts, price FROM read_parquet($spot)),
window_spot AS (
    SELECT s.ts, (round(p.price * 100)::BIGINT + {half}) // {step} * {step} AS atm
    FROM seconds s ASOF JOIN spot p ON s.ts >= p.ts
    WHERE s.ts - p.ts <= INTERVAL {tol} SECOND
)
SELECT w.ts, l.opt_type, (w.atm + l.sign * {offset} * {step}) / 100.0 AS strike
FROM window_spot w CROSS JOIN (VALUES ('CE', 1), ('PE', -1)) l(opt_type, sign)
"""

_DUCKDB_ENTRY_CHAIN = """
CREATE OR REPLACE TEMP TABLE entry_chain AS
SELECT ts::TIMESTAMPTZ AS ts, opt_type, strike, symbol,
       coalesce(greatest(round(bid_price_0 * 100), 0), 0)::BIGINT AS bid,
       coalesce(greatest(round(ask_price_0 * 100), 0), 0)::BIGINT AS ask
FROM read_parquet($options)
WHERE expiry = $expiry AND ts::TIMESTAMPTZ < $entry_end
  AND (opt_type, strike) IN (SELECT DISTINCT (opt_type, strike) FROM wanted)
"""

_DUCKDB_ENTRY = """
CREATE OR REPLACE TEMP TABLE opened AS
WITH entry_book AS (
    SELECT w.ts, w.opt_type, w.strike, c.symbol, c.bid, c.ask, w.ts - c.ts AS age
    FROM wanted w ASOF LEFT JOIN entry_chain c
      ON w.opt_type = c.opt_type AND w.strike = c.strike AND w.ts >= c.ts
),
entry_ts AS (
    SELECT min(ts) AS ts FROM (
        SELECT ts FROM entry_book GROUP BY ts
        HAVING count(*) = 2 AND bool_and(coalesce(bid > 0 AND age <= INTERVAL {tol} SECOND,
                                                  false)))
)
SELECT b.* FROM entry_book b JOIN entry_ts e ON b.ts = e.ts
"""

_DUCKDB_HELD = """
CREATE OR REPLACE TEMP TABLE held_chain AS
SELECT ts::TIMESTAMPTZ AS ts, opt_type, strike, symbol,
       coalesce(greatest(round(ask_price_0 * 100), 0), 0)::BIGINT AS ask
FROM read_parquet($options) c
WHERE expiry = $expiry AND (opt_type, strike) IN (SELECT (opt_type, strike) FROM opened)
"""

_DUCKDB_HELD_SECONDS = """
CREATE OR REPLACE TEMP TABLE held_seconds AS
WITH seconds AS (
    SELECT unnest(generate_series($session_start, $session_end - INTERVAL 1 SECOND,
                                  INTERVAL 1 SECOND)) AS ts
)
SELECT s.ts, o.opt_type, o.strike, o.bid AS entry
FROM seconds s CROSS JOIN opened o WHERE s.ts >= o.ts
"""

_DUCKDB_TRADEABLE = """
CREATE OR REPLACE TEMP TABLE tradeable AS
WITH held_path AS (
    SELECT h.ts, h.opt_type, h.strike, h.entry, c.symbol, c.ask, h.ts - c.ts AS age
    FROM held_seconds h ASOF LEFT JOIN held_chain c
      ON h.opt_type = c.opt_type AND h.strike = c.strike AND h.ts >= c.ts
)
SELECT *, coalesce(ask > 0 AND age <= INTERVAL {tol} SECOND, false) AS buyable FROM held_path
"""

_DUCKDB_PATH = "WITH unused AS (SELECT 1)"

_DUCKDB_CLOSE = """
, closes AS (
    SELECT arg_min(ts, ts) AS ts, opt_type, arg_min(symbol, ts) AS symbol,
           arg_min(ask, ts) AS price
    FROM tradeable WHERE buyable AND ts >= (SELECT ts FROM close_start)
    GROUP BY opt_type
)
SELECT ts, symbol, 'sell' AS side, bid AS price_paise, 'entry' AS reason FROM opened
UNION ALL
SELECT ts, symbol, 'buy', price, (SELECT reason FROM close_start) FROM closes
ORDER BY ts, symbol
"""

_STRADDLE_START = """
, close_start AS (SELECT $exit_ts AS ts, 'exit_time' AS reason)
"""

_STOP_START = """
, marks AS (
    SELECT ts, opt_type, entry,
           coalesce(last_value(CASE WHEN buyable THEN ask END IGNORE NULLS)
                    OVER (PARTITION BY opt_type ORDER BY ts), entry) AS mark
    FROM tradeable
),
stop AS (
    SELECT min(ts) AS ts FROM (
        SELECT ts, sum({quantity} * (entry - mark)) AS pnl FROM marks GROUP BY ts)
    WHERE ts < $exit_ts AND -pnl >= {stop_paise}
),
close_start AS (
    SELECT coalesce((SELECT ts FROM stop), $exit_ts) AS ts,
           CASE WHEN (SELECT ts FROM stop) IS NULL THEN 'exit_time' ELSE 'stop_loss' END
           AS reason
)
"""


def duckdb_day(
    con: duckdb.DuckDBPyConnection,
    options_file: list[str],
    spot_file: list[str],
    day: date,
    expiry: date,
    *,
    offset_steps: int,
    stop: tuple[int, float] | None = None,
) -> pl.DataFrame:
    """The straddle (``stop`` None) or the strangle with a combined money stop
    (``stop = (quantity, rupees)``): staging tables (the entry window's wanted contracts,
    their quotes, the entry, the held contracts' quotes), then one query."""
    fmt = {
        "half": STEP_PAISE // 2,
        "step": STEP_PAISE,
        "tol": TOLERANCE_SECONDS,
        "offset": offset_steps,
    }
    params = {
        "options": options_file,
        "spot": spot_file,
        "expiry": expiry,
        "session_start": at(day, "09:15"),
        "session_end": at(day, "15:30"),
        "entry_start": at(day, "09:20"),
        "entry_end": at(day, "09:25"),
        "exit_ts": at(day, "15:20"),
    }

    def run(sql: str) -> duckdb.DuckDBPyConnection:
        return con.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql})

    run(_DUCKDB_WANTED.format(**fmt))
    run(_DUCKDB_ENTRY_CHAIN)
    run(_DUCKDB_ENTRY.format(**fmt))
    run(_DUCKDB_HELD)
    run(_DUCKDB_HELD_SECONDS)
    run(_DUCKDB_TRADEABLE.format(**fmt))
    sql = _DUCKDB_PATH
    if stop is None:
        sql += _STRADDLE_START
    else:
        sql += _STOP_START.format(quantity=stop[0], stop_paise=round(stop[1] * 100))
    sql += _DUCKDB_CLOSE
    return pl.from_arrow(
        con.sql(sql, params={k: v for k, v in params.items() if f"${k}" in sql}).to_arrow_table()
    )
