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

Venue semantics (Databento's MBO docs): only A add, C cancel, M modify and R clear
change the book; T trade, F fill and N none do not. A resting order that is executed
gets its F record(s) and then a C (fully filled) or an M (partially filled) that
removes the quantity from the book. The canonical actions keep that apart from
LOBSTER's, whose ``fill`` itself reduces the order:

- ``F`` -> ``fill_report``: an execution against a visible resting order that leaves
  the book unchanged (counted as an execution by the L3 metrics, not replayed);
- a ``C`` whose size equals the quantity filled on the same order since the order's
  last A/M/C (its F records summed; T records where it has no F: CME reports an
  execution as a T and an F of the resting order) -> ``fill_removal``: it removes the
  filled quantity from the book like a cancel but is an execution, not a cancel;
- every other ``C`` -> ``cancel``. The marking follows orders across batches and is
  reset by a clear (R).
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
#: record) has no book meaning and is rejected with its reason, never dropped. A 'C'
#: that removes a filled order becomes FILL_REMOVAL instead (:func:`fill_removals`).
ACTIONS = {
    "A": "add",
    "C": "cancel",
    "M": "modify",
    "R": "clear",
    "T": "trade",
    "F": "fill_report",
}
#: the canonical action of a C that takes a filled order's executed quantity off the book
FILL_REMOVAL = "fill_removal"
#: raw actions reporting an execution of an order (neither changes the book)
_FILL_CODES = ("F", "T")
#: raw actions of an order that end a run of fills
_ORDER_CODES = ("A", "M", "C")
SIDES = {"B": "bid", "A": "ask", "N": None}
#: Databento publisher ids -> venue (MIC-style) codes; extend as datasets are added.
PUBLISHER_VENUES = {1: "GLBX"}


def fill_removals(
    code: pl.Series, order_id: pl.Series, size: pl.Series, carry: dict[int, tuple[float, float]]
) -> pl.Series:
    """Which rows are a C removing the quantity just filled of the same order.

    ``code`` holds the raw action letters of a batch, in file order; ``order_id`` the
    order ids (null for none) and ``size`` the sizes. The fills of an order are its F
    (or, without any F, its T) records since its previous A/M/C: CME reports one
    execution as a T and an F of the same order, so the two are not added together. A C
    whose size equals those fills' total is a removal. ``carry`` maps order ids to the
    (F, T) totals a previous batch ended with (their run is still open); it is read and
    updated in place, and emptied by a clear (R).

    Examples:
        >>> import polars as pl
        >>> carry: dict[int, tuple[float, float]] = {}
        >>> fill_removals(pl.Series(["A", "T", "F", "C", "A", "C"]),
        ...     pl.Series([1, 1, 1, 1, 2, 2]), pl.Series([5.0, 5, 5, 5, 3, 3]), carry).to_list()
        [False, False, False, True, False, False]
    """
    rows = pl.DataFrame(
        {"code": code, "order_id": order_id.cast(pl.UInt64), "size": size.cast(pl.Float64)}
    ).with_row_index("_row")
    rows = rows.with_columns(_epoch=(pl.col("code") == "R").cum_sum())
    ends_run = pl.col("code").is_in(_ORDER_CODES).cast(pl.Int64)
    key = ["_epoch", "order_id"]
    carried = pl.DataFrame(
        {
            "order_id": list(carry),
            "_carry_f": [f for f, _ in carry.values()],
            "_carry_t": [t for _, t in carry.values()],
        },
        schema={"order_id": pl.UInt64, "_carry_f": pl.Float64, "_carry_t": pl.Float64},
    )
    first_run = (pl.col("_epoch") == 0) & (pl.col("_run") == 0)

    def total(letter: str) -> pl.Expr:
        run_sum = pl.when(pl.col("code") == letter).then(pl.col("size")).otherwise(0.0)
        carried_in = pl.when(first_run).then(pl.col(f"_carry_{letter.lower()}").fill_null(0.0))
        return run_sum.sum().over(*key, "_run") + carried_in.otherwise(0.0)

    orders = (
        rows.filter(
            pl.col("order_id").is_not_null()
            & pl.col("size").is_not_null()
            & pl.col("code").is_in((*_FILL_CODES, *_ORDER_CODES))
        )
        # run j: the fills after the order's j-th A/M/C in the batch and the next A/M/C
        .with_columns(_run=(ends_run.cum_sum() - ends_run).over(key))
        .join(carried, on="order_id", how="left")
        .with_columns(_f=total("F"), _t=total("T"))
    )
    filled = pl.when(pl.col("_f") > 0).then(pl.col("_f")).otherwise(pl.col("_t"))
    removal = orders.filter((pl.col("code") == "C") & (filled > 0) & (filled == pl.col("size")))[
        "_row"
    ]
    # the runs still open at the end of the batch carry into the next one
    last = orders.group_by("order_id").agg(pl.all().sort_by("_row").last())
    if (rows["code"] == "R").any():
        carry.clear()
        last = last.filter(pl.col("_epoch") == rows["_epoch"].max())
    for order, letter, f, t in last.select("order_id", "code", "_f", "_t").iter_rows():
        if letter in _FILL_CODES:
            carry[order] = (f, t)
        else:
            carry.pop(order, None)
    return rows["_row"].is_in(removal.implode()).alias("fill_removal")


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
        "C cancel, M modify, R clear, T trade, F fill_report (an execution that leaves the "
        "book unchanged), a C taking exactly the preceding F/T quantity of its order off "
        "the book fill_removal; N (no action) is rejected. side "
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
        carry: dict[int, tuple[float, float]] = {}  # open fill runs across batches (fill_removals)

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
            raw = fields.select(
                field("action").alias("code"),
                pl.when(order_id != 0).then(order_id).alias("order_id"),
                field("size").cast(pl.Float64, strict=False).alias("size"),
            )
            removal = fill_removals(raw["code"], raw["order_id"], raw["size"], carry)
            parsed = fields.with_columns(
                field("ts_event").cast(pl.Int64, strict=False).alias("ts"),
                pl.when(instrument != "").then(instrument).alias("instrument"),
                pl.col("source_row").alias("seq"),
                pl.when(pl.lit(removal))
                .then(pl.lit(FILL_REMOVAL))
                .otherwise(field("action").replace_strict(ACTIONS, default=None))
                .alias("action"),
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
