"""The SQL page's endpoints: the schema tree, read-only runs, the write switch
(``--allow-sql-writes``), CSV / Parquet downloads checked against ``lake.sql``."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration" / "_scripts"))

from _web_fixtures import make_client
from lakegen import make_trades

import ticklake
from ticklake.api import LakeSession
from ticklake.warehouse.db import WAREHOUSE_FILE, Warehouse

needs_sql_run = pytest.mark.skipif(
    not hasattr(LakeSession, "sql_run"),
    reason="LakeSession.sql_run (the warehouse's write path, another part of #15) is not there yet",
)


@pytest.fixture
def small_lake(tmp_path: Path) -> LakeSession:
    lake = ticklake.init_lake(tmp_path / "lake")
    lake.write("nifty", make_trades(days=2, rows_per_day=150, seed=3), schema="trades")
    return lake


@pytest.fixture
def client(small_lake: LakeSession) -> Iterator[Any]:
    test_client = make_client(small_lake.root)
    yield test_client
    test_client.app.state.jobs.shutdown()


@pytest.fixture
def writer(small_lake: LakeSession) -> Iterator[Any]:
    test_client = make_client(small_lake.root, allow_sql_writes=True)
    yield test_client
    test_client.app.state.jobs.shutdown()


def test_the_page_is_in_the_nav_and_read_only_by_default(client: Any, writer: Any) -> None:
    page = client.get("/sql").text
    assert '<a href="/sql"' in page and 'data-mode="read-only"' in page
    assert 'id="sql-write"' not in page  # no write switch on a read-only server
    assert 'id="sql-write"' in writer.get("/sql").text


def test_the_tree_lists_datasets_and_the_users_objects(
    client: Any, small_lake: LakeSession
) -> None:
    tree = client.get("/api/v1/sql/schema").json()
    assert tree["writes_allowed"] is False and tree["warehouse"] == []
    (bronze,) = tree["layers"]
    (nifty,) = bronze["datasets"]
    assert nifty["qualified"] == "bronze.nifty" and nifty["bare"] is True
    assert {"name": "price", "type": "float64"} in nifty["columns"]
    assert not (small_lake.root / WAREHOUSE_FILE).exists()  # looking created nothing
    with Warehouse(small_lake).connect(write=True) as con:
        con.execute("CREATE SCHEMA mine")
        con.execute("CREATE VIEW mine.big AS SELECT price FROM bronze.nifty WHERE price > 0")
        con.execute("CREATE TABLE main.notes AS SELECT 1 AS id")
    tree = client.get("/api/v1/sql/schema").json()
    objects = {o["qualified"]: o for s in tree["warehouse"] for o in s["objects"]}
    assert set(objects) == {"mine.big", "notes"}  # generated views are not listed twice
    assert objects["mine.big"]["kind"] == "view" and objects["notes"]["kind"] == "table"
    assert objects["mine.big"]["columns"] == [{"name": "price", "type": "DOUBLE"}]


def test_a_read_only_run_says_so_and_a_write_is_refused(
    client: Any, small_lake: LakeSession
) -> None:
    body = client.post("/api/v1/sql/run", json={"query": "SELECT count(*) AS n FROM nifty"})
    assert body.json()["mode"] == "read-only" and body.json()["rows"] == [{"n": 300}]
    refused = client.post("/api/v1/sql/run", json={"query": "CREATE VIEW v AS SELECT 1"})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "only SELECT queries are allowed here, got CREATE"
    switched = client.post(
        "/api/v1/sql/run", json={"query": "CREATE VIEW v AS SELECT 1", "write": True}
    )
    assert switched.status_code == 400 and "--allow-sql-writes" in switched.text
    assert not (small_lake.root / WAREHOUSE_FILE).exists()


def test_a_parse_error_is_one_line(client: Any) -> None:
    error = client.post("/api/v1/sql/run", json={"query": "SELEC 1"}).json()["error"]
    assert "does not parse" in error["message"] and "\n" not in error["message"]
    assert "LINE 1" in error["fields"]["detail"]  # DuckDB's caret is kept, aside


def test_a_write_needs_the_csrf_header_like_every_post(
    writer: Any, small_lake: LakeSession
) -> None:
    del writer.headers["X-Ticklake-CSRF"]
    response = writer.post(
        "/api/v1/sql/run", json={"query": "CREATE VIEW v AS SELECT 1", "write": True}
    )
    assert response.status_code == 403 and response.json()["error"]["type"] == "CsrfRejected"
    assert not (small_lake.root / WAREHOUSE_FILE).exists()


@needs_sql_run
def test_with_writes_allowed_a_view_is_made_and_then_listed(writer: Any) -> None:
    made = writer.post(
        "/api/v1/sql/run",
        json={
            "query": "CREATE VIEW big_trades AS SELECT * FROM bronze.nifty WHERE size > 100",
            "write": True,
        },
    )
    assert made.status_code == 200, made.text
    assert made.json()["mode"] == "write"
    tree = writer.get("/api/v1/sql/schema").json()
    assert "big_trades" in {o["qualified"] for s in tree["warehouse"] for o in s["objects"]}
    read = writer.post("/api/v1/sql/run", json={"query": "SELECT count(*) AS n FROM big_trades"})
    oracle = ticklake.open_lake(writer.app.state.lake.root).sql(
        "SELECT count(*) AS n FROM bronze.nifty WHERE size > 100"
    )
    assert read.json()["rows"] == [{"n": oracle["n"][0]}]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_downloads_match_the_trusted_query(client: Any, small_lake: LakeSession, fmt: str) -> None:
    query = "SELECT instrument, side, count(*) AS n, sum(size) AS volume FROM nifty GROUP BY ALL"
    response = client.post("/api/v1/sql/download", json={"query": query, "format": fmt})
    assert response.status_code == 200
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="ticklake-query-')
    assert disposition.endswith(f'.{fmt}"')
    data = io.BytesIO(response.content)
    got = pl.read_csv(data) if fmt == "csv" else pl.read_parquet(data)
    oracle = small_lake.sql(query)
    key = ["instrument", "side"]
    assert got.sort(key).rows() == oracle.sort(key).rows()
    assert response.headers["x-ticklake-truncated"] == "false"


def test_a_download_keeps_the_row_cap_and_the_refusals(client: Any) -> None:
    capped = client.post("/api/v1/sql/download", json={"query": "SELECT * FROM range(20000)"})
    assert capped.headers["x-ticklake-truncated"] == "true"
    assert pl.read_csv(io.BytesIO(capped.content)).height == 10_000
    refused = client.post("/api/v1/sql/download", json={"query": "COPY (SELECT 1) TO '/tmp/x.csv'"})
    assert refused.status_code == 400 and "only SELECT" in refused.json()["error"]["message"]


def test_serve_passes_the_write_flag(small_lake: LakeSession, monkeypatch: Any) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from ticklake.cli import app as cli

    seen: list[bool] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: seen.append(app.state.allow_sql_writes))
    runner = CliRunner()
    root = str(small_lake.root)
    assert runner.invoke(cli, ["serve", "--lake", root]).exit_code == 0
    assert runner.invoke(cli, ["serve", "--lake", root, "--allow-sql-writes"]).exit_code == 0
    assert seen == [False, True]
