"""The ingest pipeline end to end: staging, checks, quarantine, day commits, idempotency."""

from __future__ import annotations

import gzip
import shutil
import zipfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app
from ticklake.errors import IngestError
from ticklake.ingest.pipeline import ingest_files, ingest_frame
from ticklake.ingest.readers import ReaderOptions

IST = ZoneInfo("Asia/Kolkata")
NIFTY_FILES = ("2022-08-10.csv.gz", "2022-08-12.csv.gz", "2022-11-22.csv.gz")

MAPPING = """
schema: trades
columns: {price: px, size: qty, trade_id: id, side: side}
time: {column: time, unit: ms}
constants: {instrument: BTCUSDT, venue: test}
"""


def _raw_rows(path: Path) -> list[tuple[str, str]]:
    with gzip.open(path, "rt") as fh:
        return [tuple(line.strip().split(",")) for line in fh if line.strip()]  # type: ignore[misc]


@pytest.fixture
def lake(tmp_path: Path) -> ticklake.Lake:
    return ticklake.init_lake(tmp_path / "lake")


@pytest.fixture
def nifty_files(shared_data: Path, tmp_path: Path) -> list[Path]:
    out = tmp_path / "nifty"
    out.mkdir()
    for name in NIFTY_FILES:
        shutil.copy(shared_data / "nse-nifty50-index-1s" / name, out / name)
    return sorted(out.iterdir())


def test_real_index_files_commit_every_row_once(
    lake: ticklake.Lake, nifty_files: list[Path]
) -> None:
    summary = ingest_files(
        lake, "nse_index", [nifty_files[0].parent], "nifty", timezone="Asia/Kolkata"
    )
    assert not summary.failed
    expected: dict[str, int] = {}
    oracle_sum = 0.0
    for path in nifty_files:
        for stamp, value in _raw_rows(path):
            day = stamp[:10]
            expected[day] = expected.get(day, 0) + 1
            oracle_sum += float(value)
    assert summary.rows_read == sum(expected.values())
    assert summary.rows_committed == sum(expected.values())
    assert {str(p.date): p.rows for p in lake.partitions("nifty")} == expected
    got = lake.sql("select sum(price) as s, count(*) as n from bronze.nifty")
    assert got["n"][0] == sum(expected.values())
    assert got["s"][0] == pytest.approx(oracle_sum, rel=1e-12)
    # One hand-checked row: the first line of 2022-11-22 (IST wall clock -> UTC).
    stamp, value = _raw_rows(nifty_files[2])[0]
    utc = (
        datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
        .replace(tzinfo=IST)
        .astimezone(ZoneInfo("UTC"))
    )
    row = lake.read("nifty", filters=pl.col("ts") == utc)
    assert row["price"].to_list() == [float(value)]
    assert lake.verify().ok


def test_reingest_is_a_noop_and_force_changes_nothing(
    lake: ticklake.Lake, nifty_files: list[Path]
) -> None:
    ingest_files(lake, "nse_index", nifty_files, "nifty", timezone="Asia/Kolkata")
    shas = {p.date: p.manifest.file_sha256 for p in lake.partitions("nifty")}  # type: ignore[union-attr]
    again = ingest_files(lake, "nse_index", nifty_files, "nifty")
    assert len(again.skipped) == len(nifty_files)
    assert again.rows_read == 0 and again.days == []
    forced = ingest_files(lake, "nse_index", nifty_files, "nifty", force=True)
    assert forced.rows_read > 0 and forced.rows_added == 0
    assert not any(d.changed for d in forced.days)
    assert {p.date: p.manifest.file_sha256 for p in lake.partitions("nifty")} == shas  # type: ignore[union-attr]


def test_process_executor_writes_the_same_bytes_as_serial(
    tmp_path: Path, nifty_files: list[Path]
) -> None:
    serial = ticklake.init_lake(tmp_path / "serial")
    process = ticklake.init_lake(tmp_path / "process")
    ingest_files(serial, "nse_index", nifty_files, "nifty", executor="serial")
    ingest_files(process, "nse_index", nifty_files, "nifty", executor="process", workers=2)
    a = {p.date: p.manifest.file_sha256 for p in serial.partitions("nifty")}  # type: ignore[union-attr]
    b = {p.date: p.manifest.file_sha256 for p in process.partitions("nifty")}  # type: ignore[union-attr]
    assert a == b and len(a) == 3


