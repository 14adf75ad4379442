"""What a quality rule is: identity, typed parameters, and the two ways it runs.

A rule is a subclass of :class:`Rule` decorated with ``@register_rule`` in a module
under ``ticklake/quality/rules/`` (modules are discovered, not listed). It declares a
stable ``id`` (``"R1"``), a ``name``, a one-paragraph ``description``, a ``severity``,
the schema families it applies to and a frozen Pydantic ``Parameters`` model whose
fields are its thresholds.

It then implements one or both of:

- ``check(frame, context) -> RuleFinding``: one partition-day, vectorised in Polars;
  runs inside the executor's worker, next to the other rules on the same frame.
- ``summarize(frame, context)`` + ``conclude(summaries, context)``: rules that need
  several days (copied days, missing days). Workers return small picklable summaries;
  ``conclude`` compares them in the parent and returns one finding per day.

A finding counts what was ``checked`` (in the rule's ``unit``: rows, days, ...), how
many of those are ``violations`` (each unit counted once, however many sub-checks it
fails), up to :data:`MAX_OFFENDING_ROWS` offending rows (``score`` ranks them; the
largest first), and statistics. Statistic names starting with ``max_`` / ``min_``
merge across days by max / min, every other statistic by sum.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any, ClassVar

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from ticklake.schemas import DatasetSchema

#: Offending rows kept per rule (per day while running, then over the whole run).
MAX_OFFENDING_ROWS = 25


class Severity(StrEnum):
    """How much a failed rule matters for the verdict (see :mod:`ticklake.quality.report`)."""

    error = "error"
    warning = "warning"
    info = "info"


class RuleParameters(BaseModel):
    """Thresholds of a rule. Frozen; unknown keys are rejected (a typo never vanishes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_violation_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of checked units that may violate before the rule fails",
    )


def schema_family(schema_name: str) -> str:
    """Return the family of a schema name: ``l2_10`` -> ``l2``; the full option form folds in.

    Examples:
        >>> schema_family("l2_10"), schema_family("option_snapshots_full"), schema_family("bars")
        ('l2', 'option_snapshots', 'bars')
    """
    if schema_name.startswith("l2_"):
        return "l2"
    if schema_name.startswith("option_snapshots"):
        return "option_snapshots"
    return schema_name


def instrument_column(schema: DatasetSchema) -> str:
    """The column naming the instrument (``symbol`` for option snapshots)."""
    return "symbol" if schema_family(schema.name) == "option_snapshots" else "instrument"


def price_expression(schema: DatasetSchema) -> pl.Expr | None:
    """One representative price per row: trade/last price, bar close, or quote mid."""
    family = schema_family(schema.name)
    if family in ("trades", "prices", "l3", "book_updates"):
        return pl.col("price")
    if family == "bars":
        return pl.col("close")
    if family == "quotes":
        return (pl.col("bid_price") + pl.col("ask_price")) / 2
    if family == "l2":
        return (pl.col("bid_price_0") + pl.col("ask_price_0")) / 2
    if family == "option_snapshots":
        return pl.col("last_price")
    return None


def best_quote_columns(schema: DatasetSchema) -> tuple[str, str] | None:
    """The (bid, ask) columns of the best level, if the schema has one."""
    family = schema_family(schema.name)
    if family in ("quotes", "bars"):
        return "bid_price", "ask_price"
    if family in ("l2", "option_snapshots"):
        return "bid_price_0", "ask_price_0"
    return None


@dataclass(frozen=True)
class DatasetContext:
    """What a rule knows about the dataset being validated (picklable)."""

    lake_root: str
    layer: str
    dataset: str
    schema: DatasetSchema
    timezone: str
    day_offset: str | None
    calendar: str
    #: every committed partition date of the dataset (not only the validated range)
    all_days: tuple[date, ...]
    #: the partition dates being validated
    days: tuple[date, ...]
    start: date | None = None
    end: date | None = None

    def read_day(
        self, dataset: str, day: date, columns: list[str] | None = None
    ) -> pl.DataFrame | None:
        """Read one partition of another dataset of the lake (``name`` or ``layer.name``)."""
        from ticklake.lake import Lake

        lake = Lake(self.lake_root)
        info = lake.dataset_info(dataset)
        files = lake.partition_files(info.name, layer=info.layer, start=day, end=day)
        if not files:
            return None
        return pl.read_parquet(files[0], columns=columns)

    def dataset_info(self, dataset: str) -> Any:
        from ticklake.lake import Lake

        return Lake(self.lake_root).dataset_info(dataset)


