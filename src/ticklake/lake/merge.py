"""Merge semantics of a write: conform the input, dedupe it, merge it into a day, sort.

A write merges new rows into a partition by the dataset's key (a new row replaces the
old one with the same key; identical rows change nothing) or, in replace mode, drops the
existing rows of the slices it rebuilds. The result is sorted by the schema's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from ticklake.errors import DuplicateKeyError
from ticklake.schemas import DatasetSchema

FrameLike = Any  # polars / pandas / pyarrow frame


@dataclass(frozen=True)
class PartitionWrite:
    """What one partition commit did."""

    partition: str
    rows_before: int
    rows_after: int
    rows_written: int
    changed: bool


@dataclass
class WriteResult:
    """Summary of :meth:`Lake.write`: never silent about what happened to each row."""

    dataset: str
    layer: str
    rows_in: int = 0
    duplicates_in_input: int = 0
    partitions: list[PartitionWrite] = field(default_factory=list)

    @property
    def rows_added(self) -> int:
        return sum(p.rows_after - p.rows_before for p in self.partitions)

    @property
    def days(self) -> list[str]:
        return [p.partition.rsplit("=", 1)[-1] for p in self.partitions]


def to_polars(frame: FrameLike) -> pl.DataFrame:
    """A Polars DataFrame from a Polars (eager or lazy), pandas or Arrow frame."""
    if isinstance(frame, pl.DataFrame):
        return frame
    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    if isinstance(frame, pa.Table | pa.RecordBatch):
        out = pl.from_arrow(frame)
        assert isinstance(out, pl.DataFrame)
        return out
    module = type(frame).__module__
    if module.startswith("pandas"):
        return pl.from_pandas(frame)
    raise TypeError(f"cannot write a {type(frame).__name__}; pass a Polars, pandas or Arrow frame")


def sort_order(dschema: DatasetSchema) -> list[str]:
    """The columns a partition is sorted by: the schema's sort, then the rest of the key."""
    return [*dschema.sort, *[k for k in dschema.key if k not in dschema.sort]]


def dedupe_input(
    data: pl.DataFrame, dschema: DatasetSchema, where: str
) -> tuple[pl.DataFrame, int]:
    """Drop identical rows; refuse different rows that share a key (which would win?)."""
    key = list(dschema.key)
    distinct = data.unique(maintain_order=True)
    dropped = data.height - distinct.height
    if distinct.select(key).is_duplicated().any():
        clash = distinct.filter(distinct.select(key).is_duplicated()).sort(key).head(4)
        raise DuplicateKeyError(
            f"{where}: the input has different rows with the same key {tuple(key)}, e.g. "
            f"{clash.rows()[:2]}. Give each row a distinct key (for trades without ids, a "
            "row-number trade_id; for events, a seq column).",
            dataset=where,
        )
    return distinct, dropped


def merge_rows(
    existing: pl.DataFrame | None, new: pl.DataFrame, dschema: DatasetSchema
) -> pl.DataFrame:
    """``existing`` with ``new`` merged in by key (new wins), in the partition's order."""
    if existing is None:
        merged = new
    else:
        merged = pl.concat([existing, new], how="vertical_relaxed").unique(
            subset=list(dschema.key), keep="last", maintain_order=True
        )
    order = sort_order(dschema)
    if is_sorted_by(merged, order):
        # A stable sort of sorted rows is the identity; the check is a few vector
        # passes, the sort a multi-column row encoding (seconds on a big day).
        return merged
    return merged.sort(order, maintain_order=True)


def is_sorted_by(frame: pl.DataFrame, columns: Sequence[str]) -> bool:
    """Whether ``frame`` is already in ``frame.sort(columns)`` order (nulls first).

    Examples:
        >>> is_sorted_by(pl.DataFrame({"a": [1, 1, 2], "b": ["y", "z", "a"]}), ["a", "b"])
        True
        >>> is_sorted_by(pl.DataFrame({"a": [1, 1, 2], "b": ["z", "y", "a"]}), ["a", "b"])
        False
    """
    if frame.height < 2:
        return True
    for name in columns:
        if frame.schema[name].is_float() and frame[name].is_nan().any():
            return False  # NaN ordering differs between sort and comparisons: just sort
    in_order: pl.Expr = pl.lit(True)
    for name in reversed(columns):
        cur, prev = pl.col(name), pl.col(name).shift(1)
        before = (prev.is_null() & cur.is_not_null()) | (prev < cur).fill_null(False)
        in_order = before | (prev.eq_missing(cur) & in_order)
    return bool(frame.select(in_order.slice(1).all()).item())


def drop_replaced(
    existing: pl.DataFrame, new: pl.DataFrame, replace_by: tuple[str, ...]
) -> pl.DataFrame | None:
    """The existing rows a replace keeps: none, or those outside ``new``'s slices."""
    if not replace_by:
        return None
    slices = new.select(replace_by).unique()
    kept = existing.join(slices, on=list(replace_by), how="anti", nulls_equal=True)
    return kept if kept.height else None
