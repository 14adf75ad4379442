"""verify / vacuum: bit flips, stray and temp files, missing manifests, locked writers."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from lakecheck import read_everywhere, sha256, temp_files
from lakegen import make_trades, row_set

import ticklake
from ticklake.errors import LockTimeoutError
from ticklake.lake.lake import Lake

WRITER = Path(__file__).resolve().parents[2] / "integration" / "_scripts" / "lake_writer.py"


def filled(lake: Lake, days: int = 3) -> Lake:
    lake.write(
        "nifty",
        make_trades(days=days, rows_per_day=400, seed=21),
        schema="trades",
        timezone="Asia/Kolkata",
    )
    return lake


def flip_bit(path: Path, offset: int, bit: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def flip_offset(path: Path, where: str, rng: random.Random) -> int:
    size = path.stat().st_size
    footer_bytes = int.from_bytes(path.read_bytes()[-8:-4], "little")
    footer_start = size - 8 - footer_bytes
    if where == "data_pages":
        return rng.randrange(4, min(footer_start, 400))
    if where == "middle":
        return size // 2
    if where == "footer":
        return rng.randrange(footer_start, size - 8)
    return size - 1  # the trailing magic bytes


@pytest.mark.parametrize("where", ["data_pages", "middle", "footer", "magic"])
def test_verify_reports_every_flipped_bit(lake: Lake, where: str) -> None:
    filled(lake, days=4)
    rng = random.Random(where)
    parts = lake.partitions("nifty")
    flipped = {str(p.path) for p in parts[:3]}
    for part in parts[:3]:
        flip_bit(part.path, flip_offset(part.path, where, rng), rng.randrange(8))
    report = lake.verify()
    kinds = {p.path: p.kind for p in report.problems}
    assert set(kinds) == flipped
    assert set(kinds.values()) <= {"hash_mismatch", "unreadable_file"}
    for problem in report.problems:
        assert problem.path.endswith("data.parquet")
    assert report.partitions_checked == 4


def test_missing_manifest_is_rebuilt(lake: Lake) -> None:
    filled(lake)
    part = lake.partitions("nifty")[1]
    manifest_path = part.path.parent / "_manifest.json"
    original = json.loads(manifest_path.read_text())
    manifest_path.unlink()
    report = lake.verify(repair=True)
    assert [(p.kind, p.path) for p in report.problems] == [("missing_manifest", str(part.path))]
    rebuilt = json.loads(manifest_path.read_text())
    ts = pq.read_table(part.path).column("ts").cast("int64")
    low, high = pc.min_max(ts).values()
    assert rebuilt["file_sha256"] == sha256(part.path) == original["file_sha256"]
    assert rebuilt["rows"] == pq.read_metadata(part.path).num_rows == original["rows"] == 400
    assert (rebuilt["min_ts_ns"], rebuilt["max_ts_ns"]) == (low.as_py(), high.as_py())
    assert rebuilt["schema_fingerprint"] == original["schema_fingerprint"]
    assert lake.verify().ok


def test_stray_empty_missing_data_orphan_temp_and_pending(lake: Lake) -> None:
    filled(lake)
    base = lake.root / "bronze" / "nifty"
    parts = lake.partitions("nifty")
    (parts[0].path.parent / "notes.txt").write_text("hand edit")
    (base / "README").write_text("stray")
    (base / "date=2024-02-01").mkdir()
    temp = parts[1].path.parent / ".tmp-0123abcd.tmp"
    temp.write_bytes(b"PAR1 half a file")
    (parts[2].path.parent / "_manifest.json.pending").write_text("{not json")
    missing = base / "date=2024-02-02"
    missing.mkdir()
    (missing / "_manifest.json").write_text((parts[0].path.parent / "_manifest.json").read_text())

    report = lake.verify()
    found = {(p.kind, Path(p.path).relative_to(base).as_posix()) for p in report.problems}
    assert found == {
        ("stray_file", "date=2024-01-02/notes.txt"),
        ("stray_file", "README"),
        ("empty_partition", "date=2024-02-01"),
        ("orphan_temp", "date=2024-01-03/.tmp-0123abcd.tmp"),
        ("pending_commit", "date=2024-01-04/_manifest.json.pending"),
        ("missing_data", "date=2024-02-02/_manifest.json"),
    }
    # Nothing of it is visible to readers.
    assert lake.scan("nifty").collect().height == 1200
    assert lake.sql("SELECT count(*) AS n FROM nifty")["n"][0] == 1200

    actions = lake.vacuum()
    assert not temp.exists()
    assert not (base / "date=2024-02-01").exists()
    assert not (parts[2].path.parent / "_manifest.json.pending").exists()
    assert len(actions) == 3
    # vacuum leaves files it did not write; they stay reported until a person moves them.
    after = {p.kind for p in lake.verify().problems}
    assert after == {"stray_file", "missing_data"}
    assert (parts[0].path.parent / "notes.txt").exists()
    assert read_everywhere(parts[0].path) == row_set(
        make_trades(days=3, rows_per_day=400, seed=21).head(400)
    )


def test_vacuum_never_deletes_the_temp_file_of_a_writer_in_progress(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    ticklake.init_lake(root)
    paused, release = tmp_path / "paused", tmp_path / "release"
    writer = subprocess.Popen(
        [
            sys.executable,
            str(WRITER),
            str(root),
            "pause_in_commit",
            "--seed",
            "31",
            "--rows",
            "200",
            "--first-day",
            "2024-01-02",
            "--signal-file",
            str(paused),
            "--release-file",
            str(release),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not paused.exists():
            assert writer.poll() is None, writer.stderr.read() if writer.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.01)
        temps = temp_files(root)
        assert len(temps) == 1  # the writer's temp file, complete and not yet renamed

        impatient = ticklake.open_lake(root, lake={"lock_timeout_seconds": 0.3})
        with pytest.raises(LockTimeoutError, match="2024-01-02"):
            impatient.vacuum()
        with pytest.raises(LockTimeoutError):
            impatient.verify(repair=True)
        assert temp_files(root) == temps

        # A patient vacuum waits for the writer, then finds nothing to remove.
        patient = ticklake.open_lake(root)
        outcome: dict[str, object] = {}
        thread = threading.Thread(target=lambda: outcome.update(actions=patient.vacuum()))
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive() and temps[0].exists()
        release.write_text("go")
        thread.join(30)
        assert writer.wait(30) == 0, writer.stderr.read() if writer.stderr else ""
    finally:
        release.write_text("go")
        writer.wait(30)
    assert outcome["actions"] == []
    assert temp_files(root) == []
    lake = ticklake.open_lake(root)
    expected = make_trades(days=1, rows_per_day=200, seed=31, first_day=date(2024, 1, 2))
    assert row_set(lake.scan("nifty").collect()) == row_set(expected)
    assert lake.verify().ok


@pytest.mark.parametrize("seed", range(6))
def test_verify_reports_flipped_bits_in_manifests(lake: Lake, seed: int) -> None:
    filled(lake)
    part = lake.partitions("nifty")[seed % 3]
    manifest_path = part.path.parent / "_manifest.json"
    rng = random.Random(seed)
    text = manifest_path.read_bytes()
    # Flip a bit inside the JSON value of a field that describes the data file.
    field = rng.choice([b'"file_sha256"', b'"rows"', b'"file_bytes"', b'"dataset"', b"{"])
    start = text.index(field) + rng.randrange(len(field))
    flip_bit(manifest_path, start, rng.randrange(7))
    report = lake.verify()
    assert report.problems, "a flipped manifest went unnoticed"
    assert {p.kind for p in report.problems} <= {
        "hash_mismatch",
        "unreadable_file",
        "rows_mismatch",
    }
    assert {Path(p.path).parent for p in report.problems} == {part.path.parent}


def test_unreadable_manifest_is_reported_and_repaired(lake: Lake) -> None:
    filled(lake)
    part = lake.partitions("nifty")[0]
    manifest_path = part.path.parent / "_manifest.json"
    original = json.loads(manifest_path.read_text())
    manifest_path.write_text(manifest_path.read_text()[:40])  # torn by an outside tool
    report = lake.verify()
    assert [(p.kind, p.path) for p in report.problems] == [("unreadable_file", str(manifest_path))]
    assert "verify --repair" in report.problems[0].detail
    lake.verify(repair=True)
    rebuilt = json.loads(manifest_path.read_text())
    assert rebuilt["file_sha256"] == original["file_sha256"] == sha256(part.path)
    assert rebuilt["rows"] == original["rows"]
    assert lake.verify().ok


def test_unreadable_dataset_descriptor_is_reported(lake: Lake) -> None:
    filled(lake)
    lake.write("other", make_trades(days=1, rows_per_day=20, seed=22), schema="trades")
    descriptor = lake.root / "bronze" / "nifty" / "_dataset.json"
    flip_bit(descriptor, 0, 1)  # '{' becomes 'y': no longer JSON
    report = lake.verify()
    assert [(p.kind, p.path) for p in report.problems] == [("unreadable_file", str(descriptor))]
    assert report.partitions_checked == 1  # the other dataset is still checked


def test_vacuum_removes_sql_snapshots_of_dead_readers(lake: ticklake.Lake) -> None:
    import os

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    gone = lake.root / "cache" / "sql" / f"{dead_pid}-abc"
    live = lake.root / "cache" / "sql" / f"{os.getpid()}-def"
    for path in (gone, live):
        (path / "bronze").mkdir(parents=True)
    actions = lake.vacuum()
    assert any(f"{dead_pid}-abc" in a for a in actions)
    assert not gone.exists() and live.exists()