@dataclass(frozen=True)
class PartitionContext:
    """A dataset context plus the partition-day a check runs on."""

    dataset: DatasetContext
    day: date
    path: str

    @property
    def schema(self) -> DatasetSchema:
        return self.dataset.schema


@dataclass
class RuleFinding:
    """What one rule found on one day."""

    day: date
    checked: int
    violations: int
    offending: pl.DataFrame = field(default_factory=pl.DataFrame)
    statistics: dict[str, float] = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.violations / self.checked if self.checked else 0.0


def top_offending(frame: pl.DataFrame, score: pl.Expr | str | None = None) -> pl.DataFrame:
    """Keep the :data:`MAX_OFFENDING_ROWS` worst rows (largest ``score`` first, else first)."""
    if score is not None:
        scored = frame.with_columns(
            (pl.col(score) if isinstance(score, str) else score).alias("score")
        )
        return scored.sort("score", descending=True, nulls_last=True).head(MAX_OFFENDING_ROWS)
    return frame.head(MAX_OFFENDING_ROWS)


def merge_statistics(items: list[Mapping[str, float]]) -> dict[str, float]:
    """Merge per-day statistics: ``max_*`` by max, ``min_*`` by min, the rest by sum."""
    out: dict[str, float] = {}
    for stats in items:
        for key, value in stats.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if key not in out:
                out[key] = value
            elif key.startswith("max_"):
                out[key] = max(out[key], value)
            elif key.startswith("min_"):
                out[key] = min(out[key], value)
            else:
                out[key] = out[key] + value
    return out


class Rule:
    """Base class of a quality rule; see the module docstring."""

    #: stable id, e.g. "R1", "S3"; ``--rules`` also takes family prefixes ("R5")
    id: ClassVar[str]
    #: short snake_case name, e.g. "ohlc_order"
    name: ClassVar[str]
    #: one paragraph: what is checked, what counts once, what the thresholds mean
    description: ClassVar[str]
    severity: ClassVar[Severity]
    #: schema families it applies to (see :func:`schema_family`)
    schemas: ClassVar[tuple[str, ...]]
    #: what ``checked`` and ``violations`` count
    unit: ClassVar[str] = "rows"
    #: offending-row column ranking rows across days (largest first); None: by date
    rank_by: ClassVar[str | None] = None
    Parameters: ClassVar[type[RuleParameters]] = RuleParameters
    #: True when the rule needs several days (implements summarize + conclude)
    cross_day: ClassVar[bool] = False

    def __init__(self, parameters: RuleParameters | Mapping[str, Any] | None = None) -> None:
        if parameters is None:
            parameters = self.Parameters()
        elif not isinstance(parameters, RuleParameters):
            parameters = self.Parameters.model_validate(dict(parameters))
        self.parameters = parameters

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.parameters!r})"

    def applies_to(self, schema: DatasetSchema) -> bool:
        return schema_family(schema.name) in self.schemas

    def skip_reason(self, context: DatasetContext) -> str | None:
        """Why the rule cannot run on this dataset (a missing parameter), else None."""
        return None

    def columns(self, schema: DatasetSchema) -> set[str] | None:
        """Columns the rule reads (None: all); the runner reads the union once."""
        return None

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding | None:
        return None

    def summarize(self, frame: pl.DataFrame, context: PartitionContext) -> Any:
        return None

    def conclude(self, summaries: dict[date, Any], context: DatasetContext) -> list[RuleFinding]:
        return []


#: Every registered rule by id. Filled by :func:`register_rule`; read through
#: :mod:`ticklake.quality.registry`, which loads the built-in families first.
REGISTERED_RULES: dict[str, type[Rule]] = {}


def register_rule(cls: type[Rule]) -> type[Rule]:
    """Class decorator: add a rule to the registry under ``cls.id``."""
    for attr in ("id", "name", "description", "severity", "schemas"):
        if not getattr(cls, attr, None):
            raise ValueError(f"rule {cls.__name__} must set {attr!r}")
    if not isinstance(cls.severity, Severity):
        raise ValueError(f"rule {cls.id}: severity must be a Severity, not {cls.severity!r}")
    for other in REGISTERED_RULES.values():
        if other is not cls and (other.id == cls.id or other.name == cls.name):
            raise ValueError(f"rule {cls.id} ({cls.name}) is registered twice ({other})")
    REGISTERED_RULES[cls.id] = cls
    return cls
