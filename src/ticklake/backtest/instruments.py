"""Instrument legs: the rows of the plain instruments (futures, the spot, any priced
series) that legs trade, as-of joined to the grid like the options.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from ticklake.backtest.day_inputs import _in_time_order, partition_hash
from ticklake.backtest.grid import _asof_indices, _paise_on_grid, _volume_per_second
from ticklake.backtest.spec import StrategySpec
from ticklake.errors import ConfigError, DatasetNotFoundError
from ticklake.lake import Lake
from ticklake.market.nse_symbols import parse_future_symbol


@dataclass
class _InstrumentRow:
    """One plain instrument on the grid (paise; age -1 = no quote within tolerance)."""

    dataset: str
    symbol: str
    expiry: date | None
    legs: list[int]
    bid: np.ndarray
    ask: np.ndarray
    age: np.ndarray
    last: np.ndarray
    volume: np.ndarray
    input_hash: str | None


def _first_present(names: list[str], *candidates: str) -> str | None:
    return next((c for c in candidates if c in names), None)


def _instrument_rows(
    lake: Lake, spec: StrategySpec, day: date, grid: np.ndarray, tolerance_ns: int
) -> list[_InstrumentRow]:
    """The day's plain instruments that instrument legs trade, as-of joined to the grid
    like the options (one row per distinct dataset and symbol, shared by its legs).

    An instrument with no rows on the day gets an all-missing row: its legs then record
    ``missing_quote`` attempts instead of trading (never a silent skip)."""
    wanted: dict[tuple[str, str | None], list[int]] = {}
    for i, leg in enumerate(spec.legs):
        if leg.instrument is not None:
            key = (spec.instrument_dataset(leg), leg.instrument.symbol)
            wanted.setdefault(key, []).append(i)
    out: list[_InstrumentRow] = []
    for (dataset, symbol), legs in wanted.items():
        try:
            input_hash = partition_hash(lake, dataset, day)
        except DatasetNotFoundError as exc:
            names = ", ".join(spec.legs[i].name for i in legs)
            raise ConfigError(
                f"leg {names}: instrument dataset {dataset!r} is not in the lake; set the "
                f"leg's instrument.dataset to one that is ({exc})",
                dataset=dataset,
            ) from exc
        frame, chosen, expiry = _instrument_frame(lake, dataset, symbol, day, input_hash)
        ts = frame["ts"].dt.epoch("ns").to_numpy()
        idx, age = _asof_indices(ts, grid, tolerance_ns)
        # Quotes when the day has any (a bars dataset's bid/ask columns may be empty).
        quoted = [c for c in frame.columns if frame[c].null_count() < frame.height]
        bid_col = _first_present(quoted, "bid_price", "bid_price_0") or "price"
        ask_col = _first_present(quoted, "ask_price", "ask_price_0") or "price"
        bid, ask = _paise_on_grid(frame, bid_col, idx), _paise_on_grid(frame, ask_col, idx)
        last = _paise_on_grid(frame, "price", idx)
        volume = _volume_per_second(frame, ts, grid)
        out.append(
            _InstrumentRow(dataset, chosen, expiry, legs, bid, ask, age, last, volume, input_hash)
        )
    return out


def _instrument_frame(
    lake: Lake,
    dataset: str,
    symbol: str | None,
    day: date,
    input_hash: str | None,
) -> tuple[pl.DataFrame, str, date | None]:
    """The rows of one instrument on ``day`` in time order, its symbol and its expiry.

    Columns: ``ts`` (when the row is known), ``price`` and/or ``bid_price``/``ask_price``,
    ``volume`` when present. A bars dataset is read at each bar's close time ``ts_end``
    with its ``close`` as the price: a bar is not known before it closes.
    """
    if input_hash is None:  # no partition that day: an all-missing instrument
        empty = pl.DataFrame({"ts": pl.Series([], dtype=pl.Datetime("ns", "UTC"))})
        return empty, symbol or dataset, _future_expiry(symbol)
    scan = lake.scan(dataset, start=day, end=day)
    names = scan.collect_schema().names()
    symbol_col = _first_present(names, "instrument", "symbol")
    if "price" not in names and {"close", "ts_end"} <= set(names):
        scan = scan.drop("ts", "price", strict=False).rename({"ts_end": "ts", "close": "price"})
        names = scan.collect_schema().names()
    if not {"price", "bid_price", "bid_price_0"} & set(names):
        raise ConfigError(
            f"instrument dataset {dataset!r} has no price, bid/ask or bar close column "
            f"(columns: {', '.join(names)}); point the leg at a prices, quotes, L2 or bars "
            "dataset",
            dataset=dataset,
        )
    if symbol is None and symbol_col is not None:
        present = sorted(
            scan.select(pl.col(symbol_col).unique()).collect()[symbol_col].drop_nulls().to_list()
        )
        if len(present) == 1:
            symbol = present[0]
        elif present:
            symbol = _front_future(present, day)
            if symbol is None:
                listed = ", ".join(present[:10]) + (", ..." if len(present) > 10 else "")
                raise ConfigError(
                    f"instrument dataset {dataset!r} holds {len(present)} instruments on "
                    f"{day} ({listed}) and they are not NSE futures (e.g. BANKNIFTY24JANFUT) "
                    "to take the front month of: set the leg's instrument.symbol",
                    dataset=dataset,
                )
    if symbol is not None:
        if symbol_col is None:
            raise ConfigError(
                f"instrument dataset {dataset!r} has no instrument/symbol column to pick "
                f"{symbol!r} from; leave instrument.symbol out for a one-instrument dataset",
                dataset=dataset,
            )
        scan = scan.filter(pl.col(symbol_col) == symbol)
    columns = [
        c
        for c in ("ts", "price", "volume", "bid_price", "ask_price", "bid_price_0", "ask_price_0")
        if c in names
    ]
    frame = _in_time_order(scan.select(columns).collect())
    return frame, symbol or dataset, _future_expiry(symbol)


def _future_expiry(symbol: str | None) -> date | None:
    """The expiry of an NSE futures symbol (``BANKNIFTY24JANFUT``), else None."""
    if not symbol:
        return None
    try:
        return parse_future_symbol(symbol).expiry
    except Exception:  # not an NSE future: an instrument without an expiry
        return None


def _front_future(symbols: list[str], day: date) -> str | None:
    """The NSE future with the nearest expiry on or after ``day`` (None when the symbols
    are not all NSE futures or every one has expired)."""
    expiries = {s: _future_expiry(s) for s in symbols}
    if any(e is None for e in expiries.values()):
        return None
    live = sorted((e, s) for s, e in expiries.items() if e is not None and e >= day)
    return live[0][1] if live else None
