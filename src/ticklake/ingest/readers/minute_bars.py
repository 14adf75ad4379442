"""Vendor minute-bar files: CME 6E (nautilus test data), FirstRateData, FTX BTC-PERP.

All produce canonical ``bars`` with ``ts`` = bar open and ``ts_end`` = bar close (UTC,
exclusive). Vendors stamp bars differently, so each reader states its rule and the
evidence for it; ``options.extra["label"]`` (``"open"`` / ``"close"``) overrides it.

- CME 6EH4 (``timestamp_utc``): stamped at bar **close**. Evidence in the data: Globex
  reopens at 17:00 CT = 23:00 UTC and halts at 16:00 CT = 22:00 UTC; every session's
  first stamp is 23:01 and its last is 22:00 (never 23:00 or 21:59 as the last).
- FirstRateData: stamped at bar **open** in US/Eastern, naive ("1min bars stamped 09:30
  run from 09:30.00 to 09:30.59", vendor readme). Daily bars run from midnight to
  midnight Eastern; the 1hour file's first bar (09:00) only holds 09:30–10:00 trades.
- FTX BTC-PERP 1m (``btc-perp-20211231-20220201_1m.csv.gz``; ``ftx-btc-perp-...`` in
  nautilus_trader): stamped at bar **close**, nautilus' bar convention, and like the
  CME file from the same repository it starts at 23:01 (a 23:00 request start). Its
  ``volume`` is quote currency (USD): ~2.3e6 per minute at a 46,000 price is not BTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ticklake.errors import IngestError
from ticklake.ingest.mapping import CsvSpec, Mapping
from ticklake.ingest.readers.base import (
    Batch,
    Reader,
    ReaderOptions,
    check_text_source,
    open_source,
    register_reader,
)
from ticklake.ingest.readers.generic import iter_csv_frames, map_frames

_CME_NAME = re.compile(r"^(?P<symbol>[A-Za-z0-9]+)\.(?P<venue>[A-Z]{4})_(?P<minutes>\d+)min_")
_FIRSTRATE_NAME = re.compile(r"^(?P<symbol>[A-Za-z0-9.^]+)_(?P<count>\d+)(?P<unit>min|hour|day)")
_DATED_NAME = re.compile(r"^(?P<symbol>[A-Za-z]+(?:-[A-Za-z]+)*)-\d{8}")


def _label(options: ReaderOptions, default: str) -> str:
    label = options.extra.get("label", default)
    if label not in ("open", "close"):
        raise IngestError(
            f"options.extra['label'] must be 'open' or 'close' (what the stamps mark), "
            f"got {label!r}",
            label=label,
        )
    return str(label)


def _read_bars(
    path: Path, options: ReaderOptions, data: dict[str, Any], spec: CsvSpec, preset: str
) -> Iterator[Batch]:
    data = {**data, "csv": spec.model_dump(exclude_none=True)}
    mapping = Mapping.from_dict(data, source=f"{path.name} preset", preset=preset)
    frames = iter_csv_frames(path, spec, options.batch_rows)
    return map_frames(frames, mapping, source=str(path))


def _first_line_fields(path: Path) -> int:
    """The number of comma-separated fields on the first line of a text file."""
    check_text_source(path)
    with open_source(path) as fh:
        try:
            line = fh.readline()
        except (OSError, EOFError) as exc:
            raise IngestError(
                f"{path}: file is corrupt or truncated ({exc}); re-download or remove it.",
                path=str(path),
            ) from exc
    return line.count(b",") + 1 if line.strip() else 0


def _no_name(path: Path, expected: str) -> IngestError:
    return IngestError(
        f"{path}: cannot tell the instrument / bar length from the file name (expected "
        f"{expected}); pass --instrument (and options.extra['interval']).",
        path=str(path),
    )


@register_reader
class CmeBarsReader(Reader):
    name = "cme_bars"
    # Globex trading days start 17:00 Chicago the evening before.
    exchange_timezone = "America/Chicago"
    day_offset = "7h"
    schema = "bars"
    description = (
        "CME 1-minute bar CSV as in nautilus_trader's test data (timestamp_utc, open, high, "
        "low, close, volume; e.g. 6EH4.XCME_1min_bars_20240101_20240131.csv.gz). Times are "
        "UTC and stamp the bar CLOSE (each session's first bar is 23:01, last 22:00 UTC), "
        "so ts = stamp - 1 min, ts_end = stamp. Volume in contracts. Minutes without "
        "trades are absent. Instrument and venue from the file name or --instrument."
    )
    suffixes = (".csv",)

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        path = Path(path)
        match = _CME_NAME.match(path.name)
        if match is None and not options.instrument:
            raise _no_name(path, "SYMBOL.MIC_1min_bars_...csv.gz")
        constants: dict[str, Any] = {
            "instrument": options.instrument or match.group("symbol")  # type: ignore[union-attr]
        }
        minutes = match.group("minutes") if match is not None else "1"
        data = {
            "schema": "bars",
            "columns": {c: c for c in ("open", "high", "low", "close", "volume")},
            "constants": constants,
            "time": {
                "column": "timestamp_utc",
                "format": "%Y-%m-%d %H:%M:%S%.f",
                "timezone": options.timezone or "UTC",
                "interval": options.extra.get("interval", f"{minutes}min"),
                "label": _label(options, "close"),
            },
        }
        return _read_bars(path, options, data, CsvSpec(has_header=True), self.name)


@register_reader
class FirstRateBarsReader(Reader):
    name = "firstrate_bars"
    exchange_timezone = "America/New_York"
    schema = "bars"
    description = (
        "FirstRateData bar text files (no header: DateTime, Open, High, Low, Close[, "
        "Volume]; e.g. SPX_1min.txt). Times are naive US/Eastern (America/New_York, "
        "--timezone overrides) and stamp the bar OPEN, so ts = stamp, ts_end = stamp + "
        "bar length (from the file name: 1min, 5min, 30min, 1hour, 1day; daily bars span "
        "midnight to midnight Eastern). DST-ambiguous local times are rejected. No price "
        "scaling; index files carry no volume. Instrument from the file name prefix."
    )
    suffixes = (".txt", ".csv")

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        path = Path(path)
        match = _FIRSTRATE_NAME.match(path.name)
        if match is None and (not options.instrument or "interval" not in options.extra):
            raise _no_name(path, "SYMBOL_1min.txt, SYMBOL_1hour.txt, SYMBOL_1day.txt")
        instrument = options.instrument or match.group("symbol")  # type: ignore[union-attr]
        interval = options.extra.get("interval") or "{}{}".format(*match.group("count", "unit"))  # type: ignore[union-attr]
        daily = interval.endswith("day") or interval.endswith("d")
        names: tuple[str, ...] = ("datetime", "open", "high", "low", "close", "volume")
        if _first_line_fields(path) == 5:
            # Index files have five fields, every row of them: volume is then null. (A
            # row with another field count than the file's first row is rejected.)
            names = names[:5]
        data = {
            "schema": "bars",
            "columns": {c: c for c in names[1:]},
            "constants": {"instrument": instrument},
            "time": {
                "column": "datetime",
                "format": "%Y-%m-%d" if daily else "%Y-%m-%d %H:%M:%S",
                "timezone": options.timezone or "America/New_York",
                "interval": interval,
                "label": _label(options, "open"),
            },
        }
        spec = CsvSpec(has_header=False, column_names=names)
        return _read_bars(path, options, data, spec, self.name)


@register_reader
class FtxBarsReader(Reader):
    name = "ftx_bars"
    schema = "bars"
    description = (
        "FTX 1-minute candles as exported in nautilus_trader's test data (timestamp, open, "
        "high, low, close, volume; btc-perp-20211231-20220201_1m.csv.gz). Times are UTC "
        "and stamp the bar CLOSE (nautilus' convention; --extra label=open if yours stamp "
        "the open), so ts = stamp - 1 min. volume is QUOTE currency (USD), stored as "
        "quote_volume; base volume is unknown. Instrument from the file name (BTC-PERP) "
        "or --instrument."
    )
    suffixes = (".csv",)

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        path = Path(path)
        match = _DATED_NAME.match(path.name)
        if match is None and not options.instrument:
            raise _no_name(path, "btc-perp-YYYYMMDD-YYYYMMDD_1m.csv")
        instrument = options.instrument or match.group("symbol").upper()  # type: ignore[union-attr]
        data = {
            "schema": "bars",
            "columns": {
                **{c: c for c in ("open", "high", "low", "close")},
                "quote_volume": "volume",
            },
            "constants": {"instrument": instrument},
            "time": {
                "column": "timestamp",
                "format": "%Y-%m-%d %H:%M:%S%.f",
                "timezone": options.timezone or "UTC",
                "interval": options.extra.get("interval", "1min"),
                "label": _label(options, "close"),
            },
        }
        return _read_bars(path, options, data, CsvSpec(has_header=True), self.name)
