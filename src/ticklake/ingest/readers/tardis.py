"""Tardis.dev CSV datasets: trades, quotes, book snapshots and incremental L2.

Tardis CSV files have a header, no quoting, and two epoch-microsecond UTC time columns:
``timestamp`` (the exchange's time, our ``ts``) and ``local_timestamp`` (Tardis's
receive time, our ``recv_ts``). ``symbol`` and ``exchange`` become ``instrument`` and
``venue``. Prices and amounts are plain decimals in the venue's units; nothing is
scaled. Tardis has no sequence numbers: ``seq`` is the line number in the file.

This module also holds the chunk-to-columns kernel the other vendor CSV readers
(bitstamp, databento) share: :func:`split_fields`, :func:`reject_unparsed`. It lives
here because the readers package has no shared private module yet; it belongs in one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import polars as pl

from ticklake.errors import IngestError
from ticklake.ingest.readers.base import (
    REJECTED_SCHEMA,
    Batch,
    Reader,
    ReaderOptions,
    iter_text_chunks,
    open_source,
    register_reader,
)
from ticklake.schemas import get_schema

#: A parse check: (parsed column, raw field, what was expected, required).
Check = tuple[str, str, str, bool]
#: Turns the raw string fields of a chunk into parsed columns plus their checks.
Converter = Callable[[pl.DataFrame, ReaderOptions], tuple[pl.DataFrame, list[Check]]]

_MICROSECONDS_TO_NANOSECONDS = 1_000
_SNAPSHOT_COLUMN = re.compile(r"^(asks|bids)\[(\d+)\]\.(price|amount)$")
#: Default L2 depth for ``tardis_book_snapshot`` when ``extra["levels"]`` is not given.
DEFAULT_SNAPSHOT_LEVELS = 25


# --- shared kernel -------------------------------------------------------------------


def field(name: str) -> pl.Expr:
    """Refer to the raw string field ``name`` of a chunk made by :func:`split_fields`."""
    return pl.col(f"field:{name}")


def read_header(path: Path) -> list[str]:
    """Return the comma-separated column names on the first line of ``path``."""
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
    rejected = frame.filter(field_count != len(names)).select(
        "source_row",
        "raw",
        reason=pl.format(
            "expected {} comma-separated fields ({}), found {}",
            pl.lit(len(names)),
            pl.lit(",".join(names)),
            field_count,
        ),
    )
    parts = pl.col("raw").str.split(",")
    fields = frame.filter(field_count == len(names)).with_columns(
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


def _epoch_microseconds(name: str) -> pl.Expr:
    return field(name).cast(pl.Int64, strict=False) * _MICROSECONDS_TO_NANOSECONDS


def _common(options: ReaderOptions) -> list[pl.Expr]:
    symbol = pl.lit(options.instrument) if options.instrument else field("symbol")
    return [
        _epoch_microseconds("timestamp").alias("ts"),
        _epoch_microseconds("local_timestamp").alias("recv_ts"),
        pl.when(symbol != "").then(symbol).alias("instrument"),
        pl.when(field("exchange") != "").then(field("exchange")).alias("venue"),
    ]


_COMMON_FIELDS = ("exchange", "symbol", "timestamp", "local_timestamp")
_COMMON_CHECKS: list[Check] = [
    ("ts", "timestamp", "epoch microseconds", True),
    ("recv_ts", "local_timestamp", "epoch microseconds", False),
    ("instrument", "symbol", "a symbol", True),
]


# --- trades --------------------------------------------------------------------------


def _convert_trades(
    fields: pl.DataFrame, options: ReaderOptions
) -> tuple[pl.DataFrame, list[Check]]:
    side = field("side").str.to_lowercase()
    parsed = fields.with_columns(
        *_common(options),
        # Tardis leaves `id` empty on venues without trade ids: fall back to the line.
        pl.when(field("id") != "")
        .then(field("id"))
        .otherwise(pl.col("source_row").cast(pl.String))
        .alias("trade_id"),
        number("price").alias("price"),
        number("amount").alias("size"),
        # 'unknown' is a legitimate Tardis value (no aggressor info): valid, but null.
        pl.when(side.is_in(["buy", "sell", "unknown"])).then(side).alias("_side"),
    ).with_columns(pl.when(pl.col("_side") != "unknown").then(pl.col("_side")).alias("side"))
    checks: list[Check] = [
        *_COMMON_CHECKS,
        ("price", "price", "a number", True),
        ("size", "amount", "a number", True),
        ("_side", "side", "'buy', 'sell' or 'unknown'", False),
    ]
    return parsed, checks


@register_reader
class TardisTradesReader(Reader):
    name = "tardis_trades"
    schema = "trades"
    description = (
        "Tardis.dev `trades` CSV (exchange,symbol,timestamp,local_timestamp,id,side,price,"
        "amount). `timestamp` (exchange) and `local_timestamp` (receive) are epoch "
        "microseconds UTC -> ts / recv_ts in ns. Prices and amounts are used as written, no "
        "scaling. side buy/sell is the aggressor, 'unknown' becomes null; an empty id falls "
        "back to the source line number."
    )
    suffixes = (".csv",)

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        yield from read_csv_batches(
            path,
            options,
            fmt=self.name,
            needed=(*_COMMON_FIELDS, "id", "side", "price", "amount"),
            convert=_convert_trades,
            schema_name=self.schema,
        )


# --- quotes --------------------------------------------------------------------------


def _convert_quotes(
    fields: pl.DataFrame, options: ReaderOptions
) -> tuple[pl.DataFrame, list[Check]]:
    parsed = fields.with_columns(
        *_common(options),
        pl.col("source_row").alias("seq"),
        number("bid_price").alias("bid_price"),
        number("bid_amount").alias("bid_size"),
        number("ask_price").alias("ask_price"),
        number("ask_amount").alias("ask_size"),
    )
    checks: list[Check] = [
        *_COMMON_CHECKS,
        ("bid_price", "bid_price", "a number", False),
        ("bid_size", "bid_amount", "a number", False),
        ("ask_price", "ask_price", "a number", False),
        ("ask_size", "ask_amount", "a number", False),
    ]
    return parsed, checks


@register_reader
class TardisQuotesReader(Reader):
    name = "tardis_quotes"
    schema = "quotes"
    description = (
        "Tardis.dev `quotes` CSV (exchange,symbol,timestamp,local_timestamp,ask_amount,"
        "ask_price,bid_price,bid_amount). Epoch microseconds UTC -> ts (exchange time) and "
        "recv_ts (local_timestamp) in ns; prices/amounts as written; an empty side (no "
        "quote) stays null. seq is the line number in the file."
    )
    suffixes = (".csv",)

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        yield from read_csv_batches(
            path,
            options,
            fmt=self.name,
            needed=(*_COMMON_FIELDS, "ask_amount", "ask_price", "bid_price", "bid_amount"),
            convert=_convert_quotes,
            schema_name=self.schema,
        )


# --- book snapshots ------------------------------------------------------------------


def snapshot_levels(header: Sequence[str]) -> int:
    """Return the depth N of a Tardis ``book_snapshot_N`` header (``asks[i].price`` ...).

    Examples:
        >>> snapshot_levels(["exchange", "asks[0].price", "asks[0].amount",
        ...                  "bids[0].price", "bids[0].amount", "asks[1].price"])
        2
    """
    indices = [int(m.group(2)) for m in map(_SNAPSHOT_COLUMN.match, header) if m]
    return max(indices) + 1 if indices else 0


def detect_snapshot_levels(path: Path) -> int:
    """Read the header of a Tardis book snapshot file and return its depth N."""
    return snapshot_levels(read_header(path))


def _requested_levels(options: ReaderOptions) -> int:
    levels = options.extra.get("levels", DEFAULT_SNAPSHOT_LEVELS)
    try:
        levels = int(levels)
    except (TypeError, ValueError):
        levels = 0
    if levels < 1:
        raise IngestError(
            f"option levels={options.extra.get('levels')!r} is not a positive integer; "
            "pass the snapshot depth, e.g. levels=25 for book_snapshot_25.",
            option="levels",
        )
    return levels


@register_reader
class TardisBookSnapshotReader(Reader):
    name = "tardis_book_snapshot"
    schema = "l2_25"
    description = (
        "Tardis.dev `book_snapshot_N` CSV (exchange,symbol,timestamp,local_timestamp, then "
        "asks[i].price, asks[i].amount, bids[i].price, bids[i].amount for i < N) -> l2_N. "
        "Epoch microseconds UTC -> ts (exchange) in ns; local_timestamp is not kept (l2 "
        "has no recv_ts). Prices as written; empty levels are null. N comes from "
        "extra['levels'] (default 25); read() checks it against the header and refuses a "
        "mismatch (detect_snapshot_levels(path) reads N from a file). seq is the line number."
    )
    suffixes = (".csv",)

    def prepare(self, first_path: Path, options: ReaderOptions) -> ReaderOptions:
        if "levels" in options.extra:
            return options
        levels = detect_snapshot_levels(first_path)
        return replace(options, extra={**options.extra, "levels": levels})

    def schema_for(self, options: ReaderOptions) -> str:
        return f"l2_{_requested_levels(options)}"

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        levels = _requested_levels(options)
        header = read_header(path)
        found = snapshot_levels(header)
        if found != levels:
            raise IngestError(
                f"{path}: file is a book snapshot with {found} levels but levels={levels} "
                f"was requested (schema l2_{levels}); pass levels={found} (option "
                f"extra['levels']) to ingest it as l2_{found}.",
                path=str(path),
                levels=found,
            )
        level_fields = [
            f"{side}[{i}].{what}"
            for i in range(levels)
            for side in ("asks", "bids")
            for what in ("price", "amount")
        ]

        def convert(fields: pl.DataFrame, opts: ReaderOptions) -> tuple[pl.DataFrame, list[Check]]:
            exprs = [*_common(opts), pl.col("source_row").alias("seq")]
            checks: list[Check] = list(_COMMON_CHECKS)
            for i in range(levels):
                for side, ours in (("asks", "ask"), ("bids", "bid")):
                    for what, our_what in (("price", "price"), ("amount", "size")):
                        name = f"{ours}_{our_what}_{i}"
                        exprs.append(number(f"{side}[{i}].{what}").alias(name))
                        checks.append((name, f"{side}[{i}].{what}", "a number", False))
            return fields.with_columns(exprs), checks

        yield from read_csv_batches(
            path,
            options,
            fmt=self.name,
            needed=(*_COMMON_FIELDS, *level_fields),
            convert=convert,
            schema_name=f"l2_{levels}",
        )


# --- incremental L2 ------------------------------------------------------------------


def _convert_incremental(
    fields: pl.DataFrame, options: ReaderOptions
) -> tuple[pl.DataFrame, list[Check]]:
    side = field("side").str.to_lowercase()
    snapshot = field("is_snapshot").str.to_lowercase()
    parsed = fields.with_columns(
        *_common(options),
        pl.col("source_row").alias("seq"),
        pl.when(side.is_in(["bid", "ask"])).then(side).alias("side"),
        number("price").alias("price"),
        number("amount").alias("size"),
        pl.when(snapshot == "true")
        .then(True)
        .when(snapshot == "false")
        .then(False)
        .alias("is_snapshot"),
    )
    checks: list[Check] = [
        *_COMMON_CHECKS,
        ("side", "side", "'bid' or 'ask'", True),
        ("price", "price", "a number", True),
        ("size", "amount", "a number", True),
        ("is_snapshot", "is_snapshot", "'true' or 'false'", True),
    ]
    return parsed, checks


@register_reader
class TardisIncrementalL2Reader(Reader):
    name = "tardis_incremental_l2"
    schema = "book_updates"
    description = (
        "Tardis.dev `incremental_book_L2` CSV (exchange,symbol,timestamp,local_timestamp,"
        "is_snapshot,side,price,amount): amount is the new total size at the level, 0 "
        "removes it. Epoch microseconds UTC -> ts (exchange) / recv_ts (local) in ns; "
        "prices as written; is_snapshot true/false marks rows of a full snapshot (the "
        "book is reset at the first snapshot row after live rows). seq is the line number."
    )
    suffixes = (".csv",)

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        yield from read_csv_batches(
            path,
            options,
            fmt=self.name,
            needed=(*_COMMON_FIELDS, "is_snapshot", "side", "price", "amount"),
            convert=_convert_incremental,
            schema_name=self.schema,
        )
