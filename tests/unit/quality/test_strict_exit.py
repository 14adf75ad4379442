"""`ticklake validate --strict` turns a FAIL verdict into a non-zero exit (for CI)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app


def _bars(high_below_low: bool) -> pl.DataFrame:
    start = datetime(2024, 1, 2, 10, tzinfo=UTC)
    ts = [start + timedelta(minutes=i) for i in range(3)]
    return pl.DataFrame(
        {
            "ts": ts,
            "ts_end": [t + timedelta(minutes=1) for t in ts],
            "instrument": ["X"] * 3,
            "open": [10.0, 10.5, 10.2],
            "high": [11.0, 9.0 if high_below_low else 11.0, 10.9],
            "low": [9.5, 10.0, 10.0],
            "close": [10.5, 10.2, 10.8],
        }
    )


def test_strict_exit_code_follows_the_verdict(tmp_path: Path) -> None:
    runner = CliRunner()
    for name, broken in (("good", False), ("bad", True)):
        lake = ticklake.init_lake(tmp_path / name)
        lake.write("bars_1m", _bars(broken), schema="bars")
        args = ["validate", "bars_1m", "--rules", "R1", "--strict", "--lake", str(lake.root)]
        result = runner.invoke(app, args)
        assert result.exit_code == (12 if broken else 0), result.output
        assert ("FAIL" in result.output) == broken
        lenient = runner.invoke(app, [*args[:-3], "--lake", str(lake.root)])
        assert lenient.exit_code == 0, lenient.output
