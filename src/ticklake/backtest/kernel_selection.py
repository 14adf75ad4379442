"""The kernel's strike selection: the contract a leg trades at second ``t`` (ATM, OTM,
ITM, by delta at the implied volatility, by premium, or an instrument's own row).
"""

from __future__ import annotations

import math

import numba

from ticklake.backtest.kernel_fills import (
    NO_CANDIDATE,
    NO_CONTRACT,
    NO_UNDERLYING,
    _tradeable_reason,
)

SELECTORS = ("atm", "otm", "itm", "delta", "premium", "instrument")
#: ``leg_kind`` of a plain-instrument leg: its ``leg_param`` is its contract index.
INSTRUMENT = 5


@numba.njit(cache=True)
def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@numba.njit(cache=True)
def _bs_price(spot: float, strike: float, years: float, vol: float, call: bool) -> float:
    sqrt_t = math.sqrt(years)
    d1 = (math.log(spot / strike) + 0.5 * vol * vol * years) / (vol * sqrt_t)
    d2 = d1 - vol * sqrt_t
    if call:
        return spot * _norm_cdf(d1) - strike * _norm_cdf(d2)
    return strike * _norm_cdf(-d2) - spot * _norm_cdf(-d1)


@numba.njit(cache=True)
def implied_delta(spot: float, strike: float, years: float, price: float, call: bool) -> float:
    """Black–Scholes delta at the implied volatility of ``price`` (zero rates); NaN if none."""
    intrinsic = max(spot - strike, 0.0) if call else max(strike - spot, 0.0)
    if price <= intrinsic or spot <= 0 or strike <= 0:
        return math.nan
    lo, hi = 1e-4, 5.0
    if _bs_price(spot, strike, years, hi, call) < price:
        return math.nan
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if _bs_price(spot, strike, years, mid, call) < price:
            lo = mid
        else:
            hi = mid
    vol = 0.5 * (lo + hi)
    d1 = (math.log(spot / strike) + 0.5 * vol * vol * years) / (vol * math.sqrt(years))
    return _norm_cdf(d1) if call else _norm_cdf(d1) - 1.0


@numba.njit(cache=True)
def _find_contract(strikes, is_call, call, strike):
    for i in range(strikes.shape[0]):
        if strikes[i] == strike and is_call[i] == call:
            return i
    return -1


@numba.njit(cache=True)
def _select(
    spot, strikes, is_call, bid, ask, age, years, t, call, kind, param, step, candidates, max_age
):
    """Return (contract index or -1, attempt reason or -1) for one leg at second t."""
    if kind == INSTRUMENT:  # a plain instrument: always its own contract row
        return int(param), -1
    s = spot[t]
    if s <= 0:
        return -1, NO_UNDERLYING
    atm = ((s + step // 2) // step) * step
    if kind <= 2:
        steps = int(param)
        offset = steps * step
        if kind == 1:  # OTM: calls above, puts below
            strike = atm + offset if call else atm - offset
        elif kind == 2:  # ITM
            strike = atm - offset if call else atm + offset
        else:
            strike = atm
        c = _find_contract(strikes, is_call, call, strike)
        return c, (-1 if c >= 0 else NO_CONTRACT)
    best_c, best_gap = -1, math.inf
    for k in range(-candidates, candidates + 1):
        c = _find_contract(strikes, is_call, call, atm + k * step)
        if c < 0 or _tradeable_reason(bid, ask, age, c, t, max_age) >= 0:
            continue
        mid = 0.5 * (bid[c, t] + ask[c, t]) / 100.0
        if kind == 4:
            gap = abs(mid - param)
        else:
            delta = implied_delta(s / 100.0, strikes[c] / 100.0, years[t], mid, call)
            if math.isnan(delta):
                continue
            gap = abs(abs(delta) - param)
        if gap < best_gap - 1e-12:
            best_c, best_gap = c, gap
    return best_c, (-1 if best_c >= 0 else NO_CANDIDATE)
