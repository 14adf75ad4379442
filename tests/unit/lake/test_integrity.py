"""The lake notices what happened to its files (issue 13).

Deleted, renamed and overwritten partitions against the partition record; repair that
never blesses an unproven file; bit flips refused on every read path; re-ingest that
restores a missing day. Oracles: plain pyarrow / hashlib reads of the files and the
raw source rows, never ticklake's own answers.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from lakecheck import sha256
from lakegen import make_trades
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app
from ticklake.errors import CommitError, CorruptPartitionError
from ticklake.ingest.pipeline import ingest_files
from ticklake.ingest.readers import ReaderOptions
from ticklake.lake import commit, integrity
from ticklake.lake.advice import rebuild_advice
from ticklake.lake.lake import Lake
from ticklake.lake.manifest import Lineage, SourceRef

runner = CliRunner()
NIFTY_FILES = ("2022-08-10.csv.gz", "2022-08-12.csv.gz", "2022-11-22.csv.gz")
MAPPING = """
schema: trades
columns: {price: px, size: qty, trade_id: id, side: side}
time: {column: time, unit: ms}
constants: {instrument: BTCUSDT, venue: test}
"""


def filled(lake: Lake, days: int = 3) -> Lake:
    lake.write(
        "nifty",
        make_trades(days=days, rows_per_day=400, seed=21),
        schema="trades",
        timezone="Asia/Kolkata",
    )
    return lake


def kinds(report) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(p.kind, Path(p.path).name) for p in report.problems]


def arrow_rows(path: Path) -> set[tuple]:
    """The rows of a data file read by plain pyarrow (page checksums verified)."""
    table = pq.read_table(path, page_checksum_verification=True)
    return set(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))


def silent_flip(path: Path) -> int:
    """Flip one byte inside a data page of ``path`` (size unchanged) such that plain
    Polars reads the file without an error but returns different values; return the
    offset. This is the damage page checksums exist for."""
    original = pl.read_parquet(path)
    meta = pq.read_metadata(path)
    column = meta.row_group(0).column(meta.schema.names.index("price"))
    data = path.read_bytes()
    start = column.data_page_offset + 32
    for offset in range(start, start + column.total_compressed_size - 64):
        damaged = bytearray(data)
        damaged[offset] ^= 0x10
        path.write_bytes(bytes(damaged))
        try:
            if not pl.read_parquet(path).equals(original):
                return offset
        except Exception:
            pass
    raise AssertionError("no silent flip found")


# ------------------------------------------------------------ partition record
def test_every_commit_records_the_partition_outside_its_directory(lake: Lake) -> None:
    filled(lake)
    for part in lake.partitions("nifty"):
        record = lake.root / "bronze/nifty/_partitions" / f"date={part.date}.json"
        manifest = part.path.parent / "_manifest.json"
        assert json.loads(record.read_text()) == json.loads(manifest.read_text())
        assert json.loads(record.read_text())["file_sha256"] == sha256(part.path)


def test_a_commit_interrupted_before_its_record_is_rolled_forward(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    filled(lake)
    new = make_trades(days=1, rows_per_day=50, seed=99, first_day=date(2024, 1, 3))

    def fail(step: str) -> None:
        if step == "record":
            raise OSError(5, "injected")

    monkeypatch.setattr(commit, "FAULT_HOOK", fail)
    with pytest.raises(CommitError, match="'record'"):
        lake.write("nifty", new)
    monkeypatch.setattr(commit, "FAULT_HOOK", None)
    # The new file is committed (manifest in place); readers use it, the record lags.
    assert lake.read("nifty", start="2024-01-03", end="2024-01-03").height == 450
    assert kinds(lake.verify()) == [("record_mismatch", "date=2024-01-03.json")]
    repaired = lake.verify(repair=True)
    assert any("recorded the partition" in line for line in repaired.repaired)
    assert lake.verify().ok


# ------------------------------------------------------------ deleted partitions
@pytest.fixture
def nifty_files(shared_data: Path, tmp_path: Path) -> list[Path]:
    out = tmp_path / "nifty"
    out.mkdir()
    for name in NIFTY_FILES:
        shutil.copy(shared_data / "nse-nifty50-index-1s" / name, out / name)
    return sorted(out.iterdir())


@pytest.mark.shared_data
def test_deleted_partition_is_reported_and_a_reingest_restores_it(
    lake: Lake, nifty_files: list[Path]
) -> None:
    ingest_files(lake, "nse_index", nifty_files, "nifty", timezone="Asia/Kolkata")
    before = {p.date: (sha256(p.path), arrow_rows(p.path)) for p in lake.partitions("nifty")}
    victim = lake.root / "bronze" / "nifty" / "date=2022-08-12"
    shutil.rmtree(victim)

    report = lake.verify()
    assert kinds(report) == [("missing_partition", "date=2022-08-12")]
    detail = report.problems[0].detail
    assert "2022-08-12" in detail
    assert f"ticklake ingest nse_index {nifty_files[1]} --dataset nifty" in detail
    cli = runner.invoke(app, ["lake", "verify", "--lake", str(lake.root)])
    assert cli.exit_code == 7 and "missing_partition" in cli.output

    again = ingest_files(lake, "nse_index", nifty_files, "nifty")
    assert sorted(f.label for f in again.skipped) == [str(nifty_files[0]), str(nifty_files[2])]
    assert [d.day for d in again.days] == ["2022-08-12"]
    after = {p.date: (sha256(p.path), arrow_rows(p.path)) for p in lake.partitions("nifty")}
    assert after == before  # the same rows, byte for byte the same file
    assert lake.verify().ok
    # The ledger still knows every day of every source: a third run does nothing.
    third = ingest_files(lake, "nse_index", nifty_files, "nifty")
    assert len(third.skipped) == 3 and third.days == []


def test_reingest_restores_only_the_missing_day_of_a_source(lake: Lake, tmp_path: Path) -> None:
    mapping = tmp_path / "map.yml"
    mapping.write_text(MAPPING)
    src = tmp_path / "trades.csv"
    src.write_text(
        "time,id,px,qty,side\n"
        "1704067200000,1,42000.5,0.1,buy\n"  # 2024-01-01 00:00 UTC
        "1704067260000,2,42001.0,0.2,sell\n"
        "1704153600000,3,42100.0,0.3,buy\n"  # 2024-01-02 00:00 UTC
        "1704153660000,4,42101.5,0.4,sell\n"
    )
    options = ReaderOptions(extra={"mapping": mapping})
    ingest_files(lake, "csv", [src], "trades", options=options, timezone="UTC")
    day2 = lake.root / "bronze" / "trades" / "date=2024-01-02"
    day2_rows = arrow_rows(day2 / "data.parquet")
    # A correction of day 1 (new wins), then day 2's partition is deleted.
    fix = lake.read("trades").filter(pl.col("trade_id") == "1").with_columns(price=pl.lit(42000.75))
    lake.write("trades", fix)
    day1 = lake.root / "bronze" / "trades" / "date=2024-01-01" / "data.parquet"
    day1_sha = sha256(day1)
    shutil.rmtree(day2)

    again = ingest_files(lake, "csv", [src], "trades", options=options)
    assert [d.day for d in again.days] == ["2024-01-02"]
    assert arrow_rows(day2 / "data.parquet") == day2_rows
    assert sha256(day1) == day1_sha  # the intact day keeps its correction
    prices = pl.read_parquet(day1).sort("trade_id")["price"].to_list()
    assert prices == [42000.75, 42001.0]
    assert lake.verify().ok


# ------------------------------------------------------------ misplaced partitions
def test_renamed_partition_directory_is_reported_and_refused(lake: Lake) -> None:
    filled(lake)
    base = lake.root / "bronze" / "nifty"
    (base / "date=2024-01-04").rename(base / "date=2024-01-09")
    report = lake.verify()
    assert kinds(report) == [
        ("misplaced_partition", "date=2024-01-09"),
        ("missing_partition", "date=2024-01-04"),
    ]
    assert "date=2024-01-04" in report.problems[0].detail
    with pytest.raises(CorruptPartitionError, match="date=2024-01-09: holds the partition of"):
        lake.scan("nifty").collect()
    with pytest.raises(CorruptPartitionError, match="date=2024-01-04"):
        lake.sql("SELECT count(*) FROM bronze.nifty")
    repaired = lake.verify(repair=True)
    assert any("moved the unproven files" in line for line in repaired.repaired)
    assert kinds(lake.verify()) == [("missing_partition", "date=2024-01-04")]
    moved = list((lake.root / "_corrupt" / "bronze" / "nifty").glob("date=2024-01-09-*"))
    assert len(moved) == 1 and (moved[0] / "NOTE.txt").is_file()
    assert lake.read("nifty").height == 800  # the two intact days


def test_another_days_files_copied_in_are_reported(lake: Lake) -> None:
    filled(lake)
    base = lake.root / "bronze" / "nifty"
    # 1. data and manifest of 01-02 copied over 01-03
    for name in ("data.parquet", "_manifest.json"):
        shutil.copy(base / "date=2024-01-02" / name, base / "date=2024-01-03" / name)
    # 2. data and a hand-edited manifest (date changed) of 01-02 copied over 01-04
    shutil.copy(
        base / "date=2024-01-02" / "data.parquet", base / "date=2024-01-04" / "data.parquet"
    )
    manifest = json.loads((base / "date=2024-01-02" / "_manifest.json").read_text())
    manifest["date"] = "2024-01-04"
    (base / "date=2024-01-04" / "_manifest.json").write_text(json.dumps(manifest))
    report = lake.verify()
    assert kinds(report) == [
        ("misplaced_partition", "date=2024-01-03"),
        ("misplaced_partition", "date=2024-01-04"),
    ]
    assert "not bronze/nifty/date=2024-01-03" in report.problems[0].detail
    assert "trading day 2024-01-02" in report.problems[1].detail
    with pytest.raises(CorruptPartitionError):
        lake.read("nifty", start="2024-01-03", end="2024-01-03")
    # Only the data file copied in (the day's own manifest stays): its hash betrays it.
    lake2 = ticklake.init_lake(lake.root.parent / "lake2")
    filled(lake2)
    b2 = lake2.root / "bronze" / "nifty"
    shutil.copy(b2 / "date=2024-01-02" / "data.parquet", b2 / "date=2024-01-03" / "data.parquet")
    assert kinds(lake2.verify()) == [("hash_mismatch", "data.parquet")]


# ------------------------------------------------------------ repair never launders
def test_repair_moves_a_flipped_file_with_an_unreadable_manifest_aside(lake: Lake) -> None:
    filled(lake)
    part = lake.partitions("nifty")[1]
    silent_flip(part.path)
    damaged_sha = sha256(part.path)
    manifest = part.path.parent / "_manifest.json"
    manifest.write_text(manifest.read_text()[:40])
    report = lake.verify(repair=True)
    assert ("unreadable_file", "_manifest.json") in kinds(report)
    assert any(
        "moved the unproven files" in line and "ticklake ingest" in line for line in report.repaired
    )
    moved = next((lake.root / "_corrupt" / "bronze" / "nifty").glob("date=2024-01-03-*"))
    assert sha256(moved / "data.parquet") == damaged_sha
    assert "ticklake ingest" in (moved / "NOTE.txt").read_text()
    second = lake.verify()
    assert not second.ok  # never "ok" with a day lost
    assert kinds(second) == [("missing_partition", "date=2024-01-03")]


def test_repair_of_a_flipped_file_keeps_reporting_it_until_rebuilt(lake: Lake) -> None:
    filled(lake)
    part = lake.partitions("nifty")[0]
    silent_flip(part.path)
    assert kinds(lake.verify()) == [("hash_mismatch", "data.parquet")]
    lake.verify(repair=True)
    assert kinds(lake.verify()) == [("missing_partition", "date=2024-01-02")]
    # Rebuilding the day (here: writing its rows again) makes the lake whole.
    lake.write("nifty", make_trades(days=3, rows_per_day=400, seed=21).head(400))
    assert lake.verify().ok


def test_repair_restores_an_altered_manifest_from_the_record(lake: Lake) -> None:
    filled(lake)
    part = lake.partitions("nifty")[2]
    manifest = part.path.parent / "_manifest.json"
    original = manifest.read_text()
    body = json.loads(original)
    body["file_sha256"] = "0" * 64  # parses, but names another file
    manifest.write_text(json.dumps(body))
    report = lake.verify()
    assert kinds(report) == [("hash_mismatch", "data.parquet")]
    assert "equals the partition record" in report.problems[0].detail
    lake.verify(repair=True)
    assert json.loads(manifest.read_text()) == json.loads(original)  # lineage included
    assert lake.verify().ok


def test_without_a_record_repair_proves_by_page_checksums(lake: Lake) -> None:
    filled(lake)
    parts = lake.partitions("nifty")
    shutil.rmtree(lake.root / "bronze" / "nifty" / "_partitions", ignore_errors=True)
    intact, damaged = parts[0].path, parts[1].path
    for path in (intact, damaged):
        (path.parent / "_manifest.json").unlink()
    silent_flip(damaged)
    report = lake.verify(repair=True)
    assert ("missing_manifest", "data.parquet") in kinds(report)
    lines = "\n".join(report.repaired)
    assert "date=2024-01-02: rebuilt the manifest from the data file" in lines
    assert "date=2024-01-03: moved the unproven files" in lines and "page checksum" in lines
    assert (intact.parent / "_manifest.json").is_file() and not damaged.exists()


# ------------------------------------------------------------ bit flips on read
def test_flipped_byte_is_an_error_on_every_read_path(lake: Lake) -> None:
    filled(lake)
    lake.read("nifty")  # verified and remembered by this process...
    part = lake.partitions("nifty")[1]
    size = part.path.stat().st_size
    silent_flip(part.path)  # ...then damaged in place
    assert part.path.stat().st_size == size
    match = r"date=2024-01-03/data\.parquet: its sha256 .* verify --repair"
    with pytest.raises(CorruptPartitionError, match=match):
        lake.scan("nifty").collect()
    with pytest.raises(CorruptPartitionError, match=match):
        lake.read("nifty", columns=["price"])
    with pytest.raises(CorruptPartitionError, match=match):
        lake.sql("SELECT sum(price) FROM bronze.nifty")
    with pytest.raises(CorruptPartitionError, match=match):
        lake.query_untrusted("SELECT sum(price) FROM nifty")
    cli = runner.invoke(app, ["query", "SELECT sum(price) FROM nifty", "--lake", str(lake.root)])
    assert cli.exit_code == 7
    assert "date=2024-01-03/data.parquet" in cli.output and "Traceback" not in cli.output
    # A scan of the intact days still reads (SQL checks every partition of the datasets
    # a query names, so it refuses the whole dataset until the day is rebuilt).
    assert lake.read("nifty", start="2024-01-02", end="2024-01-02").height == 400
    assert lake.read("nifty", start="2024-01-04", end="2024-01-04").height == 400


def test_a_merge_refuses_to_rewrite_a_damaged_partition(lake: Lake) -> None:
    filled(lake)
    part = lake.partitions("nifty")[0]
    silent_flip(part.path)
    damaged = sha256(part.path)
    extra = make_trades(days=1, rows_per_day=10, seed=5, first_day=date(2024, 1, 2))
    with pytest.raises(CorruptPartitionError, match="date=2024-01-02"):
        lake.write("nifty", extra)
    assert sha256(part.path) == damaged  # not laundered into a fresh, valid hash


def test_the_check_is_cached_per_file_version(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    filled(lake)
    integrity.forget_verified()
    hashed: list[str] = []
    real, real_fast = integrity.hash_file, integrity.fast_hash_file

    def counting(path: Path):  # type: ignore[no-untyped-def]
        hashed.append(path.parent.name)
        return real(path)

    def counting_fast(path: Path):  # type: ignore[no-untyped-def]
        hashed.append(path.parent.name)
        return real_fast(path)

    monkeypatch.setattr(integrity, "hash_file", counting)
    monkeypatch.setattr(integrity, "fast_hash_file", counting_fast)
    lake.read("nifty")
    lake.read("nifty")
    lake.sql("SELECT count(*) FROM bronze.nifty")
    assert sorted(hashed) == ["date=2024-01-02", "date=2024-01-03", "date=2024-01-04"]
    lake.write("nifty", make_trades(days=1, rows_per_day=5, seed=8, first_day=date(2024, 1, 3)))
    lake.read("nifty")
    assert sorted(hashed).count("date=2024-01-03") == 2  # the new file is hashed once


def test_a_commit_records_the_files_xxh3_and_a_read_checks_it_without_sha256(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    import xxhash

    filled(lake)
    for part in lake.partitions("nifty"):
        manifest = part.manifest
        assert manifest is not None
        data = part.path.read_bytes()
        # Independent: the digests of the bytes on disk, by the libraries directly.
        assert manifest.file_sha256 == hashlib.sha256(data).hexdigest()
        assert manifest.file_xxh3_128 == xxhash.xxh3_128(data).hexdigest()
    integrity.forget_verified()

    def no_sha(path: Path):  # type: ignore[no-untyped-def]
        raise AssertionError(f"sha256 of {path} on the fast path")

    monkeypatch.setattr(integrity, "hash_file", no_sha)
    assert lake.read("nifty").height == 1200


def test_the_fast_check_defers_to_sha256_for_old_manifests_and_damage(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    filled(lake)
    old, damaged = lake.partitions("nifty")[0], lake.partitions("nifty")[1]
    # A manifest written before the xxh3 digest existed: checked by sha256, and read.
    manifest_path = old.path.with_name("_manifest.json")
    body = json.loads(manifest_path.read_text())
    body.pop("file_xxh3_128")
    manifest_path.write_text(json.dumps(body))
    record = integrity.try_read_record(
        integrity.PartitionRef(lake.root, "bronze", "nifty", old.date)
    )
    assert record is not None
    record_path = integrity.PartitionRef(lake.root, "bronze", "nifty", old.date).record_path
    record_body = json.loads(record_path.read_text())
    record_body.pop("file_xxh3_128", None)
    record_path.write_text(json.dumps(record_body))
    integrity.forget_verified()
    shas: list[str] = []
    real = integrity.hash_file

    def counting(path: Path):  # type: ignore[no-untyped-def]
        shas.append(path.parent.name)
        return real(path)

    monkeypatch.setattr(integrity, "hash_file", counting)
    assert lake.read("nifty", start=old.date, end=old.date).height == 400
    assert shas == [old.path.parent.name]
    # A wrong xxh3 in an intact file's manifest is not an error: sha256 decides.
    path = damaged.path.with_name("_manifest.json")
    body = json.loads(path.read_text())
    body["file_xxh3_128"] = "0" * 32
    path.write_text(json.dumps(body))
    assert lake.read("nifty", start=damaged.date, end=damaged.date).height == 400
    # A flipped bit fails the fast check, and sha256 then refuses it.
    integrity.forget_verified()
    silent_flip(damaged.path)
    with pytest.raises(CorruptPartitionError, match="its sha256"):
        lake.read("nifty", start=damaged.date, end=damaged.date)


# ------------------------------------------------------------ rebuild advice
def test_advice_names_the_command_of_each_layer(lake: Lake) -> None:
    filled(lake)
    day = date(2024, 1, 3)
    lake.create_dataset("bars_1m", "bars", layer="silver", timezone="Asia/Kolkata")
    lake.create_dataset("nifty", "trades", layer="silver", timezone="Asia/Kolkata")
    bars = Lineage(
        sources=(SourceRef(path="bronze/nifty/date=2024-01-03/data.parquet", sha256="a" * 64),),
        spec_hash="b" * 64,
        ticklake_version="x",
    )
    assert rebuild_advice(lake, "silver", "bars_1m", day, bars) == (
        "rebuild the bars: `ticklake bars build --dataset bronze.nifty --interval 1m "
        "--out bars_1m --start 2024-01-03 --end 2024-01-03`"
    )
    lake.create_dataset("bars_5m", "bars", layer="silver", timezone="Asia/Kolkata")
    rolled = Lineage(
        sources=(SourceRef(path="silver/bars_1m/date=2024-01-03/data.parquet", sha256="c" * 64),),
        ticklake_version="x",
    )
    assert "`ticklake bars rollup --dataset silver.bars_1m --interval 5m" in rebuild_advice(
        lake, "silver", "bars_5m", day, rolled
    )
    assert rebuild_advice(lake, "silver", "nifty", day, None) == (
        "promote the day again from bronze: "
        "`ticklake validate bronze.nifty --start 2024-01-03 --end 2024-01-03 --promote`"
    )
    gold = Lineage(spec_hash="d" * 64, ticklake_version="x")
    runs = lake.root / "runs" / "analytics-1"
    runs.mkdir(parents=True)
    (runs / "run.json").write_text(json.dumps({"kind": "analytics", "spec_hash": "d" * 64}))
    advice = rebuild_advice(lake, "gold", "greeks", day, gold)
    assert "run analytics-1" in advice
    assert "`ticklake analytics run PIPELINE --start 2024-01-03 --end 2024-01-03`" in advice


# ------------------------------------------------------------ run outputs
def _run(lake: Lake) -> Path:
    run = lake.root / "runs" / "short_straddle-20240110T000000-abc123"
    day = run / "days" / "2024-01-02"
    day.mkdir(parents=True)
    frame = make_trades(days=1, rows_per_day=30, seed=3)
    frame.write_parquet(run / "trades.parquet")
    frame.head(10).write_parquet(day / "trades.parquet")
    (day / "summary.json").write_text('{"fills": 10}\n')
    ledger = {
        "run_id": run.name,
        "status": "complete",
        "outputs": {"trades.parquet": sha256(run / "trades.parquet")},
        "days": {
            "2024-01-02": {
                "status": "done",
                "outputs": {n: sha256(day / n) for n in ("trades.parquet", "summary.json")},
            }
        },
    }
    (run / "run.json").write_text(json.dumps(ledger))
    return run


def test_verify_rehashes_run_outputs(lake: Lake) -> None:
    filled(lake)
    run = _run(lake)
    clean = lake.verify()
    assert clean.ok
    data = bytearray((run / "trades.parquet").read_bytes())
    data[len(data) // 2] ^= 0x01
    (run / "trades.parquet").write_bytes(bytes(data))
    (run / "days" / "2024-01-02" / "summary.json").unlink()
    report = lake.verify()
    assert [(p.kind, Path(p.path).relative_to(run).as_posix()) for p in report.problems] == [
        ("run_output_missing", "days/2024-01-02/summary.json"),
        ("run_output_changed", "trades.parquet"),
    ]
    assert f"ticklake backtest resume {run.name}" in report.problems[1].detail
    assert clean.run_files_checked == 3


def test_digest_helper_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"tick" * 300_000)
    assert integrity.hash_file(path)[0] == hashlib.sha256(path.read_bytes()).hexdigest()