def test_truncated_file_fails_alone_and_is_not_recorded(
    lake: ticklake.Lake, nifty_files: list[Path]
) -> None:
    broken = nifty_files[1]
    good_bytes = broken.read_bytes()
    broken.write_bytes(good_bytes[: len(good_bytes) // 2])
    summary = ingest_files(lake, "nse_index", nifty_files, "nifty")
    assert [f.label for f in summary.failed] == [str(broken)]
    assert str(broken) in (summary.failed[0].error or "")
    days = {str(p.date) for p in lake.partitions("nifty")}
    assert days == {"2022-08-10", "2022-11-22"}  # nothing of the truncated file
    assert "failed" in summary.line() and "1 failed" in summary.line()
    broken.write_bytes(good_bytes)  # fixed: the next run picks it up, skips the others
    again = ingest_files(lake, "nse_index", nifty_files, "nifty")
    assert len(again.skipped) == 2 and not again.failed
    assert {str(p.date) for p in lake.partitions("nifty")} == {
        "2022-08-10",
        "2022-08-12",
        "2022-11-22",
    }


def _write_trades_csv(path: Path, rows: list[str]) -> None:
    path.write_text("time,id,px,qty,side\n" + "\n".join(rows) + "\n")


def test_bad_rows_go_to_quarantine_with_reasons(lake: ticklake.Lake, tmp_path: Path) -> None:
    mapping = tmp_path / "map.yml"
    mapping.write_text(MAPPING)
    src = tmp_path / "trades.csv"
    _write_trades_csv(
        src,
        [
            "1704067200000,1,42000.5,0.1,buy",
            "1704067201000,2,-5,0.1,sell",  # negative price
            "not-a-time,3,42001,0.2,buy",  # unparseable time
            "1704067202000,4,42002,-1,sell",  # negative size
            "1704153600000,5,42100,0.3,buy",  # next day
        ],
    )
    summary = ingest_files(
        lake, "csv", [src], "trades", options=ReaderOptions(extra={"mapping": mapping})
    )
    assert summary.rows_read == 5
    assert summary.rows_committed == 2 and summary.rows_quarantined == 3
    kept = lake.read("trades").sort("ts")
    assert kept["trade_id"].to_list() == ["1", "5"]
    assert kept["price"].to_list() == [42000.5, 42100.0]
    q = pl.read_parquet(lake.root / "quarantine" / "trades" / "*" / "*.parquet")
    reasons = sorted(q["reason"].to_list())
    assert len(reasons) == 3
    assert any("price is not a finite positive number" in r for r in reasons)
    assert any("size is negative" in r for r in reasons)
    assert any(
        "time" in r and "not-a-time" in raw for r, raw in zip(q["reason"], q["raw"], strict=True)
    )
    assert set(q["source"]) == {str(src)}


def test_conflicting_rows_across_files_keep_the_first_and_quarantine_the_rest(
    lake: ticklake.Lake, tmp_path: Path
) -> None:
    mapping = tmp_path / "map.yml"
    mapping.write_text(MAPPING)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _write_trades_csv(a, ["1704067200000,1,100,1,buy", "1704067201000,2,101,1,buy"])
    _write_trades_csv(b, ["1704067200000,1,999,1,buy", "1704067201000,2,101,1,buy"])
    summary = ingest_files(
        lake, "csv", [a, b], "trades", options=ReaderOptions(extra={"mapping": mapping})
    )
    assert summary.rows_quarantined == 1
    got = lake.read("trades").sort("trade_id")
    assert got["price"].to_list() == [100.0, 101.0]
    q = pl.read_parquet(lake.root / "quarantine" / "trades" / "*" / "*conflicts.parquet")
    assert q.height == 1 and "999" in q["raw"][0]
    assert "same key" in q["reason"][0]


def test_zip_input_is_unpacked_and_zip_slip_is_refused(lake: ticklake.Lake, tmp_path: Path) -> None:
    mapping = tmp_path / "map.yml"
    mapping.write_text(MAPPING)
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("day1/trades.csv", "time,id,px,qty,side\n1704067200000,1,100,1,buy\n")
    options = ReaderOptions(extra={"mapping": mapping})
    summary = ingest_files(lake, "csv", [good], "trades", options=options)
    assert summary.rows_committed == 1

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escaped.csv", "time,id,px,qty,side\n1704067200000,9,1,1,buy\n")
    with pytest.raises(IngestError, match="zip-slip"):
        ingest_files(lake, "csv", [evil], "trades", options=options)
    assert not (tmp_path / "escaped.csv").exists()
    assert not any((lake.root).rglob("escaped.csv"))
    assert not (lake.root / "_staging").exists()


def test_python_frame_ingest(lake: ticklake.Lake) -> None:
    frame = pl.DataFrame(
        {
            "ts": [datetime(2024, 1, 2, 10, tzinfo=ZoneInfo("UTC"))] * 2,
            "instrument": ["ETHUSDT", "ETHUSDT"],
            "trade_id": ["a", "b"],
            "price": [2300.0, float("nan")],
            "size": [1.0, 2.0],
        }
    )
    summary = ingest_frame(lake, frame, "eth", schema="trades")
    assert summary.rows_committed == 1 and summary.rows_quarantined == 1
    assert lake.read("eth")["trade_id"].to_list() == ["a"]


def test_cli_ingest_lists_formats_and_reports(tmp_path: Path, nifty_files: list[Path]) -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["ingest", "--list-formats"])
    assert listing.exit_code == 0
    for name in ("nse_options", "lobster_messages", "databento_mbo", "binance_trades", "csv"):
        assert name in listing.output
    lake_dir = tmp_path / "clilake"
    ticklake.init_lake(lake_dir)
    out = runner.invoke(
        app, ["ingest", "nse_index", *map(str, nifty_files), "-d", "nifty", "--lake", str(lake_dir)]
    )
    assert out.exit_code == 0, out.output
    assert "3 file(s) (0 already ingested, 0 failed)" in out.output
    missing = runner.invoke(
        app, ["ingest", "nse_index", str(nifty_files[0]), "--lake", str(lake_dir)]
    )
    assert missing.exit_code == 9 and "--dataset" in missing.output


def test_lake_ingest_accepts_pandas_frames_and_files(
    lake: ticklake.Lake, nifty_files: list[Path]
) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2024-01-02 10:00:00", "2024-01-02 10:00:01"], utc=True),
            "instrument": ["X", "X"],
            "trade_id": ["1", "2"],
            "price": [101.5, -1.0],
            "size": [2.0, 1.0],
        }
    )
    summary = lake.ingest(frame, "pandas_trades", schema="trades")
    assert (summary.rows_committed, summary.rows_quarantined) == (1, 1)
    assert lake.read("pandas_trades")["price"].to_list() == [101.5]
    files = lake.ingest(nifty_files[:1], "nifty", format="nse_index")
    assert files.rows_committed == len(_raw_rows(nifty_files[0]))
    with pytest.raises(ticklake.TicklakeError, match="needs schema="):
        lake.ingest(frame, "x")
