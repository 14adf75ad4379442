"""The day simulation: a Numba state machine over the 1-second grid.

Everything is integer paise and integer quantities; the only floats are the selector
targets, slippage coefficients and implied-volatility maths used to *choose* strikes.
At grid second ``t`` the kernel reads arrays at indices ``<= t`` only (the quotes at
``t`` are as-of ``t``), which is what makes the no-look-ahead property hold.

Fill model (see docs/backtest.md): ``cross`` buys at the ask and sells at the bid;
``mid`` trades at the mid rounded to the tick against us; ``mid_slippage`` trades at
mid ± (base_ticks × tick + α × spread + β × |mid move over 60 s|), rounded to the tick
against us (the move term only when the quote 60 s ago was itself tradeable). A quote
is tradeable when bid > 0, ask > 0 and its age ≤ max_quote_age.
"""

from __future__ import annotations

import math

import numba
import numpy as np

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
)
ENTRY, EXIT_TIME, LEG_STOP, LEG_TARGET, STOP_LOSS, TARGET, TRAILING = 0, 1, 2, 3, 4, 5, 6
REBALANCE_CLOSE, REBALANCE_OPEN, FORCED_EOD, EXIT_CONDITION = 7, 8, 9, 10

# Why an order could not trade.
ATTEMPT_REASONS = ("no_underlying", "no_contract", "missing_quote", "stale_quote", "no_candidate")
NO_UNDERLYING, NO_CONTRACT, MISSING_QUOTE, STALE_QUOTE, NO_CANDIDATE = 0, 1, 2, 3, 4

SELECTORS = ("atm", "otm", "itm", "delta", "premium", "instrument")
#: ``leg_kind`` of a plain-instrument leg: its ``leg_param`` is its contract index.
INSTRUMENT = 5
FILL_MODES = ("cross", "mid", "mid_slippage")
THRESHOLD_KINDS = ("none", "points", "pct", "money")
REBALANCE_KINDS = ("none", "every", "underlying_move")

# Exit-condition programs (compiled by ticklake.backtest.conditions): rows of
# (opcode, a, b, c), evaluated in postfix order with a float stack for operands and a
# Kleene stack (0 false, 1 true, 2 unknown) for conditions. NaN is a missing value.
COND_OPCODE_NAMES = (
    "const",
    "series",
    "leg",
    "pnl",
    "drawdown",
    "add",
    "sub",
    "mul",
    "div",
    "compare",
    "all",
    "any",
    "not",
    "seconds_in_trade",
)
COND_CONST, COND_SERIES, COND_LEG, COND_PNL, COND_DRAWDOWN = 0, 1, 2, 3, 4
COND_ADD, COND_SUB, COND_MUL, COND_DIV, COND_CMP, COND_ALL, COND_ANY, COND_NOT = range(5, 13)
# Appended after the logic opcodes so the numbers above stay stable.
COND_SECONDS_IN_TRADE = 13
COND_COMPARISONS = (">", ">=", "<", "<=", "==", "!=")
COND_MAX_PROGRAM = 512

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
def _tradeable_reason(bid, ask, age, c, t, max_age):
    if c < 0:
        return NO_CONTRACT
    if bid[c, t] <= 0 or ask[c, t] <= 0 or age[c, t] < 0:
        return MISSING_QUOTE
    if age[c, t] > max_age:
        return STALE_QUOTE
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
    if mode == 0:
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


@numba.njit(cache=True)
def _close_open_legs(pos_c, closing, reason):
    """Mark every open leg that is not closing yet to close for ``reason``."""
    for leg in range(pos_c.shape[0]):
        if pos_c[leg] >= 0 and closing[leg] < 0:
            closing[leg] = reason


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


@numba.njit(cache=True)
def _unit_quantity(leg_lots, lot_size):
    """Quantity of one unit of the position: lot size × the gcd of the legs' lots."""
    lots_gcd = 0
    for leg in range(leg_lots.shape[0]):
        a, b = lots_gcd, leg_lots[leg]
        while b:
            a, b = b, a % b
        lots_gcd = a
    return max(lots_gcd, 1) * lot_size


