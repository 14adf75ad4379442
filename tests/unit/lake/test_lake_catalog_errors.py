"""One broken dataset stays one broken dataset; unknown datasets get ticklake's message;
no connection auto-installs DuckDB extensions; ingest staging left behind is found."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from lakegen import make_trades
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app
from ticklake.errors import CorruptPartitionError, DatasetNotFoundError
from ticklake.lake import sql
from ticklake.lake.lake import Lake
from ticklake.lake.owners import process_start, write_owner
from ticklake.warehouse.db import Warehouse
from ticklake.web.api.lake import lake_status

runner = CliRunner()


def two_datasets(lake: Lake) -> Path:
    lake.write("nifty", make_trades(days=2, rows_per_day=100, seed=1), schema="trades")
    lake.write("other", make_trades(days=1, rows_per_day=20, seed=2), schema="trades")
    descriptor = lake.root / "bronze" / "other" / "_dataset.json"
    descriptor.write_text('{"format": 1, "layer": "bronze", "name": "other", "schema": ')
    return descriptor


def test_unreadable_descriptor_breaks_only_its_own_dataset(lake: Lake) -> None:
    descriptor = two_datasets(lake)
    assert lake.sql("SELECT count(*) AS n FROM bronze.nifty")["n"][0] == 200
    assert lake.read("nifty").height == 200
    for attempt in (
        lambda: lake.sql("SELECT count(*) FROM bronze.other"),
        lambda: lake.sql("SELECT count(*) FROM other"),
        lambda: lake.read("other"),
        lambda: lake.query_untrusted("SELECT count(*) FROM bronze.other"),
    ):
        with pytest.raises(CorruptPartitionError) as caught:
            attempt()
        message = str(caught.value)
        assert "\n" not in message and str(descriptor) in message
        assert "restore this file from a backup" in message
        assert "validation error" not in message  # no raw pydantic text

    status = runner.invoke(app, ["status", "--lake", str(lake.root)])
    assert status.exit_code == 0, status.output
    assert "bronze.nifty" in status.output and "unreadable" in status.output
    error_lines = [line for line in status.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "_dataset.json" in error_lines[0]
    query = runner.invoke(app, ["query", "SELECT * FROM bronze.other", "--lake", str(lake.root)])
    assert query.exit_code == 7 and "_dataset.json" in query.output

    data = lake_status(lake)
    assert [d["name"] for d in data["datasets"]] == ["bronze.nifty"]
    assert data["unreadable_datasets"][0]["name"] == "bronze.other"
    assert data["unreadable_datasets"][0]["path"] == str(descriptor)


def test_query_of_an_unknown_dataset_lists_the_known_ones(lake: Lake) -> None:
    with pytest.raises(
        DatasetNotFoundError, match=r"'bronze\.trades' is not in the lake.*\(none\)"
    ):
        lake.sql("SELECT * FROM bronze.trades")
    lake.write("nifty", make_trades(days=1, rows_per_day=10, seed=1), schema="trades")
    with pytest.raises(
        DatasetNotFoundError, match=r"'silver\.nifty'.*Known datasets: bronze\.nifty"
    ):
        lake.sql("SELECT * FROM silver.nifty")
    with pytest.raises(DatasetNotFoundError, match="'trades'"):
        lake.query_untrusted("SELECT * FROM trades")
    cli = runner.invoke(app, ["query", "SELECT * FROM gold.x", "--lake", str(lake.root)])
    assert cli.exit_code == 4
    assert "Known datasets: bronze.nifty" in cli.output and "Catalog Error" not in cli.output


def test_no_connection_autoinstalls_extensions(lake: Lake) -> None:
    lake.write("nifty", make_trades(days=1, rows_per_day=10, seed=1), schema="trades")
    setting = "SELECT current_setting('autoinstall_known_extensions') AS v"
    assert lake.sql(setting)["v"][0] is False
    con = sql.connect(lake)
    try:
        assert con.execute(setting).fetchone() == (False,)
    finally:
        con.close()
    with Warehouse(lake).connect() as con:
        assert con.execute(setting).fetchone() == (False,)


# ------------------------------------------------------------ staging
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_verify_reports_abandoned_staging_and_vacuum_removes_only_dead_owners(
    lake: Lake,
) -> None:
    base = lake.root / "_staging"
    dead, reused, live = base / "dead", base / "reused", base / "live"
    for directory in (dead, reused, live):
        directory.mkdir(parents=True)
        (directory / "part.parquet").write_bytes(b"x" * 2**20)
    host = socket.gethostname()
    (dead / "owner.json").write_text(json.dumps({"pid": _dead_pid(), "host": host, "start": 1}))
    start = process_start(os.getpid())
    assert start is not None
    # Our own pid, but another process's start time: a reused pid is not the owner.
    (reused / "owner.json").write_text(
        json.dumps({"pid": os.getpid(), "host": host, "start": start + 1})
    )
    write_owner(live)
    report = lake.verify()
    assert [(p.kind, Path(p.path).name) for p in report.problems] == [
        ("stale_staging", "dead"),
        ("stale_staging", "reused"),
    ]
    assert "1.0 MiB" in report.problems[0].detail and "gone" in report.problems[0].detail
    assert any("live" in note and "running" in note for note in report.notes)
    actions = lake.vacuum()
    assert sorted(a.split()[2] for a in actions if "staging" in a) == ["dead", "reused"]
    assert not dead.exists() and not reused.exists() and live.exists()
    assert lake.verify().ok


INTERRUPTED_INGEST = """
import os, sys
import ticklake
from ticklake.ingest.pipeline import ingest_files
from ticklake.ingest.readers import ReaderOptions

def stop(phase, index, total, label):
    if phase == "commit":
        os._exit(3)  # killed between staging and commit: no cleanup runs

lake = ticklake.open_lake(sys.argv[1])
ingest_files(lake, "csv", [sys.argv[2]], "trades",
             options=ReaderOptions(extra={"mapping": sys.argv[3]}), progress=stop)
"""


def test_an_interrupted_ingest_leaves_staging_that_verify_finds_and_vacuum_removes(
    lake: Lake, tmp_path: Path
) -> None:
    mapping = tmp_path / "map.yml"
    mapping.write_text(
        "schema: trades\ncolumns: {price: px, size: qty, trade_id: id, side: side}\n"
        "time: {column: time, unit: ms}\nconstants: {instrument: BTCUSDT, venue: test}\n"
    )
    src = tmp_path / "trades.csv"
    src.write_text("time,id,px,qty,side\n1704067200000,1,100,1,buy\n1704153600000,2,101,1,buy\n")
    proc = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_INGEST, str(lake.root), str(src), str(mapping)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    left = list((lake.root / "_staging").iterdir())
    assert len(left) == 1 and (left[0] / "owner.json").is_file()
    report = ticklake.open_lake(lake.root).verify()
    assert [p.kind for p in report.problems] == ["stale_staging"]
    assert any(f"removed staging {left[0].name}" in a for a in lake.vacuum())
    assert not left[0].exists()
