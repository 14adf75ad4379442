"""``export`` to the file targets: DuckDB, Parquet, Delta, CSV.

Each test reads the target back and compares it with the lake, whose committed
partition files (read directly with ``polars.read_parquet``) are the oracle; a source
that fails half-way leaves every target as it was, with no temp file behind.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ticklake import init_lake
from ticklake.api import LakeSession
from ticklake.errors import ConfigError, DatasetNotFoundError, QueryError

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
N = 3_000
DAYS = [date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)]


@pytest.fixture
def lake(tmp_path: Path) -> LakeSession:
    lake = init_lake(tmp_path / "lake")
    frame = pl.DataFrame(
        {
            "ts": [T0 + timedelta(days=i % 3, microseconds=i * 7) for i in range(N)],
            "instrument": [f"I{i % 4}" for i in range(N)],
            "trade_id": [str(i) for i in range(N)],
            "price": [100.0 + i / 8 for i in range(N)],
            "size": [float(i % 9) for i in range(N)],
            "side": [None if i % 3 else "buy" for i in range(N)],
        }
    )
    lake.write("trades", frame, schema="trades")
    return lake


def _oracle(lake: LakeSession, days: list[date] | None = None) -> pl.DataFrame:
    parts = [p for p in lake.partitions("trades") if days is None or p.date in days]
    return pl.read_parquet([p.path for p in parts]).sort("trade_id")


def _norm(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col("ts", "recv_ts").dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    ).sort("trade_id")


def _same(got: pl.DataFrame, lake: LakeSession, days: list[date] | None = None) -> None:
    assert_frame_equal(_norm(got), _norm(_oracle(lake, days)), check_dtypes=False)


def _failing_after(batches: int) -> object:
    """A progress callback that breaks the source after ``batches`` batches."""
    seen: list[int] = []

    def progress(done: int, total: int | None) -> None:
        seen.append(done)
        if len(seen) >= batches:
            raise RuntimeError("source failed half-way (simulated)")

    return progress


def _no_temps(directory: Path) -> None:
    assert not [p for p in directory.rglob("*") if ".tmp-" in p.name]


def test_duckdb_replace_append_and_atomic(lake: LakeSession, tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "out" / "x.duckdb"
    summary = lake.export("trades", to=f"duckdb:{path}:t")
    assert summary.rows == N

    def read() -> pl.DataFrame:
        con = duckdb.connect(str(path), read_only=True)
        try:
            return con.sql("SELECT * FROM t").pl()
        finally:
            con.close()

    _same(read(), lake)
    lake.export(
        "trades", to=f"duckdb:{path}:t", mode="append", start="2024-03-05", end="2024-03-05"
    )
    assert read().height == N + N // 3
    lake.export("trades", to=f"duckdb:{path}", table="t")  # --table names it too
    _same(read(), lake)
    with pytest.raises(RuntimeError, match="simulated"):
        lake.export("trades", to=f"duckdb:{path}:t", batch_rows=500, progress=_failing_after(2))
    _same(read(), lake)  # the failed replace changed nothing
    with pytest.raises(RuntimeError, match="simulated"):
        lake.export(
            "trades",
            to=f"duckdb:{path}:t",
            mode="append",
            batch_rows=500,
            progress=_failing_after(2),
        )
    _same(read(), lake)


def test_parquet_one_file_per_day_replace_append_atomic(lake: LakeSession, tmp_path: Path) -> None:
    out = tmp_path / "pq"
    lake.export("trades", to=f"parquet:{out}")
    files = sorted(out.glob("date=*/data.parquet"))
    assert [f.parent.name for f in files] == [f"date={d}" for d in DAYS]
    for day, file in zip(DAYS, files, strict=True):
        _same(pl.read_parquet(file), lake, [day])
    lake.export("trades", to=f"parquet:{out}", mode="append", start="2024-03-06")
    assert len(list(out.glob("date=2024-03-06/*.parquet"))) == 2
    assert pl.read_parquet(out / "**/*.parquet", hive_partitioning=False).height == N + N // 3

    lake.export("trades", to=f"parquet:{out}")  # replace swaps in a fresh directory
    _same(pl.read_parquet(out / "**/*.parquet", hive_partitioning=False), lake)
    before = {p: p.read_bytes() for p in out.rglob("*.parquet")}
    with pytest.raises(RuntimeError, match="simulated"):
        lake.export("trades", to=f"parquet:{out}", batch_rows=400, progress=_failing_after(3))
    assert {p: p.read_bytes() for p in out.rglob("*.parquet")} == before
    with pytest.raises(RuntimeError, match="simulated"):
        lake.export(
            "trades",
            to=f"parquet:{out}",
            mode="append",
            batch_rows=400,
            progress=_failing_after(3),
        )
    assert {p: p.read_bytes() for p in out.rglob("*.parquet")} == before
    _no_temps(tmp_path)


def test_parquet_from_sql(lake: LakeSession, tmp_path: Path) -> None:
    out = tmp_path / "agg"
    lake.export(sql="SELECT instrument, count(*) AS n FROM trades GROUP BY 1", to=f"parquet:{out}")
    got = pl.read_parquet(out / "data.parquet").sort("instrument")
    want = _oracle(lake).group_by("instrument").len("n").sort("instrument")
    assert_frame_equal(got, want, check_dtypes=False)


def test_delta_replace_and_append(lake: LakeSession, tmp_path: Path) -> None:
    from deltalake import DeltaTable

    path = tmp_path / "delta"
    lake.export("trades", to=f"delta:{path}")

    def read() -> pl.DataFrame:
        frame = pl.from_arrow(DeltaTable(str(path)).to_pyarrow_table())
        assert isinstance(frame, pl.DataFrame)
        return frame

    _same(read(), lake)
    lake.export("trades", to=f"delta:{path}", mode="append", end="2024-03-04")
    assert read().height == N + N // 3
    lake.export("trades", to=f"delta:{path}")
    _same(read(), lake)
    with pytest.raises(RuntimeError, match="simulated"):
        lake.export("trades", to=f"delta:{path}", batch_rows=400, progress=_failing_after(3))
    _same(read(), lake)  # no Delta commit: the table is as it was


def test_csv_replace_is_atomic(lake: LakeSession, tmp_path: Path) -> None:
    path = tmp_path / "csv" / "trades.csv"
    lake.export("trades", to=f"csv:{path}")
    schema = {"trade_id": pl.String, "side": pl.String, "venue": pl.String}

    def read() -> pl.DataFrame:
        frame = pl.read_csv(path, schema_overrides=schema, try_parse_dates=True)
        return frame.with_columns(pl.col("recv_ts").cast(pl.Datetime("us", "UTC")))

    _same(read(), lake)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="simulated"):
        lake.export("trades", to=f"csv:{path}", batch_rows=400, progress=_failing_after(3))
    assert path.read_bytes() == before
    _no_temps(tmp_path)


def test_bad_requests_are_clear_errors(lake: LakeSession, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown export target"):
        lake.export("trades", to="excel:x.xlsx")
    with pytest.raises(ConfigError, match="takes --mode replace"):
        lake.export("trades", to=f"csv:{tmp_path}/x.csv", mode="append")
    with pytest.raises(ConfigError, match="needs --table"):
        lake.export("trades", to="postgres")
    with pytest.raises(ConfigError, match="not both or neither"):
        lake.export("trades", sql="SELECT 1", to=f"csv:{tmp_path}/x.csv")
    with pytest.raises(ConfigError, match="filter in --sql"):
        lake.export(sql="SELECT 1", to=f"csv:{tmp_path}/x.csv", start="2024-03-04")
    with pytest.raises(ConfigError, match="no column 'nope'"):
        lake.export("trades", to="postgres", table="t", key=["nope"], mode="upsert", dsn="x")
    with pytest.raises(QueryError, match="export --sql failed"):
        lake.export(sql="SELECT * FROM missing_table", to=f"csv:{tmp_path}/x.csv")
    with pytest.raises(DatasetNotFoundError):
        lake.export("missing", to=f"csv:{tmp_path}/x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_cli_export_to_parquet(lake: LakeSession, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ticklake.cli import app

    out = tmp_path / "cli_pq"
    result = CliRunner().invoke(
        app, ["export", "trades", "--to", f"parquet:{out}", "--lake", str(lake.root)]
    )
    assert result.exit_code == 0, result.output
    assert f"exported {N:,} row(s)" in result.output
    _same(pl.read_parquet(out / "**/*.parquet", hive_partitioning=False), lake)
    result = CliRunner().invoke(
        app, ["export", "trades", "--to", "csv:x.csv", "--mode", "upsert", "--lake", str(lake.root)]
    )
    assert result.exit_code == ConfigError.exit_code
