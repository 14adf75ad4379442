"""Ingest "nothing committed" and ``validate --strict`` FAIL have distinct exit codes (#13)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app
from ticklake.cli._common import state
from ticklake.errors import EXIT_NOTHING_COMMITTED, EXIT_VALIDATION_FAILED, NothingCommittedError
from ticklake.lake import open_lake as open_storage

runner = CliRunner()


@pytest.fixture
def lake_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(state, "debug", False)
    ticklake.init_lake(tmp_path / "lake")
    return tmp_path / "lake"


def test_the_two_codes_are_the_documented_ones_and_differ() -> None:
    # docs/ingest.md and docs/quality.md state these numbers; scripts test them.
    assert EXIT_NOTHING_COMMITTED == NothingCommittedError.exit_code == 11
    assert EXIT_VALIDATION_FAILED == 12


def test_ingest_that_commits_nothing_exits_11(lake_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("t,px,qty\n")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "schema: trades\ncolumns: {price: px, size: qty}\ntime: {column: t, unit: ms}\n"
        "constants: {instrument: X}\n"
    )
    result = runner.invoke(
        app,
        ["ingest", "csv", str(path), "--mapping", str(mapping), "-d", "t", "--lake", str(lake_dir)],
    )
    assert result.exit_code == 11, result.output
    assert "exit code 11" in result.output


def _prices(bad: int) -> pl.DataFrame:
    start = datetime(2024, 1, 2, 10, tzinfo=UTC)
    return pl.DataFrame(
        {
            "ts": [start + timedelta(seconds=i) for i in range(10)],
            "instrument": ["X"] * 10,
            "price": [-1.0 if i < bad else 100.0 for i in range(10)],
        }
    )


@pytest.mark.parametrize(("bad", "code"), [(0, 0), (1, 12)])
def test_validate_strict_fail_exits_12(lake_dir: Path, bad: int, code: int) -> None:
    open_storage(lake_dir).write("p", _prices(bad), schema="prices", timezone="UTC")
    result = runner.invoke(
        app, ["validate", "p", "--rules", "R2", "--strict", "--lake", str(lake_dir)]
    )
    assert result.exit_code == code, result.output
    assert ("FAIL" in result.output) == (bad > 0)
