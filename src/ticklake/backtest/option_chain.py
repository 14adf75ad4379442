"""The option chain of a day: which expiry to trade, its rows, their as-of alignment to
the grid (one pass over every contract) and the underlying by put-call parity.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numba
import numpy as np
import polars as pl

from ticklake.backtest.grid import NS, _price_paise
from ticklake.backtest.spec import StrategySpec
from ticklake.market.calendar import monthly_expiry

OPTION_COLUMNS = ("ts", "strike", "opt_type", "expiry", "symbol", "bid_price_0", "ask_price_0")
#: Loaded as well when a condition reads a leg's market data (last price, volume).
MARKET_COLUMNS = ("last_price", "volume")

#: ``kind`` of an option type other than CE (0) and PE (1).
OTHER_KIND = 2


def choose_expiry(spec: StrategySpec, day: date, available: list[date]) -> date | None:
    """Pick the expiry the spec asks for among those present in the day's data."""
    floor = day + timedelta(days=spec.universe.min_days_to_expiry)
    candidates = sorted(d for d in available if d >= floor)
    if not candidates:
        return None
    underlying = spec.universe.underlying

    def is_monthly(expiry: date) -> bool:
        return monthly_expiry(underlying, expiry.year, expiry.month) == expiry

    kind = spec.universe.expiry
    if kind == "by_days_to_expiry":
        target = spec.universe.target_days_to_expiry or 0
        return min(candidates, key=lambda d: (abs((d - day).days - target), d))
    if kind in ("nearest_monthly", "next_monthly"):
        candidates = [d for d in candidates if is_monthly(d)]
    elif kind in ("nearest_weekly", "next_weekly"):
        candidates = [d for d in candidates if not is_monthly(d)] or []
        # In a monthly-expiry week the monthly contract is that week's weekly.
        weekly_or_monthly = sorted(d for d in available if d >= floor)
        if weekly_or_monthly and is_monthly(weekly_or_monthly[0]):
            candidates = [weekly_or_monthly[0], *candidates]
    index = 1 if kind.startswith("next") else 0
    return candidates[index] if len(candidates) > index else None


def strike_reach_steps(spec: StrategySpec) -> int:
    """Strike steps beyond the day's spot range that ``load_day`` keeps.

    Derived from the selectors (see ``pruning``): the ATM strike is within half a step
    of spot, ``otm``/``itm`` move ``steps`` from ATM and ``delta``/``premium`` scan ATM ±
    ``strike_candidates`` steps, so the furthest leg's reach + 1 (the rounding of ATM)
    covers any strike a leg can choose from spot(t) at any second of the day.
    """
    reach = 0
    for leg in spec.legs:
        if leg.instrument is not None:
            continue
        if leg.selector.kind in ("delta", "premium"):
            reach = max(reach, spec.universe.strike_candidates)
        else:
            reach = max(reach, int(getattr(leg.selector, "steps", 0)))
    return reach + 1


def _option_rows(options: pl.LazyFrame, market_fields: bool) -> pl.DataFrame:
    """Read the filtered option rows: only the columns the engine uses, typed for NumPy.

    ``kind`` orders the option types as a sort by ``opt_type`` would (CE 0 < PE 1; any
    other type is ``OTHER_KIND`` and makes ``load_day`` sort explicitly).
    """
    opt_type = pl.col("opt_type")
    columns = [
        pl.col("ts").dt.epoch("ns"),
        pl.col("strike"),
        opt_type,
        pl.when(opt_type == "CE")
        .then(0)
        .when(opt_type == "PE")
        .then(1)
        .otherwise(OTHER_KIND)
        .cast(pl.Int64)
        .alias("kind"),
        pl.col("symbol"),
        pl.col("bid_price_0").cast(pl.Float64),
        pl.col("ask_price_0").cast(pl.Float64),
    ]
    if market_fields:
        columns += [pl.col("last_price").cast(pl.Float64), pl.col("volume").cast(pl.Float64)]
    return options.select(columns).collect()


@numba.njit(cache=True)
def _contract_order(kind: np.ndarray, strike: np.ndarray, ts: np.ndarray) -> bool:
    """True when rows are in (kind, strike, ts) order, ts non-decreasing per contract."""
    for i in range(1, kind.shape[0]):
        if kind[i] != kind[i - 1]:
            if kind[i] < kind[i - 1]:
                return False
        elif strike[i] != strike[i - 1]:
            # ``not >`` rather than ``<`` so that a NaN strike also fails the check.
            if not strike[i] > strike[i - 1]:
                return False
        elif ts[i] < ts[i - 1]:
            return False
    return True


