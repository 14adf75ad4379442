"""The exit-condition programs the kernel runs: opcodes and the interpreter.

``exits.when`` is compiled by ``ticklake.backtest.conditions`` into rows of
(opcode, a, b, c); :func:`_eval_condition` evaluates them at each second in position.
"""

from __future__ import annotations

import math

import numba
import numpy as np

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
