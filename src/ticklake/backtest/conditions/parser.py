"""The text form of conditions: a small recursive-descent parser with column errors.

Grammar (keywords are lower case; ``#`` starts nothing, there are no comments)::

    condition  := disjunct ("or" disjunct)*
    disjunct   := negation ("and" negation)*
    negation   := "not" negation | "(" condition ")" | comparison
    comparison := sum OP sum          OP := > >= < <= == != crosses_above crosses_below
    sum        := product (("+" | "-") product)*
    product    := factor (("*" | "/") factor)*
    factor     := NUMBER | "-" factor | "${" NAME "}" | reference | "(" sum ")"
    reference  := [SOURCE "."] NAME ["(" [argument ("," argument)*] ")"]
    argument   := [NAME "="] (NUMBER | NAME | STRING | "${" NAME "}")

``SOURCE`` is a leg name, ``underlying`` or ``position``; an argument ``of=ce`` is the
same as the ``ce.`` prefix. Positional arguments fill the metric's parameters in order.

Examples:
    >>> from ticklake.backtest.conditions.ast import condition_text
    >>> condition_text(parse_condition("volume_1m > volume_2m and ema(1) > ema(5)"))
    'volume_1m > volume_2m and ema(1) > ema(5)'
    >>> parse_condition("ce.ltp crosses_above ema(5, of=ce)").right.of
    'leg:ce'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ticklake.backtest.conditions.ast import (
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
from ticklake.backtest.conditions.errors import ConditionSyntaxError

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<parameter>\$\{[A-Za-z_][A-Za-z0-9_]*\})
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<op>>=|<=|==|!=|>|<|\+|-|\*|/|\(|\)|,|\.|=)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not"}


@dataclass(frozen=True)
class Token:
    kind: str  # number, parameter, name, string, op, end
    text: str
    column: int  # 1-based


def tokenize(text: str) -> list[Token]:
    """Split text into tokens; an unknown character is an error at its column."""
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise _error(text, position + 1, f"unexpected character {text[position]!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), position + 1))
        position = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


def _known_metrics() -> str:
    from ticklake.analytics.registry import all_metrics

    return ", ".join(m.name for m in all_metrics() if m.kind == "series")


def _error(
    text: str, column: int, message: str, *, list_metrics: bool = False
) -> ConditionSyntaxError:
    caret = " " * (column - 1) + "^"
    hint = f"\nKnown metrics: {_known_metrics()}" if list_metrics else ""
    return ConditionSyntaxError(
        f"column {column}: {message}\n  {text}\n  {caret}{hint}", text=text, column=column
    )


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at(self, kind: str, text: str | None = None) -> bool:
        token = self.token
        return token.kind == kind and (text is None or token.text == text)

    def expect(self, kind: str, text: str, what: str) -> Token:
        if not self.at(kind, text):
            raise self.fail(f"expected {what}")
        return self.advance()

    def fail(self, message: str, *, list_metrics: bool = False) -> ConditionSyntaxError:
        token = self.token
        found = "the end of the condition" if token.kind == "end" else repr(token.text)
        return _error(
            self.text, token.column, f"{message}, found {found}", list_metrics=list_metrics
        )

    # --- boolean structure
    def condition(self) -> Condition:
        items = [self.disjunct()]
        while self.at("name", "or"):
            self.advance()
            items.append(self.disjunct())
        return items[0] if len(items) == 1 else AnyOf(tuple(items))

    def disjunct(self) -> Condition:
        items = [self.negation()]
        while self.at("name", "and"):
            self.advance()
            items.append(self.negation())
        return items[0] if len(items) == 1 else All(tuple(items))

    def negation(self) -> Condition:
        if self.at("name", "not"):
            self.advance()
            return Not(self.negation())
        if self.at("op", "("):
            # "(" opens either a grouped condition or an arithmetic operand: try the
            # comparison first and fall back to the group.
            start = self.index
            try:
                return self.comparison()
            except ConditionSyntaxError:
                self.index = start
            self.advance()
            inner = self.condition()
            self.expect("op", ")", "')' to close the group")
            return inner
        return self.comparison()

    def comparison(self) -> Compare:
        column = self.token.column
        left = self.sum()
        token = self.token
        op = token.text if token.kind in ("op", "name") else ""
        if op not in COMPARISONS:
            raise self.fail(f"expected a comparison ({', '.join(COMPARISONS)})")
        self.advance()
        right = self.sum()
        return Compare(op, left, right, column)

    # --- operands
    def sum(self) -> Operand:
        node = self.product()
        while self.token.kind == "op" and self.token.text in ("+", "-"):
            op = self.advance().text
            node = Arithmetic(op, node, self.product())
        return node

    def product(self) -> Operand:
        node = self.factor()
        while self.token.kind == "op" and self.token.text in ("*", "/"):
            op = self.advance().text
            node = Arithmetic(op, node, self.factor())
        return node

    def factor(self) -> Operand:
        token = self.token
        if token.kind == "number":
            self.advance()
            return Number(float(token.text))
        if token.kind == "op" and token.text == "-":
            self.advance()
            inner = self.factor()
            if isinstance(inner, Number):
                return Number(-inner.value)
            return Arithmetic("-", Number(0.0), inner)
        if token.kind == "parameter":
            self.advance()
            return Parameter(token.text[2:-1], token.column)
        if token.kind == "op" and token.text == "(":
            self.advance()
            inner = self.sum()
            self.expect("op", ")", "')'")
            return inner
        if token.kind == "name" and token.text not in _KEYWORDS:
            return self.reference()
        raise self.fail("expected a number, a metric or '${axis}'", list_metrics=True)

    def reference(self) -> MetricRef:
        first = self.advance()
        source, name = None, first
        if self.at("op", "."):
            self.advance()
            if not self.at("name"):
                raise self.fail("expected a metric name after '.'", list_metrics=True)
            source, name = first, self.advance()
        args: list[tuple[str | None, Any]] = []
        of = None
        if self.at("op", "("):
            self.advance()
            while not self.at("op", ")"):
                key = None
                if self.at("name") and self.tokens[self.index + 1].text == "=":
                    key = self.advance().text
                    self.advance()
                value = self.argument()
                if key == "of":
                    of = str(value.name if isinstance(value, Parameter) else value)
                else:
                    if key is None and any(k is not None for k, _ in args):
                        raise self.fail("positional argument after a named one")
                    args.append((key, value))
                if not self.at("op", ","):
                    break
                self.advance()
            self.expect("op", ")", "',' or ')' in the argument list")
        if source is not None and of is not None:
            raise _error(
                self.text, first.column, f"give the source once: {source.text}. or of={of}"
            )
        where = source.text if source is not None else of
        return MetricRef(name.text, tuple(args), _source(where), name.column)

    def argument(self) -> Any:
        token = self.token
        if token.kind == "number":
            self.advance()
            value = float(token.text)
            return int(value) if value.is_integer() and "." not in token.text else value
        if (
            token.kind == "op"
            and token.text == "-"
            and self.tokens[self.index + 1].kind == "number"
        ):
            self.advance()
            return -self.argument()
        if token.kind == "parameter":
            self.advance()
            return Parameter(token.text[2:-1], token.column)
        if token.kind == "string":
            self.advance()
            return token.text[1:-1]
        if token.kind == "name":
            self.advance()
            return {"true": True, "false": False}.get(token.text, token.text)
        raise self.fail("expected an argument value")


def _source(name: str | None) -> str:
    if name is None or name == "underlying":
        return "underlying"
    if name == "position":
        return "position"
    return f"leg:{name}"


def parse_condition(text: str, *, where: str = "condition") -> Condition:
    """Parse the text form of a condition into a tree."""
    if not text or not text.strip():
        raise ConditionSyntaxError(f"{where}: the condition is empty", text=text, column=1)
    try:
        parser = _Parser(text)
        node = parser.condition()
        if not parser.at("end"):
            raise parser.fail("expected 'and', 'or' or the end of the condition")
    except ConditionSyntaxError as exc:
        if where == "condition":
            raise
        raise ConditionSyntaxError(
            f"{where}: {exc.message}", text=exc.text, column=exc.column
        ) from None
    return node


def parse_operand(text: str) -> Operand:
    """Parse one operand (used by sweep constraints' tests and the CLI)."""
    parser = _Parser(text)
    node = parser.sum()
    if not parser.at("end"):
        raise parser.fail("expected the end of the expression")
    return node
