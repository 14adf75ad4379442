"""One option contract's day: quotes, 5-level depth, trades and open interest.

Everything is vectorised over the session's seconds. Prices are computed in integer
ticks of 0.05 and converted once, so every price lands exactly on the grid.

Liquidity follows standardised moneyness ``m = ln(K/S)/(σ√T)``: ``liquidity =
exp(-m²/4.5)`` is 1 at the money and falls to ~0.1 three σ away. It drives:

- the spread: ``max(1 tick, 0.1–0.2 % of the price)`` (wider when illiquid) plus one
  tick per 0.75 of |m|, so the relative spread widens away from the money and for
  cheap options; a contract worth less than a tick shows no bid (written as price 0,
  the vendor's "none");
- staleness: a contract whose moneyness liquidity is below 0.4 (|m| > 2) alternates
  between live stretches and stretches with **no rows at all** (the vendor writes a
  row only when the exchange sends an update for the contract); far strikes are
  missing for minutes at a time;
- trades: Poisson arrivals with rate ``0.8 · liquidity² · U(t)`` per second (U = the
  intraday volatility shape, busy at the open and close), only in seconds with a row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ticklake.generate.pricing import (
    RISK_FREE_RATE,
    atm_volatility,
    black_scholes,
    smile_volatility,
    standardised_moneyness,
)
from ticklake.generate.underlying import intraday_volatility_shape

TICKS_PER_RUPEE = 20  # tick 0.05
LEVELS = 5
#: Contracts whose liquidity (from moneyness alone) is below this go stale for stretches.
_STALE_BELOW = 0.4


@dataclass(frozen=True)
class ContractSpec:
    """What the book simulation needs to know about one contract and its day."""

    strike: float
    opt_type: str
    lot_size: int
    years_to_expiry: np.ndarray  # per grid second
    previous_close_years: float  # time to expiry at the previous session's close
    monthly: bool


def ticks_to_price(ticks: np.ndarray) -> np.ndarray:
    """Convert integer ticks to rupees, exact to two decimals."""
    return ticks.astype(np.float64) * 5.0 / 100.0


def simulate_book(
    rng: np.random.Generator,
    spec: ContractSpec,
    spot: np.ndarray,
    seconds: np.ndarray,
    base_volatility: float,
    previous_close_spot: float,
) -> dict[str, np.ndarray]:
    """Return the contract's vendor fields for the seconds it has rows (``present``)."""
    n = spot.size
    atm = atm_volatility(base_volatility, spec.years_to_expiry) * (spot / spot[0]) ** -3.0
    moneyness = standardised_moneyness(spot, spec.strike, spec.years_to_expiry, atm)
    volatility = smile_volatility(atm, moneyness)
    theo = black_scholes(
        spot, spec.strike, spec.years_to_expiry, volatility, RISK_FREE_RATE, spec.opt_type
    )
    moneyness_liquidity = np.exp(-(moneyness**2) / 4.5)
    liquidity = moneyness_liquidity * (0.6 if spec.monthly else 1.0)

    present = _presence_mask(rng, float(np.median(moneyness_liquidity)), n)

    # --- top of book, in ticks --------------------------------------------------------
    theo_ticks = theo * TICKS_PER_RUPEE
    # Proportional part widens as liquidity falls (up to 2x for the far wings).
    spread = np.maximum(1, np.rint(theo_ticks * 0.001 * (2.0 - moneyness_liquidity)))
    spread = spread.astype(np.int64)
    spread += np.floor(np.abs(moneyness) / 0.75).astype(np.int64)
    spread += (rng.random(n) < 0.2).astype(np.int64)
    bid0 = np.floor(theo_ticks - spread / 2.0).astype(np.int64)
    ask0 = bid0 + spread
    cheap = bid0 < 1
    ask0 = np.where(cheap, np.maximum(ask0, np.where(theo_ticks >= 1.0, 2, 1)), ask0)
    bid0 = np.where(cheap, np.where(theo_ticks >= 1.0, 1, 0), bid0)  # 0 = no bid

    # --- depth ------------------------------------------------------------------------
    lot = spec.lot_size
    depth_lots = 1.0 + 40.0 * liquidity
    columns: dict[str, np.ndarray] = {}
    total = {"b": np.zeros(n, np.int64), "s": np.zeros(n, np.int64)}
    for side, top, sign in (("b", bid0, -1), ("s", ask0, 1)):
        level_price = top.copy()
        for level in range(LEVELS):
            if level:
                level_price = level_price + sign * rng.choice(
                    np.array([1, 1, 1, 2, 3], np.int64), size=n
                )
            has_level = level_price >= 1
            lots = 1 + rng.poisson(depth_lots)
            orders = 1 + np.floor(rng.random(n) * np.minimum(lots, 25)).astype(np.int64)
            qty = np.where(has_level, lots * lot, 0)
            columns[f"{side}q{level}"] = qty
            columns[f"{side}p{level}"] = ticks_to_price(np.where(has_level, level_price, 0))
            columns[f"{side}o{level}"] = np.where(has_level, orders, 0)
            total[side] += qty
    # The totals cover the whole book, deeper than the five levels shown.
    columns["bQty"] = total["b"] + lot * rng.poisson(depth_lots * 6)
    columns["sQty"] = total["s"] + lot * rng.poisson(depth_lots * 6)

    # --- trades -----------------------------------------------------------------------
    rate = 0.8 * liquidity**2 * intraday_volatility_shape(seconds)
    trade_count = np.where(present, rng.poisson(rate), 0)
    traded = trade_count > 0
    low_tick = np.where(bid0 >= 1, bid0, ask0)
    trade_ticks = low_tick + np.floor(rng.random(n) * (ask0 - low_tick + 1)).astype(np.int64)
    trade_qty = np.where(traded, lot * (trade_count + rng.poisson(trade_count)), 0)
    trade_value = trade_qty * ticks_to_price(trade_ticks)

    trade_index = np.where(traded, np.arange(n), -1)
    last_trade = np.maximum.accumulate(trade_index)
    has_traded = last_trade >= 0
    safe_last = np.maximum(last_trade, 0)
    last_ticks = np.where(has_traded, trade_ticks[safe_last], 0)
    volume = np.cumsum(trade_qty)
    turnover = np.cumsum(trade_value)
    avg_price = np.where(volume > 0, np.round(turnover / np.maximum(volume, 1), 2), 0.0)
    first = int(np.argmax(traded)) if traded.any() else -1
    open_ticks = np.where(has_traded, trade_ticks[first] if first >= 0 else 0, 0)
    traded_ticks_or_low = np.where(traded, trade_ticks, np.iinfo(np.int64).max)
    traded_ticks_or_high = np.where(traded, trade_ticks, 0)
    high_ticks = np.where(has_traded, np.maximum.accumulate(traded_ticks_or_high), 0)
    low_ticks = np.where(has_traded, np.minimum.accumulate(traded_ticks_or_low), 0)

    previous_atm = atm_volatility(base_volatility, np.array([spec.previous_close_years]))
    previous_m = standardised_moneyness(
        np.array([previous_close_spot]),
        spec.strike,
        np.array([spec.previous_close_years]),
        previous_atm,
    )
    previous_theo = black_scholes(
        np.array([previous_close_spot]),
        spec.strike,
        np.array([spec.previous_close_years]),
        smile_volatility(previous_atm, previous_m),
        RISK_FREE_RATE,
        spec.opt_type,
    )
    close_ticks = max(1, int(np.rint(previous_theo[0] * TICKS_PER_RUPEE)))
    last_price = ticks_to_price(last_ticks)
    close = close_ticks * 5.0 / 100.0

    # --- open interest: changes only on trades ----------------------------------------
    start_lots = int(rng.integers(50, 400)) + int(4000 * float(liquidity[0]))
    direction = rng.choice(np.array([-1, 0, 1], np.int64), size=n, p=[0.3, 0.3, 0.4])
    oi = np.maximum(start_lots * lot + np.cumsum(direction * trade_qty), lot)

    columns.update(
        price=last_price,
        qty=np.where(has_traded, trade_qty[safe_last], 0),
        avgPrice=avg_price,
        volume=volume,
        open=ticks_to_price(open_ticks),
        high=ticks_to_price(high_ticks),
        low=ticks_to_price(low_ticks),
        close=np.full(n, close),
        changeper=np.where(has_traded, np.round((last_price - close) / close * 100.0, 2), 0.0),
        last_trade_index=last_trade,
        oi=oi,
        oiHigh=np.maximum.accumulate(oi),
        oiLow=np.minimum.accumulate(oi),
        theo=theo,
        present=present,
    )
    return columns


def _presence_mask(rng: np.random.Generator, liquidity: float, n: int) -> np.ndarray:
    """Seconds with a row: always for liquid contracts, alternating stretches otherwise."""
    if liquidity >= _STALE_BELOW:
        return np.ones(n, dtype=bool)
    mean_live = 60.0 + 1200.0 * liquidity
    mean_gap = 30.0 + 300.0 * (1.0 - liquidity)
    # Enough alternating stretches to cover the day with room to spare.
    pairs = int(n / (mean_live + mean_gap) * 3) + 4
    live = 1 + rng.geometric(1.0 / mean_live, size=pairs)
    gaps = 1 + rng.geometric(1.0 / mean_gap, size=pairs)
    lengths = np.empty(2 * pairs, dtype=np.int64)
    lengths[0::2], lengths[1::2] = live, gaps
    states = np.repeat(np.tile(np.array([True, False]), pairs), lengths)[:n]
    if states.size < n:
        states = np.concatenate([states, np.ones(n - states.size, dtype=bool)])
    # Start the day at a random point of the cycle, so not every stale contract opens live.
    return np.roll(states, int(rng.integers(0, n)))
