"""Bitstamp order-level (L3) events and trades, as captured from the public WebSocket.

Layout (the ob-analytics capture format): ``orders.csv[.gz]`` with
``id,timestamp,exchange_timestamp,price,volume,action,direction`` and ``trades.csv``
with ``trade_id,timestamp,exchange_timestamp,price,amount,buy_order_id,sell_order_id,
side``. Both time columns are epoch milliseconds UTC: ``exchange_timestamp`` (Bitstamp's
microtimestamp truncated to ms) is ``ts``; ``timestamp`` is the local receive time.

The capture tool prepends a synthetic snapshot (``created`` rows rebuilt from the REST
order book) and appends synthetic ``deleted`` rows closing every order still resting at
the end. Their counts are in the sibling ``meta.json`` (``synthetic_created``,
``synthetic_deleted``); the reader flags those rows in ``flags`` (see
:data:`FLAG_SNAPSHOT`, :data:`FLAG_SYNTHETIC_CLOSE`) so they can be told apart from
live events.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from ticklake.errors import IngestError
from ticklake.ingest.readers._csv_rows import Check, field, number, read_csv_batches
from ticklake.ingest.readers.base import Batch, Reader, ReaderOptions, open_source, register_reader

#: ``flags`` bit of a row from the capture's synthetic opening snapshot (the same bit
#: Databento uses for F_SNAPSHOT, so "part of a snapshot" reads the same across venues).
FLAG_SNAPSHOT = 1 << 5
#: ``flags`` bit of a synthetic ``deleted`` row added at the end of the capture.
FLAG_SYNTHETIC_CLOSE = 1 << 8

_MILLISECONDS_TO_NANOSECONDS = 1_000_000
_ACTIONS = {"created": "add", "changed": "modify", "deleted": "delete"}
_VENUE = "bitstamp"


def _epoch_milliseconds(name: str) -> pl.Expr:
    return field(name).cast(pl.Int64, strict=False) * _MILLISECONDS_TO_NANOSECONDS


def _load_meta(path: Path) -> dict[str, Any]:
    meta_path = path.parent / "meta.json"
    if not meta_path.is_file():
        return {}
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise IngestError(
            f"{meta_path}: cannot read the capture metadata ({exc}); fix or remove it.",
            path=str(meta_path),
        ) from exc
    return meta if isinstance(meta, dict) else {}


def _instrument(path: Path, options: ReaderOptions, fmt: str) -> str:
    if options.instrument:
        return options.instrument
    pair = _load_meta(path).get("pair")
    if isinstance(pair, str) and pair:
        return pair.upper()
    raise IngestError(
        f"{path}: {fmt} files carry no symbol and no meta.json with 'pair' is beside it; "
        "pass the instrument (e.g. --instrument BTCUSD).",
        path=str(path),
    )


def _synthetic_counts(path: Path, options: ReaderOptions) -> tuple[int, int]:
    meta = _load_meta(path)
    counts = []
    for key in ("synthetic_created", "synthetic_deleted"):
        value = options.extra.get(key, meta.get(key, 0))
        if not isinstance(value, int) or value < 0:
            raise IngestError(
                f"{path}: {key}={value!r} (from options or meta.json) is not a row count; "
                "fix meta.json or pass a non-negative integer.",
                path=str(path),
            )
        counts.append(value)
    return counts[0], counts[1]


def _count_data_lines(path: Path) -> int:
    count = 0
    with open_source(path) as fh:
        try:
            for line in fh:
                if line.strip():
                    count += 1
        except (OSError, EOFError) as exc:
            raise IngestError(
                f"{path}: file is corrupt or truncated after line {count} ({exc}); "
                "re-download or remove it.",
                path=str(path),
                row=count,
            ) from exc
    return max(count - 1, 0)


@register_reader
class BitstampL3Reader(Reader):
    name = "bitstamp_l3"
    schema = "l3"
    description = (
        "Bitstamp live_orders capture CSV (id,timestamp,exchange_timestamp,price,volume,"
        "action,direction), .gz allowed. ts = exchange_timestamp, epoch ms UTC -> ns (the "
        "receive `timestamp` is not kept: l3 has no recv_ts). Actions: created -> add, "
        "changed -> modify (size = the order's remaining amount after the change, e.g. a "
        "partial fill), deleted -> delete (Bitstamp does not say whether a fill or a cancel "
        "removed the order). direction bid/ask -> side; price USD and volume BTC as written. "
        "seq = line number. Synthetic snapshot/closing rows counted in meta.json are "
        "flagged with flags bits 32 / 256; live rows have null flags. The instrument comes "
        "from the option or meta.json 'pair'."
    )
    suffixes = (".csv",)

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        instrument = _instrument(path, options, self.name)
        created, deleted = _synthetic_counts(path, options)
        # Synthetic closes are the last rows: their first line needs the row count.
        total = _count_data_lines(path) if deleted else 0
        first_close_line = total - deleted + 2  # +1 for the header, +1 for 1-based lines
        last_snapshot_line = created + 1

        def convert(fields: pl.DataFrame, opts: ReaderOptions) -> tuple[pl.DataFrame, list[Check]]:
            action = field("action").str.to_lowercase()
            side = field("direction").str.to_lowercase()
            line = pl.col("source_row")
            parsed = fields.with_columns(
                _epoch_milliseconds("exchange_timestamp").alias("ts"),
                pl.lit(instrument).alias("instrument"),
                line.alias("seq"),
                action.replace_strict(_ACTIONS, default=None).alias("action"),
                pl.when(side.is_in(["bid", "ask"])).then(side).alias("side"),
                field("id").cast(pl.UInt64, strict=False).alias("order_id"),
                number("price").alias("price"),
                number("volume").alias("size"),
                pl.when(line <= last_snapshot_line)
                .then(pl.lit(FLAG_SNAPSHOT))
                .when((line >= first_close_line) if deleted else pl.lit(False))
                .then(pl.lit(FLAG_SYNTHETIC_CLOSE))
                .cast(pl.Int32)
                .alias("flags"),
                pl.lit(_VENUE).alias("venue"),
            )
            _check_synthetic(path, parsed, action_raw="action")
            checks: list[Check] = [
                ("ts", "exchange_timestamp", "epoch milliseconds", True),
                ("action", "action", "created, changed or deleted", True),
                ("side", "direction", "'bid' or 'ask'", True),
                ("order_id", "id", "an unsigned integer order id", True),
                ("price", "price", "a number", True),
                ("size", "volume", "a number", True),
            ]
            return parsed, checks

        yield from read_csv_batches(
            path,
            options,
            fmt=self.name,
            needed=("id", "exchange_timestamp", "price", "volume", "action", "direction"),
            convert=convert,
            schema_name=self.schema,
        )


def _check_synthetic(path: Path, parsed: pl.DataFrame, action_raw: str) -> None:
    """Refuse a meta.json whose synthetic counts do not match the rows they describe."""
    expected = {FLAG_SNAPSHOT: "add", FLAG_SYNTHETIC_CLOSE: "delete"}
    for flag, action in expected.items():
        wrong = parsed.filter((pl.col("flags") == flag) & (pl.col("action") != action))
        if wrong.height:
            row = wrong.row(0, named=True)
            raise IngestError(
                f"{path}: line {row['source_row']} should be a synthetic "
                f"{'created' if action == 'add' else 'deleted'} row according to meta.json "
                f"(synthetic_created / synthetic_deleted) but its action is "
                f"{row['field:' + action_raw]!r}; the counts do not describe this file — fix "
                "meta.json or pass synthetic_created=0, synthetic_deleted=0.",
                path=str(path),
                row=row["source_row"],
            )


@register_reader
class BitstampTradesReader(Reader):
    name = "bitstamp_trades"
    schema = "trades"
    description = (
        "Bitstamp live_trades capture CSV (trade_id,timestamp,exchange_timestamp,price,"
        "amount,buy_order_id,sell_order_id,side). ts = exchange_timestamp and recv_ts = "
        "timestamp, both epoch ms UTC -> ns. side buy/sell (Bitstamp type 0/1 also "
        "accepted) is the aggressor. Price USD and amount BTC as written. buy_order_id / "
        "sell_order_id are not kept (the trades schema has no column for them; join the "
        "l3 events by ts instead). Instrument from the option or meta.json 'pair'."
    )
    suffixes = (".csv",)

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        instrument = _instrument(path, options, self.name)

        def convert(fields: pl.DataFrame, opts: ReaderOptions) -> tuple[pl.DataFrame, list[Check]]:
            side = field("side").str.to_lowercase()
            parsed = fields.with_columns(
                _epoch_milliseconds("exchange_timestamp").alias("ts"),
                _epoch_milliseconds("timestamp").alias("recv_ts"),
                pl.lit(instrument).alias("instrument"),
                pl.when(field("trade_id") != "").then(field("trade_id")).alias("trade_id"),
                number("price").alias("price"),
                number("amount").alias("size"),
                side.replace_strict(
                    {"buy": "buy", "sell": "sell", "0": "buy", "1": "sell"}, default=None
                ).alias("side"),
                pl.lit(_VENUE).alias("venue"),
            )
            checks: list[Check] = [
                ("ts", "exchange_timestamp", "epoch milliseconds", True),
                ("recv_ts", "timestamp", "epoch milliseconds", False),
                ("trade_id", "trade_id", "a trade id", True),
                ("price", "price", "a number", True),
                ("size", "amount", "a number", True),
                ("side", "side", "'buy' or 'sell'", False),
            ]
            return parsed, checks

        yield from read_csv_batches(
            path,
            options,
            fmt=self.name,
            needed=("trade_id", "timestamp", "exchange_timestamp", "price", "amount", "side"),
            convert=convert,
            schema_name=self.schema,
        )
