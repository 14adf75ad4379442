"""What every pass knows: where the condition is used, the legs, the sweep bindings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ticklake.backtest.conditions.errors import ConditionError, ConditionSyntaxError

Usage = Literal["entry", "exit", "day_filter"]


@dataclass(frozen=True)
class CompileContext:
    usage: Usage
    legs: tuple[str, ...] = ()
    bindings: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""
    where: str = "condition"

    def error(self, message: str, column: int = 0) -> ConditionError:
        """An error naming the place; with the text form, a caret under ``column``."""
        if self.text and column:
            caret = " " * (column - 1) + "^"
            return ConditionSyntaxError(
                f"{self.where}: column {column}: {message}\n  {self.text}\n  {caret}",
                text=self.text,
                column=column,
            )
        return ConditionError(f"{self.where}: {message}")
