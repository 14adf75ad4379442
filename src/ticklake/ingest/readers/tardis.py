"""Tardis.dev CSV datasets: trades, quotes, book snapshots and incremental L2.

Tardis CSV files have a header, no quoting, and two epoch-microsecond UTC time columns:
``timestamp`` (the exchange's time, our ``ts``) and ``local_timestamp`` (Tardis's
receive time, our ``recv_ts``). ``symbol`` and ``exchange`` become ``instrument`` and
``venue``. Prices and amounts are plain decimals in the venue's units; nothing is
scaled. Tardis has no sequence numbers: ``seq`` is the line number in the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import polars as pl

from ticklake.errors import IngestError
from ticklake.ingest.readers._csv_rows import Check, field, number, read_csv_batches, read_header
from ticklake.ingest.readers.base import Batch, Reader, ReaderOptions, register_reader

_MICROSECONDS_TO_NANOSECONDS = 1_000
_SNAPSHOT_COLUMN = re.compile(r"^(asks|bids)\[(\d+)\]\.(price|amount)$")
#: Default L2 depth for ``tardis_book_snapshot`` when ``extra["levels"]`` is not given.
DEFAULT_SNAPSHOT_LEVELS = 25


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
