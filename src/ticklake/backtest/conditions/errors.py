"""Errors of the condition language (part of the ``ConfigError`` branch of the tree)."""

from __future__ import annotations

from typing import Any

from ticklake.errors import ConfigError


class ConditionError(ConfigError):
    """A condition is invalid: unknown metric, bad parameter, wrong place for a measure."""


class ConditionSyntaxError(ConditionError):
    """The text form does not parse; ``column`` (1-based) points at the bad token."""

    def __init__(self, message: str, *, text: str = "", column: int = 0, **fields: Any) -> None:
        super().__init__(message, text=text, column=column, **fields)
        self.text = text
        self.column = column

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_syntax_error, (self.message, self.text, self.column))


def _rebuild_syntax_error(message: str, text: str, column: int) -> ConditionSyntaxError:
    return ConditionSyntaxError(message, text=text, column=column)
