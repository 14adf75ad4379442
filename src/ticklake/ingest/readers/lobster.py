"""LOBSTER (NASDAQ TotalView-ITCH reconstructions): message and order-book files.

A LOBSTER download is a zip holding ``<TICKER>_<DATE>_<START>_<END>_message_<N>.csv``
and ``..._orderbook_<N>.csv`` (no headers). Message columns: time (decimal seconds after
midnight, exchange local time, usually up to 9 decimals; more are rounded to the ns),
event type, order id, size, price (USD × 10000), direction (1 buy / bid, -1 sell / ask).
Row i of the order-book file is the book after message i: per level, ask price, ask size,
bid price, bid size, with dummy prices ±9999999999 (size 0) for empty levels.

Times are parsed from the decimal string into integer nanoseconds (never through a
float: 57599.999999999 s is not representable in float64 to the ns), added to local
midnight of the date in the file name and converted from America/New_York to UTC.

Archives are opened defensively: every member name is checked (no absolute paths, no
``..``), and a member larger than ``extra["max_member_bytes"]`` (default 4 GiB) or
compressed more than ``extra["max_compression_ratio"]`` (default 200×) is refused
before a byte is inflated.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import NoReturn

import polars as pl

from ticklake.errors import IngestError
from ticklake.ingest.readers._csv_rows import Check, descale, field, reject_unparsed, split_fields
from ticklake.ingest.readers.base import (
    REJECTED_SCHEMA,
    Batch,
    Reader,
    ReaderOptions,
    iter_text_chunks,
    register_reader,
)
from ticklake.schemas import get_schema

DEFAULT_TIMEZONE = "America/New_York"
DEFAULT_MAX_MEMBER_BYTES = 4 * 1024**3
#: Deflate tops out near 1032×; real LOBSTER books compress ~30×. Above this, a bomb.
DEFAULT_MAX_COMPRESSION_RATIO = 200.0
#: Default depth for ``lobster_book`` when ``extra["levels"]`` is not given.
DEFAULT_BOOK_LEVELS = 10
PRICE_DIGITS = 4  # prices are USD x 10**4
#: Prices LOBSTER writes into unoccupied levels (size 0): "no level".
DUMMY_PRICES = (9_999_999_999, -9_999_999_999)
VENUE = "XNAS"

EVENT_ACTIONS = {
    "1": "add",
    "2": "cancel",
    "3": "delete",
    "4": "fill",
    "5": "fill_hidden",
    "6": "trade",
    "7": "halt",
}
MESSAGE_FIELDS = ("time", "event_type", "order_id", "size", "price", "direction")
_HALT = "7"
_NAME = re.compile(
    r"^(?P<ticker>[^_/]+)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d+)_(?P<end>\d+)_"
    r"(?P<kind>message|orderbook)_(?P<levels>\d+)\.csv$"
)
_TIME = r"^\d+(\.\d+)?$"


# --- archive access ------------------------------------------------------------------


def _unsafe_member_name(name: str) -> bool:
    normalised = name.replace("\\", "/")
    parts = PurePosixPath(normalised).parts
    return (
        not name
        or "\x00" in name
        or normalised.startswith("/")
        or re.match(r"^[A-Za-z]:", normalised) is not None
        or ".." in parts
    )


def _check_archive(path: Path, archive: zipfile.ZipFile, options: ReaderOptions) -> None:
    max_bytes = int(options.extra.get("max_member_bytes", DEFAULT_MAX_MEMBER_BYTES))
    max_ratio = float(options.extra.get("max_compression_ratio", DEFAULT_MAX_COMPRESSION_RATIO))
    for info in archive.infolist():
        if _unsafe_member_name(info.filename):
            raise IngestError(
                f"{path}: archive member {info.filename!r} has an unsafe path (absolute, "
                "drive letter or '..'); refusing the archive, it may be crafted (zip slip). "
                "Re-download it from LOBSTER.",
                path=str(path),
                member=info.filename,
            )
        if info.file_size > max_bytes:
            raise IngestError(
                f"{path}: archive member {info.filename!r} inflates to {info.file_size:,} "
                f"bytes, over the limit of {max_bytes:,} (option max_member_bytes); raise the "
                "limit if the file is genuine.",
                path=str(path),
                member=info.filename,
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > max_ratio:
            raise IngestError(
                f"{path}: archive member {info.filename!r} has a compression ratio of "
                f"{ratio:,.0f}x, over the limit of {max_ratio:,.0f}x (option "
                "max_compression_ratio); this looks like a zip bomb. Raise the limit only "
                "if you trust the file.",
                path=str(path),
                member=info.filename,
            )
        if info.flag_bits & 0x1:
            raise IngestError(
                f"{path}: archive member {info.filename!r} is encrypted; extract it with "
                "its password and ingest the CSV files.",
                path=str(path),
                member=info.filename,
            )


def _open_archive(path: Path, options: ReaderOptions, stack: ExitStack) -> zipfile.ZipFile:
    try:
        archive = stack.enter_context(zipfile.ZipFile(path))
    except (OSError, zipfile.BadZipFile) as exc:
        raise IngestError(
            f"{path}: not a readable zip archive ({exc}); re-download it.", path=str(path)
        ) from exc
    _check_archive(path, archive, options)
    return archive


def _member(path: Path, archive: zipfile.ZipFile, kind: str) -> zipfile.ZipInfo:
    found = [
        info
        for info in archive.infolist()
        if (m := _NAME.match(PurePosixPath(info.filename).name)) and m["kind"] == kind
    ]
    if len(found) != 1:
        names = ", ".join(archive.namelist()) or "(empty)"
        raise IngestError(
            f"{path}: expected exactly one LOBSTER {kind} file "
            f"(<TICKER>_<DATE>_<START>_<END>_{kind}_<N>.csv) in the archive, found "
            f"{len(found)}; members: {names}.",
            path=str(path),
        )
    return found[0]


def _iter_member_chunks(
    path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, lines_per_chunk: int
) -> Iterator[tuple[int, bytes]]:
    where = f"{path}!{info.filename}"
    try:
        with archive.open(info) as fh:
            line_no = 1
            while True:
                lines = [ln for _, ln in zip(range(lines_per_chunk), fh, strict=False)]
                if not lines:
                    return
                yield line_no, b"".join(lines)
                line_no += len(lines)
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise IngestError(
            f"{where}: archive member is corrupt or truncated ({exc}); re-download it.",
            path=str(path),
            member=info.filename,
        ) from exc


class _Source:
    """The message / order-book members of one LOBSTER download (zip or bare CSVs)."""

    def __init__(self, path: Path, options: ReaderOptions, stack: ExitStack) -> None:
        self.path = Path(path)
        self.options = options
        self.archive: zipfile.ZipFile | None = None
        if self.path.suffix.lower() == ".zip":
            self.archive = _open_archive(self.path, options, stack)
            self.message_name = _member(self.path, self.archive, "message").filename
        else:
            self.message_name = self.path.name.replace("_orderbook_", "_message_")
        match = _NAME.match(PurePosixPath(self.message_name).name)
        if match is None and not (options.instrument and "date" in options.extra):
            raise IngestError(
                f"{path}: cannot take the ticker and date from {self.message_name!r} (LOBSTER "
                "names files <TICKER>_<DATE>_<START>_<END>_message_<N>.csv); rename it or "
                "pass instrument and extra['date'].",
                path=str(path),
            )
        self.instrument = options.instrument or (match["ticker"] if match else "")
        self.session_date = _session_date(path, options, match["date"] if match else None)
        self.levels = int(match["levels"]) if match else None

    def chunks(self, kind: str, lines_per_chunk: int) -> Iterator[tuple[int, bytes]]:
        if self.archive is not None:
            info = _member(self.path, self.archive, kind)
            return _iter_member_chunks(self.path, self.archive, info, lines_per_chunk)
        name = (
            self.message_name
            if kind == "message"
            else self.message_name.replace("_message_", "_orderbook_")
        )
        return iter_text_chunks(self.path.parent / name, lines_per_chunk)


def _session_date(path: Path, options: ReaderOptions, from_name: str | None) -> date:
    text = str(options.extra.get("date") or from_name)
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise IngestError(
            f"{path}: session date {text!r} is not YYYY-MM-DD; pass extra['date'].",
            path=str(path),
        ) from exc


# --- messages ------------------------------------------------------------------------


def _parse_messages(
    chunk: bytes, first_line: int, source: _Source
) -> tuple[pl.DataFrame, pl.DataFrame]:
    fields, rejected_shape = split_fields(chunk, first_line, MESSAGE_FIELDS)
    timezone = source.options.timezone or DEFAULT_TIMEZONE
    midnight = datetime.combine(source.session_date, datetime.min.time())
    time_text = field("time")
    whole_seconds = time_text.str.extract(r"^(\d+)", 1).cast(pl.Int64, strict=False)
    digits = time_text.str.extract(r"\.(\d+)$", 1).fill_null("")
    fraction = digits.str.slice(0, 9).str.pad_end(9, "0")
    # A few rows carry more than 9 decimals (e.g. AMZN level 5, "43002.632812672004"):
    # round half up to the nanosecond on the tenth digit, exactly, without floats.
    round_up = (digits.str.slice(9, 1).cast(pl.Int64, strict=False).fill_null(0) >= 5).cast(
        pl.Int64
    )
    nanoseconds = pl.when(time_text.str.contains(_TIME)).then(
        whole_seconds * 1_000_000_000 + fraction.cast(pl.Int64, strict=False) + round_up
    )
    event = field("event_type")
    is_halt = event == _HALT
    direction = field("direction")
    price_units = field("price").cast(pl.Int64, strict=False)
    order_id = field("order_id").cast(pl.UInt64, strict=False)
    parsed = fields.with_columns(
        (pl.lit(midnight, dtype=pl.Datetime("ns")) + pl.duration(nanoseconds=nanoseconds))
        # LOBSTER time is wall-clock time after local midnight, so the UTC offset is the
        # one in force at that wall-clock time (DST-safe); it is never ambiguous in
        # trading hours, and a time that cannot exist becomes a rejected row.
        .dt.replace_time_zone(timezone, ambiguous="null", non_existent="null")
        .dt.convert_time_zone("UTC")
        .alias("ts"),
        pl.lit(source.instrument).alias("instrument"),
        pl.col("source_row").alias("seq"),
        event.replace_strict(EVENT_ACTIONS, default=None).alias("action"),
        pl.when(~is_halt)
        .then(direction.replace_strict({"1": "bid", "-1": "ask"}, default=None))
        .alias("side"),
        pl.when(is_halt | direction.is_in(["1", "-1"])).then(True).alias("_direction_ok"),
        order_id.alias("_order_id"),
        pl.when(order_id != 0).then(order_id).alias("order_id"),
        # A halt message's "price" is the halt state (-1 halt, 0 quoting, 1 resume).
        pl.when(~is_halt).then(descale(price_units, PRICE_DIGITS)).alias("price"),
        pl.when(is_halt).then(price_units).cast(pl.Int32).alias("flags"),
        price_units.alias("_price_units"),
        field("size").cast(pl.Float64, strict=False).alias("size"),
        pl.lit(VENUE).alias("venue"),
    )
    checks: list[Check] = [
        (
            "ts",
            "time",
            f"seconds after midnight as a decimal number, valid in {timezone}",
            True,
        ),
        ("action", "event_type", "an event type 1-7", True),
        ("_direction_ok", "direction", "1 or -1", True),
        ("_order_id", "order_id", "an unsigned integer", True),
        ("_price_units", "price", "an integer (USD x 10000)", True),
        ("size", "size", "a number", True),
    ]
    good, rejected_values = reject_unparsed(parsed, checks)
    good, rejected_impossible = _reject_impossible(good)
    return good, pl.concat([rejected_shape, rejected_values, rejected_impossible])


def _reject_impossible(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split off parsed messages whose values LOBSTER never writes.

    A time of 86,400 s or more after midnight is not a time of that day (it would land
    in the next day's partition); a price of 0 or below, or the ±9999999999 dummy of an
    empty order-book level, is not an order price. Type-7 (halt) messages are exempt
    from the price rule: their "price" is the halt state -1 / 0 / 1 (LOBSTER ReadMe).
    """
    if frame.height == 0:
        return frame, pl.DataFrame(schema=REJECTED_SCHEMA)
    is_halt = field("event_type") == _HALT
    units = pl.col("_price_units")
    reason = (
        pl.when(field("time").str.extract(r"^(\d+)", 1).cast(pl.Int64, strict=False) >= 86_400)
        .then(
            pl.format(
                "field 'time': {} s is not a time of the session day (LOBSTER times are "
                "seconds after midnight, below 86400)",
                field("time"),
            )
        )
        .when(~is_halt & units.is_in(DUMMY_PRICES))
        .then(
            pl.format(
                "field 'price': {} is the dummy price of an empty book level, not an order price",
                field("price"),
            )
        )
        .when(~is_halt & (units <= 0))
        .then(
            pl.format(
                "field 'price': {} is not a positive price (USD x 10000); only type-7 halt "
                "messages carry -1 / 0 / 1",
                field("price"),
            )
        )
    )
    tagged = frame.with_columns(reason.alias("_reason"))
    bad = tagged.filter(pl.col("_reason").is_not_null())
    rejected = bad.select("source_row", "raw", reason=pl.col("_reason"))
    return tagged.filter(pl.col("_reason").is_null()).drop("_reason"), rejected


