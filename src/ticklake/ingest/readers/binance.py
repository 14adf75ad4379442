"""Binance public-data files (data.binance.vision) and Binance depth CSVs.

Each reader is a preset :class:`~ticklake.ingest.mapping.Mapping` plus Binance's quirks:

- Files come with a header (USD-M futures, since ~2022) or without one (spot); the
  header is detected from the first line (a numeric first field means data).
- Timestamps are epoch milliseconds, except spot files from 2025-01-01 on, which Binance
  writes in microseconds. The unit is detected per file from the magnitude of the first
  chunk's times (around 1.7e12 = ms, 1.7e15 = us) and then kept for the whole file.
- ``is_buyer_maker`` true means the resting order was the buy, so the aggressor sold:
  ``side = "sell"``.
- Kline ``close_time`` is the bar's last millisecond (open + 59,999 ms for 1m bars);
  canonical ``ts_end`` is exclusive, so it is ``close_time`` + 1 unit.
- The instrument comes from ``options.instrument`` or the file name
  (``BTCUSDT-trades-2024-01-01.csv`` → ``BTCUSDT``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from ticklake.errors import IngestError
from ticklake.ingest.mapping import (
    UNIT_NANOSECONDS,
    CsvSpec,
    Mapping,
    resolve_auto_unit,
)
from ticklake.ingest.readers.base import (
    Batch,
    Reader,
    ReaderOptions,
    check_text_source,
    open_source,
    register_reader,
)
from ticklake.ingest.readers.generic import SourceFrame, iter_csv_frames, map_frames

VENUE = "binance"

TRADE_COLUMNS = ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match")
AGG_TRADE_COLUMNS = (
    "agg_trade_id",
    "price",
    "quantity",
    "first_trade_id",
    "last_trade_id",
    "transact_time",
    "is_buyer_maker",
    "is_best_match",
)
BOOK_TICKER_COLUMNS = (
    "update_id",
    "best_bid_price",
    "best_bid_qty",
    "best_ask_price",
    "best_ask_qty",
    "transaction_time",
    "event_time",
)
KLINE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)

_FILE_NAME = re.compile(r"^(?P<symbol>[A-Z0-9]+)-(?P<kind>[A-Za-z0-9]+)-")
_BUYER_MAKER_SIDES: dict[str, str | int | float | bool] = {"true": "sell", "false": "buy"}

#: Rows of one depth update share ``last_update_id``; seq = id × this + position.
DEPTH_SEQ_FACTOR = 100_000


def instrument_for(path: Path, options: ReaderOptions) -> str:
    """Return ``options.instrument``, else the symbol at the start of a Binance file name."""
    if options.instrument:
        return options.instrument
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise IngestError(
            f"{path}: cannot tell the instrument from the file name (expected Binance's "
            "SYMBOL-kind-date.csv, e.g. BTCUSDT-trades-2024-01-01.csv); pass --instrument.",
            path=str(path),
        )
    return match.group("symbol")


def _first_fields(path: Path) -> list[str]:
    check_text_source(path)
    with open_source(path) as fh:
        try:
            line = fh.readline().decode("utf-8-sig", errors="replace")
        except (OSError, EOFError) as exc:
            raise IngestError(
                f"{path}: file is corrupt or truncated ({exc}); re-download or remove it.",
                path=str(path),
                row=1,
            ) from exc
    return [field.strip() for field in line.strip().split(",")]


def _csv_spec(path: Path, names: tuple[str, ...]) -> CsvSpec:
    """Header when the first field is not a number; otherwise Binance's column order."""
    fields = _first_fields(path)
    first = fields[0] if fields else ""
    if first and not first.replace(".", "", 1).isdigit():
        return CsvSpec(has_header=True)
    # Every row must have the format's field count: a row missing trailing fields is
    # rejected ("expected N fields, got M") like a row with extra fields, never padded.
    return CsvSpec(has_header=False, column_names=names)


