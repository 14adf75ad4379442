"""Compare two runs: statistics side by side and what differs between their specs.

Examples:
    >>> [(d.path, d.value_a, d.value_b) for d in diff_specs(
    ...     {"time": {"exit_time": "15:20"}, "legs": [{"lots": 1}]},
    ...     {"time": {"exit_time": "15:00"}, "legs": [{"lots": 2}, {"lots": 1}]})]
    [('time.exit_time', '15:20', '15:00'), ('legs.0.lots', 1, 2), ('legs.1', <absent>, {'lots': 1})]
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from ticklake.backtest.stats import (
    STATISTIC_FIELDS,
    Statistics,
    format_statistic,
    read_run_results,
)


class _Absent:
    """A key or list item present in one spec only."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<absent>"

    def __reduce__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()


@dataclass(frozen=True)
class StatisticComparison:
    """One statistic in both runs; ``difference`` is B − A for numbers, else None."""

    name: str
    label: str
    kind: str
    value_a: Any
    value_b: Any
    difference: float | int | None


@dataclass(frozen=True)
class SpecDifference:
    """A spec value that differs; ``ABSENT`` where one spec lacks the key."""

    path: str
    value_a: Any
    value_b: Any


@dataclass(frozen=True)
class Comparison:
    """Two runs' statistics side by side and their spec differences."""

    run_a: Path
    run_b: Path
    run_id_a: str
    run_id_b: str
    name_a: str
    name_b: str
    statistics_a: Statistics
    statistics_b: Statistics
    statistics: tuple[StatisticComparison, ...]
    spec_differences: tuple[SpecDifference, ...]


def compare_runs(run_a: Path, run_b: Path) -> Comparison:
    """Read two run directories and compare their statistics and specs."""
    results_a = read_run_results(Path(run_a))
    results_b = read_run_results(Path(run_b))
    statistics_a = results_a.statistics()
    statistics_b = results_b.statistics()
    return Comparison(
        run_a=results_a.run_dir,
        run_b=results_b.run_dir,
        run_id_a=results_a.run_id,
        run_id_b=results_b.run_id,
        name_a=str(results_a.run.get("name") or results_a.spec.get("name") or ""),
        name_b=str(results_b.run.get("name") or results_b.spec.get("name") or ""),
        statistics_a=statistics_a,
        statistics_b=statistics_b,
        statistics=compare_statistics(statistics_a, statistics_b),
        spec_differences=tuple(diff_specs(results_a.spec, results_b.spec)),
    )


def compare_statistics(a: Statistics, b: Statistics) -> tuple[StatisticComparison, ...]:
    """Pair every statistic of two runs, then the skip-reason counts (0 when absent)."""
    rows = [
        StatisticComparison(
            name=item.name,
            label=item.label,
            kind=item.kind,
            value_a=getattr(a, item.name),
            value_b=getattr(b, item.name),
            difference=_difference(getattr(a, item.name), getattr(b, item.name)),
        )
        for item in STATISTIC_FIELDS
    ]
    for reason in sorted(set(a.skip_reasons) | set(b.skip_reasons)):
        count_a, count_b = a.skip_reasons.get(reason, 0), b.skip_reasons.get(reason, 0)
        rows.append(
            StatisticComparison(
                name=f"skip_reasons.{reason}",
                label=f"Skipped: {reason}",
                kind="count",
                value_a=count_a,
                value_b=count_b,
                difference=count_b - count_a,
            )
        )
    return tuple(rows)


def diff_specs(a: Any, b: Any, path: str = "") -> list[SpecDifference]:
    """List the leaves where two JSON values differ, by dotted path (list items by index)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[SpecDifference] = []
        # Keys of A in A's order, then keys only B has: the spec's own field order.
        for key in [*a, *(k for k in b if k not in a)]:
            out += diff_specs(a.get(key, ABSENT), b.get(key, ABSENT), _join(path, str(key)))
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = []
        for index in range(max(len(a), len(b))):
            item_a = a[index] if index < len(a) else ABSENT
            item_b = b[index] if index < len(b) else ABSENT
            out += diff_specs(item_a, item_b, _join(path, str(index)))
        return out
    # Compare JSON text, not Python values: 1 == 1.0 == True, but a spec file keeps them apart.
    if a is ABSENT or b is ABSENT or _json(a) != _json(b):
        return [SpecDifference(path or "(root)", a, b)]
    return []


def print_comparison(comparison: Comparison, console: Console) -> None:
    """Print the statistics side by side and the spec differences as Rich tables."""
    title_a = f"A: {comparison.name_a} {comparison.run_id_a}".strip()
    title_b = f"B: {comparison.name_b} {comparison.run_id_b}".strip()
    table = Table("statistic", title_a, title_b, "B − A", title="statistics", title_justify="left")
    for row in comparison.statistics:
        difference = row.difference
        if difference is None:
            shown = ""
        elif row.kind == "percent":
            # A difference of two rates is in percentage points, not percent.
            shown = f"{difference * 100:+.2f} pp"
        else:
            kind = "number" if row.kind == "ratio" else row.kind
            shown = format_statistic(kind, difference)
            if isinstance(difference, int | float) and difference > 0:
                shown = "+" + shown
        table.add_row(
            row.label,
            format_statistic(row.kind, row.value_a),
            format_statistic(row.kind, row.value_b),
            shown,
        )
    console.print(table)
    if not comparison.spec_differences:
        console.print("specs are identical", highlight=False)
        return
    specs = Table("spec key", "A", "B", title="spec differences", title_justify="left")
    for item in comparison.spec_differences:
        specs.add_row(item.path, _show(item.value_a), _show(item.value_b))
    console.print(specs)


def _difference(a: Any, b: Any) -> float | int | None:
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, date) or isinstance(b, date):
        return None
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return None
    if any(isinstance(v, float) and math.isinf(v) for v in (a, b)):
        return None
    return b - a


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _show(value: Any) -> str:
    return "(absent)" if value is ABSENT else json.dumps(value)