@register_reader
class LobsterMessagesReader(Reader):
    name = "lobster_messages"
    schema = "l3"
    description = (
        "LOBSTER message file (zip download or bare *_message_N.csv, no header) -> l3. "
        "Time = decimal seconds after midnight in America/New_York on the date in the file "
        "name, parsed exactly to integer ns, converted to UTC. Price = integer USD x 10000, "
        "descaled. Event types 1 add, 2 cancel (partial), 3 delete, 4 fill, 5 fill_hidden, "
        "6 trade (cross), 7 halt; direction 1 bid / -1 ask. A time of 86400 s or more, a "
        "price <= 0 or the +-9999999999 empty-level dummy (except on halt rows) is rejected "
        "with its line. Halt rows have null side and "
        "price and their state (-1 halt, 0 quoting, 1 resume) in flags; order id 0 (hidden "
        "executions) is null. seq = line number; instrument = ticker in the file name; "
        "venue XNAS. Zip members are size- and ratio-checked and name-validated."
    )
    suffixes = (".zip", ".csv")
    exchange_timezone = DEFAULT_TIMEZONE

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        schema = get_schema(self.schema)
        with ExitStack() as stack:
            source = _Source(path, options, stack)
            for first_line, chunk in source.chunks("message", options.batch_rows):
                good, rejected = _parse_messages(chunk, first_line, source)
                frame = schema.conform(good.select(schema.column_names), source=str(path))
                yield Batch(frame=frame, rejected=rejected)


