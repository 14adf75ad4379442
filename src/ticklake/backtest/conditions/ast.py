"""The condition tree: boolean nodes over comparisons of operands.

The JSON/YAML form and the text form (``parser.py``) both produce these nodes; the
compiler passes (``passes/``) rewrite them and ``lower`` turns them into a plan.

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
from dataclasses import dataclass, field
from typing import Any

COMPARISONS = (">", ">=", "<", "<=", "==", "!=", "crosses_above", "crosses_below")
ARITHMETIC = ("+", "-", "*", "/")
POSITION_MEASURES = ("pnl", "drawdown", "seconds_in_trade", "minutes_in_trade")
_PARAMETER = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Parameter:
    """A sweep variable ``${name}``, replaced by the ``bind`` pass."""

    name: str
    column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class MetricRef:
    """A metric of the underlying, of a leg (``leg:NAME``) or of the position.

    ``args`` holds ``(key, value)`` pairs; a key ``None`` is positional until the
    ``resolve`` pass names it. After ``resolve`` ``metric`` is the registry name.
    """

    metric: str
    args: tuple[tuple[str | None, Any], ...] = ()
    of: str = "underlying"
    column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Arithmetic:
    op: str
    left: Operand
    right: Operand


Operand = Number | Parameter | MetricRef | Arithmetic


@dataclass(frozen=True)
class Compare:
    op: str
    left: Operand
    right: Operand
    column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class All:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = All | AnyOf | Not | Compare


@dataclass(frozen=True)
class Source:
    """Where a condition came from, for error messages."""

    text: str = ""
    where: str = "condition"
    extra: dict[str, Any] = field(default_factory=dict)


def condition_from_data(data: Any, *, where: str = "condition") -> Condition:
    """Build a tree from its JSON/YAML form; a string is parsed as the text form."""
    from ticklake.backtest.conditions.errors import ConditionError
    from ticklake.backtest.conditions.parser import parse_condition

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
    from ticklake.backtest.conditions.errors import ConditionError

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


def condition_to_data(node: Condition) -> dict[str, Any]:
    """The JSON form of a tree (what the dashboard's rule builder writes)."""
    if isinstance(node, All):
        return {"all": [condition_to_data(i) for i in node.items]}
    if isinstance(node, AnyOf):
        return {"any": [condition_to_data(i) for i in node.items]}
    if isinstance(node, Not):
        return {"not": condition_to_data(node.item)}
    return {"left": _operand_data(node.left), "op": node.op, "right": _operand_data(node.right)}


def _operand_data(node: Operand) -> Any:
    from ticklake.backtest.conditions.errors import ConditionError

    if isinstance(node, Number):
        return node.value
    if isinstance(node, Parameter):
        return f"${{{node.name}}}"
    if isinstance(node, Arithmetic):
        return {
            "arith": node.op,
            "left": _operand_data(node.left),
            "right": _operand_data(node.right),
        }

    def value(v: Any) -> Any:
        return f"${{{v.name}}}" if isinstance(v, Parameter) else v

    args: dict[str, Any] | list[Any]
    if all(k is None for k, _ in node.args):
        args = [value(v) for _, v in node.args]
    elif all(k is not None for k, _ in node.args):
        args = {str(k): value(v) for k, v in node.args}
    else:
        raise ConditionError(
            f"{operand_text(node)}: mixed positional and named arguments have no JSON form; "
            "compile the condition first (the resolve pass names every argument)"
        )
    out: dict[str, Any] = {"metric": node.metric}
    if args:
        out["args"] = args
    out["of"] = node.of
    return out


def condition_text(node: Condition) -> str:
    """The text form of a tree (fully parenthesised where needed)."""
    if isinstance(node, All):
        return " and ".join(_wrap(i, AnyOf) for i in node.items)
    if isinstance(node, AnyOf):
        return " or ".join(condition_text(i) for i in node.items)
    if isinstance(node, Not):
        inner = condition_text(node.item)
        return f"not ({inner})" if not isinstance(node.item, Compare) else f"not {inner}"
    return f"{operand_text(node.left)} {node.op} {operand_text(node.right)}"


def _wrap(node: Condition, kind: type) -> str:
    text = condition_text(node)
    return f"({text})" if isinstance(node, kind) else text


def operand_text(node: Operand) -> str:
    if isinstance(node, Number):
        return f"{node.value:g}"
    if isinstance(node, Parameter):
        return f"${{{node.name}}}"
    if isinstance(node, Arithmetic):
        return f"({operand_text(node.left)} {node.op} {operand_text(node.right)})"
    prefix = "" if node.of == "underlying" else node.of.split(":", 1)[-1] + "."
    args = ", ".join(
        (f"{k}={_arg_text(v)}" if k is not None else _arg_text(v)) for k, v in node.args
    )
    return f"{prefix}{node.metric}({args})" if args else f"{prefix}{node.metric}"


def _arg_text(value: Any) -> str:
    if isinstance(value, Parameter):
        return f"${{{value.name}}}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
