"""Generic readers: CSV, JSON lines, Parquet and Arrow IPC files, through a mapping.

Each reads ``options.extra["mapping"]`` (a :class:`~ticklake.ingest.mapping.Mapping` or a
path to its YAML) and streams the file in bounded pieces: text files in chunks of
``options.batch_rows`` whole lines (the header is re-applied to every chunk), Parquet
by record batches, Arrow IPC by record batches. ``.gz`` / ``.zst`` inputs are
decompressed on the fly (Parquet and Arrow need random access, so a compressed one is
decompressed into memory first).

``source_row`` of a rejected row is the file's 1-based line number for text files
(the header is line 1) and the 1-based row number for Parquet / Arrow.

The helpers :func:`iter_csv_frames` and :func:`map_frames` are shared with the vendor
readers, which are preset mappings plus the vendor's quirks.
"""

from __future__ import annotations

import csv as csv_module
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ticklake.errors import IngestError, MappingError
from ticklake.ingest.mapping import CsvSpec, Mapping, apply_mapping, resolve_auto_unit
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

#: A frame of source rows, the 1-based source row of its first row, and rows rejected
#: before mapping (keyed by source row: raw text and reason).
SourceFrame = tuple[pl.DataFrame, int, dict[int, tuple[str, str]]]


def resolve_mapping(options: ReaderOptions, *, reader: str) -> Mapping:
    """Return the mapping in ``options.extra["mapping"]`` with the options' overrides applied.

    ``options.timezone`` replaces ``time.timezone``; ``options.instrument`` sets
    ``constants.instrument`` unless the mapping reads the instrument from a column.
    """
    given = options.extra.get("mapping")
    if given is None:
        raise MappingError(
            f"format {reader!r} needs a mapping from source columns to a canonical schema. "
            f"Run `ticklake ingest {reader} FILE --infer --schema trades > mapping.yaml` to "
            "propose one (--schema: trades, quotes, bars, ...), review it, then pass it with "
            "--mapping mapping.yaml (Python: lake.ingest(..., mapping=...)).",
            reader=reader,
        )
    mapping = given if isinstance(given, Mapping) else Mapping.from_yaml(Path(given))
    update: dict[str, Any] = {}
    if options.timezone is not None:
        update["time"] = mapping.time.model_copy(update={"timezone": options.timezone})
    if options.instrument is not None and "instrument" not in mapping.columns:
        update["constants"] = {**mapping.constants, "instrument": options.instrument}
    return mapping.model_copy(update=update) if update else mapping


def _split_lines(chunk: bytes, count: int) -> tuple[list[bytes], bytes]:
    """Split the first ``count`` lines off ``chunk``."""
    lines: list[bytes] = []
    pos = 0
    for _ in range(count):
        end = chunk.find(b"\n", pos)
        if end < 0:
            lines.append(chunk[pos:])
            return lines, b""
        lines.append(chunk[pos : end + 1])
        pos = end + 1
    return lines, chunk[pos:]


def _header_names(line: bytes, separator: str) -> list[str]:
    text = line.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    return [name.strip() for name in next(csv_module.reader([text], delimiter=separator))]


def field_count_reason(expected: int, got: int) -> str:
    """The one reason every delimited reader gives a line with the wrong field count."""
    return f"expected {expected} fields, got {got}"


def _ragged(chunk: bytes, width: int, separator: str) -> bool:
    """Whether a non-blank line of ``chunk`` has other than ``width`` fields.

    Unquoted chunks are counted in C (separators per line); a chunk with quotes goes
    through the csv module, which knows quoted separators.
    """
    if b'"' in chunk:
        text = chunk.decode("utf-8", errors="replace")
        rows = csv_module.reader(text.split("\n"), delimiter=separator)
        try:
            return any(len(row) != width for row in rows if row and row != [""] * len(row))
        except csv_module.Error:
            return True
    data = np.frombuffer(chunk, dtype=np.uint8)
    newlines = np.flatnonzero(data == 10)
    ends = newlines if chunk.endswith(b"\n") else np.append(newlines, len(data))
    starts = np.concatenate(([0], newlines + 1))[: len(ends)]
    seps = np.flatnonzero(data == ord(separator))
    counts = np.searchsorted(seps, ends) - np.searchsorted(seps, starts)
    lengths = ends - starts
    cr = np.zeros(len(ends), dtype=bool)
    has = lengths > 0
    cr[has] = data[ends[has] - 1] == 13
    blank = (lengths - cr) == 0
    return bool(np.any(counts[~blank] != width - 1))


