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
from ticklake.lake.merge import is_sorted_by


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


def test_dictionary_only_for_columns_with_few_distinct_values(tmp_path: Path) -> None:
    frame = _frame(100_000).with_columns(
        pl.int_range(pl.len()).cast(pl.String).alias("trade_id"),
        pl.lit(None, pl.Datetime("ns", "UTC")).alias("recv_ts"),
    )
    path = tmp_path / "x.parquet"
    write_parquet(frame, path, row_group_rows=50_000, zstd_level=3)
    group = pq.ParquetFile(path).metadata.row_group(1)
    encodings = {group.column(i).path_in_schema: group.column(i).encodings for i in range(5)}
    # 7 instruments and an all-null column: dictionary; unique ids/times/prices: plain.
    assert "RLE_DICTIONARY" in encodings["instrument"]
    assert "RLE_DICTIONARY" in encodings["recv_ts"]
    for unique in ("trade_id", "ts", "price"):
        assert "RLE_DICTIONARY" not in encodings[unique], unique
    assert pq.read_table(path).to_pylist() == frame.to_arrow().to_pylist()


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