@numba.njit(cache=True)
def _align_contracts(
    starts: np.ndarray,
    row_ts: np.ndarray,
    row_bid: np.ndarray,
    row_ask: np.ndarray,
    row_last: np.ndarray,
    row_cumulative: np.ndarray,
    grid: np.ndarray,
    tolerance_ns: int,
    bid: np.ndarray,
    ask: np.ndarray,
    age: np.ndarray,
    last: np.ndarray,
    volume: np.ndarray,
) -> None:
    """Backward as-of join of every contract's rows to the grid, in one pass.

    Contract ``c`` owns rows ``starts[c]:starts[c + 1]`` (ts non-decreasing). Writes
    ``bid``/``ask`` (paise, 0 = none) and ``age`` (seconds, -1 = none) at [c, g]; with
    market fields (``last.shape[0] > 0``) also the as-of last price and the volume traded
    in each second. Each row is read at most once per contract; nothing after ``g``.
    """
    market = last.shape[0] > 0
    for c in range(starts.shape[0] - 1):
        lo, hi = starts[c], starts[c + 1]
        after = lo  # first row with ts > the current grid second
        row_bid_paise = 0
        row_ask_paise = 0
        row_last_paise = 0
        previous_cumulative = math.nan
        for g in range(grid.shape[0]):
            now = grid[g]
            moved = False
            while after < hi and row_ts[after] <= now:
                after += 1
                moved = True
            cumulative = math.nan
            if after > lo:
                row = after - 1
                if moved:
                    row_bid_paise = _price_paise(row_bid[row])
                    row_ask_paise = _price_paise(row_ask[row])
                    if market:
                        row_last_paise = _price_paise(row_last[row])
                age_ns = now - row_ts[row]
                if age_ns <= tolerance_ns:
                    bid[c, g] = row_bid_paise
                    ask[c, g] = row_ask_paise
                    age[c, g] = age_ns // NS
                    if market:
                        last[c, g] = row_last_paise
                        cumulative = row_cumulative[row]
            if market:
                # Traded in this second = cumulative now minus a second ago (a reset or a
                # missing second before counts from zero; a decrease is a vendor glitch: 0).
                before = 0.0 if math.isnan(previous_cumulative) else previous_cumulative
                if not math.isnan(cumulative):
                    volume[c, g] = max(cumulative - before, 0.0)
                previous_cumulative = cumulative


@numba.njit(cache=True)
def _parity_from_pairs(
    pair_put: np.ndarray,
    pair_call: np.ndarray,
    pair_strike: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    age: np.ndarray,
    max_age: int,
) -> np.ndarray:
    """Per second, ``K + C − P`` at the pair with the smallest |call mid − put mid|."""
    seconds = bid.shape[1]
    spot = np.zeros(seconds, np.int64)
    for t in range(seconds):
        best = np.iinfo(np.int64).max
        for p in range(pair_put.shape[0]):
            put, call = pair_put[p], pair_call[p]
            if not (bid[call, t] > 0 and ask[call, t] > 0 and 0 <= age[call, t] <= max_age):
                continue
            if not (bid[put, t] > 0 and ask[put, t] > 0 and 0 <= age[put, t] <= max_age):
                continue
            call_mid = (bid[call, t] + ask[call, t]) // 2
            put_mid = (bid[put, t] + ask[put, t]) // 2
            gap = abs(call_mid - put_mid)
            if gap < best:  # strictly: on a tie the first pair in load order wins
                best = gap
                spot[t] = pair_strike[p] + call_mid - put_mid
    return spot


def _parity_spot(
    strikes: np.ndarray,
    is_call: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    age: np.ndarray,
    max_age: int,
) -> np.ndarray:
    """Underlying from put-call parity, per second (0 where no strike has both quotes)."""
    calls = {int(k): i for i, k in enumerate(strikes) if is_call[i]}
    pairs = [
        (j, calls[int(k)], int(k))
        for j, k in enumerate(strikes)
        if not is_call[j] and int(k) in calls
    ]
    table = np.array(pairs, dtype=np.int64).reshape(-1, 3)
    return _parity_from_pairs(table[:, 0], table[:, 1], table[:, 2], bid, ask, age, max_age)
