"""Market views of the lake for the Data page: the time-travel option chain and candles.

The chain at second *t* is an as-of view looking backward only: for each contract the
last snapshot with ``ts <= t`` of that trading day (no look-ahead), its quote age
``t - ts``, the underlying as of *t* (spot dataset, else put-call parity from the same
chain), and implied volatility and delta from the metric registry's option metrics
(the same Numba kernels a backtest uses), with the time to expiry measured to the
expiry day's ``expiry_time`` in the dataset's time zone, as the backtest engine does.

Candles come from a bars dataset when one is given, else they are computed on the fly
with the bar kernels of :mod:`ticklake.bars` from prices, trades or option snapshots.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from ticklake.errors import ConfigError, SchemaMismatchError
from ticklake.lake import Lake
from ticklake.web.errors import json_safe
from ticklake.web.local_time import zone_fields

MAX_CANDLE_DAYS = 31
CHAIN_COLUMNS = ("ts", "symbol", "expiry", "strike", "opt_type", "last_price", "volume", "oi")


def parse_clock(text: str) -> time:
    """``HH:MM`` or ``HH:MM:SS`` as a time of day.

    Examples:
        >>> parse_clock("09:20"), parse_clock("15:29:59")
        (datetime.time(9, 20), datetime.time(15, 29, 59))
    """
    try:
        parts = [int(p) for p in text.strip().split(":")]
        if len(parts) not in (2, 3):
            raise ValueError(text)
        return time(parts[0], parts[1], parts[2] if len(parts) == 3 else 0)
    except (ValueError, TypeError):
        raise ConfigError(f"time {text!r} must look like HH:MM or HH:MM:SS", value=text) from None


def _schema_name(lake: Lake, dataset: str) -> tuple[Any, str]:
    info = lake.dataset_info(dataset)
    return info, info.dataset_schema.name


def _last_before(frame: pl.LazyFrame, moment: datetime, key: str) -> pl.LazyFrame:
    return frame.filter(pl.col("ts") <= moment).sort("ts").group_by(key).last()


def underlying_as_of(
    lake: Lake, dataset: str, day: date, moment: datetime, instrument: str | None
) -> tuple[float | None, datetime | None]:
    """The last price of ``instrument`` (or the only one) at or before ``moment``."""
    lf = lake.scan(dataset, start=day, end=day).filter(pl.col("ts") <= moment)
    if instrument is not None:
        lf = lf.filter(pl.col("instrument") == instrument)
    row = lf.sort("ts").select("ts", "price").last().collect()
    if row.height == 0 or row["price"][0] is None:
        return None, None
    return float(row["price"][0]), row["ts"][0]


def _parity_spot(chain: pl.DataFrame) -> float | None:
    """K + C − P at the strike where the call and put mids are closest."""
    mids = chain.filter(pl.col("bid").is_not_null() & pl.col("ask").is_not_null()).with_columns(
        ((pl.col("bid") + pl.col("ask")) / 2).alias("mid")
    )
    calls = mids.filter(pl.col("opt_type") == "CE").select("strike", pl.col("mid").alias("call"))
    puts = mids.filter(pl.col("opt_type") == "PE").select("strike", pl.col("mid").alias("put"))
    both = calls.join(puts, on="strike").with_columns((pl.col("call") - pl.col("put")).alias("d"))
    if both.height == 0:
        return None
    best = both.sort(pl.col("d").abs(), "strike").row(0, named=True)
    return float(best["strike"] + best["d"])


def option_chain(
    lake: Lake,
    dataset: str,
    day: date,
    clock: time,
    *,
    expiry: date | None = None,
    underlying_dataset: str | None = None,
    expiry_time: time = time(15, 30),
    stale_after_seconds: int = 5,
) -> dict[str, Any]:
    """The chain of ``dataset`` as it stood at ``clock`` (exchange time) on ``day``."""
    from ticklake.analytics.registry import get_metric

    info, schema = _schema_name(lake, dataset)
    if not schema.startswith("option_snapshots"):
        raise SchemaMismatchError(
            f"{info.layer}.{info.name} holds {schema}, not option snapshots; pick an options "
            "dataset for the chain",
            dataset=dataset,
        )
    zone = ZoneInfo(info.timezone)
    moment = datetime.combine(day, clock, tzinfo=zone)
    moment_utc = moment.astimezone(ZoneInfo("UTC"))
    prices = [c for c in ("bid_price_0", "ask_price_0") if c in info.dataset_schema.column_names]
    lf = lake.scan(info.name, layer=info.layer, start=day, end=day).select(*CHAIN_COLUMNS, *prices)
    seen = lf.filter(pl.col("ts") <= moment_utc)
    expiries = sorted(
        e for e in seen.select(pl.col("expiry").unique()).collect()["expiry"].to_list() if e >= day
    )
    chosen = expiry if expiry is not None else (expiries[0] if expiries else None)
    base: dict[str, Any] = {
        "dataset": f"{info.layer}.{info.name}",
        **zone_fields(info.timezone, day.year),
        "date": day.isoformat(),
        "time": clock.isoformat(),
        "as_of_utc": moment_utc.isoformat(),
        "as_of_local": moment.isoformat(),
        "expiries": [e.isoformat() for e in expiries],
        "expiry": chosen.isoformat() if chosen else None,
        "stale_after_seconds": stale_after_seconds,
    }
    if chosen is None:
        return {**base, "spot": None, "spot_source": None, "atm_strike": None, "rows": []}
    latest = (
        _last_before(lf.filter(pl.col("expiry") == chosen), moment_utc, "symbol")
        .rename({"bid_price_0": "bid", "ask_price_0": "ask", "last_price": "price"}, strict=False)
        .collect()
    )
    for column in ("bid", "ask"):
        if column not in latest.columns:
            latest = latest.with_columns(pl.lit(None, pl.Float64).alias(column))
    spot, spot_ts, source = None, None, None
    if underlying_dataset:
        spot, spot_ts = underlying_as_of(lake, underlying_dataset, day, moment_utc, None)
        source = "spot" if spot is not None else None
    if spot is None:
        spot, source = _parity_spot(latest), "parity"
    expiry_close = datetime.combine(chosen, expiry_time, tzinfo=zone)
    years = max((expiry_close - moment).total_seconds(), 1e-6 * 365 * 86_400) / (365 * 86_400)
    frame = latest.with_columns(
        pl.lit(spot, pl.Float64).alias("spot"),
        pl.lit(years).alias("years_to_expiry"),
        (pl.col("opt_type") == "CE").alias("is_call"),
        ((pl.lit(moment_utc) - pl.col("ts")).dt.total_milliseconds() / 1000).alias(
            "quote_age_seconds"
        ),
    )
    if spot is not None:
        iv = get_metric("implied_volatility")
        delta = get_metric("delta")
        frame = frame.with_columns(
            iv.series(iv.parse_params()).alias("iv"),
            delta.series(delta.parse_params()).alias("delta"),
        )
    else:
        frame = frame.with_columns(
            pl.lit(None, pl.Float64).alias("iv"), pl.lit(None, pl.Float64).alias("delta")
        )
    strikes = sorted(frame["strike"].unique().to_list())
    atm = min(strikes, key=lambda k: (abs(k - spot), k)) if spot is not None and strikes else None
    by_key = {(r["strike"], r["opt_type"]): r for r in frame.to_dicts()}
    rows = []
    for strike in strikes:
        row: dict[str, Any] = {"strike": strike, "atm": strike == atm}
        for side in ("CE", "PE"):
            quote = by_key.get((strike, side))
            row[side] = (
                None
                if quote is None
                else {
                    "symbol": quote["symbol"],
                    "bid": quote["bid"],
                    "ask": quote["ask"],
                    "last": quote["price"],
                    "quote_ts": quote["ts"],
                    "quote_age_seconds": quote["quote_age_seconds"],
                    "stale": quote["quote_age_seconds"] > stale_after_seconds,
                    "iv": quote["iv"],
                    "delta": quote["delta"],
                    "volume": quote["volume"],
                    "oi": quote["oi"],
                }
            )
        rows.append(row)
    return json_safe(
        {
            **base,
            "spot": spot,
            "spot_ts": spot_ts,
            "spot_ts_local": spot_ts.astimezone(zone) if spot_ts is not None else None,
            "spot_source": source,
            "atm_strike": atm,
            "years_to_expiry": years,
            "rows": rows,
        }
    )


def instruments(lake: Lake, dataset: str, day: date | None = None, limit: int = 500) -> list[str]:
    """Instrument (or contract symbol) names of a dataset, on ``day`` or its last day."""
    info, schema = _schema_name(lake, dataset)
    column = "symbol" if schema.startswith("option_snapshots") else "instrument"
    if column not in info.dataset_schema.column_names:
        return []
    if day is None:
        parts = lake.partitions(info.name, layer=info.layer)
        if not parts:
            return []
        day = parts[-1].date
    names = (
        lake.scan(info.name, layer=info.layer, start=day, end=day)
        .select(pl.col(column).unique())
        .collect()[column]
        .sort()
        .head(limit)
    )
    return [str(n) for n in names.to_list()]


def candles(
    lake: Lake,
    dataset: str,
    instrument: str,
    start: date,
    end: date,
    interval: str = "1m",
) -> dict[str, Any]:
    """OHLC, volume and spread bars of one instrument, in the dataset's time zone."""
    from ticklake.bars import BarGrid, prices_to_bars, rollup, snapshots_to_bars, trades_to_bars

    if end < start:
        raise ConfigError(f"end {end} is before start {start}")
    if (end - start) > timedelta(days=MAX_CANDLE_DAYS):
        raise ConfigError(f"at most {MAX_CANDLE_DAYS} days of candles at once; narrow the range")
    info, schema = _schema_name(lake, dataset)
    grid = BarGrid.create(interval, timezone=info.timezone, day_offset=info.day_offset)
    lf = lake.scan(info.name, layer=info.layer, start=start, end=end)
    if schema == "bars":
        bars = lf.filter(pl.col("instrument") == instrument).sort("ts").collect()
        bars = rollup(bars, grid) if bars.height else bars
        source = "bars dataset"
    elif schema.startswith("option_snapshots"):
        frame = lf.filter(pl.col("symbol") == instrument).collect()
        bars = snapshots_to_bars(frame, grid)
        source = "computed from option snapshots"
    elif schema == "prices":
        bars = prices_to_bars(lf.filter(pl.col("instrument") == instrument).collect(), grid)
        source = "computed from prices"
    elif schema == "trades":
        bars = trades_to_bars(lf.filter(pl.col("instrument") == instrument).collect(), grid)
        source = "computed from trades"
    else:
        raise SchemaMismatchError(
            f"{info.layer}.{info.name} holds {schema}; candles come from bars, prices, trades "
            "or option snapshots",
            dataset=dataset,
        )
    bars = bars.sort("ts")
    local = bars["ts"].dt.convert_time_zone(info.timezone).dt.strftime("%Y-%m-%d %H:%M:%S")
    spread = (
        (bars["ask_price"] - bars["bid_price"]).to_list()
        if "ask_price" in bars.columns
        else [None] * bars.height
    )
    return json_safe(
        {
            "dataset": f"{info.layer}.{info.name}",
            "instrument": instrument,
            "interval": interval,
            **zone_fields(info.timezone, start.year),
            "source": source,
            "ts": local.to_list(),
            "open": bars["open"].to_list(),
            "high": bars["high"].to_list(),
            "low": bars["low"].to_list(),
            "close": bars["close"].to_list(),
            "volume": bars["volume"].to_list() if "volume" in bars.columns else [],
            "spread": spread,
        }
    )
