"""Fixtures for the bar tests: a fresh lake and realistic generated trades."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from _bars_data import make_trades

import ticklake
from ticklake.lake import Lake


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    """A new, empty lake in a temporary directory."""
    return ticklake.init_lake(tmp_path / "lake")


@pytest.fixture
def trades() -> pl.DataFrame:
    """Two instruments, 20 minutes, 6,000 prints starting 2024-01-02 09:20 UTC."""
    return make_trades(start=datetime(2024, 1, 2, 9, 20, tzinfo=UTC), seconds=1200, rows=6000)
