"""Reader for NSE index 1-second files (the NIFTY 50 intraday series).

Format: no header, one ``YYYY-MM-DD HH:MM:SS,value`` line per point, naive IST.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from ticklake.ingest.readers.base import (
    REJECTED_SCHEMA,
    Batch,
    Reader,
    ReaderOptions,
    iter_text_chunks,
    register_reader,
)
from ticklake.schemas import get_schema

DEFAULT_TIMEZONE = "Asia/Kolkata"
DEFAULT_INSTRUMENT = "NIFTY 50"


@register_reader
class NseIndexReader(Reader):
    name = "nse_index"
    schema = "prices"
    description = (
        "NSE index value series at about one point per second, as scraped from the NSE "
        "website (e.g. the NIFTY 50 files 2022-08-10.csv.gz): no header, "
        "`YYYY-MM-DD HH:MM:SS,value` per line. Times are naive Asia/Kolkata wall-clock "
        "(options.timezone overrides) and are converted to UTC; values are index points, "
        "unscaled; there is no volume. The instrument is options.instrument, default "
        "'NIFTY 50'. Every row is kept as written, including the 09:00-09:15 pre-open "
        "rows, the frozen pre-open values and files stamped with a weekend date: judging "
        "them is the quality stage's job. Lines whose time or value does not parse go to "
        "rejected with the field named."
    )
    suffixes: ClassVar[tuple[str, ...]] = (".csv",)
    exchange_timezone: ClassVar[str] = "Asia/Kolkata"

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        target = get_schema(self.schema)
        timezone = options.timezone or DEFAULT_TIMEZONE
        instrument = options.instrument or DEFAULT_INSTRUMENT
        for first_line, chunk in iter_text_chunks(Path(path), max(1, options.batch_rows)):
            yield _parse_chunk(chunk, first_line, timezone, instrument, target.conform, path)


def _parse_chunk(
    chunk: bytes, first_line: int, timezone: str, instrument: str, conform: Any, path: Path
) -> Batch:
    lines = chunk.decode("utf-8", errors="replace").splitlines()
    frame = pl.DataFrame({"raw": lines}, schema={"raw": pl.String}).with_columns(
        pl.int_range(first_line, first_line + len(lines), dtype=pl.Int64).alias("source_row")
    )
    frame = frame.filter(pl.col("raw").str.strip_chars() != "")
    parts = pl.col("raw").str.strip_chars().str.split_exact(",", 1)
    frame = frame.with_columns(
        parts.struct.field("field_0")
        .str.strip_chars()
        .str.strptime(pl.Datetime("ns"), "%Y-%m-%d %H:%M:%S%.f", strict=False)
        .alias("local_ts"),
        parts.struct.field("field_1")
        .str.strip_chars()
        .cast(pl.Float64, strict=False)
        .alias("price"),
    )
    frame = frame.with_columns(
        pl.col("local_ts")
        .dt.replace_time_zone(timezone, ambiguous="null", non_existent="null")
        .dt.convert_time_zone("UTC")
        .alias("ts")
    )
    fields = pl.col("raw").str.count_matches(",", literal=True) + 1
    failed = (
        (fields != 2)
        | pl.col("ts").is_null()
        | pl.col("price").is_null()
        | ~pl.col("price").is_finite()
    )
    rejected = frame.filter(failed).select(
        "source_row",
        "raw",
        pl.when(fields != 2)
        .then(pl.format("expected 2 fields, got {}", fields))
        .when(pl.col("ts").is_null())
        .then(pl.lit("time: expected YYYY-MM-DD HH:MM:SS in the first field"))
        .otherwise(pl.lit("value: expected a number in the second field"))
        .alias("reason"),
    )
    good = frame.filter(~failed).select(
        "ts", pl.lit(instrument).alias("instrument"), "price", pl.lit(None).alias("volume")
    )
    return Batch(frame=conform(good, source=str(path)), rejected=rejected.cast(REJECTED_SCHEMA))
