"""PostgreSQL in and out against a real server (conftest.py's ``postgres_dsn``).

In: ``ingest_postgres`` loads incrementally by a watermark (the boundary value too),
streams in batches, commits nothing when the server goes away mid-read, keeps every
committed day complete and the watermark where it was when a commit fails, and names
a column whose type does not map. Out: ``export --to postgres`` maps the types exactly,
replaces / appends / upserts, and leaves the table exactly as it was when the COPY
fails half-way (a CHECK constraint) or the connection is killed. The oracle is the
lake's partition files read directly with ``polars.read_parquet``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from ticklake import init_lake
from ticklake.api import LakeSession
from ticklake.errors import ConfigError, ExecutionError, IngestError
from ticklake.schemas import schema_from_frame
from ticklake.warehouse.postgres import stored_watermark

psycopg = pytest.importorskip("psycopg")

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
TRADE_COLUMNS = ["ts", "instrument", "trade_id", "price", "size", "side"]


@pytest.fixture
def lake(tmp_path: Path) -> LakeSession:
    return init_lake(tmp_path / "lake")


@pytest.fixture
def table() -> str:
    return f"src_{uuid.uuid4().hex[:8]}"


def _pg(dsn: str, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement, params or None)
        return cur.fetchall() if cur.description else []


def _make_source(dsn: str, table: str, rows: int, days: int = 3) -> None:
    """Trades over ``days`` days; updated_at = 2024-04-01 + id seconds / 10 (ties)."""
    _pg(
        dsn,
        f"CREATE TABLE {table} AS SELECT g::text AS trade_id, "
        f"timestamptz '{T0.isoformat()}' + (g % {days}) * interval '1 day' "
        "+ g * interval '1 ms' AS ts, "
        "'BTCUSDT'::text AS instrument, (100 + g % 50)::numeric(12,2) AS price, "
        "(1 + g % 7)::float8 AS size, CASE WHEN g % 2 = 0 THEN 'buy' END AS side, "
        "timestamptz '2024-04-01' + (g / 10) * interval '1 s' AS updated_at "
        f"FROM generate_series(1, {rows}) g",
    )


def _pg_frame(dsn: str, query: str) -> pl.DataFrame:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(query)
        names = [d.name for d in cur.description or []]
        return pl.DataFrame(cur.fetchall(), schema=names, orient="row", infer_schema_length=None)


def _lake_frame(lake: LakeSession, dataset: str) -> pl.DataFrame:
    """The oracle: the committed partition files, read directly."""
    files = [p.path for p in lake.partitions(dataset)]
    return pl.read_parquet(files) if files else pl.DataFrame()


def _source_as_trades(dsn: str, table: str) -> pl.DataFrame:
    frame = _pg_frame(dsn, f"SELECT {', '.join(TRADE_COLUMNS)} FROM {table}")
    return frame.with_columns(
        pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("ns"),
        pl.col("price").cast(pl.Float64),
    ).sort("trade_id")


def _assert_lake_equals_source(lake: LakeSession, dsn: str, table: str) -> None:
    got = _lake_frame(lake, "trades").select(TRADE_COLUMNS).sort("trade_id")
    assert_frame_equal(got, _source_as_trades(dsn, table), check_dtypes=False)


def _ingest(lake: LakeSession, dsn: str, table: str, **options: object) -> object:
    return lake.ingest_postgres(
        f"SELECT * FROM {table}",
        "trades",
        schema="trades",
        watermark="updated_at",
        dsn=dsn,
        **options,
    )


def _partition_hashes(lake: LakeSession) -> dict[date, str]:
    return {
        p.date: p.manifest.file_sha256 for p in lake.partitions("trades") if p.manifest is not None
    }


def _terminate(dsn: str, like: str) -> int:
    rows = _pg(
        dsn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE pid <> pg_backend_pid() AND query ILIKE %s",
        (like,),
    )
    return len(rows)


# ------------------------------------------------------------------------ in
def test_ingest_is_incremental_and_reads_rows_at_the_old_watermark(
    lake: LakeSession, postgres_dsn: str, table: str
) -> None:
    _make_source(postgres_dsn, table, 3_000)
    first = _ingest(lake, postgres_dsn, table)
    assert first.rows_read == 3_000 and first.rows_added == 3_000  # type: ignore[attr-defined]
    assert len(first.days) == 3  # type: ignore[attr-defined]
    _assert_lake_equals_source(lake, postgres_dsn, table)
    mark = stored_watermark(lake, "trades")
    assert mark is not None and mark["watermark"]["value"] == "2024-04-01T00:05:00+00:00"
    hashes = _partition_hashes(lake)

    # Nothing new: only the row(s) at the watermark itself are read, nothing is committed.
    again = _ingest(lake, postgres_dsn, table)
    assert again.rows_read == 1 and again.rows_added == 0  # type: ignore[attr-defined]
    assert again.days_changed == 0  # type: ignore[attr-defined]
    assert _partition_hashes(lake) == hashes

    # A row committed later with updated_at == the stored watermark (a `>` would miss it),
    # one newer row, and an update of an existing row (newer updated_at) all arrive.
    _pg(
        postgres_dsn,
        f"INSERT INTO {table} VALUES ('late', %s, 'BTCUSDT', 1.5, 2, 'sell', %s), "
        f"('new', %s, 'BTCUSDT', 2.5, 3, NULL, %s)",
        (
            T0 + timedelta(hours=1),
            datetime(2024, 4, 1, 0, 5, tzinfo=UTC),
            T0 + timedelta(hours=2),
            datetime(2024, 4, 2, tzinfo=UTC),
        ),
    )
    _pg(
        postgres_dsn,
        f"UPDATE {table} SET price = 999, updated_at = '2024-04-02' WHERE trade_id = '7'",
    )
    third = _ingest(lake, postgres_dsn, table)
    # Read: the old boundary row, 'late', 'new' and the updated '7'; added: 'late', 'new'.
    assert third.rows_read == 4 and third.rows_added == 2  # type: ignore[attr-defined]
    _assert_lake_equals_source(lake, postgres_dsn, table)
    lake_rows = _lake_frame(lake, "trades")
    assert lake_rows.filter(pl.col("trade_id") == "late").height == 1
    assert lake_rows.filter(pl.col("trade_id") == "7")["price"].item() == 999.0
    assert stored_watermark(lake, "trades")["watermark"]["value"].startswith("2024-04-02")  # type: ignore[index]


def test_ingest_streams_in_batches(lake: LakeSession, postgres_dsn: str, table: str) -> None:
    _make_source(postgres_dsn, table, 20_000)
    seen: list[int] = []
    summary = _ingest(
        lake,
        postgres_dsn,
        table,
        batch_rows=1_000,
        progress=lambda phase, n: seen.append(n) if phase == "read" else None,
    )
    assert summary.batches >= 5  # type: ignore[attr-defined]
    assert seen == sorted(seen) and seen[-1] == 20_000 and len(seen) >= 5
    _assert_lake_equals_source(lake, postgres_dsn, table)


def test_server_gone_mid_read_commits_nothing_and_a_rerun_completes(
    lake: LakeSession, postgres_dsn: str, table: str
) -> None:
    _make_source(postgres_dsn, table, 2_000)
    _ingest(lake, postgres_dsn, table)
    before = _partition_hashes(lake)
    mark = stored_watermark(lake, "trades")
    _pg(
        postgres_dsn,
        f"INSERT INTO {table} SELECT trade_id || 'b', ts + interval '1 us', "
        "instrument, price, size, side, updated_at + interval '1 day' FROM " + table,
    )

    # The server pauses at row 1900b, long after the first batch has arrived; the backend
    # is terminated then, mid-result.
    _pg(
        postgres_dsn,
        "CREATE OR REPLACE FUNCTION nap(t text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN "
        "IF t = '1900b' THEN PERFORM pg_sleep(5); END IF; RETURN t; END $$",
    )
    killed: list[int] = []

    def kill_after_first_batch(phase: str, n: int) -> None:
        if phase == "read" and not killed:
            killed.append(_terminate(postgres_dsn, "%_ticklake_src%"))

    slow = (
        "SELECT nap(trade_id) AS trade_id, ts, instrument, price, size, side, updated_at "
        f"FROM {table}"
    )
    with pytest.raises(IngestError, match="Nothing was committed") as info:
        lake.ingest_postgres(
            slow,
            "trades",
            schema="trades",
            watermark="updated_at",
            dsn=postgres_dsn,
            batch_rows=200,
            progress=kill_after_first_batch,
        )
    assert killed == [1]
    assert "run the same command again" in str(info.value)
    assert _partition_hashes(lake) == before  # not one day changed
    assert stored_watermark(lake, "trades") == mark
    assert not list((lake.root / "_staging").glob("pg-*"))  # the spool is gone

    _ingest(lake, postgres_dsn, table)
    _assert_lake_equals_source(lake, postgres_dsn, table)


def test_a_failed_commit_keeps_days_complete_and_the_watermark(
    lake: LakeSession, postgres_dsn: str, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_source(postgres_dsn, table, 3_000)
    real_write = LakeSession.write
    calls: list[int] = []

    def failing_write(self: LakeSession, *args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        return real_write(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(LakeSession, "write", failing_write)
    with pytest.raises(OSError, match="simulated"):
        _ingest(lake, postgres_dsn, table)
    monkeypatch.undo()
    assert stored_watermark(lake, "trades") is None
    source = _source_as_trades(postgres_dsn, table)
    committed = {p.date: pl.read_parquet(p.path) for p in lake.partitions("trades")}
    assert 1 <= len(committed) < 3  # the failed day is not there
    for day, rows in committed.items():  # every committed day is complete
        want = source.filter(pl.col("ts").dt.date() == day)
        assert_frame_equal(rows.select(TRADE_COLUMNS).sort("trade_id"), want, check_dtypes=False)

    _ingest(lake, postgres_dsn, table)
    _assert_lake_equals_source(lake, postgres_dsn, table)


def test_types_that_do_not_map_name_the_column(
    lake: LakeSession, postgres_dsn: str, table: str
) -> None:
    _make_source(postgres_dsn, table, 10)
    bad = f"SELECT trade_id, ts, instrument, point(1, 2) AS price, size, updated_at FROM {table}"
    with pytest.raises(ConfigError, match=r"column 'price' is PostgreSQL point"):
        lake.ingest_postgres(
            bad, "trades", schema="trades", watermark="updated_at", dsn=postgres_dsn
        )
    naive = (
        f"SELECT trade_id, ts::timestamp AS ts, instrument, price, size, updated_at FROM {table}"
    )
    with pytest.raises(ConfigError, match=r"'ts'.*AT TIME ZONE"):
        lake.ingest_postgres(
            naive, "trades", schema="trades", watermark="updated_at", dsn=postgres_dsn
        )
    assert not lake.datasets()  # nothing was created


def test_cli_ingest_postgres(
    tmp_path: Path, postgres_dsn: str, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ticklake.cli import app

    _make_source(postgres_dsn, table, 500)
    lake = init_lake(tmp_path / "cli")
    monkeypatch.setenv("PG_DSN", postgres_dsn)
    args = [
        "ingest",
        "postgres",
        "--query",
        f"select * from {table}",
        "-d",
        "trades",
        "--schema",
        "trades",
        "--watermark",
        "updated_at",
        "--lake",
        str(lake.root),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "read 500 row(s)" in result.output
    _assert_lake_equals_source(lake, postgres_dsn, table)
    monkeypatch.delenv("PG_DSN")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == ConfigError.exit_code
    assert "PG_DSN is not set" in result.output


# ----------------------------------------------------------------------- out
@pytest.fixture
def typed_lake(lake: LakeSession) -> LakeSession:
    """A dataset with one column of every lake type, over three days."""
    n = 3_000
    frame = pl.DataFrame(
        {
            "ts": [T0 + timedelta(days=i % 3, microseconds=i * 7) for i in range(n)],
            "instrument": [f"I{i % 4}" for i in range(n)],
            "seq": list(range(n)),
            "paise": [10_000_000_000 + i for i in range(n)],
            "qty": pl.Series([i % 100 for i in range(n)], dtype=pl.Int32),
            "flag": [i % 3 == 0 for i in range(n)],
            "day": [date(2024, 3, 4) + timedelta(days=i % 3) for i in range(n)],
            "price": [100.0 + i / 8 for i in range(n)],
            "ratio": pl.Series([i / 4 for i in range(n)], dtype=pl.Float32),
            "big": pl.Series([2**64 - 1 - i for i in range(n)], dtype=pl.UInt64),
            "note": [None if i % 5 else f"n{i}" for i in range(n)],
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
    schema = schema_from_frame("typed", frame, key=("instrument", "ts", "seq"))
    lake.write("typed", frame, schema=schema)
    return lake


def _pg_types(dsn: str, table: str) -> dict[str, str]:
    return dict(
        _pg(  # type: ignore[arg-type]
            dsn,
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (f'"{table}"',),
        )
    )


def _exported(dsn: str, table: str) -> pl.DataFrame:
    frame = _pg_frame(dsn, f'SELECT * FROM "{table}" ORDER BY instrument, ts, seq')
    return frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC"))


def _oracle(lake: LakeSession) -> pl.DataFrame:
    # PostgreSQL keeps microseconds; the lake's values here have none below that.
    return (
        _lake_frame(lake, "typed")
        .sort("instrument", "ts", "seq")
        .with_columns(pl.col("ts").dt.cast_time_unit("us"))
    )


def test_export_maps_every_type_exactly(typed_lake: LakeSession, postgres_dsn: str) -> None:
    name = f"Typed {uuid.uuid4().hex[:6]}"  # needs quoting
    summary = typed_lake.export(
        "typed",
        to="postgres",
        table=name,
        dsn=postgres_dsn,
        numeric=["paise"],
        key=["instrument", "ts", "seq"],
    )
    assert summary.rows == 3_000
    assert _pg_types(postgres_dsn, name) == {
        "ts": "timestamp with time zone",
        "instrument": "text",
        "seq": "bigint",
        "paise": "numeric(20,0)",
        "qty": "integer",
        "flag": "boolean",
        "day": "date",
        "price": "double precision",
        "ratio": "real",
        "big": "numeric(20,0)",
        "note": "text",
    }
    got = _exported(postgres_dsn, name)
    want = _oracle(typed_lake)
    assert got["paise"].to_list()[:2] == [Decimal(v) for v in want["paise"].to_list()[:2]]
    assert [int(v) for v in got["big"]] == want["big"].to_list()  # 2**64-1 exactly
    assert_frame_equal(
        got.with_columns(pl.col("paise", "big").cast(pl.Float64)),
        want.with_columns(pl.col("paise", "big").cast(pl.Float64)),
        check_dtypes=False,
    )


def test_export_modes_append_upsert_and_replace_keeps_the_definition(
    typed_lake: LakeSession, postgres_dsn: str
) -> None:
    name = f"modes_{uuid.uuid4().hex[:6]}"
    options = {"to": "postgres", "table": name, "dsn": postgres_dsn}
    typed_lake.export("typed", **options)
    typed_lake.export("typed", mode="append", **options)
    assert _pg(postgres_dsn, f'SELECT count(*) FROM "{name}"') == [(6_000,)]
    with pytest.raises(ConfigError, match="needs --key"):
        typed_lake.export("typed", mode="upsert", **options)

    _pg(postgres_dsn, f'TRUNCATE "{name}"')
    typed_lake.export("typed", mode="upsert", key=["instrument", "ts", "seq"], **options)
    changed = _lake_frame(typed_lake, "typed").head(10).with_columns(pl.col("price") * -1)
    typed_lake.write("typed", changed)
    typed_lake.export("typed", mode="upsert", key=["instrument", "ts", "seq"], **options)
    got = _exported(postgres_dsn, name)
    assert_frame_equal(got, _oracle(typed_lake), check_dtypes=False)
    index = _pg(postgres_dsn, "SELECT indexname FROM pg_indexes WHERE tablename = %s", (name,))
    assert index == [(f"{name}_ticklake_key",)]

    _pg(postgres_dsn, f'ALTER TABLE "{name}" ADD CONSTRAINT positive_qty CHECK (qty >= 0)')
    typed_lake.export("typed", **options)  # replace: TRUNCATE, the constraint stays
    assert _pg(postgres_dsn, f'SELECT count(*) FROM "{name}"') == [(3_000,)]
    assert _pg(
        postgres_dsn, "SELECT conname FROM pg_constraint WHERE conname = 'positive_qty'"
    ) == [("positive_qty",)]


def _seed_check_table(dsn: str, name: str) -> list[tuple[object, ...]]:
    """An existing table whose CHECK rejects the rows of the last day (half-way in)."""
    _pg(
        dsn,
        f'CREATE TABLE "{name}" (ts timestamptz NOT NULL, instrument text, seq bigint, '
        "paise bigint, qty integer, flag boolean, day date CHECK (day < '2024-03-06'), "
        "price double precision, ratio real, big numeric(20,0), note text)",
    )
    _pg(dsn, f"INSERT INTO \"{name}\" (ts, instrument, seq) VALUES (now(), 'old', -1)")
    return _pg(dsn, f'SELECT * FROM "{name}"')


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_a_copy_failing_half_way_leaves_the_table_as_it_was(
    typed_lake: LakeSession, postgres_dsn: str, mode: str
) -> None:
    name = f"check_{mode}_{uuid.uuid4().hex[:6]}"
    before = _seed_check_table(postgres_dsn, name)
    sent: list[int] = []
    with pytest.raises(ExecutionError, match=r"rolled back.*check constraint"):
        typed_lake.export(
            "typed",
            to="postgres",
            table=name,
            dsn=postgres_dsn,
            mode=mode,
            batch_rows=300,
            progress=lambda done, total: sent.append(done),
        )
    assert sent[-1] >= 2_000  # two days of rows had been sent before the failing one
    assert _pg(postgres_dsn, f'SELECT * FROM "{name}"') == before


def test_a_killed_connection_leaves_the_table_as_it_was(
    typed_lake: LakeSession, postgres_dsn: str
) -> None:
    name = f"killed_{uuid.uuid4().hex[:6]}"
    before = _seed_check_table(postgres_dsn, name)
    _pg(postgres_dsn, f'ALTER TABLE "{name}" DROP CONSTRAINT "{name}_day_check"')
    killed: list[int] = []

    def kill(done: int, total: int | None) -> None:
        if done >= 600 and not killed:
            killed.append(_terminate(postgres_dsn, "COPY%"))

    with pytest.raises(ExecutionError, match="rolled back"):
        typed_lake.export(
            "typed", to="postgres", table=name, dsn=postgres_dsn, batch_rows=300, progress=kill
        )
    assert killed == [1]
    assert _pg(postgres_dsn, f'SELECT * FROM "{name}"') == before


def test_export_sql_and_unmappable_types(lake: LakeSession, postgres_dsn: str) -> None:
    frame = pl.DataFrame(
        {"ts": [T0, T0 + timedelta(days=1)], "instrument": ["A", "B"], "price": [1.0, 2.0]}
    )
    lake.write("prices", frame, schema="prices")
    name = f"sql_{uuid.uuid4().hex[:6]}"
    lake.export(
        sql="SELECT instrument, sum(price) AS total FROM prices GROUP BY 1",
        to="postgres",
        table=name,
        dsn=postgres_dsn,
    )
    assert sorted(_pg(postgres_dsn, f"SELECT * FROM {name}")) == [("A", 1.0), ("B", 2.0)]
    with pytest.raises(ConfigError, match=r"column 'l' of type List"):
        lake.export(sql="SELECT [1, 2] AS l", to="postgres", table="nope", dsn=postgres_dsn)
    with pytest.raises(ConfigError, match=r"column 'd' of Arrow type month_day_nano_interval"):
        lake.export(sql="SELECT INTERVAL 1 DAY AS d", to="postgres", table="nope", dsn=postgres_dsn)
    assert _pg(postgres_dsn, "SELECT to_regclass('nope') IS NULL") == [(True,)]


def test_cli_export_to_postgres(
    typed_lake: LakeSession, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ticklake.cli import app

    monkeypatch.setenv("MY_PG", postgres_dsn)
    name = f"cli_{uuid.uuid4().hex[:6]}"
    result = CliRunner().invoke(
        app,
        [
            "export",
            "typed",
            "--to",
            "postgres",
            "--table",
            name,
            "--dsn-env",
            "MY_PG",
            "--key",
            "instrument,ts,seq",
            "--mode",
            "upsert",
            "--start",
            "2024-03-05",
            "--end",
            "2024-03-05",
            "--lake",
            str(typed_lake.root),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "exported 1,000 row(s)" in result.output
    got = _exported(postgres_dsn, name)
    want = _oracle(typed_lake).filter(pl.col("day") == date(2024, 3, 5))
    assert_frame_equal(got, want, check_dtypes=False)


@pytest.fixture(autouse=True)
def _no_leftover_staging(lake: LakeSession) -> Iterator[None]:
    yield
    assert not list((lake.root / "_staging").glob("pg-*"))
