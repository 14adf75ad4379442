"""Compiled plans: what a condition needs from the day's data and how it is evaluated.

An **atom** is one metric series of one source (``underlying.ema_5m_price``,
``ce.last_price``). Entry conditions and day filters lower to one Polars boolean
expression over a per-second frame of atom columns (``<atom>`` and, for crossings,
``<atom>@prev``); exit conditions lower to a small postfix program the day kernel runs
every second against the held contracts and the position state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ticklake.analytics.registry import get_metric
from ticklake.backtest.kernel import COND_COMPARISONS, COND_OPCODE_NAMES


@dataclass(frozen=True)
class Atom:
    """One metric of one source; ``params`` are complete (defaults filled), sorted."""

    source: str  # "underlying", a leg name, or "position"
    metric: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def output(self) -> str:
        if self.source == "position":
            return self.metric
        metric = get_metric(self.metric)
        return metric.output_name(metric.params_model.model_validate(dict(self.params)))

    @property
    def column(self) -> str:
        return f"{self.source}.{self.output}"

    def expression(self) -> pl.Expr:
        """The registry's Polars expression of this metric over one source's grid."""
        metric = get_metric(self.metric)
        return metric.series(metric.params_model.model_validate(dict(self.params)))

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params)
        return f"{self.column} = {self.metric}({args}) of {self.source}"


@dataclass(frozen=True)
class Plan:
    """A lowered condition. ``expression`` for entry/day filter, ``program`` for exits."""

    usage: str
    text: str
    atoms: tuple[Atom, ...]
    prev_columns: frozenset[str] = frozenset()
    expression: pl.Expr | None = None
    program: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.int64))
    constants: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    series_columns: tuple[str, ...] = ()  # exit: underlying atoms, index = series row
    contract_outputs: tuple[str, ...] = ()  # exit: per-contract metric outputs, index = slot

    @property
    def needs_contracts(self) -> bool:
        return any(a.source not in ("underlying", "position") for a in self.atoms)

    @property
    def needs_underlying(self) -> bool:
        return any(a.source == "underlying" for a in self.atoms)

    def contract_atoms(self) -> dict[str, Atom]:
        """Per-contract metric output -> an atom computing it (source = a leg)."""
        return {a.output: a for a in self.atoms if a.source not in ("underlying", "position")}

    def describe(self) -> str:
        """The plan as text (golden files compare this)."""
        lines = [f"usage: {self.usage}", f"condition: {self.text}", "atoms:"]
        lines += [f"  {a.describe()}" for a in self.atoms] or ["  (none)"]
        if self.prev_columns:
            lines.append("previous-second columns: " + ", ".join(sorted(self.prev_columns)))
        if self.expression is not None:
            lines.append("polars:")
            lines.append(f"  {self.expression}")
        if self.program.shape[0]:
            lines.append("kernel program:")
            for i, (op, a, b, c) in enumerate(self.program.tolist()):
                lines.append(f"  {i:>3} {self._instruction(op, a, b, c)}")
        return "\n".join(lines) + "\n"

    def _instruction(self, op: int, a: int, b: int, c: int) -> str:
        name = COND_OPCODE_NAMES[op]
        at = " at t-1" if b else ""
        if name == "const":
            return f"push {self.constants[a]:g}"
        if name == "series":
            return f"push {self.series_columns[a]}{at}"
        if name == "leg":
            return f"push leg#{c} held contract's {self.contract_outputs[a]}{at}"
        if name in ("pnl", "drawdown", "seconds_in_trade"):
            return f"push position.{name}{at}"
        if name == "compare":
            return f"compare {COND_COMPARISONS[a]}"
        if name in ("all", "any"):
            return f"{name} of {a}"
        return name