# --- order book ----------------------------------------------------------------------


def detect_book_levels(path: Path) -> int:
    """Return the depth N of a LOBSTER download from its member (or file) name."""
    with ExitStack() as stack:
        source = _Source(path, ReaderOptions(extra={"date": "1970-01-01"}), stack)
        if source.levels is None:
            raise IngestError(f"{path}: no _orderbook_<N> in the file name.", path=str(path))
        return source.levels


def _requested_levels(options: ReaderOptions) -> int:
    levels = options.extra.get("levels", DEFAULT_BOOK_LEVELS)
    if not isinstance(levels, int) or isinstance(levels, bool) or levels < 1:
        raise IngestError(
            f"option levels={levels!r} is not a positive integer; pass the LOBSTER level "
            "of the download, e.g. levels=10 for *_orderbook_10.csv.",
            option="levels",
        )
    return levels


def _book_columns(levels: int) -> list[str]:
    return [
        f"{what}_{i}"
        for i in range(levels)
        for what in ("ask_price", "ask_size", "bid_price", "bid_size")
    ]


def _parse_book(
    chunk: bytes,
    first_line: int,
    messages: pl.DataFrame,
    message_rejects: pl.DataFrame,
    levels: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    names = _book_columns(levels)
    fields, rejected_shape = split_fields(chunk, first_line, names)
    exprs: list[pl.Expr] = []
    checks: list[Check] = []
    for i in range(levels):
        for side in ("ask", "bid"):
            price = field(f"{side}_price_{i}").cast(pl.Int64, strict=False)
            size = field(f"{side}_size_{i}").cast(pl.Float64, strict=False)
            empty = price.is_in(DUMMY_PRICES)
            exprs += [
                price.alias(f"_{side}_price_units_{i}"),
                pl.when(~empty).then(descale(price, PRICE_DIGITS)).alias(f"{side}_price_{i}"),
                size.alias(f"_{side}_size_parsed_{i}"),
                pl.when(~empty).then(size).alias(f"{side}_size_{i}"),
            ]
            checks += [
                (f"_{side}_price_units_{i}", f"{side}_price_{i}", "an integer (USD x 10000)", True),
                (f"_{side}_size_parsed_{i}", f"{side}_size_{i}", "a number", True),
            ]
    parsed = fields.with_columns(exprs)
    good, rejected_values = reject_unparsed(parsed, checks)
    # Row i of the book is the state after message i: it takes that message's ts/seq.
    joined = good.join(
        messages.select("source_row", "ts", "instrument", "seq"), on="source_row", how="left"
    )
    orphan = joined.filter(pl.col("ts").is_null())
    orphan_rejects = orphan.join(
        message_rejects.select("source_row", message_reason="reason"), on="source_row", how="left"
    ).select(
        "source_row",
        "raw",
        reason=pl.format(
            "message line {} was rejected ({}), so this book row has no time",
            pl.col("source_row"),
            pl.col("message_reason").fill_null("missing"),
        ),
    )
    return joined.filter(pl.col("ts").is_not_null()), pl.concat(
        [rejected_shape, rejected_values, orphan_rejects]
    )


@register_reader
class LobsterBookReader(Reader):
    name = "lobster_book"
    schema = "l2_10"
    description = (
        "LOBSTER order-book file (zip download or bare *_orderbook_N.csv beside its "
        "message file) -> l2_N. Row i is the book after message i and takes its ts (New "
        "York seconds after midnight -> UTC ns, exact) and seq (line number). Columns per "
        "level: ask price, ask size, bid price, bid size; prices USD x 10000 descaled; dummy "
        "levels (price +-9999999999, size 0) become null. N comes from extra['levels'] "
        "(default 10) and must match the file's _orderbook_N name (detect_book_levels)."
    )
    suffixes = (".zip", ".csv")
    exchange_timezone = DEFAULT_TIMEZONE

    def prepare(self, first_path: Path, options: ReaderOptions) -> ReaderOptions:
        if "levels" in options.extra:
            return options
        levels = detect_book_levels(first_path)
        return replace(options, extra={**options.extra, "levels": levels})

    def schema_for(self, options: ReaderOptions) -> str:
        return f"l2_{_requested_levels(options)}"

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        levels = _requested_levels(options)
        schema = get_schema(f"l2_{levels}")
        with ExitStack() as stack:
            source = _Source(path, options, stack)
            if source.levels is not None and source.levels != levels:
                raise IngestError(
                    f"{path}: the download has {source.levels} book levels but levels={levels} "
                    f"was requested (schema l2_{levels}); pass levels={source.levels}.",
                    path=str(path),
                    levels=source.levels,
                )
            message_chunks = source.chunks("message", options.batch_rows)
            book_chunks = source.chunks("orderbook", options.batch_rows)
            for book_first, book_chunk in book_chunks:
                message_chunk = next(message_chunks, None)
                if message_chunk is None:
                    _mismatch(path, book_first)
                message_first, message_bytes = message_chunk
                if len(message_bytes.splitlines()) != len(book_chunk.splitlines()):
                    _mismatch(path, book_first)
                messages, message_rejects = _parse_messages(message_bytes, message_first, source)
                good, rejected = _parse_book(
                    book_chunk, book_first, messages, message_rejects, levels
                )
                frame = schema.conform(good.select(schema.column_names), source=str(path))
                yield Batch(frame=frame, rejected=rejected)
            extra = next(message_chunks, None)
            if extra is not None:
                _mismatch(path, extra[0])


def _mismatch(path: Path, line: int) -> NoReturn:
    raise IngestError(
        f"{path}: the message and order-book files have different numbers of rows (they "
        f"differ in the chunk from line {line}); LOBSTER writes one book row per "
        "message, so re-download the archive.",
        path=str(path),
        row=line,
    )


__all__ = [
    "LobsterBookReader",
    "LobsterMessagesReader",
    "detect_book_levels",
]
