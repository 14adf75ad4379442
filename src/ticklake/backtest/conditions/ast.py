"""The condition tree: boolean nodes over comparisons of operands.

The JSON/YAML form (``from_data.py``) and the text form (``parser.py``) both produce
these nodes; the compiler passes (``passes/``) rewrite them and ``lower`` turns them
into a plan. This module also writes a tree back as JSON data and as text.

Examples:
    >>> tree = Compare(">", MetricRef("ltp", of="leg:ce"), Number(100.0))
    >>> condition_text(tree), condition_to_data(tree)["right"]
    ('ce.ltp > 100', 100.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ticklake.backtest.conditions.errors import ConditionError

COMPARISONS = (">", ">=", "<", "<=", "==", "!=", "crosses_above", "crosses_below")
ARITHMETIC = ("+", "-", "*", "/")
POSITION_MEASURES = ("pnl", "drawdown", "seconds_in_trade", "minutes_in_trade")


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
