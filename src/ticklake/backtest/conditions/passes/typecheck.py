"""Pass 3 — check that every comparison can be evaluated where it is used.

- ``position.*`` only in exits (it is the state of an open position);
- a metric on the underlying may only read columns the underlying's grid has
  (``ts, price, volume, spot, session_date``): an option greek needs a leg;
- a comparison needs at least one side that is not a constant;
- no division by the constant zero.
"""

from __future__ import annotations

from ticklake.analytics.registry import get_metric
from ticklake.backtest.conditions.ast import Arithmetic, Condition, MetricRef, Number, Operand
from ticklake.backtest.conditions.passes._walk import comparisons, references
from ticklake.backtest.conditions.passes.context import CompileContext

UNDERLYING_COLUMNS = frozenset({"ts", "price", "volume", "spot", "session_date"})
CONTRACT_COLUMNS = frozenset(
    {
        "ts",
        "price",
        "volume",
        "bid",
        "ask",
        "spot",
        "strike",
        "years_to_expiry",
        "is_call",
        "session_date",
        "expiry",
    }
)


def run(node: Condition, context: CompileContext) -> Condition:
    for compare in comparisons(node):
        refs = [*references(compare.left), *references(compare.right)]
        if not refs:
            raise context.error(
                f"'{compare.op}' compares two constants; one side must be a metric",
                compare.column,
            )
        for ref in refs:
            _check_reference(ref, context)
        _check_division(compare.left, context, compare.column)
        _check_division(compare.right, context, compare.column)
    return node


def _check_reference(ref: MetricRef, context: CompileContext) -> None:
    if ref.of == "position":
        if context.usage != "exit":
            raise context.error(
                f"position.{ref.metric} is only known while a position is open: use it in "
                f"exits.when, not in {context.usage.replace('_', ' ')}",
                ref.column,
            )
        return
    metric = get_metric(ref.metric)
    other = [i for i in metric.inputs if not i.startswith("grid.")]
    if other:
        raise context.error(
            f"metric {ref.metric!r} reads {', '.join(other)}, not the 1 s grid; it cannot be "
            "used in a condition",
            ref.column,
        )
    if ref.of != "underlying":
        return
    needed = {i.split(".", 1)[1] for i in metric.inputs}
    field = dict(ref.args).get("field")
    if isinstance(field, str):
        # A metric over a chosen column only reads that column (mid = bid and ask).
        needed = (needed & {"ts", "session_date"}) | {"mid": {"bid", "ask"}}.get(field, {field})
    missing = sorted(needed - UNDERLYING_COLUMNS)
    if {"strike", "is_call", "expiry"} & needed:
        raise context.error(
            f"metric {ref.metric!r} is an option metric; use it on a leg, e.g. ce.{ref.metric}",
            ref.column,
        )
    if missing:
        raise context.error(
            f"{ref.metric} needs {', '.join(missing)}, which the underlying does not have "
            f"(its grid has price, volume and spot); use it on a leg, e.g. ce.{ref.metric}",
            ref.column,
        )


def _check_division(node: Operand, context: CompileContext, column: int) -> None:
    if isinstance(node, Arithmetic):
        if node.op == "/" and isinstance(node.right, Number) and node.right.value == 0:
            raise context.error("division by zero", column)
        _check_division(node.left, context, column)
        _check_division(node.right, context, column)