@numba.njit(cache=True)
def _threshold_hit(kind, value, points, pct_base, money_paise):
    """Has a loss/gain measure reached ``value``? Measures are given as positive amounts:
    ``points`` in paise per unit, ``pct_base`` in the same unit, ``money_paise`` in paise."""
    if kind == 1:
        return points >= value * 100.0
    if kind == 2:
        return pct_base > 0 and points * 100.0 / pct_base >= value
    if kind == 3:
        return money_paise >= value * 100.0
    return False


@numba.njit(cache=True)
def _eval_condition(
    program,
    constants,
    series,
    contract_values,
    contract_slot,
    pos_c,
    t,
    pnl,
    drawdown,
    pnl_prev,
    drawdown_prev,
    seconds_in_trade,
):
    """Run an exit-condition program at second ``t``; 1 = true, 0 = false, 2 = unknown.

    ``pnl``/``drawdown`` are rupees of the current entry; ``*_prev`` the previous second's
    (NaN on the entry's first second). ``seconds_in_trade`` is ``t`` minus the entry's
    second (its value at t-1 is NaN on the entry's first second). A leg operand reads the
    leg's *held* contract.
    """
    n = program.shape[0]
    values = np.empty(n, np.float64)
    truth = np.empty(n, np.int8)
    nv = 0
    nt = 0
    for i in range(n):
        op, a, b, c = program[i, 0], program[i, 1], program[i, 2], program[i, 3]
        if op <= COND_DRAWDOWN or op == COND_SECONDS_IN_TRADE:
            at = t - b
            value = math.nan
            if op == COND_CONST:
                value = constants[a]
            elif op == COND_SERIES:
                if at >= 0:
                    value = series[a, at]
            elif op == COND_LEG:
                held = pos_c[c]
                if at >= 0 and held >= 0 and contract_slot[held] >= 0:
                    value = contract_values[a, contract_slot[held], at]
            elif op == COND_PNL:
                value = pnl_prev if b else pnl
            elif op == COND_DRAWDOWN:
                value = drawdown_prev if b else drawdown
            elif seconds_in_trade - b >= 0:
                value = seconds_in_trade - b
            values[nv] = value
            nv += 1
        elif op <= COND_DIV:
            right = values[nv - 1]
            left = values[nv - 2]
            nv -= 2
            if op == COND_ADD:
                out = left + right
            elif op == COND_SUB:
                out = left - right
            elif op == COND_MUL:
                out = left * right
            else:
                out = left / right if right != 0.0 else math.nan
            values[nv] = out
            nv += 1
        elif op == COND_CMP:
            right = values[nv - 1]
            left = values[nv - 2]
            nv -= 2
            if math.isnan(left) or math.isnan(right):
                truth[nt] = 2
            else:
                if a == 0:
                    hit = left > right
                elif a == 1:
                    hit = left >= right
                elif a == 2:
                    hit = left < right
                elif a == 3:
                    hit = left <= right
                elif a == 4:
                    hit = left == right
                else:
                    hit = left != right
                truth[nt] = 1 if hit else 0
            nt += 1
        elif op == COND_NOT:
            v = truth[nt - 1]
            truth[nt - 1] = 2 if v == 2 else 1 - v
        else:  # all / any of the last a results, Kleene logic
            all_of = op == COND_ALL
            result = 1 if all_of else 0
            for j in range(nt - a, nt):
                v = truth[j]
                if all_of:
                    if v == 0:
                        result = 0
                    elif v == 2 and result == 1:
                        result = 2
                elif v == 1:
                    result = 1
                elif v == 2 and result == 0:
                    result = 2
            nt -= a
            truth[nt] = result
            nt += 1
    return truth[nt - 1] if nt > 0 else 0