def _csv_fallback(
    data: bytes, names: list[str], separator: str, first_row: int
) -> tuple[pl.DataFrame, dict[int, tuple[str, str]]]:
    """Parse a chunk line by line: lines with the wrong field count, damaged (non-UTF-8)
    bytes or broken quoting become rejected rows (an all-null row keeps the numbering)."""
    columns: dict[str, list[str | None]] = {name: [] for name in names}
    rejected: dict[int, tuple[str, str]] = {}
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for offset, line in enumerate(lines):
        line = line.removesuffix("\r")
        try:
            fields: list[str | None] = list(
                next(csv_module.reader([line], delimiter=separator), [])
            )
        except csv_module.Error as exc:
            rejected[first_row + offset] = (line, f"line cannot be split into fields: {exc}")
            fields = []
        if "\ufffd" in line and first_row + offset not in rejected:
            rejected[first_row + offset] = (line, "line is not valid UTF-8 text (damaged bytes)")
            fields = []
        elif fields and len(fields) != len(names) and first_row + offset not in rejected:
            rejected[first_row + offset] = (line, field_count_reason(len(names), len(fields)))
            fields = []
        fields = [*fields, *[None] * (len(names) - len(fields))]
        for name, value in zip(names, fields, strict=True):
            columns[name].append(value if value != "" else None)
    return pl.DataFrame(columns, schema={n: pl.String for n in names}), rejected


def _check_header(path: Path, names: list[str]) -> None:
    """Refuse a header that names a column twice (which of them would a mapping mean?)."""
    twice = sorted(name for name, count in Counter(names).items() if count > 1)
    if twice:
        raise IngestError(
            f"{path}: the header names column(s) {', '.join(map(repr, twice))} more than "
            "once; rename the duplicates so that each column has its own name.",
            path=str(path),
            columns=twice,
        )


def _csv_chunks(
    path: Path, spec: CsvSpec, lines_per_chunk: int
) -> Iterator[tuple[bytes, list[str], int]]:
    """Yield ``(chunk, column names, first source row)`` for the data lines of a file."""
    names = list(spec.column_names) if spec.column_names else None
    pending_skip = spec.skip_rows + (1 if spec.has_header else 0)
    for line_no, chunk in iter_text_chunks(path, lines_per_chunk):
        first_row = line_no
        if pending_skip:
            dropped, chunk = _split_lines(chunk, pending_skip)
            pending_skip -= len(dropped)
            first_row += len(dropped)
            if spec.has_header and pending_skip == 0 and dropped:
                header = _header_names(dropped[-1], spec.separator)
                names = names or header
                _check_header(path, names)
        if not chunk or chunk.isspace():  # isspace: no copy of a big chunk, unlike strip
            continue
        if names is None:
            width = len(_header_names(chunk.split(b"\n", 1)[0], spec.separator))
            names = [f"column_{i + 1}" for i in range(width)]
        yield chunk, names, first_row


def _string_frame(chunk: bytes, names: list[str], separator: str, first_row: int) -> SourceFrame:
    """Parse a chunk as all-string columns; malformed lines become rejected rows."""
    rejected: dict[int, tuple[str, str]] = {}
    if _ragged(chunk, len(names), separator):
        frame, rejected = _csv_fallback(chunk, names, separator, first_row)
        return frame, first_row, rejected
    try:
        frame = pl.read_csv(
            io.BytesIO(chunk),
            has_header=False,
            separator=separator,
            schema={name: pl.String for name in names},
        )
    except pl.exceptions.PolarsError:
        frame, rejected = _csv_fallback(chunk, names, separator, first_row)
    return frame, first_row, rejected


