"""Every failure of a command is one line and an exit code; Ctrl+C stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import ticklake
from ticklake.api import LakeSession
from ticklake.cli import app
from ticklake.cli._common import state
from ticklake.errors import DuplicateKeyError

runner = CliRunner()
ENDLESS = "SELECT count(*) FROM range(100000000000) a, range(1000) b WHERE a.range + b.range < 0"


@pytest.fixture
def lake_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(state, "debug", False)
    ticklake.init_lake(tmp_path / "lake")
    return str(tmp_path / "lake")


def _sql_raising(exc: BaseException) -> Callable[[LakeSession, str], None]:
    def sql(self: LakeSession, query: str) -> None:
        raise exc

    return sql


def test_ctrl_c_is_one_line_and_exit_code_130(
    lake_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LakeSession, "sql", _sql_raising(KeyboardInterrupt()))
    result = runner.invoke(app, ["query", "select 1", "--lake", lake_dir])
    assert result.exit_code == 130
    assert result.output.startswith("interrupted: stopped by Ctrl+C")
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unexpected_error_is_one_line_and_debug_shows_it(
    lake_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LakeSession, "sql", _sql_raising(ZeroDivisionError("division by zero")))
    result = runner.invoke(app, ["query", "select 1", "--lake", lake_dir])
    assert result.exit_code == 1
    assert result.output.startswith("unexpected error: ZeroDivisionError: division by zero")
    assert "--debug" in result.output
    assert "Traceback" not in result.output
    debug = runner.invoke(app, ["--debug", "query", "select 1", "--lake", lake_dir])
    assert isinstance(debug.exception, ZeroDivisionError)


def test_error_text_is_printed_literally(lake_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Square brackets in a message are data (a key, a list), not Rich markup.
    message = "two rows for key [AAPL, 2024-03-01] differ in [bold]price[/bold]"
    monkeypatch.setattr(LakeSession, "sql", _sql_raising(DuplicateKeyError(message)))
    result = runner.invoke(app, ["query", "select 1", "--lake", lake_dir])
    assert result.exit_code == DuplicateKeyError.exit_code
    assert result.output.strip() == f"error: {message}"


def test_usage_errors_keep_their_exit_code(lake_dir: str) -> None:
    result = runner.invoke(app, ["query", "select 1", "--format", "parquet", "--lake", lake_dir])
    assert result.exit_code == 2
    assert "--output" in result.output


@pytest.mark.slow
def test_sigint_stops_a_running_query_process(lake_dir: str) -> None:
    # One dataset, so the query links a snapshot directory named after its pid.
    trade = {"ts": [datetime(2024, 3, 1, 9, 30, tzinfo=UTC)], "instrument": ["AAPL"]}
    trade |= {"trade_id": ["1"], "price": [180.5], "size": [100.0]}
    ticklake.open_lake(lake_dir).write("trades", pl.DataFrame(trade), schema="trades")
    env = {k: v for k, v in os.environ.items() if k != "TICKLAKE_DEBUG"}
    entry = "from ticklake.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", entry, "query", ENDLESS, "--lake", lake_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # The query holds a snapshot directory named after its pid while it runs.
        snapshots = Path(lake_dir) / "cache" / "sql"
        deadline = time.monotonic() + 120
        while not list(snapshots.glob(f"{proc.pid}-*")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the query never started"
            time.sleep(0.1)
        time.sleep(1.0)
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - stopped_at < 30
    assert proc.returncode == 130, err
    assert "query interrupted (Ctrl+C)" in err
    assert "Traceback" not in err
    assert out == ""
    assert not list(snapshots.glob(f"{proc.pid}-*"))