def _with_resolved_unit(
    frames: Iterator[SourceFrame], mapping: Mapping
) -> tuple[Mapping, Iterator[SourceFrame]]:
    """Fix ``unit: auto`` from the file's first chunk and hand back the full iterator."""
    first = next(frames, None)
    if first is None:
        return mapping, iter(())
    resolved = resolve_auto_unit(mapping, first[0])

    def chained() -> Iterator[SourceFrame]:
        yield first
        yield from frames

    return resolved, chained()


class _BinanceReader(Reader):
    def _batches(
        self, path: Path, options: ReaderOptions, names: tuple[str, ...], data: dict[str, Any]
    ) -> tuple[Mapping, Iterator[Batch]]:
        spec = _csv_spec(path, names)
        data = {**data, "csv": spec.model_dump(exclude_none=True)}
        constants = data.setdefault("constants", {})
        if data["schema"] != "bars":  # bars carry no venue column
            constants["venue"] = VENUE
        if "instrument" not in data["columns"]:
            constants["instrument"] = instrument_for(path, options)
        mapping = Mapping.from_dict(data, source=f"{self.name} preset", preset=self.name)
        frames = iter_csv_frames(path, spec, options.batch_rows)
        mapping, frames = _with_resolved_unit(frames, mapping)
        return mapping, map_frames(frames, mapping, source=str(path))


@register_reader
class BinanceTradesReader(_BinanceReader):
    name = "binance_trades"
    schema = "trades"
    description = (
        "Binance trades and aggTrades CSV from data.binance.vision (spot without header, "
        "USD-M futures with header; the .zip as downloaded, .gz/.zst are fine; a row "
        "with more or fewer fields than the format is rejected). trade_id is "
        "the trade id (aggTrades: the aggregate trade id); is_buyer_maker true means the "
        "aggressor sold (side 'sell'). Times are UTC epoch ms, or µs for 2025+ spot files "
        "(detected per file by magnitude). Prices as published, no scaling. Instrument from "
        "the file name or --instrument."
    )
    suffixes = (".csv",)

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        path = Path(path)
        fields = _first_fields(path)
        is_agg = "aggTrades" in path.name or "agg_trade_id" in fields or len(fields) == 8
        names = AGG_TRADE_COLUMNS if is_agg else TRADE_COLUMNS
        header = fields if fields and "price" in fields else list(names)
        trade_id = "agg_trade_id" if "agg_trade_id" in header else "id"
        size = "quantity" if "quantity" in header else "qty"
        time = "transact_time" if "transact_time" in header else "time"
        data = {
            "schema": "trades",
            "columns": {
                "trade_id": trade_id,
                "price": "price",
                "size": size,
                "side": "is_buyer_maker",
            },
            "value_maps": {"side": _BUYER_MAKER_SIDES},
            "time": {"column": time, "unit": "auto"},
        }
        return self._batches(path, options, names, data)[1]


@register_reader
class BinanceBookTickerReader(_BinanceReader):
    name = "binance_book_ticker"
    schema = "quotes"
    description = (
        "Binance bookTicker CSV (USD-M / COIN-M futures daily files: update_id, best bid/ask "
        "price and quantity, transaction_time, event_time) to quotes. ts is the matching "
        "engine's transaction_time (UTC epoch ms, µs detected by magnitude); seq is "
        "update_id. No price scaling. Instrument from the file name or --instrument."
    )
    suffixes = (".csv",)

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        data = {
            "schema": "quotes",
            "columns": {
                "seq": "update_id",
                "bid_price": "best_bid_price",
                "bid_size": "best_bid_qty",
                "ask_price": "best_ask_price",
                "ask_size": "best_ask_qty",
            },
            "time": {"column": "transaction_time", "unit": "auto"},
        }
        return self._batches(Path(path), options, BOOK_TICKER_COLUMNS, data)[1]


