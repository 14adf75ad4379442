"""Fixtures for the lake tests: a fresh lake; frames come from ``lakegen.make_trades``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The generator and checks are shared with the subprocess scripts of the integration tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration" / "_scripts"))

import ticklake
from ticklake.lake import Lake


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    """A new, empty lake in a temporary directory."""
    return ticklake.init_lake(tmp_path / "lake")