def iter_csv_frames(path: Path, spec: CsvSpec, lines_per_chunk: int) -> Iterator[SourceFrame]:
    """Yield all-string frames of at most ``lines_per_chunk`` rows from a delimited file."""
    for chunk, names, first_row in _csv_chunks(path, spec, lines_per_chunk):
        yield _string_frame(chunk, names, spec.separator, first_row)


def typed_source_columns(mapping: Mapping) -> dict[str, pl.DataType]:
    """Source columns the CSV parser may read as numbers directly (see ``CsvReader``).

    Only columns whose mapped value is a plain number of the same type (or an epoch
    time with an explicit unit): for those, Polars' CSV number parser and the careful
    path's string-to-number cast accept the same texts and give the same values, and a
    text one of them refuses makes the fast parse fail, so the careful path decides.
    """
    schema = get_schema(mapping.dataset_schema)
    wanted: dict[str, list[pl.DataType]] = {}
    time = mapping.time
    if time.column is not None and time.unit not in (None, "auto") and time.format is None:
        wanted.setdefault(time.column, []).append(pl.Int64())
    coded = {*mapping.value_maps, "side"}
    for name, column in mapping.columns.items():
        kind = schema.column(name).type
        if name in coded:
            wanted.setdefault(column, []).append(pl.String())
        elif kind == "float64":
            wanted.setdefault(column, []).append(pl.Float64())
        elif kind == "int64":
            wanted.setdefault(column, []).append(pl.Int64())
        else:
            wanted.setdefault(column, []).append(pl.String())
    for policy in (mapping.seq, mapping.trade_id):
        if policy not in (None, "row"):
            wanted.setdefault(str(policy), []).append(pl.String())
    return {
        column: types[0]
        for column, types in wanted.items()
        if all(t == types[0] for t in types) and types[0] != pl.String()
    }


def iter_jsonl_frames(path: Path, lines_per_chunk: int) -> Iterator[SourceFrame]:
    """Yield frames of at most ``lines_per_chunk`` JSON objects (one per line)."""
    for line_no, chunk in iter_text_chunks(path, lines_per_chunk):
        lines = chunk.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        if all(line.strip() for line in lines):
            try:
                yield pl.read_ndjson(io.BytesIO(chunk), infer_schema_length=None), line_no, {}
                continue
            except pl.exceptions.PolarsError:
                pass  # a bad line somewhere: find it below, one line at a time
        records: list[dict[str, Any]] = []
        rejected: dict[int, tuple[str, str]] = {}
        for offset, line in enumerate(lines):
            text = line.decode("utf-8", errors="replace").strip()
            record: Any = {}
            if not text:
                rejected[line_no + offset] = ("", "blank line")
            else:
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    rejected[line_no + offset] = (text, f"invalid JSON: {exc.msg}")
                if not isinstance(record, dict):
                    rejected[line_no + offset] = (text, "line is not a JSON object")
                    record = {}
            records.append(record)
        yield pl.from_dicts(records, infer_schema_length=None), line_no, rejected


def map_frames(frames: Iterable[SourceFrame], mapping: Mapping, *, source: str) -> Iterator[Batch]:
    """Apply ``mapping`` to each source frame; pre-rejected rows keep their own reason."""
    resolved: Mapping | None = None
    for frame, first_row, pre_rejected in frames:
        if resolved is None:
            resolved = resolve_auto_unit(mapping, frame)
        batch = apply_mapping(frame, resolved, source=source, first_row=first_row)
        if pre_rejected:
            # Those rows reached apply_mapping as all-null rows (keeping row numbers
            # aligned); replace the generic reason with the real one.
            keep = batch.rejected.filter(~pl.col("source_row").is_in(list(pre_rejected)))
            own = pl.DataFrame(
                {
                    "source_row": list(pre_rejected),
                    "raw": [raw for raw, _ in pre_rejected.values()],
                    "reason": [reason for _, reason in pre_rejected.values()],
                },
                schema=REJECTED_SCHEMA,
            ).filter(pl.col("reason") != "blank line")
            batch.rejected = pl.concat([keep, own]).sort("source_row")
        yield batch


