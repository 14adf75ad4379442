"""Pass 4 — lower the checked tree to a :class:`Plan`.

Entry conditions and day filters become one Polars expression over the atom columns
(Kleene logic: a comparison with a missing value is null, and null is not true).
A crossing ``a crosses_above b`` is ``a > b`` now and ``a <= b`` one grid second
before, on the same instruments (``<atom>@prev`` columns). Exit conditions become a
postfix program for the day kernel (opcodes in ``kernel.py``).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from ticklake.backtest import kernel as k
from ticklake.backtest.conditions.ast import (
    All,
    AnyOf,
    Arithmetic,
    Compare,
    Condition,
    MetricRef,
    Not,
    Number,
    Operand,
    condition_text,
)
from ticklake.backtest.conditions.passes._walk import comparisons, references
from ticklake.backtest.conditions.passes.context import CompileContext
from ticklake.backtest.conditions.plan import Atom, Plan

_POLARS_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}
_KERNEL_ARITHMETIC = {"+": k.COND_ADD, "-": k.COND_SUB, "*": k.COND_MUL, "/": k.COND_DIV}


def atom_of(ref: MetricRef) -> Atom:
    source = "underlying" if ref.of == "underlying" else ref.of.split(":", 1)[-1]
    # After the resolve pass every argument is named.
    return Atom(source, ref.metric, tuple((str(k), v) for k, v in ref.args))


def run(node: Condition, context: CompileContext) -> Plan:
    atoms: dict[str, Atom] = {}
    prev: set[str] = set()
    for compare in comparisons(node):
        for ref in (*references(compare.left), *references(compare.right)):
            atom = atom_of(ref)
            atoms.setdefault(atom.column, atom)
            if compare.op.startswith("crosses"):
                prev.add(atom.column)
    ordered = tuple(atoms[c] for c in sorted(atoms))
    text = condition_text(node)
    if context.usage != "exit":
        return Plan(context.usage, text, ordered, frozenset(prev), expression=_polars(node))
    return _program(node, context, text, ordered, frozenset(prev))


# --------------------------------------------------------------------- Polars
def _polars(node: Condition) -> pl.Expr:
    if isinstance(node, All):
        return functools.reduce(operator.and_, (_polars(i) for i in node.items))
    if isinstance(node, AnyOf):
        return functools.reduce(operator.or_, (_polars(i) for i in node.items))
    if isinstance(node, Not):
        return ~_polars(node.item)
    return _compare(node)


def _compare(node: Compare) -> pl.Expr:
    left, right = _side(node.left, False), _side(node.right, False)
    if node.op == "crosses_above":
        return (left > right) & (_side(node.left, True) <= _side(node.right, True))
    if node.op == "crosses_below":
        return (left < right) & (_side(node.left, True) >= _side(node.right, True))
    return _POLARS_COMPARE[node.op](left, right)


def _side(node: Operand, previous: bool) -> pl.Expr:
    if isinstance(node, Number):
        return pl.lit(node.value)
    if isinstance(node, Arithmetic):
        return _ARITHMETIC[node.op](_side(node.left, previous), _side(node.right, previous))
    assert isinstance(node, MetricRef)
    column = atom_of(node).column
    return pl.col(f"{column}@prev" if previous else column)


# --------------------------------------------------------------------- kernel program
class _Emitter:
    def __init__(self, legs: tuple[str, ...]) -> None:
        self.legs = legs
        self.code: list[tuple[int, int, int, int]] = []
        self.constants: list[float] = []
        self.series: list[str] = []
        self.outputs: list[str] = []

    def emit(self, op: int, a: int = 0, b: int = 0, c: int = 0) -> None:
        self.code.append((op, a, b, c))

    @staticmethod
    def _index(table: list[Any], value: Any) -> int:
        if value not in table:
            table.append(value)
        return table.index(value)

    def condition(self, node: Condition) -> None:
        if isinstance(node, All | AnyOf):
            for item in node.items:
                self.condition(item)
            self.emit(k.COND_ALL if isinstance(node, All) else k.COND_ANY, len(node.items))
        elif isinstance(node, Not):
            self.condition(node.item)
            self.emit(k.COND_NOT)
        elif node.op.startswith("crosses"):
            above = node.op == "crosses_above"
            self.operand(node.left, False)
            self.operand(node.right, False)
            self.emit(k.COND_CMP, k.COND_COMPARISONS.index(">" if above else "<"))
            self.operand(node.left, True)
            self.operand(node.right, True)
            self.emit(k.COND_CMP, k.COND_COMPARISONS.index("<=" if above else ">="))
            self.emit(k.COND_ALL, 2)
        else:
            self.operand(node.left, False)
            self.operand(node.right, False)
            self.emit(k.COND_CMP, k.COND_COMPARISONS.index(node.op))

    def operand(self, node: Operand, previous: bool) -> None:
        flag = int(previous)
        if isinstance(node, Number):
            self.emit(k.COND_CONST, self._index(self.constants, node.value))
        elif isinstance(node, Arithmetic):
            self.operand(node.left, previous)
            self.operand(node.right, previous)
            self.emit(_KERNEL_ARITHMETIC[node.op])
        else:
            assert isinstance(node, MetricRef)
            atom = atom_of(node)
            if atom.source == "position":
                if atom.metric in ("seconds_in_trade", "minutes_in_trade"):
                    self.emit(k.COND_SECONDS_IN_TRADE, 0, flag)
                    if atom.metric == "minutes_in_trade":
                        self.emit(k.COND_CONST, self._index(self.constants, 60.0))
                        self.emit(k.COND_DIV)
                else:
                    self.emit(k.COND_PNL if atom.metric == "pnl" else k.COND_DRAWDOWN, 0, flag)
            elif atom.source == "underlying":
                self.emit(k.COND_SERIES, self._index(self.series, atom.column), flag)
            else:
                slot = self._index(self.outputs, atom.output)
                self.emit(k.COND_LEG, slot, flag, self.legs.index(atom.source))


def _program(
    node: Condition,
    context: CompileContext,
    text: str,
    atoms: tuple[Atom, ...],
    prev: frozenset[str],
) -> Plan:
    emitter = _Emitter(context.legs)
    emitter.condition(node)
    if len(emitter.code) > k.COND_MAX_PROGRAM:
        raise context.error(f"the exit condition is too long ({len(emitter.code)} steps)")
    return Plan(
        context.usage,
        text,
        atoms,
        prev,
        program=np.array(emitter.code, dtype=np.int64).reshape(-1, 4),
        constants=np.array(emitter.constants, dtype=np.float64),
        series_columns=tuple(emitter.series),
        contract_outputs=tuple(emitter.outputs),
    )
