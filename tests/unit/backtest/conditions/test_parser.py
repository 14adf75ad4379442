"""The text and JSON forms of conditions: parsing, round trips, errors with columns."""

from __future__ import annotations

import pytest

from ticklake.backtest.conditions import (
    ConditionSyntaxError,
    condition_from_data,
    condition_text,
    parse_condition,
)
from ticklake.backtest.conditions.ast import (
    All,
    AnyOf,
    Arithmetic,
    Compare,
    MetricRef,
    Not,
    Number,
    Parameter,
    condition_to_data,
)

ISSUE_TEXT = "volume_1m > volume_2m and ema(1) > ema(5) and ltp > open_of_day"


def test_issue_text_parses_to_three_comparisons() -> None:
    tree = parse_condition(ISSUE_TEXT)
    assert isinstance(tree, All)
    assert [c.op for c in tree.items] == [">", ">", ">"]  # type: ignore[union-attr]
    first = tree.items[0]
    assert first == Compare(">", MetricRef("volume_1m"), MetricRef("volume_2m"))
    assert (first.column, first.left.column, first.right.column) == (1, 1, 13)  # type: ignore[union-attr]
    ema = tree.items[1]
    assert isinstance(ema, Compare) and ema.left == MetricRef("ema", ((None, 1),), "underlying")
    assert ema.left.column == 27  # type: ignore[union-attr]


def test_precedence_and_binds_tighter_than_or_and_not_applies_to_the_next_term() -> None:
    tree = parse_condition("a > 1 or b > 2 and not c > 3")
    assert isinstance(tree, AnyOf)
    assert isinstance(tree.items[1], All)
    assert isinstance(tree.items[1].items[1], Not)


def test_grouping_arithmetic_and_sources() -> None:
    tree = parse_condition("(ce.ltp + pe.ltp) * 2 > ema(5, of=ce) or (x < -1.5e2)")
    assert isinstance(tree, AnyOf)
    left = tree.items[0]
    assert isinstance(left, Compare)
    assert isinstance(left.left, Arithmetic) and left.left.op == "*"
    assert left.left.left.left.of == "leg:ce"  # type: ignore[union-attr]
    assert left.right.of == "leg:ce"  # type: ignore[union-attr]
    assert tree.items[1].right == Number(-150.0)  # type: ignore[union-attr]
    assert parse_condition("position.pnl < -5000").left.of == "position"  # type: ignore[union-attr]


def test_sweep_variables_in_operands_and_arguments() -> None:
    tree = parse_condition("ema(${ema_fast}) crosses_above ${level}")
    assert isinstance(tree, Compare) and tree.op == "crosses_above"
    assert tree.left.args == ((None, Parameter("ema_fast")),)  # type: ignore[union-attr]
    assert tree.right == Parameter("level") and tree.right.column == 32  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text",
    [
        ISSUE_TEXT,
        "ce.last_price crosses_below ce.ema(minutes=5, field=mid)",
        "ema(${fast}, 'mid') > ${level}",
        "not (a > 1 or b <= 2) and c != 3",
        "(ce.ltp - pe.ltp) / 2 >= 10",
    ],
)
def test_text_and_json_round_trip(text: str) -> None:
    tree = parse_condition(text)
    assert parse_condition(condition_text(tree)) == tree
    assert condition_from_data(condition_to_data(tree)) == tree


def test_json_example_of_the_issue() -> None:
    data = {
        "left": {"metric": "ema", "args": {"n": 5, "field": "price"}, "of": "leg:ce"},
        "op": ">",
        "right": 100,
    }
    tree = condition_from_data(data)
    assert tree == Compare(
        ">", MetricRef("ema", (("n", 5), ("field", "price")), "leg:ce"), Number(100.0)
    )
    nested = condition_from_data({"all": [data, {"not": "ltp > open_of_day"}]})
    assert isinstance(nested, All) and isinstance(nested.items[1], Not)


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("ema(5) >> 3", 9, "expected a number, a metric"),
        ("ema(5) > and", 10, "found 'and'"),
        ("ema(5 > 3", 7, "',' or ')'"),
        ("ema(5) 3", 8, "expected a comparison"),
        ("ltp > 3 @ 4", 9, "unexpected character '@'"),
        ("ltp > 3 and", 12, "the end of the condition"),
        ("ltp >", 6, "expected a number"),
    ],
)
def test_syntax_errors_point_at_the_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition(text)
    assert info.value.column == column
    assert fragment in str(info.value)
    caret_line = str(info.value).splitlines()[2]
    assert caret_line.index("^") - 2 == column - 1  # two spaces of indent


def test_errors_at_an_operand_list_the_known_metrics() -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition("ema(5) > ")
    assert "Known metrics:" in str(info.value) and "volume_over_minutes" in str(info.value)


def test_bad_json_nodes_name_the_path() -> None:
    with pytest.raises(Exception, match=r"condition.all\[1\].op: unknown comparison '=>'"):
        condition_from_data({"all": ["ltp > 1", {"left": 1, "op": "=>", "right": 2}]})
    with pytest.raises(Exception, match="booleans are not operands"):
        condition_from_data({"left": True, "op": ">", "right": 2})
