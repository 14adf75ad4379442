"""``ticklake sql run``: splitting, variables, one transaction, honest reports."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app
from ticklake.errors import ConfigError, QueryError
from ticklake.warehouse.db import Warehouse
from ticklake.warehouse.sqlfile import is_complete, parse_sql, split_statements

runner = CliRunner()

TRADES = pl.DataFrame(
    {
        "ts": [
            datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
            datetime(2024, 3, 4, 9, 31, tzinfo=UTC),
            datetime(2024, 3, 5, 14, 0, tzinfo=UTC),
        ],
        "instrument": ["AAPL", "AAPL", "MSFT"],
        "trade_id": ["1", "2", "3"],
        "price": [180.5, 181.0, 410.25],
        "size": [100.0, 50.0, 10.0],
    }
)


@pytest.fixture
def lake(tmp_path: Path) -> ticklake.LakeSession:
    session = ticklake.init_lake(tmp_path / "lake")
    session.write("trades", TRADES, schema="trades")
    return session


def _objects(lake: ticklake.LakeSession) -> set[str]:
    """User objects of the warehouse, read with plain DuckDB (not ticklake's code)."""
    con = duckdb.connect(str(lake.root / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('_ticklake', 'bronze') "
            "AND table_name <> 'trades'"
        ).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}


def test_split_keeps_semicolons_in_strings_and_comments_and_tracks_lines() -> None:
    text = (
        "-- a header; with a semicolon\n"
        "select ';' as a, \"odd;name\" from t;  /* block ; comment */\n"
        "insert into t values (E'it\\'s;', $$dollar;quoted$$, $tag$x;y$tag$);\n"
        "\n"
        "  select 3\n"
        ";;\n"
        "-- trailing comment only\n"
    )
    assert split_statements(text) == [
        (2, "select ';' as a, \"odd;name\" from t"),
        (3, "insert into t values (E'it\\'s;', $$dollar;quoted$$, $tag$x;y$tag$)"),
        (5, "select 3"),
    ]


def test_is_complete_needs_a_closing_semicolon_outside_quotes() -> None:
    assert is_complete("select 1;")
    assert is_complete("select 1;  -- done")
    assert not is_complete("select 1")
    assert not is_complete("select ';")
    assert not is_complete("select 1 /* ; */")
    assert not is_complete("")


def test_values_become_parameters_and_identifiers_are_quoted() -> None:
    (st,) = parse_sql(
        "select * from ${t:ident} where date >= ${start} and x = ${start}",
        "f.sql",
        {"t": "silver.bars", "start": "2024-01-01'; drop table x; --"},
    )
    assert st.sql == 'select * from "silver"."bars" where date >= $start and x = $start'
    # The hostile value never reaches the SQL text: it is a bound parameter.
    assert st.parameters == {"start": "2024-01-01'; drop table x; --"}


@pytest.mark.parametrize(
    ("sql", "variables", "message"),
    [
        (
            "select 1;\nselect ${nope}",
            {},
            "f.sql:2: variable ${nope} is not set; pass -v nope=VALUE",
        ),
        ("select 1", {"extra": "1"}, "f.sql: variable(s) extra given with -v but not used"),
        ("select\n'${x}'", {"x": "1"}, "f.sql:2: ${x} is inside a quoted string or comment"),
        ("select ${t:ident}", {"t": "a; drop"}, "identifier variable t='a; drop' is not a plain"),
        ("select ${t:sql}", {"t": "a"}, "bad variable ${t:sql}"),
        (
            "\ncreate view v as select ${x}",
            {"x": "1"},
            "f.sql:2: statement 1 uses the value variable(s) ${x} in CREATE VIEW",
        ),
    ],
)
def test_variable_problems_name_file_and_line(
    sql: str, variables: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_sql(sql, "f.sql", variables)
    assert message in str(info.value)


def test_string_values_are_cast_by_duckdb_from_context(lake: ticklake.LakeSession) -> None:
    result = lake.sql_run(
        "select count(*) as n from bronze.trades where date >= ${start} and size > ${min} "
        "limit ${k}",
        {"start": "2024-03-04", "min": "20", "k": "5"},
    )
    assert result.frame is not None
    oracle = TRADES.filter(pl.col("ts").dt.date() >= date(2024, 3, 4), pl.col("size") > 20)
    assert result.frame["n"].to_list() == [oracle.height] == [1]


def test_failing_third_statement_rolls_back_the_first_two(
    lake: ticklake.LakeSession, tmp_path: Path
) -> None:
    sql = tmp_path / "build.sql"
    sql.write_text(
        "create table one as select * from bronze.trades;\n"
        "create view two as select instrument from one;\n"
        "\n"
        "insert into one select * from no_such_table;\n"
    )
    result = runner.invoke(app, ["sql", "run", str(sql), "--lake", str(lake.root)])
    assert result.exit_code == QueryError.exit_code
    assert (
        f"{sql}:4: statement 3 (INSERT) failed: Catalog Error: Table with name no_such_table"
        in (result.output)
    )
    assert len(result.output.strip().splitlines()) == 1
    assert _objects(lake) == set()


def test_run_reports_what_it_created_and_prints_the_last_select(
    lake: ticklake.LakeSession, tmp_path: Path
) -> None:
    sql = tmp_path / "daily.sql"
    sql.write_text(
        "create table daily as select date, sum(size) as volume from bronze.trades\n"
        "  where date >= ${start} group by date;\n"
        "select 'not shown' as x;\n"
        "insert into daily values (${day}, 1.5);\n"
        "select count(*) as days from ${table:ident};\n"
    )
    result = runner.invoke(
        app,
        [
            *("sql", "run", str(sql), "--lake", str(lake.root)),
            *("-v", "start=2024-03-04", "-v", "day=2024-03-09", "-v", "table=daily"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "created main.daily" in result.stderr
    assert "statement 3 (INSERT): 1 row(s)" in result.stderr
    assert "4 statement(s) committed" in result.stderr
    assert "not shown" not in result.stdout
    assert "│ 3    │" in result.stdout  # two trading days >= 2024-03-04 plus the insert
    assert _objects(lake) == {"main.daily"}
    again = lake.sql_run("create or replace table daily as select 1 as a; drop table daily")
    assert again.dropped == ["main.daily"] and again.created == []


def test_replaced_and_unchanged_objects_are_told_apart(lake: ticklake.LakeSession) -> None:
    first = lake.sql_run("create table t (a int); create view v as select a from t")
    assert first.created == ["main.t", "main.v"] and first.replaced == []
    second = lake.sql_run("alter table t add column b int; select * from v")
    assert second.replaced == ["main.t"] and second.created == []
    third = lake.sql_run("create table if not exists t (a int)")
    assert third.summary() == []


def test_transaction_statements_in_a_file_are_refused(lake: ticklake.LakeSession) -> None:
    with pytest.raises(QueryError, match="<sql>:2: statement 2 is a transaction statement"):
        lake.sql_run("create table t (a int);\ncommit;\ncreate table u (a int)")
    assert not any(o.name in ("t", "u") for o in _warehouse_objects(lake))


def _warehouse_objects(lake: ticklake.LakeSession) -> list[object]:
    warehouse = Warehouse(lake)
    with warehouse.connect() as con:
        return list(warehouse.objects(con))


def test_text_source_names_the_web_box_in_errors(lake: ticklake.LakeSession) -> None:
    with pytest.raises(QueryError, match=r"^sql page:1: statement 1 \(SELECT\) failed"):
        lake.sql_run("select * from nowhere", source="sql page")


def test_missing_file_and_bad_pair_are_one_line_errors(tmp_path: Path) -> None:
    ticklake.init_lake(tmp_path / "lake")
    missing = runner.invoke(
        app, ["sql", "run", str(tmp_path / "x.sql"), "--lake", str(tmp_path / "lake")]
    )
    assert missing.exit_code == ConfigError.exit_code
    assert "x.sql: no such SQL file" in missing.output
    (tmp_path / "y.sql").write_text("select ${a}")
    bad = runner.invoke(
        app, ["sql", "run", str(tmp_path / "y.sql"), "-v", "a", "--lake", str(tmp_path / "lake")]
    )
    assert bad.exit_code == ConfigError.exit_code
    assert "-v 'a': write -v name=value" in bad.output
