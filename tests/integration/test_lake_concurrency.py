"""Many writer processes on the same partitions, and readers racing a busy writer.

Writers and readers are separate OS processes (the lake's locks are per process).
The oracle is the union of every commit's rows, rebuilt in the test process from the
same generator the writers use.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent / "_scripts"
sys.path.insert(0, str(SCRIPTS))

from lake_writer import batch_frame  # noqa: E402
from lakecheck import assert_manifest_matches, data_files, read_everywhere, temp_files  # noqa: E402
from lakegen import row_set, trading_days  # noqa: E402

import ticklake  # noqa: E402

WRITER = SCRIPTS / "lake_writer.py"
READER = SCRIPTS / "lake_reader.py"
FIRST_DAY = date(2024, 1, 2)


def start(script: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    ticklake.init_lake(root)
    writers, commits, rows, partition_days = 8, 25, 20, 3
    procs = [
        start(
            WRITER,
            str(root),
            "commits",
            "--writer",
            str(w),
            "--commits",
            str(commits),
            "--rows",
            str(rows),
            "--partition-days",
            str(partition_days),
        )
        for w in range(writers)
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr

    days = trading_days(FIRST_DAY, partition_days)
    expected = set().union(
        *(row_set(batch_frame(w, c, rows, days)) for w in range(writers) for c in range(commits))
    )
    assert len(expected) == writers * commits * rows
    lake = ticklake.open_lake(root)
    frame = lake.scan("nifty").collect()
    assert frame.height == len(expected)  # no duplicates
    assert row_set(frame) == expected
    files = data_files(root / "bronze" / "nifty")
    assert sorted(files) == [d.isoformat() for d in days]
    assert set().union(*(read_everywhere(p) for p in files.values())) == expected
    for path in files.values():
        assert_manifest_matches(path.parent)
    report = lake.verify()
    assert report.ok, report.problems
    assert temp_files(root) == []


@pytest.mark.slow
def test_readers_see_only_committed_states(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    lake = ticklake.init_lake(root)
    commits, rows = 200, 25
    day = [FIRST_DAY]
    # Commit k (1-based) adds rows whose size is k: after k commits there are 25 k rows
    # summing to 25 k (k + 1) / 2. Seed the dataset with the first commit so readers
    # never race the dataset's creation.
    lake.write("nifty", batch_frame(0, 0, rows, day), schema="trades", timezone="Asia/Kolkata")
    committed = {f"{rows * k}:{float(rows * k * (k + 1) // 2)}" for k in range(1, commits + 1)}
    stop = tmp_path / "stop"
    readers = {
        engine: start(READER, str(root), engine, str(stop), str(tmp_path / f"{engine}.json"))
        for engine in ("polars", "duckdb")
    }
    writer = start(
        WRITER,
        str(root),
        "commits",
        "--writer",
        "0",
        "--commits",
        str(commits),
        "--rows",
        str(rows),
        "--partition-days",
        "1",
    )
    # batch_frame(0, 0, ...) is the first commit again: a no-op that keeps the numbering.
    _, stderr = writer.communicate(timeout=150)
    assert writer.returncode == 0, stderr
    stop.write_text("stop")
    for engine, proc in readers.items():
        _, stderr = proc.communicate(timeout=150)
        assert proc.returncode == 0, f"{engine}: {stderr}"

    for engine in readers:
        result = json.loads((tmp_path / f"{engine}.json").read_text())
        assert result["errors"] == [], f"{engine} read a torn state: {result['errors'][:3]}"
        seen = set(result["seen"])
        assert seen <= committed, f"{engine} saw uncommitted states {sorted(seen - committed)[:5]}"
        assert sum(result["seen"].values()) >= 5, f"{engine} hardly read anything"
    final = lake.scan("nifty").collect()
    assert final.height == rows * commits
    assert final["size"].sum() == rows * commits * (commits + 1) // 2
    assert final.group_by("size").len()["len"].unique().to_list() == [rows]
    assert lake.verify().ok
