"""Crash a writer at every commit step (and at random moments) and check what survives.

The writer runs in a separate process that dies with ``os._exit`` (no cleanup, no
``finally``) or SIGKILL. The checks read the files with pyarrow (page checksums on),
Polars and DuckDB directly, and compare rows with sets built from the generator.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, date
from pathlib import Path

import polars as pl
import pytest

SCRIPTS = Path(__file__).resolve().parent / "_scripts"
sys.path.insert(0, str(SCRIPTS))

from lakecheck import (  # noqa: E402
    assert_manifest_matches,
    data_files,
    read_everywhere,
    temp_files,
)
from lakegen import make_trades, row_set, trading_days  # noqa: E402

import ticklake  # noqa: E402
from ticklake.lake import commit  # noqa: E402
from ticklake.lake.lake import Lake  # noqa: E402

WRITER = SCRIPTS / "lake_writer.py"
FIRST_DAY = date(2024, 1, 2)
ROWS = 300
#: Steps at which the old file is still in place (the hook runs before each step).
BEFORE_RENAME = ("write_temp", "fsync_temp", "pending", "replace_data")


def run_writer(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(WRITER), str(root), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def by_day(frame: pl.DataFrame) -> dict[str, set[tuple]]:
    """Oracle: rows grouped by their Asia/Kolkata date, computed with the stdlib."""
    out: dict[str, set[tuple]] = {}
    from datetime import datetime
    from zoneinfo import ZoneInfo

    kolkata = ZoneInfo("Asia/Kolkata")
    for row in row_set(frame):
        moment = datetime.fromtimestamp(row[0] // 1_000_000_000, tz=UTC)
        out.setdefault(moment.astimezone(kolkata).date().isoformat(), set()).add(row)
    return out


def visible_rows(lake: Lake) -> tuple[set[tuple], int, int]:
    """Rows through lake.scan, and row counts through scan and the DuckDB view."""
    frame = lake.scan("nifty").collect()
    duck = lake.sql("SELECT count(*) AS n FROM nifty")["n"][0]
    return row_set(frame), frame.height, duck


def assert_clean_after_repair(crashed: Path, expected: dict[str, set[tuple]]) -> None:
    """verify(repair=True) on a copy fixes what the crash left, without touching rows."""
    copy = crashed.parent / "repaired"
    shutil.copytree(crashed, copy)
    lake = ticklake.open_lake(copy)
    lake.verify(repair=True)
    second = lake.verify()
    assert second.ok, second.problems
    assert temp_files(copy) == []
    files = data_files(copy / "bronze" / "nifty")
    assert {day: read_everywhere(path) for day, path in files.items()} == expected
    for path in files.values():
        assert_manifest_matches(path.parent)


@pytest.mark.slow
@pytest.mark.parametrize("step", commit.STEPS)
@pytest.mark.parametrize("scenario", ["merge", "new_partition"])
def test_crash_at_each_commit_step_leaves_old_or_new_state(
    tmp_path: Path, step: str, scenario: str
) -> None:
    root = tmp_path / "lake"
    lake = ticklake.init_lake(root)
    old = make_trades(days=3, rows_per_day=ROWS, seed=1, first_day=FIRST_DAY)
    lake.write("nifty", old, schema="trades", timezone="Asia/Kolkata")
    old_by_day = by_day(old)
    if scenario == "merge":
        # Crash in the second of three partitions that already hold rows: the first
        # partition's commit completed, the third was never touched.
        new_first_day, occurrence = FIRST_DAY, 2
    else:
        # Crash in the first of two brand-new partitions.
        new_first_day, occurrence = trading_days(FIRST_DAY, 4)[3], 1
    new = make_trades(
        days=2 if scenario == "new_partition" else 3,
        rows_per_day=ROWS,
        seed=2,
        first_day=new_first_day,
    )
    new_by_day = by_day(new)
    days = sorted(set(old_by_day) | set(new_by_day))
    final = {d: old_by_day.get(d, set()) | new_by_day.get(d, set()) for d in days}

    proc = run_writer(
        root,
        "write",
        "--seed",
        "2",
        "--rows",
        str(ROWS),
        "--days",
        str(len(new_by_day)),
        "--first-day",
        new_first_day.isoformat(),
        "--crash-step",
        step,
        "--crash-occurrence",
        str(occurrence),
    )
    assert proc.returncode == 137, proc.stderr

    crashed_day = sorted(new_by_day)[occurrence - 1]
    expected: dict[str, set[tuple]] = {}
    for day in days:
        if day < crashed_day:
            expected[day] = final[day]
        elif day == crashed_day:
            expected[day] = old_by_day.get(day, set()) if step in BEFORE_RENAME else final[day]
        else:
            expected[day] = old_by_day.get(day, set())
    expected = {d: rows for d, rows in expected.items() if rows}

    if step in ("fsync_temp", "pending", "replace_data"):
        # The complete new file sits beside the old one as a temp file: readers must
        # not see it.
        assert len(temp_files(root)) == 1
    files = data_files(root / "bronze" / "nifty")
    assert {day: read_everywhere(path) for day, path in files.items()} == expected
    rows, scan_count, duck_count = visible_rows(lake)
    union = set().union(*expected.values())
    assert rows == union
    assert scan_count == duck_count == len(union)  # temp files would add rows here

    assert_clean_after_repair(root, expected)

    # Re-running the same write completes it: no loss, no duplicates, clean verify.
    # (in this process: the writer's recovery runs under the lock before it merges)
    lake.write("nifty", new)
    files = data_files(root / "bronze" / "nifty")
    assert {day: read_everywhere(path) for day, path in files.items()} == final
    rows, scan_count, duck_count = visible_rows(lake)
    assert rows == set().union(*final.values())
    assert scan_count == duck_count == sum(len(r) for r in final.values())
    report = lake.verify()
    assert report.ok, report.problems
    assert temp_files(root) == []
    for path in files.values():
        assert_manifest_matches(path.parent)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_sigkill_during_multi_day_write(tmp_path: Path, seed: int) -> None:
    root = tmp_path / "lake"
    ticklake.init_lake(root)
    day_count = 25
    oracle: dict[str, set[tuple]] = {}
    for day in trading_days(FIRST_DAY, day_count):
        oracle.update(by_day(make_trades(days=1, rows_per_day=ROWS, seed=seed, first_day=day)))
    signal_file = tmp_path / "progress"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(WRITER),
            str(root),
            "loop",
            "--seed",
            str(seed),
            "--days",
            str(day_count),
            "--rows",
            str(ROWS),
            "--signal-file",
            str(signal_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not signal_file.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(random.Random(seed).uniform(0.0, 0.25))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the writer finished before it was killed"

    files = data_files(root / "bronze" / "nifty")
    assert 0 < len(files) < day_count
    for day, path in files.items():
        # Each day is one commit into a new partition: all of its rows or none.
        assert read_everywhere(path) == oracle[day]
    lake = ticklake.open_lake(root)
    rows, scan_count, duck_count = visible_rows(lake)
    assert rows == set().union(*(oracle[d] for d in files))
    assert scan_count == duck_count == len(rows)

    assert_clean_after_repair(root, {d: oracle[d] for d in files})

    for day in trading_days(FIRST_DAY, day_count):
        lake.write("nifty", make_trades(days=1, rows_per_day=ROWS, seed=seed, first_day=day))
    files = data_files(root / "bronze" / "nifty")
    assert {day: read_everywhere(path) for day, path in files.items()} == oracle
    rows, scan_count, duck_count = visible_rows(lake)
    assert scan_count == duck_count == len(rows) == sum(len(r) for r in oracle.values())
    report = lake.verify()
    assert report.ok, report.problems
