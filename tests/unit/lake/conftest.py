"""Fixtures for the lake tests: a fresh lake and realistic trade frames (``lakegen``)."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pytest

# The generator and checks are shared with the subprocess scripts of the integration tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration" / "_scripts"))

from lakegen import make_trades

import ticklake
from ticklake.lake import Lake


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    """A new, empty lake in a temporary directory."""
    return ticklake.init_lake(tmp_path / "lake")


@pytest.fixture
def trades_frame() -> pl.DataFrame:
    """Three NSE trading days of trades (Asia/Kolkata session, nanosecond timestamps)."""
    return make_trades(days=3, rows_per_day=400, seed=7)
