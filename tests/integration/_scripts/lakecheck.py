"""Independent checks of a lake directory (plain pyarrow / DuckDB / Polars / hashlib)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
from lakegen import row_set


def data_files(dataset_dir: Path) -> dict[str, Path]:
    """``{date: data.parquet}`` for every partition directory holding a data file."""
    return {
        entry.name.removeprefix("date="): entry / "data.parquet"
        for entry in sorted(dataset_dir.glob("date=*"))
        if (entry / "data.parquet").is_file()
    }


def read_everywhere(path: Path) -> set[tuple]:
    """Read a data file with pyarrow (page checksums on), Polars and DuckDB; all must agree."""
    table = pq.read_table(path, page_checksum_verification=True)
    from_arrow = row_set(pl.from_arrow(table))  # type: ignore[arg-type]
    from_polars = row_set(pl.read_parquet(path))
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone='UTC'")
        from_duckdb = row_set(con.sql(f"SELECT * FROM read_parquet('{path}')").pl())
        duck_count = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()
    finally:
        con.close()
    assert from_arrow == from_polars == from_duckdb, f"{path}: readers disagree"
    assert duck_count == (table.num_rows,), f"{path}: duplicate rows in the file"
    return from_arrow


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_manifest_matches(partition_dir: Path) -> None:
    """The committed manifest names the data file's real sha256, size and row count."""
    manifest = json.loads((partition_dir / "_manifest.json").read_text())
    data = partition_dir / "data.parquet"
    assert manifest["file_sha256"] == sha256(data)
    assert manifest["file_bytes"] == data.stat().st_size
    assert manifest["rows"] == pq.read_metadata(data).num_rows


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*") if p.is_file()]
