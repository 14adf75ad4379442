"""The day simulation: a Numba state machine over the 1-second grid.

Everything is integer paise and integer quantities; the only floats are the selector
targets, slippage coefficients and implied-volatility maths used to *choose* strikes.
At grid second ``t`` the kernel reads arrays at indices ``<= t`` only (the quotes at
``t`` are as-of ``t``), which is what makes the no-look-ahead property hold.

Its parts: the fill model and the day's records (``kernel_fills``), strike selection
(``kernel_selection``) and the exit-condition interpreter (``kernel_conditions``); their
codes are re-exported here, so ``kernel`` is the one name to import.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ticklake.backtest.kernel_conditions import (
    COND_ADD,
    COND_ALL,
    COND_ANY,
    COND_CMP,
    COND_COMPARISONS,
    COND_CONST,
    COND_DIV,
    COND_DRAWDOWN,
    COND_LEG,
    COND_MAX_PROGRAM,
    COND_MUL,
    COND_NOT,
    COND_OPCODE_NAMES,
    COND_PNL,
    COND_SECONDS_IN_TRADE,
    COND_SERIES,
    COND_SUB,
    _eval_condition,
)
from ticklake.backtest.kernel_fills import (
    ATTEMPT_LEG,
    ATTEMPT_REASON,
    ATTEMPT_REASONS,
    ATTEMPT_T,
    ENTRY,
    EXIT_CONDITION,
    EXIT_TIME,
    FILL_CONTRACT,
    FILL_FIELDS,
    FILL_LEG,
    FILL_POSITION,
    FILL_PRICE,
    FILL_QTY,
    FILL_REASON,
    FILL_SIDE,
    FILL_T,
    FORCED_EOD,
    LEG_STOP,
    LEG_TARGET,
    MARKED_EOD,
    MAX_ATTEMPTS,
    MAX_FILLS,
    MISSING_QUOTE,
    NO_CANDIDATE,
    NO_CONTRACT,
    NO_UNDERLYING,
    REASONS,
    REBALANCE_CLOSE,
    REBALANCE_OPEN,
    STALE_QUOTE,
    STOP_LOSS,
    TARGET,
    TRAILING,
    _book_second,
    _fill_price,
    _record_attempt,
    _record_fill,
    _side_reason,
)
from ticklake.backtest.kernel_selection import INSTRUMENT, SELECTORS, _select, implied_delta

FILL_MODES = ("cross", "mid", "mid_slippage")
THRESHOLD_KINDS = ("none", "points", "pct", "money")
REBALANCE_KINDS = ("none", "every", "underlying_move")


@numba.njit(cache=True)
def _close_open_legs(pos_c, closing, reason):
    """Mark every open leg that is not closing yet to close for ``reason``."""
    for leg in range(pos_c.shape[0]):
        if pos_c[leg] >= 0 and closing[leg] < 0:
            closing[leg] = reason


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
    # Seconds between the quote that priced a fill and the fill: 0, except a forced close
    # priced by an earlier quote still within max_age; -1 = a marked close (no fill).
    fill_lag = np.zeros(MAX_FILLS, np.int64)
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
        # --- marks for open legs (price to close now; last known if the side a close
        # needs, the ask of a short leg or the bid of a long one, is not on the book)
        for leg in range(L):
            c = pos_c[leg]
            if c >= 0 and _side_reason(bid, ask, age, c, t, max_age, leg_side[leg] < 0) < 0:
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
                    why = _side_reason(bid, ask, age, c, t, max_age, leg_side[leg] > 0)
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
                    mark[leg] = price  # until the side a close needs is on the book
                    if _side_reason(bid, ask, age, c, t, max_age, not buying) < 0:
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
            # --- execute closes (a close buys a short leg at the ask, sells a long one at
            # the bid; without that side it retries next second). At the last second a
            # leg still without it fills at the latest quote on that side within max_age,
            # or, with none, is closed at its last mark: a marked close, not a fill.
            for leg in range(L):
                reason = closing[leg]
                c = pos_c[leg]
                if reason < 0 or c < 0:
                    continue
                buying = leg_side[leg] < 0
                why = _side_reason(bid, ask, age, c, t, max_age, buying)
                if why >= 0 and t < T - 1:
                    n_a = _record_attempt(attempts, n_a, last_attempt, t, leg, why)
                    continue
                lag = 0
                if why < 0:
                    price = _fill_price(quotes, fill_model, c, t, buying)
                else:
                    s = _book_second(bid, ask, age, c, t, max_age, buying)
                    if s >= 0:
                        reason, price, lag = (
                            FORCED_EOD,
                            _fill_price(quotes, fill_model, c, s, buying),
                            t - s,
                        )
                    else:
                        n_a = _record_attempt(attempts, n_a, last_attempt, t, leg, why)
                        reason, price, lag = MARKED_EOD, mark[leg], -1
                last_attempt[leg] = -1
                if n_f >= MAX_FILLS:
                    overflow = True
                    break
                flow = _record_fill(
                    fills, n_f, t, leg, c, -leg_side[leg], pos_qty[leg], price, reason, pos_id[leg]
                )
                fill_lag[n_f] = lag
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
                        if why < 0:  # the new contract's opening side, the old one's closing
                            why = _side_reason(bid, ask, age, c_new, t, max_age, leg_side[leg] > 0)
                        if why < 0:
                            why = _side_reason(bid, ask, age, c_old, t, max_age, leg_side[leg] < 0)
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
                        mark[leg] = in_px
                        if _side_reason(bid, ask, age, c_new, t, max_age, not buying) < 0:
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
        fill_lag[:n_f],
        attempts[ATTEMPT_T, :n_a],
        attempts[ATTEMPT_LEG, :n_a],
        attempts[ATTEMPT_REASON, :n_a],
        pnl,
        in_pos,
        overflow,
    )


__all__ = [
    "ATTEMPT_LEG",
    "ATTEMPT_REASON",
    "ATTEMPT_REASONS",
    "ATTEMPT_T",
    "COND_ADD",
    "COND_ALL",
    "COND_ANY",
    "COND_CMP",
    "COND_COMPARISONS",
    "COND_CONST",
    "COND_DIV",
    "COND_DRAWDOWN",
    "COND_LEG",
    "COND_MAX_PROGRAM",
    "COND_MUL",
    "COND_NOT",
    "COND_OPCODE_NAMES",
    "COND_PNL",
    "COND_SECONDS_IN_TRADE",
    "COND_SERIES",
    "COND_SUB",
    "ENTRY",
    "EXIT_CONDITION",
    "EXIT_TIME",
    "FILL_CONTRACT",
    "FILL_FIELDS",
    "FILL_LEG",
    "FILL_MODES",
    "FILL_POSITION",
    "FILL_PRICE",
    "FILL_QTY",
    "FILL_REASON",
    "FILL_SIDE",
    "FILL_T",
    "FORCED_EOD",
    "INSTRUMENT",
    "LEG_STOP",
    "LEG_TARGET",
    "MARKED_EOD",
    "MAX_ATTEMPTS",
    "MAX_FILLS",
    "MISSING_QUOTE",
    "NO_CANDIDATE",
    "NO_CONTRACT",
    "NO_UNDERLYING",
    "REASONS",
    "REBALANCE_CLOSE",
    "REBALANCE_KINDS",
    "REBALANCE_OPEN",
    "SELECTORS",
    "STALE_QUOTE",
    "STOP_LOSS",
    "TARGET",
    "THRESHOLD_KINDS",
    "TRAILING",
    "implied_delta",
    "simulate_day",
]
