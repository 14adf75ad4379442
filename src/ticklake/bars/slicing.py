"""Slices: a time box of one dataset for some symbols, as rows or as bars, to a file.

Examples:
    >>> parse_bound("2024-01-02"), parse_bound("2024-01-02T09:15")
    (datetime.date(2024, 1, 2), datetime.datetime(2024, 1, 2, 9, 15))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import polars as pl

from ticklake.bars.aggregate import (
    FillMode,
    prices_to_bars,
    rollup,
    snapshots_to_bars,
    trades_to_bars,
)
from ticklake.bars.alignment import BarGrid
from ticklake.bars.build import source_kind
from ticklake.errors import ConfigError
from ticklake.lake import Lake

SliceFormat = Literal["parquet", "csv"]


@dataclass(frozen=True)
class SliceResult:
    path: Path
    rows: int
    columns: tuple[str, ...]


def parse_bound(text: str | date | None) -> date | datetime | None:
    """``YYYY-MM-DD`` is a whole trading day; anything longer an instant (naive = UTC)."""
    if text is None or isinstance(text, date):
        return text
    raw = text.strip()
    try:
        return date.fromisoformat(raw) if len(raw) == 10 else datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(
            f"cannot read the time bound {text!r}; use YYYY-MM-DD (a trading day) or "
            "YYYY-MM-DDTHH:MM[:SS] (an instant, UTC unless it has an offset)",
            bound=text,
        ) from None


def slice_dataset(
    lake: Lake,
    dataset: str,
    *,
    symbols: Sequence[str] | None = None,
    start: str | date | None = None,
    end: str | date | None = None,
    timeframe: str | None = None,
    anchor: str | None = None,
    fill: FillMode = "none",
) -> pl.DataFrame:
    """Rows of ``dataset`` for ``symbols`` in ``[start, end]``, or bars of ``timeframe``.

    Dates select whole trading days (inclusive); instants cut ``ts`` to
    ``[start, end)``. With ``timeframe`` the rows are aggregated on the fly with the
    same kernels and alignment as ``ticklake bars build`` (bars are rolled up).
    """
    info = lake.dataset_info(dataset)
    symbol_column = "symbol" if "symbol" in info.dataset_schema.column_names else "instrument"
    filters = {symbol_column: list(symbols)} if symbols else None
    frame = lake.read(
        info.name,
        layer=info.layer,
        start=parse_bound(start),
        end=parse_bound(end),
        filters=filters,
    )
    if timeframe is None:
        return frame
    kind = source_kind(info)
    grid = BarGrid.create(
        timeframe, timezone=info.timezone, day_offset=info.day_offset, anchor=anchor
    )
    if kind == "trades":
        return trades_to_bars(frame, grid, fill=fill)
    if kind == "option_snapshots":
        return snapshots_to_bars(frame, grid, fill=fill)
    if kind == "prices":
        return prices_to_bars(frame, grid, fill=fill)
    return rollup(frame, grid, fill=fill)


def export_slice(
    lake: Lake,
    dataset: str,
    out: Path | str,
    *,
    format: SliceFormat = "parquet",
    symbols: Sequence[str] | None = None,
    start: str | date | None = None,
    end: str | date | None = None,
    timeframe: str | None = None,
    anchor: str | None = None,
    fill: FillMode = "none",
) -> SliceResult:
    """Write :func:`slice_dataset` to ``out`` as Parquet or CSV (times in UTC, ISO 8601)."""
    if format not in ("parquet", "csv"):
        raise ConfigError(f"--format must be parquet or csv, got {format!r}", format=format)
    frame = slice_dataset(
        lake, dataset, symbols=symbols, start=start, end=end, timeframe=timeframe,
        anchor=anchor, fill=fill,
    )  # fmt: skip
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "parquet":
        frame.write_parquet(path, compression="zstd")
    else:
        frame.write_csv(path, datetime_format="%Y-%m-%dT%H:%M:%S%.fZ")
    return SliceResult(path, frame.height, tuple(frame.columns))
