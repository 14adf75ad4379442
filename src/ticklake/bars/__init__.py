"""Bars: build OHLCV bars from trades, option snapshots and price series; roll them up.

Labels: ``ts`` = bar open, ``ts_end`` = exclusive close, UTC; session-aware alignment
in the dataset's exchange time zone (:mod:`ticklake.bars.alignment`). Frame kernels
live in :mod:`ticklake.bars.aggregate`, the lake driver in :mod:`ticklake.bars.build`,
time-box exports in :mod:`ticklake.bars.slicing`. See ``docs/bars.md``.
"""

from ticklake.bars.aggregate import (
    attach_quotes,
    forward_fill,
    prices_to_bars,
    rollup,
    snapshots_to_bars,
    trades_to_bars,
)
from ticklake.bars.alignment import BarGrid, Interval, parse_interval
from ticklake.bars.build import BarsDay, BarSpec, BarsSummary, build_bars, rollup_bars
from ticklake.bars.slicing import SliceResult, export_slice, slice_dataset

__all__ = [
    "BarGrid",
    "BarSpec",
    "BarsDay",
    "BarsSummary",
    "Interval",
    "SliceResult",
    "attach_quotes",
    "build_bars",
    "export_slice",
    "forward_fill",
    "parse_interval",
    "prices_to_bars",
    "rollup",
    "rollup_bars",
    "slice_dataset",
    "snapshots_to_bars",
    "trades_to_bars",
]