class MappingReader(Reader):
    """Base for readers driven by a mapping; the mapping's schema is the output schema."""

    #: placeholder; ``schema_for`` returns the mapping's schema
    schema: ClassVar[str] = "trades"

    def schema_for(self, options: ReaderOptions) -> str:
        if "mapping" not in options.extra:
            return self.schema
        return resolve_mapping(options, reader=self.name).dataset_schema

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        mapping = resolve_mapping(options, reader=self.name)
        return map_frames(self.frames(Path(path), mapping, options), mapping, source=str(path))

    def frames(self, path: Path, mapping: Mapping, options: ReaderOptions) -> Iterator[SourceFrame]:
        raise NotImplementedError


@register_reader
class CsvReader(MappingReader):
    name = "csv"
    description = (
        "Delimited text (CSV/TSV, .gz/.zst) through a mapping (--mapping FILE.yaml, or "
        "--infer to propose one). Streams chunks of whole lines, re-applying the header. "
        "Time zone: epoch numbers are UTC, naive strings are read in the mapping's "
        "`time.timezone` (default UTC). Prices are divided by `price_scale` if set. Lines "
        'with more or fewer fields than the header ("expected N fields, got M"), damaged '
        "(non-UTF-8) bytes, bad times and non-numeric values are rejected with their line "
        "number; a header naming a column twice, or a file that is not UTF-8 text "
        "(compressed but misnamed, UTF-16, binary), is refused with what it is."
    )
    suffixes = (".csv", ".tsv", ".txt")

    def frames(self, path: Path, mapping: Mapping, options: ReaderOptions) -> Iterator[SourceFrame]:
        return iter_csv_frames(path, mapping.csv, options.batch_rows)

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        mapping = resolve_mapping(options, reader=self.name)
        typed = typed_source_columns(mapping)
        if not typed:
            return map_frames(self.frames(Path(path), mapping, options), mapping, source=str(path))
        return self._read_typed(Path(path), mapping, options, typed)

    def _read_typed(
        self, path: Path, mapping: Mapping, options: ReaderOptions, typed: dict[str, pl.DataType]
    ) -> Iterator[Batch]:
        """Parse numeric columns natively; any doubt sends the chunk down the careful path.

        A chunk is kept from the fast parse only if Polars parses it with the numeric
        types and the mapping rejects none of its rows. Otherwise (a malformed line, a
        bad number, a bad time, a wrong field count) the chunk is parsed again as
        strings, exactly as before, so rejected rows keep their line, raw text and reason.
        """
        spec = mapping.csv
        source = str(path)
        resolved: Mapping | None = None
        for chunk, names, first_row in _csv_chunks(path, spec, options.batch_rows):
            careful: SourceFrame | None = None
            if resolved is None:
                resolved = mapping
                if mapping.time.unit == "auto":  # decided from the first chunk's text
                    careful = _string_frame(chunk, names, spec.separator, first_row)
                    resolved = resolve_auto_unit(mapping, careful[0])
            batch: Batch | None = None
            if (
                set(typed) <= set(names)
                and len(set(names)) == len(names)
                and not _ragged(chunk, len(names), spec.separator)
            ):
                try:
                    frame = pl.read_csv(
                        io.BytesIO(chunk),
                        has_header=False,
                        separator=spec.separator,
                        schema={name: typed.get(name, pl.String()) for name in names},
                    )
                except pl.exceptions.PolarsError:
                    frame = None
                if frame is not None:
                    fast = apply_mapping(frame, resolved, source=source, first_row=first_row)
                    if fast.rejected.height == 0:
                        batch = fast
            if batch is None:
                careful = careful or _string_frame(chunk, names, spec.separator, first_row)
                batch = next(map_frames([careful], resolved, source=source))
            yield batch