@numba.njit(cache=True)
def simulate_day(
    spot,
    strikes,
    is_call,
    bid,
    ask,
    age,
    years,
    entry_mask,
    exit_t,
    step,
    tick,
    lot_size,
    leg_call,
    leg_side,
    leg_lots,
    leg_kind,
    leg_param,
    candidates,
    rebalance_kind,
    rebalance_seconds,
    rebalance_move,
    thresholds,
    fill_mode,
    base_ticks,
    alpha,
    beta,
    max_age,
    max_entries,
    exit_program,
    exit_constants,
    exit_series,
    exit_contract_values,
    exit_contract_slot,
):
    """Simulate one day. ``thresholds`` is float64[5, 2]: (kind, value) for leg stop, leg
    target, combined stop, combined target, trailing stop. ``exit_program`` (int64[N, 4],
    N = 0 for none) is the compiled ``exits.when`` condition; ``exit_series`` float64[S, T]
    the underlying series it reads, ``exit_contract_values`` float64[P, K, T] per-contract
    series for the contracts mapped by ``exit_contract_slot`` int64[C] (-1 = not kept).

    Combined ``points`` are the entry cycle's P&L per unit of the position (see
    ``_unit_quantity``), closed legs included; the ``pct`` base is the entry's net premium
    per unit of the option legs, |credit or debit| (an instrument leg adds no premium)."""
    T = spot.shape[0]
    L = leg_call.shape[0]
    quotes = (bid, ask, age)
    fill_model = (fill_mode, tick, base_ticks, alpha, beta, max_age)
    fills = np.zeros((FILL_FIELDS, MAX_FILLS), np.int64)
    attempts = np.zeros((3, MAX_ATTEMPTS), np.int64)
    pnl = np.zeros(T, np.int64)
    in_pos = np.zeros(T, np.bool_)
    n_f = 0
    n_a = 0
    overflow = False

    pos_c = np.full(L, -1, np.int64)
    pos_entry = np.zeros(L, np.int64)
    pos_qty = np.zeros(L, np.int64)
    pos_id = np.zeros(L, np.int64)
    mark = np.zeros(L, np.int64)
    closing = np.full(L, -1, np.int64)  # pending close reason per leg, -1 none
    stopped = np.zeros(L, np.bool_)
    last_attempt = np.full(L, -1, np.int64)
    next_pos_id = 0
    cash = np.int64(0)
    cycle_cash = np.int64(0)
    cycle_premium = 0.0  # |net premium of the entry fills| per unit, paise
    unit_quantity = float(_unit_quantity(leg_lots, lot_size))
    entries = 0
    state = 0  # 0 flat/waiting, 1 in position, 2 done for the day
    anchor_t = 0
    entry_t = 0
    anchor_spot = np.int64(0)
    peak = 0.0
    rebalance_due = False
    # Legs still to re-target in the current re-targeting event: a leg already moved
    # must not move again while another leg waits for a tradeable quote.
    rebalance_pending = np.zeros(L, np.bool_)
    candidate = np.full(L, -1, np.int64)
    has_exit_condition = exit_program.shape[0] > 0
    condition_pnl_prev = math.nan
    condition_drawdown_prev = math.nan

    for t in range(T):
        # --- marks for open legs (price to close now; last known if untradeable)
        for leg in range(L):
            c = pos_c[leg]
            if c >= 0 and _tradeable_reason(bid, ask, age, c, t, max_age) < 0:
                mark[leg] = _fill_price(quotes, fill_model, c, t, leg_side[leg] < 0)
        # --- entry
        if state == 0 and entries < max_entries and entry_mask[t] and t < exit_t:
            ok = True
            for leg in range(L):
                c, why = _select(
                    spot,
                    strikes,
                    is_call,
                    bid,
                    ask,
                    age,
                    years,
                    t,
                    leg_call[leg],
                    leg_kind[leg],
                    leg_param[leg],
                    step,
                    candidates,
                    max_age,
                )
                if why < 0:
                    why = _tradeable_reason(bid, ask, age, c, t, max_age)
                candidate[leg] = c
                if why >= 0:
                    ok = False
                    n_a = _record_attempt(attempts, n_a, last_attempt, t, leg, why)
                else:
                    last_attempt[leg] = -1
            if ok:
                entries += 1
                cycle_cash = np.int64(0)
                premium_cash = np.int64(0)
                peak = 0.0
                for leg in range(L):
                    c = candidate[leg]
                    buying = leg_side[leg] > 0
                    price = _fill_price(quotes, fill_model, c, t, buying)
                    qty = leg_lots[leg] * lot_size
                    if n_f >= MAX_FILLS:
                        overflow = True
                        break
                    flow = _record_fill(
                        fills, n_f, t, leg, c, leg_side[leg], qty, price, ENTRY, next_pos_id
                    )
                    n_f += 1
                    cash += flow
                    cycle_cash += flow
                    if leg_kind[leg] != INSTRUMENT:
                        premium_cash += flow
                    pos_c[leg], pos_entry[leg], pos_qty[leg] = c, price, qty
                    pos_id[leg] = next_pos_id
                    next_pos_id += 1
                    mark[leg] = _fill_price(quotes, fill_model, c, t, not buying)
                    stopped[leg] = False
                    closing[leg] = -1
                # The options' net premium (an instrument leg's notional is no premium).
                cycle_premium = abs(premium_cash) / unit_quantity
                state = 1
                anchor_t = t
                entry_t = t
                anchor_spot = spot[t]
                rebalance_due = False
                condition_pnl_prev = math.nan
                condition_drawdown_prev = math.nan

        if state == 1:
            # --- P&L of the current entry cycle
            value = 0
            for leg in range(L):
                if pos_c[leg] >= 0:
                    value += leg_side[leg] * pos_qty[leg] * mark[leg]
            cycle_pnl = cycle_cash + value
            points = cycle_pnl / unit_quantity
            if cycle_pnl > peak:
                peak = float(cycle_pnl)
            # --- decide exits (time > combined > legs)
            if t >= exit_t or t == T - 1:
                # An exit time at or after the session end still closes at the last second.
                for leg in range(L):
                    if pos_c[leg] >= 0 and closing[leg] < 0:
                        closing[leg] = EXIT_TIME if t >= exit_t else FORCED_EOD
            else:
                stop_kind, stop_value = thresholds[2, 0], thresholds[2, 1]
                target_kind, target_value = thresholds[3, 0], thresholds[3, 1]
                if _threshold_hit(stop_kind, stop_value, -points, cycle_premium, -cycle_pnl):
                    _close_open_legs(pos_c, closing, STOP_LOSS)
                elif _threshold_hit(target_kind, target_value, points, cycle_premium, cycle_pnl):
                    _close_open_legs(pos_c, closing, TARGET)
                elif thresholds[4, 0] > 0 and peak > 0:
                    drop = peak - cycle_pnl
                    trail_kind, trail_value = thresholds[4, 0], thresholds[4, 1]
                    drop_points = drop / unit_quantity
                    if _threshold_hit(trail_kind, trail_value, drop_points, cycle_premium, drop):
                        _close_open_legs(pos_c, closing, TRAILING)
                if has_exit_condition:
                    pnl_rupees = cycle_pnl / 100.0
                    drawdown_rupees = (peak - cycle_pnl) / 100.0
                    fired = _eval_condition(
                        exit_program,
                        exit_constants,
                        exit_series,
                        exit_contract_values,
                        exit_contract_slot,
                        pos_c,
                        t,
                        pnl_rupees,
                        drawdown_rupees,
                        condition_pnl_prev,
                        condition_drawdown_prev,
                        float(t - entry_t),
                    )
                    condition_pnl_prev = pnl_rupees
                    condition_drawdown_prev = drawdown_rupees
                    if fired == 1:
                        _close_open_legs(pos_c, closing, EXIT_CONDITION)
                for leg in range(L):
                    if pos_c[leg] < 0 or closing[leg] >= 0:
                        continue
                    leg_pts = leg_side[leg] * (mark[leg] - pos_entry[leg])
                    leg_money = leg_pts * pos_qty[leg]
                    base = pos_entry[leg]
                    if _threshold_hit(
                        thresholds[0, 0], thresholds[0, 1], -leg_pts, base, -leg_money
                    ):
                        closing[leg] = LEG_STOP
                    elif _threshold_hit(
                        thresholds[1, 0], thresholds[1, 1], leg_pts, base, leg_money
                    ):
                        closing[leg] = LEG_TARGET
            # --- execute closes (untradeable legs retry next second; forced at the end)
            for leg in range(L):
                reason = closing[leg]
                c = pos_c[leg]
                if reason < 0 or c < 0:
                    continue
                why = _tradeable_reason(bid, ask, age, c, t, max_age)
                if why >= 0 and t < T - 1:
                    n_a = _record_attempt(attempts, n_a, last_attempt, t, leg, why)
                    continue
                last_attempt[leg] = -1
                price = mark[leg]
                if why >= 0:
                    reason = FORCED_EOD
                elif reason != FORCED_EOD:
                    price = _fill_price(quotes, fill_model, c, t, leg_side[leg] < 0)
                if n_f >= MAX_FILLS:
                    overflow = True
                    break
                flow = _record_fill(
                    fills, n_f, t, leg, c, -leg_side[leg], pos_qty[leg], price, reason, pos_id[leg]
                )
                n_f += 1
                cash += flow
                cycle_cash += flow
                pos_c[leg] = -1
                closing[leg] = -1
                if reason in (LEG_STOP, LEG_TARGET):
                    stopped[leg] = True
            # --- re-target (only while nothing is closing)
            any_open = False
            any_closing = False
            for leg in range(L):
                if pos_c[leg] >= 0:
                    any_open = True
                if closing[leg] >= 0:
                    any_closing = True
            if any_open and not any_closing and t < exit_t:
                if not rebalance_due:
                    if rebalance_kind == 1 and t - anchor_t >= rebalance_seconds:
                        rebalance_due = True
                    elif rebalance_kind == 2 and spot[t] > 0:
                        rebalance_due = abs(spot[t] - anchor_spot) >= rebalance_move
                    if rebalance_due:
                        for leg in range(L):
                            rebalance_pending[leg] = pos_c[leg] >= 0
                if rebalance_due:
                    done = True
                    for leg in range(L):
                        c_old = pos_c[leg]
                        if c_old < 0 or stopped[leg] or not rebalance_pending[leg]:
                            continue
                        c_new, why = _select(
                            spot,
                            strikes,
                            is_call,
                            bid,
                            ask,
                            age,
                            years,
                            t,
                            leg_call[leg],
                            leg_kind[leg],
                            leg_param[leg],
                            step,
                            candidates,
                            max_age,
                        )
                        if why < 0 and c_new == c_old:
                            rebalance_pending[leg] = False
                            continue
                        if why < 0:
                            why = _tradeable_reason(bid, ask, age, c_new, t, max_age)
                        if why < 0:
                            why = _tradeable_reason(bid, ask, age, c_old, t, max_age)
                        if why >= 0:
                            done = False
                            n_a = _record_attempt(attempts, n_a, last_attempt, t, leg, why)
                            continue
                        last_attempt[leg] = -1
                        if n_f + 2 > MAX_FILLS:
                            overflow = True
                            break
                        rebalance_pending[leg] = False
                        buying = leg_side[leg] > 0
                        out_px = _fill_price(quotes, fill_model, c_old, t, not buying)
                        flow = _record_fill(
                            fills, n_f, t, leg, c_old, -leg_side[leg], pos_qty[leg], out_px,
                            REBALANCE_CLOSE, pos_id[leg],
                        )  # fmt: skip
                        n_f += 1
                        cash += flow
                        cycle_cash += flow
                        in_px = _fill_price(quotes, fill_model, c_new, t, buying)
                        flow = _record_fill(
                            fills, n_f, t, leg, c_new, leg_side[leg], pos_qty[leg], in_px,
                            REBALANCE_OPEN, next_pos_id,
                        )  # fmt: skip
                        n_f += 1
                        cash += flow
                        cycle_cash += flow
                        pos_c[leg], pos_entry[leg], pos_id[leg] = c_new, in_px, next_pos_id
                        next_pos_id += 1
                        mark[leg] = _fill_price(quotes, fill_model, c_new, t, not buying)
                    if done:
                        rebalance_due = False
                        anchor_t = t
                        anchor_spot = spot[t]
            if not any_open:
                state = 0 if (entries < max_entries and t < exit_t) else 2
        # --- the day's P&L path (realized + marked)
        value = 0
        open_now = False
        for leg in range(L):
            if pos_c[leg] >= 0:
                value += leg_side[leg] * pos_qty[leg] * mark[leg]
                open_now = True
        pnl[t] = cash + value
        in_pos[t] = open_now
    return (
        fills[FILL_T, :n_f],
        fills[FILL_LEG, :n_f],
        fills[FILL_CONTRACT, :n_f],
        fills[FILL_SIDE, :n_f],
        fills[FILL_QTY, :n_f],
        fills[FILL_PRICE, :n_f],
        fills[FILL_REASON, :n_f],
        fills[FILL_POSITION, :n_f],
        attempts[ATTEMPT_T, :n_a],
        attempts[ATTEMPT_LEG, :n_a],
        attempts[ATTEMPT_REASON, :n_a],
        pnl,
        in_pos,
        overflow,
    )
