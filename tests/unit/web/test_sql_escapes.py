"""Escape attempts on the SQL box, over HTTP (``POST /api/v1/sql/run``, read-only) and
at :func:`run_untrusted_sql` itself. Each is refused or contained with a one-line error
(never a 500), and the file system is checked, not only the answer: nothing is written
in the lake or outside it, and a secret file outside the lake (reached directly, by a
relative path, through a symlink inside the lake, or by a user's warehouse view) never
shows up in an answer.

The lake holds a warehouse with the user's own objects, among them views whose SQL
text reads outside the lake: they were written by the user, so they must be held to
the same rules as a query typed into the box."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration" / "_scripts"))

from _web_fixtures import make_client
from lakegen import make_trades

import ticklake
from ticklake.errors import QueryError, ResultTooLargeError
from ticklake.lake.sql import run_untrusted_sql
from ticklake.warehouse.db import Warehouse

SECRET = "s3cret-" + hashlib.sha256(b"ticklake-escapes").hexdigest()[:16]
ENV_NAME = "TICKLAKE_ESCAPE_TEST_SECRET"


def _files(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every file under ``root`` (symlinks not followed) with its sha256."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts and rel.parts[0] in skip:
            continue
        if path.is_symlink():
            out[rel.as_posix()] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def escape_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("escapes")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET + "\n")
    (outside / "secret.csv").write_text(f"a,b\n{SECRET},1\n")
    lake = ticklake.init_lake(base / "lake")
    settings = (lake.root / "ticklake.toml").read_text()
    settings = settings.replace('memory_limit = "2GB"', 'memory_limit = "256MB"')
    settings = settings.replace("timeout_seconds = 30.0", "timeout_seconds = 2.0")
    settings = settings.replace("max_result_mib = 256", "max_result_mib = 8")
    (lake.root / "ticklake.toml").write_text(settings)
    lake = ticklake.open_lake(lake.root)
    lake.write("nifty", make_trades(days=2, rows_per_day=200, seed=5), schema="trades")
    # Symlinks inside the lake pointing outside it: a file and a directory.
    (lake.root / "leak.txt").symlink_to(outside / "secret.txt")
    (lake.root / "bronze" / "leak").symlink_to(outside, target_is_directory=True)
    with Warehouse(lake).connect(write=True) as con:
        con.execute("CREATE SCHEMA analysis")
        con.execute(
            "CREATE VIEW analysis.daily AS "
            "SELECT date, count(*) AS n FROM bronze.nifty GROUP BY date"
        )
        con.execute("CREATE TABLE main.notes AS SELECT 1 AS id, 'kept' AS note")
        evil = {
            "passwd": "SELECT * FROM read_csv('/etc/passwd')",
            "outside_csv": f"SELECT * FROM read_csv('{outside}/secret.csv')",
            "relative": "SELECT * FROM read_text('../outside/secret.txt')",
            "via_symlink": f"SELECT * FROM read_text('{lake.root}/leak.txt')",
            "via_dir_symlink": f"SELECT * FROM read_text('{lake.root}/bronze/leak/secret.txt')",
            "root_glob": "SELECT * FROM glob('/*')",
        }
        for name, body in evil.items():
            # Made by the user's own trusted connection (it may read anything, and DuckDB
            # binds a view when it is made); the box must still refuse to run it.
            con.execute(f"CREATE VIEW analysis.{name} AS {body}")
    return lake.root


@pytest.fixture
def client(escape_lake: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv(ENV_NAME, SECRET)
    test_client = make_client(escape_lake)
    yield test_client
    test_client.app.state.jobs.shutdown()


# (query template, what the one-line error says). {lake} and {outside} are filled in.
REFUSED = [
    ("ATTACH '{outside}/other.db' AS other", "only SELECT"),
    ("ATTACH '{lake}/warehouse.duckdb' AS w2", "only SELECT"),
    ("DETACH _warehouse", "only SELECT"),
    ("COPY (SELECT 1) TO '{outside}/copied.csv'", "only SELECT"),
    ("COPY bronze.nifty TO '{lake}/copied.parquet' (FORMAT parquet)", "only SELECT"),
    ("EXPORT DATABASE '{outside}/dump'", "only SELECT"),
    ("INSTALL httpfs", "only SELECT"),
    ("LOAD httpfs", "only SELECT"),
    ("SET enable_external_access = true", "only SELECT"),
    ("RESET allowed_directories", "only SELECT"),
    ("PRAGMA database_list", "only SELECT"),
    ("CALL pragma_version()", "only SELECT"),
    ("CREATE TABLE t AS SELECT 1", "only SELECT"),
    ("CREATE VIEW analysis.mine AS SELECT 1", "only SELECT"),
    ("INSERT INTO notes VALUES (2, 'x')", "only SELECT"),
    ("UPDATE notes SET note = 'changed'", "only SELECT"),
    ("DELETE FROM notes", "only SELECT"),
    ("DROP VIEW analysis.daily", "only SELECT"),
    ("SELECT 1; COPY (SELECT 1) TO '{outside}/copied.csv'", "exactly one statement"),
    ("SELECT 1 -- a comment ;\n; DROP TABLE notes", "exactly one statement"),
    ("SELECT 1 /* ; */ ; ATTACH '{outside}/other.db'", "exactly one statement"),
    ("SELECT ';' AS s; DROP TABLE notes", "exactly one statement"),
    ("/* SELECT */ DROP TABLE notes", "only SELECT"),
    ("SELECT * FROM query('COPY (SELECT 1) TO ''{outside}/copied.csv''')", "single SELECT"),
    ("SELECT * FROM read_csv('/etc/passwd')", "disabled by configuration"),
    ("SELECT * FROM read_text('/etc/passwd')", "disabled by configuration"),
    ("SELECT * FROM read_blob('/etc/passwd')", "disabled by configuration"),
    ("SELECT * FROM read_csv('{outside}/secret.csv')", "disabled by configuration"),
    ("SELECT * FROM '{outside}/secret.csv'", "disabled by configuration"),
    ("SELECT * FROM sniff_csv('{outside}/secret.csv')", "disabled by configuration"),
    ("SELECT * FROM read_json_auto('{outside}/secret.csv')", "disabled by configuration"),
    ("SELECT * FROM parquet_metadata('/etc/passwd')", "disabled by configuration"),
    ("SELECT * FROM glob('/')", "disabled by configuration"),
    ("SELECT * FROM glob('/*')", "disabled by configuration"),
    ("SELECT * FROM read_parquet('../../x')", "disabled by configuration"),
    ("SELECT * FROM read_text('../outside/secret.txt')", "disabled by configuration"),
    ("SELECT * FROM read_text('{lake}/../outside/secret.txt')", "disabled by configuration"),
    ("SELECT * FROM read_parquet('{lake}/bronze/../../outside/x.parquet')", "disabled by"),
    ("SELECT * FROM read_text('{lake}/leak.txt')", "disabled by configuration"),
    ("SELECT * FROM read_text('{lake}/bronze/leak/secret.txt')", "disabled by configuration"),
    ("SELECT * FROM read_text('{lake}/bronze/leak/*.txt')", "disabled by configuration"),
    (f"SELECT getenv('{ENV_NAME}')", "getenv"),  # the CLI's function; not in this DuckDB
    ("SELECT * FROM duckdb_secrets()", "disabled by configuration"),
    # The user's warehouse views are the user's SQL text: held to the same rules.
    ("SELECT * FROM analysis.passwd", "warehouse view analysis.passwd cannot be read here"),
    ("SELECT * FROM analysis.outside_csv", "warehouse view analysis.outside_csv"),
    ("SELECT * FROM analysis.relative", "warehouse view analysis.relative"),
    ("SELECT * FROM analysis.via_symlink", "warehouse view analysis.via_symlink"),
    ("SELECT * FROM analysis.via_dir_symlink", "warehouse view analysis.via_dir_symlink"),
    ("SELECT * FROM analysis.root_glob", "warehouse view analysis.root_glob"),
    # The attached warehouse's generated views read live files by relative paths: refused.
    ("SELECT * FROM _warehouse.bronze.nifty", "disabled by configuration"),
    ("SELECT * FROM _ticklake.generated_views", "_ticklake.generated_views"),
    # Time and memory: a runaway cross join, recursive CTE bombs.
    (
        "SELECT count(*) FROM range(1000000000) a, range(1000000000) b WHERE a.range <> b.range",
        "limit",
    ),
    (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        "",
    ),
    (
        "WITH RECURSIVE r(s) AS (SELECT 'xx' UNION ALL SELECT s || s || s FROM r) "
        "SELECT max(length(s)) FROM r",
        "",
    ),
    ("SELECT repeat('x', 100000) AS wide FROM range(100000)", "result too large"),
]


def _fill(template: str, lake: Path) -> str:
    return template.format(lake=lake, outside=lake.parent / "outside")


def _state(lake: Path) -> tuple[dict[str, str], dict[str, str]]:
    return _files(lake, skip=("cache", "locks")), _files(lake.parent, skip=("lake",))


def _assert_untouched(lake: Path, before: tuple[dict[str, str], dict[str, str]]) -> None:
    assert _state(lake) == before  # nothing written, in the lake or beside it
    leftovers = (
        list((lake / "cache" / "sql").iterdir()) if (lake / "cache" / "sql").exists() else []
    )
    assert leftovers == []  # snapshots and spill directories are gone


@pytest.mark.parametrize(("template", "needle"), REFUSED, ids=[t for t, _ in REFUSED])
def test_refused_over_http(client: Any, escape_lake: Path, template: str, needle: str) -> None:
    query = _fill(template, escape_lake)
    before = _state(escape_lake)
    response = client.post("/api/v1/sql/run", json={"query": query})
    assert response.status_code in (400, 404, 413), response.text
    error = response.json()["error"]
    assert "\n" not in error["message"].strip()  # one line for the page
    assert needle.lower() in error["message"].lower()
    assert SECRET not in response.text
    _assert_untouched(escape_lake, before)


@pytest.mark.parametrize(("template", "needle"), REFUSED, ids=[t for t, _ in REFUSED])
def test_refused_by_run_untrusted_sql(
    escape_lake: Path, monkeypatch: pytest.MonkeyPatch, template: str, needle: str
) -> None:
    monkeypatch.setenv(ENV_NAME, SECRET)
    lake = ticklake.open_lake(escape_lake)
    query = _fill(template, escape_lake)
    before = _state(escape_lake)
    with pytest.raises(QueryError) as caught:
        run_untrusted_sql(lake, query)
    assert needle.lower() in str(caught.value).lower()
    assert SECRET not in str(caught.value)
    _assert_untouched(escape_lake, before)


def test_a_huge_result_is_cut_at_the_row_cap_and_says_so(client: Any, escape_lake: Path) -> None:
    before = _state(escape_lake)
    body = client.post("/api/v1/sql/run", json={"query": "SELECT * FROM range(100000000)"}).json()
    assert body["truncated"] is True and body["row_count"] == body["max_rows"] == 10_000
    _assert_untouched(escape_lake, before)


def test_the_result_byte_cap_is_a_413_with_one_line(escape_lake: Path) -> None:
    lake = ticklake.open_lake(escape_lake)
    with pytest.raises(ResultTooLargeError, match=re.escape("result too large")):
        run_untrusted_sql(lake, "SELECT repeat('x', 100000) AS wide FROM range(100000)")


def test_the_users_warehouse_objects_are_readable_and_stay_read_only(
    client: Any, escape_lake: Path
) -> None:
    before = _state(escape_lake)
    daily = client.post(
        "/api/v1/sql/run", json={"query": "SELECT * FROM analysis.daily ORDER BY date"}
    ).json()
    oracle = ticklake.open_lake(escape_lake).sql(
        "SELECT date, count(*) AS n FROM bronze.nifty GROUP BY date ORDER BY date"
    )
    assert [(r["date"], r["n"]) for r in daily["rows"]] == [
        (d.isoformat(), n) for d, n in oracle.rows()
    ]
    notes = client.post("/api/v1/sql/run", json={"query": "SELECT * FROM notes"}).json()
    assert notes["rows"] == [{"id": 1, "note": "kept"}]
    # The bookkeeping is reachable only by the attached catalog's name, and only to read.
    meta = client.post(
        "/api/v1/sql/run", json={"query": "SELECT * FROM _warehouse._ticklake.generated_views"}
    )
    assert (
        meta.status_code == 200
        and {"schema_name": "bronze", "view_name": "nifty"} in (meta.json()["rows"])
    )
    _assert_untouched(escape_lake, before)


def test_settings_and_extensions_are_readable_and_show_the_lock(client: Any) -> None:
    """Reading DuckDB's settings is fine (they are the lock's own); changing them is not."""
    settings = client.post(
        "/api/v1/sql/run",
        json={
            "query": "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('enable_external_access', 'lock_configuration', 'autoload_known_extensions')"
        },
    ).json()
    shown = {row["name"]: row["value"] for row in settings["rows"]}
    assert shown == {
        "enable_external_access": "false",
        "lock_configuration": "true",
        "autoload_known_extensions": "false",
    }
    current = client.post(
        "/api/v1/sql/run", json={"query": "SELECT current_setting('enable_external_access') AS v"}
    ).json()
    assert current["rows"] == [{"v": False}]
    extensions = client.post(
        "/api/v1/sql/run", json={"query": "SELECT extension_name, loaded FROM duckdb_extensions()"}
    )
    assert extensions.status_code in (200, 400)
    if extensions.status_code == 400:
        assert "disabled by configuration" in extensions.json()["error"]["message"]


def test_a_glob_through_a_symlinked_directory_lists_nothing_outside(
    client: Any, escape_lake: Path
) -> None:
    """A wildcard before the symlinked directory (``bronze/*/secret.txt``) once listed the
    names of files outside the lake (DuckDB checks the pattern, then follows the link while
    expanding it). Files now come only from the query's snapshot, which has no symlinks."""
    for pattern in ("{lake}/bronze/*/secret.txt", "{lake}/bronze/*/*", "{lake}/**"):
        query = f"SELECT file FROM glob('{_fill(pattern, escape_lake)}')"
        response = client.post("/api/v1/sql/run", json={"query": query})
        assert response.status_code in (200, 400), response.text
        listed = [row["file"] for row in response.json().get("rows", [])]
        assert not [f for f in listed if "secret" in f or "outside" in f or "leak" in f]


def test_live_lake_files_by_path_are_refused_the_views_read_the_snapshot(
    client: Any, escape_lake: Path
) -> None:
    """By path the box reads only its own snapshot: the live files (unpinned, torn reads
    while a commit runs), ticklake.toml or warehouse.duckdb are refused; the views work."""
    for path in ("bronze/nifty/date=*/data.parquet", "ticklake.toml", "warehouse.duckdb"):
        query = f"SELECT count(*) AS n FROM read_blob('{escape_lake / path}')"
        response = client.post("/api/v1/sql/run", json={"query": query})
        assert response.status_code == 400
        assert "disabled by configuration" in response.json()["error"]["message"]
    counted = client.post("/api/v1/sql/run", json={"query": "SELECT count(*) AS n FROM nifty"})
    assert counted.json()["rows"] == [{"n": 400}]
