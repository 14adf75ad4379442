"""Reader for vendor 1-minute NSE F&O exports (GDFL-style ``.NFO`` tickers).

Options file columns: ``Ticker, Date, Time, Open, High, Low, Close, Volume, OI, Type,
Strike, Expiry, Contract_Monthly, Contract_Weekly``; futures files: ``Ticker, Date,
Time, Open, High, Low, Close, Volume, OI, Contract, Expiry``. Option tickers carry the
expiry as ``DDMMMYY`` (``BANKNIFTY25JAN1718300CE.NFO``); futures tickers name the
continuous series (``BANKNIFTY-I.NFO`` = near month) and the ``Expiry`` column says
which contract it was.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from ticklake.errors import ConfigError, IngestError
from ticklake.ingest.readers.base import (
    REJECTED_SCHEMA,
    Batch,
    Reader,
    ReaderOptions,
    check_text_source,
    open_source,
    register_reader,
)
from ticklake.market.calendar import monthly_expiry
from ticklake.market.nse_symbols import (
    MONTHS,
    FutureContract,
    OptionContract,
    format_future_symbol,
    format_symbol,
)
from ticklake.schemas import get_schema

DEFAULT_TIMEZONE = "Asia/Kolkata"
_OPTION_TICKER = re.compile(
    rf"(?P<und>[A-Z&\-]+?)(?P<dd>\d\d)(?P<mon>{'|'.join(MONTHS)})(?P<yy>\d\d)"
    r"(?P<strike>\d+(?:\.\d+)?)(?P<type>CE|PE)(?:\.NFO)?"
)
_FUTURE_TICKER = re.compile(r"(?P<und>[A-Z&\-]+)-(?P<series>I{1,3})(?:\.NFO)?")
_DATE_FORMATS = ("%Y-%m-%d", "%d-%m-%Y", "%d/%m/%Y", "%Y%m%d")
_REQUIRED = ("Ticker", "Date", "Time", "Open", "High", "Low", "Close")


@register_reader
class NseFno1MinReader(Reader):
    name = "nse_fno_1min"
    schema = "bars"
    description = (
        "Vendor 1-minute NSE F&O bars (GDFL-style export, options or futures CSV with "
        "`.NFO` tickers such as BANKNIFTY25JAN1718300CE.NFO and BANKNIFTY-I.NFO). Bar "
        "labelling: the vendor stamps each bar with the last second of its minute "
        "(09:15:59 is the 09:15 bar), so ts = floor_to_minute(time - 1 s) is the bar's "
        "open and ts_end = ts + 1 minute; a bar stamped on the minute (09:16:00) is read "
        "as the bar that ends then. Date/Time are naive Asia/Kolkata (options.timezone "
        "overrides), converted to UTC. Prices in rupees, unscaled; Volume and OI in units "
        "(not lots), OI becomes open_interest. instrument is the normalised NSE symbol: "
        "options BANKNIFTY17JAN18300CE (monthly) / BANKNIFTY1710518900CE (weekly, when the "
        "expiry is not the month's monthly expiry by the market rules), futures "
        "BANKNIFTY17JANFUT from the Expiry column. A row whose ticker, time or numbers do "
        "not parse, or whose ticker disagrees with its Expiry/Strike/Type columns, goes to "
        "rejected with the field named."
    )
    suffixes: ClassVar[tuple[str, ...]] = (".csv",)
    exchange_timezone: ClassVar[str] = "Asia/Kolkata"

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        path = Path(path)
        target = get_schema(self.schema)
        timezone = options.timezone or DEFAULT_TIMEZONE
        batch_rows = max(1, options.batch_rows)
        symbols: dict[tuple[str, str], str] = {}
        check_text_source(path)
        with open_source(path) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.reader(text)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                return
            missing = [c for c in _REQUIRED if c not in header]
            if missing:
                raise IngestError(
                    f"{path}: header lacks column(s) {missing}; expected a vendor 1-minute "
                    f"F&O export with {', '.join(_REQUIRED)}, ... (got {', '.join(header)}).",
                    path=str(path),
                )
            index = {name: i for i, name in enumerate(header)}
            rows: list[dict[str, Any]] = []
            rejects: list[tuple[int, str, str]] = []
            line_no = 1
            try:
                for record in reader:
                    line_no += 1
                    if not any(field.strip() for field in record):
                        continue
                    try:
                        rows.append(_parse_record(record, index, symbols))
                    except _RowError as exc:
                        rejects.append((line_no, ",".join(record), str(exc)))
                    if len(rows) + len(rejects) >= batch_rows:
                        yield _batch(rows, rejects, timezone, target.conform, path)
                        rows, rejects = [], []
            except (csv.Error, UnicodeDecodeError, OSError, EOFError) as exc:
                raise IngestError(
                    f"{path}: cannot read line {line_no + 1} ({exc}); the file is corrupt "
                    "or not a CSV export.",
                    path=str(path),
                    row=line_no + 1,
                ) from exc
            if rows or rejects:
                yield _batch(rows, rejects, timezone, target.conform, path)


class _RowError(ValueError):
    pass


def _field(record: list[str], index: dict[str, int], name: str) -> str:
    position = index.get(name)
    if position is None or position >= len(record):
        raise _RowError(f"{name}: missing")
    return record[position].strip()


def _number(
    record: list[str], index: dict[str, int], name: str, optional: bool = False
) -> float | None:
    if optional and name not in index:
        return None
    text = _field(record, index, name)
    if optional and text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise _RowError(f"{name}: expected a number, got {text!r}") from None


def _parse_date(text: str, name: str) -> date:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise _RowError(f"{name}: expected a date like 2017-01-02, got {text!r}")


def _parse_record(
    record: list[str], index: dict[str, int], symbols: dict[tuple[str, str], str]
) -> dict[str, Any]:
    day = _parse_date(_field(record, index, "Date"), "Date")
    clock = _field(record, index, "Time")
    try:
        stamp = datetime.combine(day, datetime.strptime(clock, "%H:%M:%S").time())
    except ValueError:
        raise _RowError(f"Time: expected HH:MM:SS, got {clock!r}") from None
    # Bars are stamped at their end (HH:MM:59, or HH:MM:00 for some exports).
    bar_open = (stamp - timedelta(seconds=1)).replace(second=0, microsecond=0)
    ticker = _field(record, index, "Ticker").upper()
    expiry_text = (
        record[index["Expiry"]].strip()
        if "Expiry" in index and index["Expiry"] < len(record)
        else ""
    )
    key = (ticker, expiry_text)
    if key not in symbols:
        symbols[key] = _instrument(ticker, expiry_text, record, index)
    volume = _number(record, index, "Volume", optional=True)
    oi = _number(record, index, "OI", optional=True)
    return {
        "local_ts": bar_open,
        "instrument": symbols[key],
        "open": _number(record, index, "Open"),
        "high": _number(record, index, "High"),
        "low": _number(record, index, "Low"),
        "close": _number(record, index, "Close"),
        "volume": volume,
        "open_interest": oi,
    }


def _instrument(ticker: str, expiry_text: str, record: list[str], index: dict[str, int]) -> str:
    column_expiry = _parse_date(expiry_text, "Expiry") if expiry_text else None
    option = _OPTION_TICKER.fullmatch(ticker)
    if option is not None:
        try:
            expiry = datetime.strptime(option["dd"] + option["mon"] + option["yy"], "%d%b%y").date()
        except ValueError:
            raise _RowError(f"Ticker: expiry part of {ticker!r} is not a date") from None
        if column_expiry is not None and column_expiry != expiry:
            raise _RowError(f"Expiry: column says {column_expiry}, ticker {ticker!r} says {expiry}")
        strike = float(option["strike"])
        if "Strike" in index and _number(record, index, "Strike") != strike:
            raise _RowError(f"Strike: column disagrees with ticker {ticker!r}")
        if "Type" in index and _field(record, index, "Type").upper() != option["type"]:
            raise _RowError(f"Type: column disagrees with ticker {ticker!r}")
        underlying = option["und"]
        try:
            weekly = expiry != monthly_expiry(underlying, expiry.year, expiry.month)
        except ConfigError as exc:
            raise _RowError(
                f"Ticker: cannot tell weekly from monthly for {ticker!r}: {exc}"
            ) from None
        contract = OptionContract(underlying, expiry, strike, option["type"], weekly)  # type: ignore[arg-type]
        return format_symbol(contract)
    future = _FUTURE_TICKER.fullmatch(ticker)
    if future is not None:
        if column_expiry is None:
            raise _RowError(f"Expiry: needed to name the contract behind {ticker!r}")
        return format_future_symbol(FutureContract(future["und"], column_expiry))
    raise _RowError(
        f"Ticker: {ticker!r} is neither an option (BANKNIFTY25JAN1718300CE.NFO) nor a "
        "futures series (BANKNIFTY-I.NFO)"
    )


def _batch(
    rows: list[dict[str, Any]],
    rejects: list[tuple[int, str, str]],
    timezone: str,
    conform: Any,
    path: Path,
) -> Batch:
    schema: dict[str, pl.DataType] = {
        "local_ts": pl.Datetime("ns"),
        "instrument": pl.String(),
        "open": pl.Float64(),
        "high": pl.Float64(),
        "low": pl.Float64(),
        "close": pl.Float64(),
        "volume": pl.Float64(),
        "open_interest": pl.Float64(),
    }
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    frame = frame.with_columns(
        pl.col("local_ts")
        .dt.replace_time_zone(timezone, ambiguous="raise", non_existent="raise")
        .dt.convert_time_zone("UTC")
        .alias("ts")
    ).with_columns((pl.col("ts") + pl.duration(minutes=1)).alias("ts_end"))
    frame = frame.drop("local_ts")
    rejected = pl.DataFrame(
        {
            "source_row": [r[0] for r in rejects],
            "raw": [r[1] for r in rejects],
            "reason": [r[2] for r in rejects],
        },
        schema=REJECTED_SCHEMA,
    )
    return Batch(frame=conform(frame, source=str(path)), rejected=rejected)