@register_reader
class JsonLinesReader(MappingReader):
    name = "jsonl"
    description = (
        "JSON lines (one object per line, top-level keys as columns; .gz/.zst) through a "
        "mapping. Streams chunks of whole lines. Time zone and price scaling as in the "
        "mapping (epoch numbers are UTC). Invalid JSON lines are rejected with their line "
        "number; blank lines are skipped."
    )
    suffixes = (".jsonl", ".ndjson")

    def frames(self, path: Path, mapping: Mapping, options: ReaderOptions) -> Iterator[SourceFrame]:
        return iter_jsonl_frames(path, options.batch_rows)


def _random_access(path: Path) -> Any:
    """Return something pyarrow can seek in: the path, or the decompressed bytes."""
    if path.suffix in (".gz", ".zst"):
        with open_source(path) as fh:
            try:
                return pa.BufferReader(fh.read())
            except (OSError, EOFError) as exc:
                raise IngestError(
                    f"{path}: file is corrupt or truncated ({exc}); re-download or remove it.",
                    path=str(path),
                ) from exc
    return str(path)


def _arrow_frames(
    batches: Iterable[pa.RecordBatch], path: Path, batch_rows: int
) -> Iterator[SourceFrame]:
    first_row = 1
    iterator = iter(batches)
    while True:
        try:
            record_batch = next(iterator)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise IngestError(
                f"{path}: file is corrupt or truncated after row {first_row - 1} ({exc}); "
                "re-download or remove it.",
                path=str(path),
                row=first_row,
            ) from exc
        for start in range(0, record_batch.num_rows, batch_rows):
            piece = pl.from_arrow(record_batch.slice(start, batch_rows))
            assert isinstance(piece, pl.DataFrame)
            yield piece, first_row, {}
            first_row += piece.height


@register_reader
class ParquetReader(MappingReader):
    name = "parquet"
    description = (
        "Parquet through a mapping, read by record batches of at most batch_rows rows. "
        "Datetime columns keep their zone (naive ones are read in `time.timezone`); epoch "
        "numbers are UTC; prices divided by `price_scale` if set."
    )
    suffixes = (".parquet",)

    def frames(self, path: Path, mapping: Mapping, options: ReaderOptions) -> Iterator[SourceFrame]:
        try:
            parquet = pq.ParquetFile(_random_access(path))
        except (pa.ArrowException, OSError) as exc:
            raise IngestError(
                f"{path}: not a readable Parquet file ({exc}); re-download or remove it.",
                path=str(path),
            ) from exc
        return _arrow_frames(
            parquet.iter_batches(batch_size=options.batch_rows), path, options.batch_rows
        )


@register_reader
class ArrowReader(MappingReader):
    name = "arrow"
    description = (
        "Arrow IPC (file or stream format, .arrow/.ipc/.feather) through a mapping, read "
        "record batch by record batch, each split to at most batch_rows rows. Time zone "
        "and price scaling as in the mapping."
    )
    suffixes = (".arrow", ".arrows", ".ipc", ".feather")

    def frames(self, path: Path, mapping: Mapping, options: ReaderOptions) -> Iterator[SourceFrame]:
        source = _random_access(path)
        handle = pa.memory_map(source) if isinstance(source, str) else source
        try:
            file_reader = pa.ipc.open_file(handle)
            batches: Iterable[pa.RecordBatch] = (
                file_reader.get_batch(i) for i in range(file_reader.num_record_batches)
            )
        except pa.ArrowInvalid:
            handle.seek(0)
            try:
                batches = pa.ipc.open_stream(handle)
            except (pa.ArrowException, OSError) as exc:
                raise IngestError(
                    f"{path}: not a readable Arrow IPC file or stream ({exc}).",
                    path=str(path),
                ) from exc
        return _arrow_frames(batches, path, options.batch_rows)
