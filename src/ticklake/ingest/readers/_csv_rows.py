"""The chunk-to-columns kernel the vendor CSV readers share (tardis, bitstamp, databento,
lobster).

A headed, unquoted CSV is read in line-bounded chunks (:func:`read_csv_batches`); each
chunk is split into String columns ``field:<name>`` (:func:`split_fields`, which rejects
lines with the wrong number of fields), a reader's converter parses them into typed
columns and lists its :data:`Check` s, and :func:`reject_unparsed` splits off the rows
whose fields could not be read, each with its line number, raw text and reason.

Private (leading underscore): the reader auto-discovery in ``readers/__init__.py`` skips
it, since it registers no format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import polars as pl

from ticklake.errors import IngestError
from ticklake.ingest.readers.base import (
    REJECTED_SCHEMA,
    Batch,
    ReaderOptions,
    check_text_source,
    iter_text_chunks,
    open_source,
)
from ticklake.schemas import get_schema

#: A parse check: (parsed column, raw field, what was expected, required).
Check = tuple[str, str, str, bool]
#: Turns the raw string fields of a chunk into parsed columns plus their checks.
Converter = Callable[[pl.DataFrame, ReaderOptions], tuple[pl.DataFrame, list[Check]]]


def field(name: str) -> pl.Expr:
    """Refer to the raw string field ``name`` of a chunk made by :func:`split_fields`."""
    return pl.col(f"field:{name}")


def read_header(path: Path) -> list[str]:
    """Return the comma-separated column names on the first line of ``path``."""
    check_text_source(path)
    with open_source(path) as fh:
        try:
            first = fh.readline()
        except (OSError, EOFError) as exc:
            raise IngestError(
                f"{path}: file is corrupt or truncated before the header ({exc}); "
                "re-download or remove it.",
                path=str(path),
            ) from exc
    header = first.decode("utf-8", errors="replace").strip().lstrip("\ufeff")
    if not header:
        raise IngestError(f"{path}: file is empty (no header line).", path=str(path))
    return [name.strip() for name in header.split(",")]


def iter_data_chunks(path: Path, lines_per_chunk: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(first_line_number, bytes)`` chunks of ``path`` after its header line."""
    for first_line, chunk in iter_text_chunks(path, lines_per_chunk):
        if first_line == 1:
            newline = chunk.find(b"\n")
            chunk = b"" if newline < 0 else chunk[newline + 1 :]
            first_line = 2
        if chunk:
            yield first_line, chunk


def split_fields(
    chunk: bytes, first_line: int, names: Sequence[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a chunk of unquoted CSV lines into String columns ``field:<name>``.

    Returns ``(fields, rejected)``: ``fields`` has ``source_row`` (1-based line number),
    ``raw`` (the line) and one column per name; lines with the wrong number of fields
    are rejected. Blank lines are not rows and are skipped.
    """
    lines = chunk.decode("utf-8", errors="replace").split("\n")
    frame = pl.DataFrame(
        {
            "source_row": pl.int_range(
                first_line, first_line + len(lines), dtype=pl.Int64, eager=True
            ),
            "raw": pl.Series(lines, dtype=pl.String),
        }
    )
    frame = frame.with_columns(pl.col("raw").str.strip_chars_end("\r")).filter(
        pl.col("raw").str.strip_chars() != ""
    )
    field_count = pl.col("raw").str.count_matches(",", literal=True) + 1
    damaged = pl.col("raw").str.contains("\ufffd", literal=True)
    wrong = (field_count != len(names)) | damaged
    rejected = frame.filter(wrong).select(
        "source_row",
        "raw",
        reason=pl.when(damaged)
        .then(pl.lit("line is not valid UTF-8 text (damaged bytes)"))
        .otherwise(
            pl.format(
                "expected {} comma-separated fields ({}), found {}",
                pl.lit(len(names)),
                pl.lit(",".join(names)),
                field_count,
            )
        ),
    )
    parts = pl.col("raw").str.split(",")
    fields = frame.filter(~wrong).with_columns(
        [parts.list.get(i).str.strip_chars().alias(f"field:{n}") for i, n in enumerate(names)]
    )
    return fields, rejected


def reject_unparsed(
    frame: pl.DataFrame, checks: Sequence[Check]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split off the rows where a parsed column failed.

    For each check ``(parsed, raw_field, expected, required)`` a row fails when the
    parsed value is null although the raw field was non-empty, or, when ``required``,
    when it is null at all. The reason names the first failing field of the row.
    """
    reasons = []
    for parsed, raw_field, expected, required in checks:
        raw = field(raw_field)
        failed = pl.col(parsed).is_null()
        if not required:
            failed = failed & raw.is_not_null() & (raw != "")
        reasons.append(
            pl.when(failed).then(
                pl.format(f"field {raw_field!r}: cannot read {{}} as {expected}", raw.fill_null(""))
            )
        )
    if not reasons:
        return frame, pl.DataFrame(schema=REJECTED_SCHEMA)
    frame = frame.with_columns(pl.coalesce(reasons).alias("_reason"))
    rejected = frame.filter(pl.col("_reason").is_not_null()).select(
        "source_row", "raw", reason=pl.col("_reason")
    )
    good = frame.filter(pl.col("_reason").is_null()).drop("_reason")
    return good, rejected


def require_columns(path: Path, header: Sequence[str], needed: Sequence[str], fmt: str) -> None:
    """Raise :class:`IngestError` naming the ``needed`` columns absent from ``header``."""
    missing = [name for name in needed if name not in header]
    if missing:
        raise IngestError(
            f"{path}: missing column(s) {missing} for format {fmt!r}; the header has "
            f"{', '.join(header)}. Check that the file is a {fmt} export.",
            path=str(path),
            columns=missing,
        )


def read_csv_batches(
    path: Path,
    options: ReaderOptions,
    *,
    fmt: str,
    needed: Sequence[str],
    convert: Converter,
    schema_name: str,
) -> Iterator[Batch]:
    """Read a headed, unquoted CSV in bounded batches through ``convert``."""
    header = read_header(path)
    require_columns(path, header, needed, fmt)
    schema = get_schema(schema_name)
    for first_line, chunk in iter_data_chunks(path, options.batch_rows):
        fields, rejected_shape = split_fields(chunk, first_line, header)
        parsed, checks = convert(fields, options)
        good, rejected_values = reject_unparsed(parsed, checks)
        frame = schema.conform(good.select(schema.column_names), source=str(path))
        yield Batch(frame=frame, rejected=pl.concat([rejected_shape, rejected_values]))


def number(name: str) -> pl.Expr:
    """Parse the raw field ``name`` as float64 (null when it is not a number)."""
    return field(name).cast(pl.Float64, strict=False)


def descale(units: pl.Expr, digits: int) -> pl.Expr:
    """Turn integer fixed-point ``units`` (value × 10**digits) into the nearest float64.

    Polars divides by a scalar through its reciprocal (5804300 / 10000 gives
    580.4300000000001), so the decimal point is placed in the digits and the text
    parsed, which rounds correctly.

    Examples:
        >>> pl.select(descale(pl.lit(5804300), 4)).item()
        580.43
        >>> pl.select(descale(pl.lit(-12345), 9)).item()
        -1.2345e-05
    """
    text = units.cast(pl.String)
    negative = text.str.starts_with("-")
    body = text.str.strip_prefix("-").str.zfill(digits + 1)
    return pl.concat_str(
        pl.when(negative).then(pl.lit("-")).otherwise(pl.lit("")),
        body.str.slice(0, body.str.len_chars() - digits),
        pl.lit("."),
        body.str.slice(-digits),
    ).cast(pl.Float64)
