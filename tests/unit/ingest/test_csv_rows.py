"""The CSV row kernel shared by the vendor readers (``readers/_csv_rows.py``)."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from ticklake.errors import IngestError
from ticklake.ingest.readers import ReaderOptions, reader_names
from ticklake.ingest.readers._csv_rows import (
    Check,
    descale,
    field,
    number,
    read_csv_batches,
    read_header,
    reject_unparsed,
    split_fields,
)


def test_the_private_module_registers_no_format() -> None:
    assert not any(name.startswith("_") or "csv_rows" in name for name in reader_names())


def test_split_fields_numbers_lines_and_rejects_wrong_field_counts() -> None:
    chunk = b"1, a ,x\r\n\n2,b\n3,c,z,extra\n4,d,w"
    fields, rejected = split_fields(chunk, 10, ["n", "s", "t"])
    assert fields["source_row"].to_list() == [10, 14]  # line 11 is blank: not a row
    assert fields["field:s"].to_list() == ["a", "d"]  # stripped
    assert fields["raw"].to_list() == ["1, a ,x", "4,d,w"]  # the \r is gone
    assert rejected.rows() == [
        (12, "2,b", "expected 3 comma-separated fields (n,s,t), found 2"),
        (13, "3,c,z,extra", "expected 3 comma-separated fields (n,s,t), found 4"),
    ]


def test_reject_unparsed_names_the_first_failing_field_and_keeps_optional_blanks() -> None:
    fields, _ = split_fields(b"1.5,2\nx,3\n,4\n2.5,\n3.5,y", 2, ["price", "size"])
    parsed = fields.with_columns(
        number("price").alias("price"), field("size").cast(pl.Int64, strict=False).alias("size")
    )
    checks: list[Check] = [
        ("price", "price", "a number", True),
        ("size", "size", "an integer", False),
    ]
    good, rejected = reject_unparsed(parsed, checks)
    assert good.select("source_row", "price", "size").rows() == [(2, 1.5, 2), (5, 2.5, None)]
    assert rejected.rows() == [
        (3, "x,3", "field 'price': cannot read x as a number"),
        (4, ",4", "field 'price': cannot read  as a number"),
        (6, "3.5,y", "field 'size': cannot read y as an integer"),
    ]


def test_descale_places_the_decimal_point_exactly() -> None:
    units = pl.Series([5_804_300, -12_345, 7, 0, -100_000])
    assert pl.select(descale(pl.lit(units), 4)).to_series().to_list() == [
        580.43,
        -1.2345,
        0.0007,
        0.0,
        -10.0,
    ]


def test_read_header_and_its_errors(tmp_path: Path) -> None:
    headed = tmp_path / "a.csv.gz"
    headed.write_bytes(gzip.compress("\ufeffts , price\n1,2\n".encode()))
    assert read_header(headed) == ["ts", "price"]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(IngestError, match=r"empty\.csv: file is empty \(no header line\)"):
        read_header(empty)


def test_read_csv_batches_bounds_batches_and_names_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    path.write_text("ts,instrument,price,volume\n" + "".join(
        f"{1_700_000_000_000_000_000 + i},AAA,{100 + i},{'bad' if i == 3 else 1}\n"
        for i in range(5)
    ))  # fmt: skip

    def convert(fields: pl.DataFrame, _: ReaderOptions) -> tuple[pl.DataFrame, list[Check]]:
        parsed = fields.with_columns(
            field("ts").cast(pl.Int64, strict=False).alias("ts"),
            field("instrument").alias("instrument"),
            number("price").alias("price"),
            number("volume").alias("volume"),
        )
        return parsed, [("volume", "volume", "a number", True)]

    batches = list(
        read_csv_batches(
            path, ReaderOptions(batch_rows=2), fmt="test", needed=("ts", "price"),
            convert=convert, schema_name="prices",
        )
    )  # fmt: skip
    # Chunks count file lines, the header included: no batch holds more than 2 rows.
    assert [b.frame.height + b.rejected.height for b in batches] == [1, 2, 2]
    assert pl.concat([b.frame for b in batches])["price"].to_list() == [100.0, 101.0, 102.0, 104.0]
    rejected = pl.concat([b.rejected for b in batches])
    assert rejected.select("source_row", "reason").rows() == [
        (5, "field 'volume': cannot read bad as a number")
    ]
    with pytest.raises(IngestError, match=r"missing column\(s\) \['side'\] for format 'test'"):
        next(
            read_csv_batches(
                path, ReaderOptions(), fmt="test", needed=("side",), convert=convert,
                schema_name="prices",
            )
        )  # fmt: skip
