"""The strategy condition language: a JSON/YAML tree or text, compiled once per run.

See ``docs/conditions.md``. Public entry points: :func:`parse_condition`,
:func:`compile_condition`, :func:`compile_spec_conditions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ticklake.backtest.conditions.ast import condition_text
from ticklake.backtest.conditions.compile import (
    RULES,
    SpecPlans,
    compile_condition,
    compile_conditions,
)
from ticklake.backtest.conditions.errors import ConditionError, ConditionSyntaxError
from ticklake.backtest.conditions.from_data import condition_from_data
from ticklake.backtest.conditions.parser import parse_condition
from ticklake.backtest.conditions.plan import Atom, Plan


class ConditionedSpec(Protocol):
    """What the compiler reads of a strategy (a :class:`~ticklake.backtest.spec.StrategySpec`).

    A protocol, so the language does not import the spec that embeds it.
    """

    @property
    def entry(self) -> Any: ...
    @property
    def exits(self) -> Any: ...
    @property
    def day_filter(self) -> Any: ...
    @property
    def legs(self) -> Sequence[Any]: ...


def compile_spec_conditions(spec: ConditionedSpec) -> SpecPlans:
    """Compile ``entry.when``, ``exits.when`` and ``day_filter`` of a strategy."""
    return compile_conditions(
        spec.entry.when,
        spec.exits.when,
        spec.day_filter,
        tuple(leg.name for leg in spec.legs),
    )


__all__ = [
    "RULES",
    "Atom",
    "ConditionError",
    "ConditionSyntaxError",
    "ConditionedSpec",
    "Plan",
    "SpecPlans",
    "compile_condition",
    "compile_conditions",
    "compile_spec_conditions",
    "condition_from_data",
    "condition_text",
    "parse_condition",
]
