"""The kernel's fill model and the day's records: reason codes, the fill and attempt
recorders, when a quote is tradeable and the price a fill gets.

Fill model (see docs/backtest.md): ``cross`` buys at the ask and sells at the bid;
``mid`` trades at the mid rounded to the tick against us; ``mid_slippage`` trades at
mid ± (base_ticks × tick + α × spread + β × |mid move over 60 s|), rounded to the tick
against us (the move term only when the quote 60 s ago was itself tradeable).

An order needs the side of the book it trades against: a buy needs an ask, a sell a
bid (> 0, found within the as-of tolerance, age ≤ max_quote_age); the other side may be
empty (a one-sided quote: ``mid`` modes then trade at the one side there is). Strike
selection by delta or premium and the parity underlying need a mid, so they still need
both sides (``_tradeable_reason``).
"""

from __future__ import annotations

import math

import numba

# Fill reasons (index into REASONS).
REASONS = (
    "entry",
    "exit_time",
    "leg_stop",
    "leg_target",
    "stop_loss",
    "target",
    "trailing_stop",
    "rebalance_close",
    "rebalance_open",
    "forced_end_of_day",
    "exit_condition",
    "marked_end_of_day",
)
ENTRY, EXIT_TIME, LEG_STOP, LEG_TARGET, STOP_LOSS, TARGET, TRAILING = 0, 1, 2, 3, 4, 5, 6
REBALANCE_CLOSE, REBALANCE_OPEN, FORCED_EOD, EXIT_CONDITION = 7, 8, 9, 10
#: Not a fill: at the session's last second no price was on the book on the side the
#: close needs, so the leg is closed at its last mark (a mark-to-market close, no order).
MARKED_EOD = 11

# Why an order could not trade.
ATTEMPT_REASONS = ("no_underlying", "no_contract", "missing_quote", "stale_quote", "no_candidate")
NO_UNDERLYING, NO_CONTRACT, MISSING_QUOTE, STALE_QUOTE, NO_CANDIDATE = 0, 1, 2, 3, 4

MAX_FILLS = 20_000
MAX_ATTEMPTS = 5_000

# The day's fills, one column per fill: rows of int64[FILL_FIELDS, MAX_FILLS].
FILL_T, FILL_LEG, FILL_CONTRACT, FILL_SIDE, FILL_QTY, FILL_PRICE, FILL_REASON, FILL_POSITION = (
    range(8)
)
FILL_FIELDS = 8
# Why orders could not trade, one column per attempt: rows of int64[3, MAX_ATTEMPTS].
ATTEMPT_T, ATTEMPT_LEG, ATTEMPT_REASON = range(3)


@numba.njit(cache=True)
def _record_fill(fills, n, t, leg, c, side, qty, price, reason, position):
    """Write fill ``n`` and return its cash flow in paise (``-side × qty × price``: a buy
    pays). The caller checks ``n < MAX_FILLS`` first."""
    fills[FILL_T, n] = t
    fills[FILL_LEG, n] = leg
    fills[FILL_CONTRACT, n] = c
    fills[FILL_SIDE, n] = side
    fills[FILL_QTY, n] = qty
    fills[FILL_PRICE, n] = price
    fills[FILL_REASON, n] = reason
    fills[FILL_POSITION, n] = position
    return -side * qty * price


@numba.njit(cache=True)
def _record_attempt(attempts, n, last_attempt, t, leg, why):
    """Note that ``leg`` could not trade at ``t`` for ``why`` unless that is what it was
    told last time (or the table is full); return the new attempt count."""
    if why != last_attempt[leg] and n < MAX_ATTEMPTS:
        attempts[ATTEMPT_T, n] = t
        attempts[ATTEMPT_LEG, n] = leg
        attempts[ATTEMPT_REASON, n] = why
        n += 1
    last_attempt[leg] = why
    return n


@numba.njit(cache=True)
def _tradeable_reason(bid, ask, age, c, t, max_age):
    """Why contract ``c`` has no two-sided quote at ``t`` (-1: it has one). For choosing
    strikes by their mid; orders use :func:`_side_reason`."""
    if c < 0:
        return NO_CONTRACT
    if bid[c, t] <= 0 or ask[c, t] <= 0 or age[c, t] < 0:
        return MISSING_QUOTE
    if age[c, t] > max_age:
        return STALE_QUOTE
    return -1


@numba.njit(cache=True)
def _side_reason(bid, ask, age, c, t, max_age, buying):
    """Why an order on contract ``c`` cannot trade at ``t`` (-1: it can). A buy needs the
    ask, a sell the bid: that side > 0, a quote found within the as-of tolerance
    (``age >= 0``) and ``age <= max_age``. The other side may be empty."""
    if c < 0:
        return NO_CONTRACT
    price = ask[c, t] if buying else bid[c, t]
    if price <= 0 or age[c, t] < 0:
        return MISSING_QUOTE
    if age[c, t] > max_age:
        return STALE_QUOTE
    return -1


@numba.njit(cache=True)
def _book_second(bid, ask, age, c, t, max_age, buying):
    """The latest second ``s <= t`` whose quote on the side an order needs is still within
    ``max_age`` at ``t`` (that side > 0 at ``s`` and ``(t - s) + age[c, s] <= max_age``: the
    snapshot itself is at most ``max_age`` seconds old at ``t``); -1 when there is none."""
    if c < 0:
        return -1
    for s in range(t, max(t - max_age, 0) - 1, -1):
        price = ask[c, s] if buying else bid[c, s]
        if price > 0 and age[c, s] >= 0 and (t - s) + age[c, s] <= max_age:
            return s
    return -1


@numba.njit(cache=True)
def _round_against(value: float, tick: int, buying: bool) -> int:
    units = value / tick
    ticks = math.ceil(units - 1e-9) if buying else math.floor(units + 1e-9)
    return max(int(ticks) * tick, tick)


@numba.njit(cache=True)
def _fill_price(quotes, model, c, t, buying):
    """Price of a fill of contract ``c`` at second ``t`` in paise; ``quotes`` is the day's
    ``(bid, ask, age)``, ``model`` the fill model ``(mode, tick, base_ticks, alpha, beta,
    max_age)``."""
    bid, ask, age = quotes
    mode, tick, base_ticks, alpha, beta, max_age = model
    if mode == 0 or bid[c, t] <= 0 or ask[c, t] <= 0:
        # cross, or a one-sided quote (no mid): the side the order trades against.
        return ask[c, t] if buying else bid[c, t]
    mid = 0.5 * (bid[c, t] + ask[c, t])
    slip = 0.0
    if mode == 2:
        slip = base_ticks * tick + alpha * (ask[c, t] - bid[c, t])
        if beta > 0.0 and t >= 60:
            b0, a0, g0 = bid[c, t - 60], ask[c, t - 60], age[c, t - 60]
            # Only a quote that was itself tradeable then: a stale one would measure a
            # move that partly happened before t - 60 s.
            if b0 > 0 and a0 > 0 and 0 <= g0 <= max_age:
                slip += beta * abs(mid - 0.5 * (b0 + a0))
    return _round_against(mid + slip if buying else mid - slip, tick, buying)
