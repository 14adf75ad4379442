"""Pass 2 — bind sweep variables ``${name}`` and validate metric parameters.

Every ``Parameter`` becomes the variant's value; then each metric's arguments are
validated by its typed parameter model and stored complete (defaults filled), so two
spellings of the same series (``ema(5)``, ``ema(minutes=5, field=price)``) are equal.
"""

from __future__ import annotations

from typing import Any

from ticklake.analytics.registry import get_metric
from ticklake.backtest.conditions.ast import Condition, MetricRef, Number, Operand, Parameter
from ticklake.backtest.conditions.passes._walk import map_operands
from ticklake.backtest.conditions.passes.context import CompileContext
from ticklake.errors import ConfigError


def run(node: Condition, context: CompileContext) -> Condition:
    return map_operands(node, lambda operand: _bind(operand, context))


def _value(parameter: Parameter, context: CompileContext) -> Any:
    if parameter.name not in context.bindings:
        known = ", ".join(sorted(context.bindings)) or "none"
        raise context.error(
            f"unbound sweep variable ${{{parameter.name}}}; sweep axes: {known}", parameter.column
        )
    return context.bindings[parameter.name]


def _bind(operand: Operand, context: CompileContext) -> Operand:
    if isinstance(operand, Parameter):
        value = _value(operand, context)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise context.error(
                f"${{{operand.name}}} = {value!r} is used as a number", operand.column
            )
        return Number(float(value))
    if not isinstance(operand, MetricRef) or operand.of == "position":
        return operand
    values = {
        str(key): (_value(v, context) if isinstance(v, Parameter) else v) for key, v in operand.args
    }
    metric = get_metric(operand.metric)
    try:
        params = metric.parse_params(values)
    except ConfigError as exc:
        raise context.error(str(exc), operand.column) from None
    return MetricRef(
        operand.metric, tuple(sorted(params.model_dump().items())), operand.of, operand.column
    )