@register_reader
class BinanceKlinesReader(_BinanceReader):
    name = "binance_klines"
    schema = "bars"
    description = (
        "Binance klines CSV (12 columns, spot without header, futures with header) to bars. "
        "ts = open_time, ts_end = close_time + 1 unit (Binance's close_time is the bar's "
        "last ms/µs, ours is exclusive); units ms or µs detected per file by magnitude, "
        "UTC. buy_volume = taker buy base volume, sell_volume = volume - buy_volume, vwap "
        "= quote_volume / volume. Instrument from the file name or --instrument."
    )
    suffixes = (".csv",)

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        data = {
            "schema": "bars",
            "columns": {
                "ts_end": "close_time",
                "open": "open",
                "high": "high",
                "low": "low",
                "close": "close",
                "volume": "volume",
                "quote_volume": "quote_volume",
                "trade_count": "count",
                "buy_volume": "taker_buy_volume",
            },
            "time": {"column": "open_time", "unit": "auto"},
        }
        mapping, batches = self._batches(Path(path), options, KLINE_COLUMNS, data)
        return self._finish(batches, mapping)

    @staticmethod
    def _finish(batches: Iterator[Batch], mapping: Mapping) -> Iterator[Batch]:
        step_ns = UNIT_NANOSECONDS[mapping.time.unit or "ms"]
        for batch in batches:
            batch.frame = batch.frame.with_columns(
                (pl.col("ts_end") + pl.duration(nanoseconds=step_ns)).alias("ts_end"),
                (pl.col("volume") - pl.col("buy_volume")).alias("sell_volume"),
                pl.when(pl.col("volume") > 0)
                .then(pl.col("quote_volume") / pl.col("volume"))
                .alias("vwap"),
            )
            yield batch


@register_reader
class BinanceDepthReader(Reader):
    name = "binance_depth"
    schema = "book_updates"
    description = (
        "Binance futures depth CSV (symbol, timestamp, first_update_id, last_update_id, "
        "side b/a, update_type snap/set, price, qty, pu), snapshot and diff files, to "
        "book_updates. qty is the new total at the level (0 removes it); update_type "
        "'snap' marks snapshot rows. Rows of one update share last_update_id, so seq = "
        f"last_update_id × {DEPTH_SEQ_FACTOR:,} + the row's position in the update (keeps "
        "replay order, unique per row). Times UTC epoch ms (µs detected by magnitude)."
    )
    suffixes = (".csv",)

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        path = Path(path)
        columns = {
            "seq": "last_update_id",
            "side": "side",
            "price": "price",
            "size": "qty",
            "is_snapshot": "update_type",
        }
        constants: dict[str, Any] = {"venue": VENUE}
        if options.instrument:
            constants["instrument"] = options.instrument
        else:
            columns["instrument"] = "symbol"
        mapping = Mapping.from_dict(
            {
                "schema": "book_updates",
                "columns": columns,
                "constants": constants,
                "value_maps": {"is_snapshot": {"snap": True, "set": False}},
                "time": {"column": "timestamp", "unit": "auto"},
            },
            source=f"{self.name} preset",
            preset=self.name,
        )
        frames = iter_csv_frames(path, CsvSpec(has_header=True), options.batch_rows)
        return _number_within_updates(map_frames(frames, mapping, source=str(path)))


def _number_within_updates(batches: Iterator[Batch]) -> Iterator[Batch]:
    """Turn ``seq = last_update_id`` into a unique, replay-ordered sequence number."""
    last_id: int | None = None
    carried = 0
    for batch in batches:
        frame = batch.frame
        if frame.height:
            position = pl.int_range(pl.len(), dtype=pl.Int64).over("seq")
            offset = (
                pl.when(pl.col("seq") == last_id).then(carried).otherwise(0)
                if last_id is not None
                else pl.lit(0)
            )
            frame = frame.with_columns(
                (pl.col("seq") * DEPTH_SEQ_FACTOR + position + offset).alias("seq")
            )
            tail_id = int(batch.frame["seq"][-1])
            tail_count = int((batch.frame["seq"] == tail_id).sum())
            carried = tail_count + (carried if tail_id == last_id else 0)
            last_id = tail_id
            batch.frame = frame
        yield batch
