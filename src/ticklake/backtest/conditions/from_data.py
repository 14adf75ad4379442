"""Build condition trees from their JSON/YAML form (a string is parsed as the text form).

JSON/YAML form::

    {"all": [C, ...]}   {"any": [C, ...]}   {"not": C}
    {"left": O, "op": ">", "right": O}        # op: > >= < <= == != crosses_above crosses_below
    O = 5 | "${axis}" | {"metric": "ema", "args": {"minutes": 5}, "of": "leg:ce"}
      | {"arith": "*", "left": O, "right": O}  # + - * /

Examples:
    >>> node = condition_from_data({"left": {"metric": "ltp", "of": "leg:ce"}, "op": ">",
    ...                             "right": 100})
    >>> node.op, node.left.of, node.right.value
    ('>', 'leg:ce', 100.0)
"""

from __future__ import annotations

import re
from typing import Any

from ticklake.backtest.conditions.ast import (
    ARITHMETIC,
    COMPARISONS,
    All,
    AnyOf,
    Arithmetic,
    Compare,
    Condition,
    MetricRef,
    Not,
    Number,
    Operand,
    Parameter,
)
from ticklake.backtest.conditions.errors import ConditionError
from ticklake.backtest.conditions.parser import parse_condition

_PARAMETER = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def condition_from_data(data: Any, *, where: str = "condition") -> Condition:
    """Build a tree from its JSON/YAML form; a string is parsed as the text form."""
    if isinstance(data, str):
        return parse_condition(data, where=where)
    if not isinstance(data, dict):
        raise ConditionError(
            f"{where}: a condition is a mapping (all/any/not or left/op/right) or a text "
            f"condition, got {data!r}"
        )
    keys = set(data)
    if keys == {"all"} or keys == {"any"}:
        key = "all" if "all" in data else "any"
        items = data[key]
        if not isinstance(items, list) or not items:
            raise ConditionError(f"{where}.{key}: give a non-empty list of conditions")
        nodes = tuple(
            condition_from_data(item, where=f"{where}.{key}[{i}]") for i, item in enumerate(items)
        )
        return All(nodes) if key == "all" else AnyOf(nodes)
    if keys == {"not"}:
        return Not(condition_from_data(data["not"], where=f"{where}.not"))
    if keys == {"left", "op", "right"}:
        op = data["op"]
        if op not in COMPARISONS:
            raise ConditionError(
                f"{where}.op: unknown comparison {op!r}; use one of {', '.join(COMPARISONS)}"
            )
        return Compare(
            op,
            operand_from_data(data["left"], where=f"{where}.left"),
            operand_from_data(data["right"], where=f"{where}.right"),
        )
    raise ConditionError(
        f"{where}: unknown condition keys {sorted(keys)}; a node is {{all: [...]}}, "
        "{any: [...]}, {not: ...} or {left: ..., op: ..., right: ...}"
    )


def operand_from_data(data: Any, *, where: str = "operand") -> Operand:
    """Build an operand from a number, ``"${axis}"`` or a metric/arith mapping."""
    if isinstance(data, bool):
        raise ConditionError(f"{where}: booleans are not operands, got {data!r}")
    if isinstance(data, int | float):
        return Number(float(data))
    if isinstance(data, str):
        match = _PARAMETER.match(data.strip())
        if match:
            return Parameter(match.group(1))
        raise ConditionError(
            f"{where}: a text operand must be a sweep variable like '${{ema_fast}}', got "
            f"{data!r}; write a metric as {{metric: NAME}}"
        )
    if isinstance(data, dict) and "metric" in data:
        unknown = set(data) - {"metric", "args", "of"}
        if unknown:
            raise ConditionError(f"{where}: unknown keys {sorted(unknown)} (metric, args, of)")
        args = data.get("args") or {}
        if isinstance(args, list):  # positional: the metric's parameters in order
            values: tuple[tuple[str | None, Any], ...] = tuple(
                (None, _argument_value(v)) for v in args
            )
        elif isinstance(args, dict):
            values = tuple((str(k), _argument_value(v)) for k, v in args.items())
        else:
            raise ConditionError(f"{where}.args: give a mapping of parameter: value or a list")
        return MetricRef(str(data["metric"]), values, str(data.get("of", "underlying")))
    if isinstance(data, dict) and set(data) == {"arith", "left", "right"}:
        if data["arith"] not in ARITHMETIC:
            raise ConditionError(f"{where}.arith: use one of {', '.join(ARITHMETIC)}")
        return Arithmetic(
            data["arith"],
            operand_from_data(data["left"], where=f"{where}.left"),
            operand_from_data(data["right"], where=f"{where}.right"),
        )
    raise ConditionError(
        f"{where}: an operand is a number, '${{axis}}', {{metric, args, of}} or "
        f"{{arith, left, right}}, got {data!r}"
    )


def _argument_value(value: Any) -> Any:
    if isinstance(value, str):
        match = _PARAMETER.match(value.strip())
        if match:
            return Parameter(match.group(1))
    return value
