"""Pass 1 — resolve names: aliases and ``NAME_<N>m`` to registry metrics, positional
arguments to parameter names, ``of`` to a leg of the strategy.

After this pass every ``MetricRef.metric`` is a registry name (or a position measure)
and every argument has its parameter's name. ``n`` names the first parameter when the
metric has no parameter called ``n`` (so ``{"metric": "ema", "args": {"n": 5}}`` works).
"""

from __future__ import annotations

from typing import Any

from ticklake.analytics.registry import Metric, UnknownMetricError, all_metrics, get_metric
from ticklake.backtest.conditions.ast import POSITION_MEASURES, Condition, MetricRef, Operand
from ticklake.backtest.conditions.passes._walk import map_operands
from ticklake.backtest.conditions.passes.context import CompileContext


def lookup(name: str) -> tuple[Metric, dict[str, Any]] | None:
    """The series metric a name refers to, with parameters the name implies."""
    try:
        found = get_metric(name)
    except UnknownMetricError:
        found = None
    if found is not None:
        return found, {}
    from ticklake.analytics.metrics.technical import resolve_minute_window

    windowed = resolve_minute_window(name)
    if windowed is None:
        return None
    return windowed[0], {"minutes": windowed[1].model_dump()["minutes"]}


def run(node: Condition, context: CompileContext) -> Condition:
    return map_operands(node, lambda operand: _resolve(operand, context))


def _resolve(operand: Operand, context: CompileContext) -> Operand:
    if not isinstance(operand, MetricRef):
        return operand
    if operand.of == "position":
        if operand.metric not in POSITION_MEASURES:
            raise context.error(
                f"unknown position measure {operand.metric!r}; use position.pnl or "
                "position.drawdown (₹, the current entry's combined P&L and its fall from "
                "its peak), position.seconds_in_trade or position.minutes_in_trade (time "
                "since the entry)",
                operand.column,
            )
        if operand.args:
            raise context.error(f"position.{operand.metric} takes no arguments", operand.column)
        return operand
    if operand.of.startswith("leg:"):
        leg = operand.of[4:]
        if leg not in context.legs:
            raise context.error(
                f"unknown leg {leg!r}; the strategy's legs are {', '.join(context.legs) or 'none'}",
                operand.column,
            )
    elif operand.of != "underlying":
        raise context.error(
            f"unknown source {operand.of!r}; use 'underlying', 'position' or 'leg:NAME'",
            operand.column,
        )
    found = lookup(operand.metric)
    if found is None:
        known = ", ".join(m.name for m in all_metrics() if m.kind == "series")
        raise context.error(
            f"unknown metric {operand.metric!r}. Known metrics: {known} "
            "(and NAME_<N>m for minute windows, e.g. volume_1m)",
            operand.column,
        )
    metric, implied = found
    if metric.kind != "series":
        raise context.error(
            f"metric {metric.name!r} is a {metric.kind} metric; conditions use series metrics",
            operand.column,
        )
    fields = [f for f in metric.params_model.model_fields if f not in implied]
    named: dict[str, Any] = dict(implied)
    positional = 0
    for key, value in operand.args:
        if key is None:
            if positional >= len(fields):
                raise context.error(
                    f"{metric.name} takes at most {len(fields)} positional argument(s) "
                    f"({', '.join(fields) or 'none'})",
                    operand.column,
                )
            key = fields[positional]
            positional += 1
        elif key == "n" and "n" not in metric.params_model.model_fields and fields:
            key = fields[0]
        if key in named:
            raise context.error(f"{metric.name}: parameter {key!r} given twice", operand.column)
        named[key] = value
    return MetricRef(metric.name, tuple(named.items()), operand.of, operand.column)
