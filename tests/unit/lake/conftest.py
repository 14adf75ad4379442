"""Fixtures for the lake tests: a fresh lake and realistic trade frames."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration" / "_scripts"))

from lakegen import make_trades  # noqa: E402

import ticklake  # noqa: E402
from ticklake.lake import Lake  # noqa: E402


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    """A new, empty lake in a temporary directory."""
    return ticklake.init_lake(tmp_path / "lake")


@pytest.fixture
def trades_frame():
    """Three NSE trading days of trades (Asia/Kolkata session, nanosecond timestamps)."""
    return make_trades(days=3, rows_per_day=400, seed=7)
