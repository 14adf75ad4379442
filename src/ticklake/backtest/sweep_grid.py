"""The sweep grid: a strategy template with axes and constraints, expanded to variants.

``${axis}`` in the template is replaced by each variant's value (:func:`substitute`);
constraints are text conditions over the axes, parsed with the condition parser and
evaluated on numbers (never ``eval``'d).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
)
from ticklake.backtest.conditions.parser import parse_condition
from ticklake.backtest.spec import StrategySpec, parse_spec
from ticklake.errors import ConfigError

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_VARIANTS = 10_000


@dataclass(frozen=True)
class SweepSpec:
    """A strategy template with sweep axes and constraints."""

    template: dict[str, Any]
    axes: dict[str, list[Any]]
    constraints: tuple[str, ...] = ()
    source: str = "sweep"

    @property
    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.axes.values())


@dataclass(frozen=True)
class Variant:
    index: int
    values: dict[str, Any]
    spec: StrategySpec = field(repr=False, compare=False)


def sweep_from_data(data: Mapping[str, Any], *, source: str = "sweep") -> SweepSpec:
    """Split a strategy mapping into its template, axes and constraints."""
    body = dict(data)
    axes = body.pop("sweep", None)
    constraints = body.pop("constraints", None) or []
    if not isinstance(axes, dict) or not axes:
        raise ConfigError(
            f"{source}: 'sweep' must map axis names to lists of values, e.g. "
            "sweep: {ema_fast: [1, 2]}"
        )
    for name, values in axes.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
            raise ConfigError(f"{source}: sweep axis {name!r} must be an identifier")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: sweep axis {name!r} needs a non-empty list of values")
    if not isinstance(constraints, list) or not all(isinstance(c, str) for c in constraints):
        raise ConfigError(f"{source}: 'constraints' must be a list of text conditions")
    return SweepSpec(body, {str(k): list(v) for k, v in axes.items()}, tuple(constraints), source)


def load_sweep(path: Path | str) -> SweepSpec | None:
    """Read a strategy file; return its sweep, or ``None`` when it has no ``sweep:``."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict) or "sweep" not in data:
        return None
    return sweep_from_data(data, source=str(path))


def substitute(value: Any, values: Mapping[str, Any], *, where: str = "spec") -> Any:
    """Replace ``${axis}`` in every string of ``value`` (typed when it is the whole string)."""
    if isinstance(value, dict):
        return {k: substitute(v, values, where=f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, values, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    whole = _PLACEHOLDER.fullmatch(value.strip())

    def lookup(name: str) -> Any:
        if name not in values:
            raise ConfigError(
                f"{where}: unknown sweep variable ${{{name}}}; axes: {', '.join(values) or 'none'}"
            )
        return values[name]

    if whole:
        return lookup(whole.group(1))
    return _PLACEHOLDER.sub(lambda m: str(lookup(m.group(1))), value)


def constraint_holds(text: str, values: Mapping[str, Any]) -> bool:
    """Evaluate a constraint (``ema_fast < ema_slow``) with the condition parser."""
    return bool(_truth(parse_condition(text, where=f"constraint {text!r}"), values, text))


def _truth(node: Condition, values: Mapping[str, Any], text: str) -> bool:
    if isinstance(node, All):
        return all(_truth(i, values, text) for i in node.items)
    if isinstance(node, AnyOf):
        return any(_truth(i, values, text) for i in node.items)
    if isinstance(node, Not):
        return not _truth(node.item, values, text)
    assert isinstance(node, Compare)
    if node.op.startswith("crosses"):
        raise ConfigError(f"constraint {text!r}: {node.op} has no meaning between axis values")
    left, right = _number(node.left, values, text), _number(node.right, values, text)
    return {
        ">": left > right,
        ">=": left >= right,
        "<": left < right,
        "<=": left <= right,
        "==": left == right,
        "!=": left != right,
    }[node.op]


def _number(node: Operand, values: Mapping[str, Any], text: str) -> float:
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Arithmetic):
        left, right = _number(node.left, values, text), _number(node.right, values, text)
        if node.op == "/" and right == 0:
            raise ConfigError(f"constraint {text!r}: division by zero")
        return {"+": left + right, "-": left - right, "*": left * right}.get(
            node.op, left / right if right else math.nan
        )
    if isinstance(node, MetricRef) and not node.args and node.of == "underlying":
        if node.metric not in values:
            raise ConfigError(
                f"constraint {text!r}: unknown axis {node.metric!r}; axes: {', '.join(values)}"
            )
        value = values[node.metric]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(
                f"constraint {text!r}: axis {node.metric!r} = {value!r} is not a number"
            )
        return float(value)
    raise ConfigError(f"constraint {text!r}: only axis names, numbers and + - * / are allowed")


def grid_values(sweep: SweepSpec) -> list[dict[str, Any]]:
    """The axis values of every variant the constraints keep, in grid order."""
    if sweep.grid_size > MAX_VARIANTS:
        raise ConfigError(
            f"{sweep.source}: the grid has {sweep.grid_size:,} variants, more than "
            f"{MAX_VARIANTS:,}; shorten an axis"
        )
    names = list(sweep.axes)
    kept = []
    for combination in itertools.product(*(sweep.axes[n] for n in names)):
        values = dict(zip(names, combination, strict=True))
        if all(constraint_holds(c, values) for c in sweep.constraints):
            kept.append(values)
    return kept


def expand(sweep: SweepSpec) -> list[Variant]:
    """Every variant of the grid that satisfies the constraints, numbered from 0."""
    variants: list[Variant] = []
    for values in grid_values(sweep):
        data = substitute(sweep.template, values)
        label = ", ".join(f"{k}={v}" for k, v in values.items())
        spec = parse_spec(data, source=f"{sweep.source} [{label}]")
        variants.append(Variant(len(variants), values, spec))
    if not variants:
        raise ConfigError(f"{sweep.source}: the constraints leave no variant of the grid")
    return variants
