"""Databento market-by-order (MBO) records decoded to CSV (``dbn`` CSV encoding).

Columns (by header name, extra ones ignored): ``ts_recv, ts_event, instrument_id,
publisher_id, action, side, price, size, order_id, flags, ts_in_delta, sequence,
channel_id`` and, when the export mapped symbols, ``symbol``. Times are epoch
nanoseconds UTC. Prices are fixed-point integers with a 1e-9 scale, or decimals when
exported with ``pretty_px``; the undefined price (i64 max, or empty) is null.

Keys: ``seq`` is the line number in the file, not Databento's ``sequence``. The venue
sequence repeats across records (a snapshot shares one sequence over hundreds of adds;
a trade and its fills share one), so using it would merge distinct events on the
(instrument, ts, seq) key. File order is Databento's processing order (by ``ts_recv``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl

from ticklake.ingest.readers._csv_rows import Check, descale, field, read_csv_batches, read_header
from ticklake.ingest.readers.base import Batch, Reader, ReaderOptions, register_reader

PRICE_DIGITS = 9  # fixed-point prices are value x 10**9
#: Databento's UNDEF_PRICE (i64 max): "no price", e.g. on a clear (R) record.
UNDEFINED_PRICE = "9223372036854775807"
#: Databento action codes -> canonical l3 actions. 'N' (no action, a flags-only
#: record) has no book meaning and is rejected with its reason, never dropped.
ACTIONS = {
    "A": "add",
    "C": "cancel",
    "M": "modify",
    "R": "clear",
    "T": "trade",
    "F": "fill",
}
SIDES = {"B": "bid", "A": "ask", "N": None}
#: Databento publisher ids -> venue (MIC-style) codes; extend as datasets are added.
PUBLISHER_VENUES = {1: "GLBX"}


def _price(raw: pl.Expr) -> pl.Expr:
    fixed = raw.cast(pl.Int64, strict=False)
    decimal = raw.cast(pl.Float64, strict=False)
    return (
        pl.when((raw == UNDEFINED_PRICE) | (raw == ""))
        .then(None)
        .when(fixed.is_not_null())
        .then(descale(fixed, PRICE_DIGITS))
        .when(raw.str.contains(r"^-?\d+\.\d*$"))
        .then(decimal)
    )


@register_reader
class DatabentoMboReader(Reader):
    name = "databento_mbo"
    schema = "l3"
    description = (
        "Databento MBO CSV (the dbn CSV encoding, .gz/.zst allowed) -> l3. ts = ts_event, "
        "epoch ns UTC; ts_recv is not kept (l3 has no recv_ts). price: int x 1e-9 "
        "descaled (decimal pretty_px accepted), i64-max sentinel -> null. action A add, "
        "C cancel, M modify, R clear, T trade, F fill; N (no action) is rejected. side "
        "B bid, A ask, N null (for T it is the aggressor, for F the resting order's "
        "side). flags raw; order_id 0 -> null. seq = line number (Databento's sequence "
        "repeats within a ts_event, so it cannot key rows). instrument = `symbol` column, "
        "else the instrument option, else the numeric instrument_id. venue from "
        "publisher_id (1 -> GLBX)."
    )
    suffixes = (".csv",)
    # The publishers mapped so far are CME Globex (GLBX.MDP3): its trading day starts
    # at 17:00 Chicago time on the previous calendar day.
    exchange_timezone = "America/Chicago"
    day_offset = "7h"

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        has_symbol = "symbol" in read_header(path)

        def convert(fields: pl.DataFrame, opts: ReaderOptions) -> tuple[pl.DataFrame, list[Check]]:
            if has_symbol:
                instrument = field("symbol")
            elif opts.instrument:
                instrument = pl.lit(opts.instrument)
            else:
                instrument = field("instrument_id")
            order_id = field("order_id").cast(pl.UInt64, strict=False)
            side = field("side")
            publisher = field("publisher_id").cast(pl.Int64, strict=False)
            parsed = fields.with_columns(
                field("ts_event").cast(pl.Int64, strict=False).alias("ts"),
                pl.when(instrument != "").then(instrument).alias("instrument"),
                pl.col("source_row").alias("seq"),
                field("action").replace_strict(ACTIONS, default=None).alias("action"),
                side.replace_strict(SIDES, default=None).alias("side"),
                pl.when(side.is_in(list(SIDES))).then(True).alias("_side_ok"),
                order_id.alias("_order_id"),
                pl.when(order_id != 0).then(order_id).alias("order_id"),
                _price(field("price")).alias("price"),
                pl.when(field("price").is_in([UNDEFINED_PRICE, ""]))
                .then(True)
                .when(_price(field("price")).is_not_null())
                .then(True)
                .alias("_price_ok"),
                field("size").cast(pl.Float64, strict=False).alias("size"),
                field("flags").cast(pl.Int32, strict=False).alias("flags"),
                publisher.replace_strict(
                    PUBLISHER_VENUES, default=None, return_dtype=pl.String
                ).alias("venue"),
            )
            checks: list[Check] = [
                ("ts", "ts_event", "epoch nanoseconds", True),
                ("instrument", "symbol" if has_symbol else "instrument_id", "an instrument", True),
                ("action", "action", "one of A, C, M, R, T, F", True),
                ("_side_ok", "side", "B, A or N", True),
                ("_order_id", "order_id", "an unsigned integer", True),
                ("_price_ok", "price", "a 1e-9 fixed-point integer or a decimal", True),
                ("size", "size", "a number", True),
                ("flags", "flags", "an integer", False),
            ]
            return parsed, checks

        yield from read_csv_batches(
            path,
            options,
            fmt=self.name,
            needed=(
                "ts_event",
                "instrument_id",
                "publisher_id",
                "action",
                "side",
                "price",
                "size",
                "order_id",
                "flags",
            ),
            convert=convert,
            schema_name=self.schema,
        )
