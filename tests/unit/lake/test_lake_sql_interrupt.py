"""SQL can be stopped with Ctrl+C, and the locked path never spills outside the lake."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from lakegen import make_trades

from ticklake.errors import InterruptedRunError, QueryRejectedError
from ticklake.lake.lake import Lake
from ticklake.lake.sql import run_sql, run_untrusted_sql

# About a minute of work for DuckDB on two cores (10^11 rows): only an interrupt ends it
# within a second, and a lost interrupt still ends (the suite's per-test timeout is the
# backstop), so the test can fail but never hang.
ENDLESS = "SELECT count(*) FROM range(100000000) a, range(1000) b WHERE a.range + b.range < 0"


@pytest.fixture
def small_lake(lake: Lake) -> Lake:
    lake.write("nifty", make_trades(days=1, rows_per_day=50, seed=3), schema="trades")
    return lake


def _press_ctrl_c_after(seconds: float) -> threading.Timer:
    # A real SIGINT to this process, as a terminal's Ctrl+C sends it.
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.parametrize("path", ["trusted", "untrusted"])
def test_ctrl_c_stops_a_running_query(small_lake: Lake, path: str) -> None:
    started = time.monotonic()
    timer = _press_ctrl_c_after(1.0)
    try:
        with pytest.raises(InterruptedRunError, match="interrupted"):
            if path == "trusted":
                run_sql(small_lake, ENDLESS)
            else:
                run_untrusted_sql(small_lake, ENDLESS, timeout_seconds=120)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 30
    # The query's snapshot of the lake is gone, and the connection still works afterwards.
    assert not any((small_lake.root / "cache" / "sql").glob("*"))
    assert run_sql(small_lake, "SELECT count(*) AS n FROM bronze.nifty")["n"].to_list() == [50]


def test_errors_of_the_query_thread_reach_the_caller(small_lake: Lake) -> None:
    frame = run_sql(small_lake, "SELECT 41 + 1 AS answer")
    assert frame.equals(pl.DataFrame({"answer": [42]}, schema={"answer": pl.Int32}))
    with pytest.raises(QueryRejectedError, match="only SELECT"):
        run_untrusted_sql(small_lake, "CALL pragma_version()")


def test_untrusted_spill_stays_in_the_lake(
    small_lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DuckDB's default spill directory is ./.tmp, which it also opens to the query.
    workdir = tmp_path / "workdir"
    (workdir / ".tmp").mkdir(parents=True)
    (workdir / ".tmp" / "secret.txt").write_text("secret")
    monkeypatch.chdir(workdir)
    with pytest.raises(QueryRejectedError):
        run_untrusted_sql(small_lake, f"SELECT * FROM read_text('{workdir}/.tmp/secret.txt')")
    result = run_untrusted_sql(small_lake, "SELECT current_setting('temp_directory') AS spill")
    spill = Path(result.frame["spill"][0])
    assert spill.is_relative_to(small_lake.root / "cache" / "sql")
    assert not spill.exists()
