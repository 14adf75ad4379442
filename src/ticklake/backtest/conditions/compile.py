"""The condition compiler: parse, then run the passes of :data:`RULES` in order.

Like sqlglot's optimizer, each pass is one module with a ``run(tree, context)``
function; the order is explicit here and nowhere else.

Examples:
    >>> plan = compile_condition("ema(1) > ema(5)", usage="entry")
    >>> [atom.column for atom in plan.atoms]
    ['underlying.ema_1m_price', 'underlying.ema_5m_price']
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ticklake.backtest.conditions.ast import Condition
from ticklake.backtest.conditions.from_data import condition_from_data
from ticklake.backtest.conditions.passes import bind, lower, resolve, typecheck
from ticklake.backtest.conditions.passes.context import CompileContext, Usage
from ticklake.backtest.conditions.plan import Plan

#: The passes, in order: names → sweep variables → checks → Polars / kernel program.
RULES: tuple[Callable[[Condition, CompileContext], Any], ...] = (
    resolve.run,
    bind.run,
    typecheck.run,
    lower.run,
)


def compile_condition(
    condition: str | Mapping[str, Any] | Condition,
    *,
    usage: Usage,
    legs: tuple[str, ...] = (),
    bindings: Mapping[str, Any] | None = None,
    where: str | None = None,
) -> Plan:
    """Compile a condition (text, JSON/YAML mapping or tree) for one place of use."""
    where = (
        where or {"entry": "entry.when", "exit": "exits.when", "day_filter": "day_filter"}[usage]
    )
    text = condition if isinstance(condition, str) else ""
    tree = (
        condition_from_data(
            dict(condition) if isinstance(condition, Mapping) else condition, where=where
        )
        if isinstance(condition, str | Mapping)
        else condition
    )
    context = CompileContext(usage, tuple(legs), dict(bindings or {}), text, where)
    result: Any = tree
    for rule in RULES:
        result = rule(result, context)
    assert isinstance(result, Plan)
    return result


@dataclass(frozen=True)
class SpecPlans:
    """The compiled conditions of one strategy (``None`` where the spec has none)."""

    entry: Plan | None
    exit: Plan | None
    day_filter: Plan | None

    @property
    def any(self) -> bool:
        return any(p is not None for p in (self.entry, self.exit, self.day_filter))

    def plans(self) -> list[Plan]:
        return [p for p in (self.day_filter, self.entry, self.exit) if p is not None]

    @property
    def needs_contracts(self) -> bool:
        return any(p.needs_contracts for p in self.plans())

    @property
    def needs_underlying(self) -> bool:
        return any(p.needs_underlying for p in self.plans())

    def describe(self) -> str:
        return "\n".join(p.describe() for p in self.plans()) or "no conditions\n"


_CACHE: dict[str, SpecPlans] = {}


def compile_conditions(entry: Any, exit: Any, day_filter: Any, legs: tuple[str, ...]) -> SpecPlans:
    """Compile a strategy's three conditions once (cached by their content)."""
    key = json.dumps([entry, exit, day_filter, legs], sort_keys=True, default=str)
    found = _CACHE.get(key)
    if found is None:
        found = SpecPlans(
            entry=None if entry is None else compile_condition(entry, usage="entry", legs=legs),
            exit=None if exit is None else compile_condition(exit, usage="exit", legs=legs),
            day_filter=(
                None
                if day_filter is None
                else compile_condition(day_filter, usage="day_filter", legs=legs)
            ),
        )
        if len(_CACHE) > 4096:
            _CACHE.clear()
        _CACHE[key] = found
    return found
