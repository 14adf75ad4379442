"""The commit writer: hashing while writing, row-group-wise conversion, the sorted check."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from ticklake.lake.commit import write_parquet
from ticklake.lake.lake import is_sorted_by


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _frame(rows: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": pl.datetime_range(
                datetime(2024, 1, 2, tzinfo=UTC),
                datetime(2024, 1, 2, tzinfo=UTC) + (rows - 1) * pl.duration(milliseconds=1),
                "1ms",
                eager=True,
                time_unit="ns",
            )
            if rows
            else pl.Series([], dtype=pl.Datetime("ns", "UTC")),
            "instrument": [f"SYM{i % 7}" for i in range(rows)],
            "price": [100.0 + i / 8 for i in range(rows)],
        }
    )


def test_returned_hash_is_the_hash_of_the_bytes_on_disk(tmp_path: Path) -> None:
    frame = _frame(10_000)
    path = tmp_path / "x.parquet"
    digest = write_parquet(frame, path, row_group_rows=1_024, zstd_level=3)
    assert digest == _file_sha256(path)


def test_polars_frame_is_written_in_row_groups_and_cast_to_the_schema(tmp_path: Path) -> None:
    frame = _frame(5_000)
    schema = pa.schema(
        [
            ("ts", pa.timestamp("ns", "UTC")),
            ("instrument", pa.large_string()),
            ("price", pa.float64()),
        ]
    )
    path = tmp_path / "x.parquet"
    write_parquet(frame, path, row_group_rows=2_048, zstd_level=3, schema=schema)
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [2048, 2048, 904]
    back = pq.read_table(path)
    assert back.schema.equals(schema)
    assert back.to_pylist() == frame.to_arrow().to_pylist()
    assert meta.row_group(0).column(0).statistics.has_min_max


def test_same_bytes_as_a_plain_pyarrow_write(tmp_path: Path) -> None:
    # The oracle: pyarrow's own write_table with the same options.
    table = _frame(3_000).to_arrow()
    ours, theirs = tmp_path / "ours.parquet", tmp_path / "theirs.parquet"
    write_parquet(table, ours, row_group_rows=1_000, zstd_level=3)
    pq.write_table(
        table,
        theirs,
        row_group_size=1_000,
        compression="zstd",
        compression_level=3,
        write_statistics=True,
        write_page_checksum=True,
        use_dictionary=True,
    )
    assert ours.read_bytes() == theirs.read_bytes()


def test_empty_frame_writes_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    digest = write_parquet(_frame(0), path, row_group_rows=1_024, zstd_level=3)
    assert digest == _file_sha256(path)
    assert pq.read_table(path).num_rows == 0


_values = st.one_of(st.none(), st.integers(-3, 3))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_values, st.sampled_from([None, "a", "b", "ab"]), _values), max_size=12))
def test_sorted_check_agrees_with_polars_sort(rows: list[tuple]) -> None:
    frame = pl.DataFrame(rows, schema={"a": pl.Int64, "b": pl.String, "c": pl.Int64}, orient="row")
    for columns in (["a"], ["a", "b"], ["b", "c", "a"]):
        expected = frame.sort(columns, maintain_order=True).equals(frame)
        assert is_sorted_by(frame, columns) == expected, (columns, rows)


def test_sorted_check_refuses_nan_rather_than_guess() -> None:
    frame = pl.DataFrame({"x": [1.0, float("nan")]})
    assert not is_sorted_by(frame, ["x"])
