"""What a backtest day reads besides the option chain: partition hashes (the keys of the
day cache), a dataset's rows in time order, and the underlying dataset's previous day
and its day on the grid.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from ticklake.backtest.grid import (
    NS,
    _asof_indices,
    _paise_on_grid,
    _volume_per_second,
    session_grid,
)
from ticklake.backtest.spec import StrategySpec
from ticklake.errors import DatasetNotFoundError
from ticklake.lake import Lake, Manifest
from ticklake.lake.layout import MANIFEST_FILE


def partition_hash(lake: Lake, dataset: str, day: date) -> str | None:
    # One manifest read (listing every partition's manifest grows with the lake's age).
    # Not verified here: the hash is a key (of the run and day caches); whatever reads
    # the data file goes through ``lake.scan``, which checks it on first read.
    files = lake.partition_files(dataset, start=day, end=day, verify=False)
    if not files:
        return None
    manifest = files[0].with_name(MANIFEST_FILE)
    return Manifest.read(manifest).file_sha256 if manifest.is_file() else "no-manifest"


def _sorted_rows(lake: Lake, dataset: str, day: date, columns: list[str]) -> pl.DataFrame:
    """The day's rows of a time series, in ts order (sorted only when they are not)."""
    return _in_time_order(lake.scan(dataset, start=day, end=day, columns=columns).collect())


def _in_time_order(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` in ts order: as they are when already sorted, else a stable sort."""
    ts = rows["ts"].dt.epoch("ns").to_numpy()
    if ts.size > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
        rows = rows.sort("ts", maintain_order=True)
    return rows


def previous_underlying_day(lake: Lake, spec: StrategySpec, day: date) -> date | None:
    """The last date before ``day`` with a partition of the underlying dataset."""
    dataset = spec.universe.underlying_dataset
    if not dataset:
        return None
    try:
        earlier = [p.date for p in lake.partitions(dataset) if p.date < day]
    except DatasetNotFoundError:
        return None
    return max(earlier) if earlier else None


def underlying_grid(
    lake: Lake, spec: StrategySpec, day: date
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The underlying dataset's day on the grid: (grid ns, price paise, volume per second).

    Price is as-of joined like ``load_day`` (0 = none); volume per second sums the
    dataset's ``volume`` of the rows in ``(g - 1 s, g]`` (NaN when it has none).
    """
    dataset = spec.universe.underlying_dataset
    if not dataset:
        return None
    grid = session_grid(day, spec)
    rows = _sorted_rows(lake, dataset, day, ["ts", "price", "volume"])
    if rows.height == 0:
        return None
    ts = rows["ts"].dt.epoch("ns").to_numpy()
    idx, _ = _asof_indices(ts, grid, spec.fills.as_of_tolerance_seconds * NS)
    return grid, _paise_on_grid(rows, "price", idx), _volume_per_second(rows, ts, grid)
