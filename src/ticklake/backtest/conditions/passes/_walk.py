"""Tree rewriting shared by the passes: map every metric reference / operand."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ticklake.backtest.conditions.ast import (
    All,
    AnyOf,
    Arithmetic,
    Compare,
    Condition,
    MetricRef,
    Not,
    Operand,
)


def map_operands(node: Condition, fn: Callable[[Operand], Operand]) -> Condition:
    """Rebuild the tree with ``fn`` applied to every leaf operand (not to arithmetic)."""
    if isinstance(node, All):
        return All(tuple(map_operands(i, fn) for i in node.items))
    if isinstance(node, AnyOf):
        return AnyOf(tuple(map_operands(i, fn) for i in node.items))
    if isinstance(node, Not):
        return Not(map_operands(node.item, fn))
    return Compare(node.op, _map(node.left, fn), _map(node.right, fn), node.column)


def _map(node: Operand, fn: Callable[[Operand], Operand]) -> Operand:
    if isinstance(node, Arithmetic):
        return Arithmetic(node.op, _map(node.left, fn), _map(node.right, fn))
    return fn(node)


def comparisons(node: Condition) -> Iterator[Compare]:
    if isinstance(node, All | AnyOf):
        for item in node.items:
            yield from comparisons(item)
    elif isinstance(node, Not):
        yield from comparisons(node.item)
    else:
        yield node


def references(node: Operand) -> Iterator[MetricRef]:
    if isinstance(node, Arithmetic):
        yield from references(node.left)
        yield from references(node.right)
    elif isinstance(node, MetricRef):
        yield node
