"""Raw parts: what a collector received, one zstd JSONL file per stream per interval.

Layout under the collector's ``RAW_DIR``::

    binance-<market>/<stream>/<YYYY-MM-DD>/<stream>.<YYYYmmddTHHMMSS>.<seq6>.jsonl.zst
    binance-<market>/gaps.jsonl          what could not be recovered (one JSON per line)

``<stream>`` is the exchange's stream name (``btcusdt@aggTrade``, ``btcusdt@depth@100ms``),
the date and time are the part's opening time in UTC and ``<seq6>`` numbers parts opened
in the same second. Each line is one message::

    {"recv_ns": 1700000000123456789, "stream": "btcusdt@aggTrade", "symbol": "BTCUSDT",
     "source": "ws" | "rest" | "snapshot", "data": {...the exchange's payload...}}

``source`` says where the line came from: the websocket, a REST call that recovered a
gap, or a depth snapshot (``data`` is then the REST ``/depth`` answer).

Crash safety: a part is written under ``<name>.open``; every ``flush_lines`` lines or
``flush_seconds`` the compressor closes a zstd frame and the bytes reach the OS, so a
crashed writer leaves whole frames followed by at most one torn frame. Closing a part
fsyncs it, renames it to its final name and fsyncs the directory. A final name is
therefore never torn; :func:`recover_open_parts` turns the ``.open`` leftovers of a
crash into final parts holding their whole lines (and says how many lines of a torn
tail were lost, if any), so readers only ever see final names.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import zstandard

from ticklake.lake.commit import fsync_dir

PART_SUFFIX = ".jsonl.zst"
OPEN_SUFFIX = ".open"
GAPS_FILE = "gaps.jsonl"
SOURCES = ("ws", "rest", "snapshot")


def venue_dir(root: Path, market: str) -> Path:
    """``RAW_DIR/binance-<market>``."""
    return Path(root) / f"binance-{market}"


def encode_line(recv_ns: int, stream: str, symbol: str, source: str, data: Any) -> bytes:
    """One raw line (bytes, newline included)."""
    return (
        orjson.dumps(
            {"recv_ns": recv_ns, "stream": stream, "symbol": symbol, "source": source, "data": data}
        )
        + b"\n"
    )


class RawPartWriter:
    """Writes one stream's lines into parts of ``interval_seconds`` each.

    ``write`` appends a line; the part rolls over when the interval ends (checked on
    each write and by :meth:`tick`). Memory is bounded by the compressor's window and
    ``flush_lines`` lines, whatever the rate.
    """

    def __init__(
        self,
        root: Path,
        market: str,
        stream: str,
        *,
        interval_seconds: float = 60.0,
        flush_lines: int = 1000,
        flush_seconds: float = 1.0,
        level: int = 3,
        clock: Any = time.time_ns,
    ) -> None:
        self.dir = venue_dir(root, market) / stream
        self.stream = stream
        self.interval_ns = int(interval_seconds * 1e9)
        self.flush_lines = flush_lines
        self.flush_ns = int(flush_seconds * 1e9)
        self.level = level
        self.clock = clock
        self._fh: Any = None
        self._zw: Any = None
        self._path: Path | None = None
        self._opened_ns = 0
        self._last_flush_ns = 0
        self._pending = 0
        self.lines = 0  # lines written to the open part
        self.parts_closed = 0
        self.bytes_closed = 0

    # ------------------------------------------------------------------ parts
    def _open(self, now_ns: int) -> None:
        opened = datetime.fromtimestamp(now_ns / 1e9, tz=UTC)
        day_dir = self.dir / opened.strftime("%Y-%m-%d")
        day_dir.mkdir(parents=True, exist_ok=True)
        stamp = opened.strftime("%Y%m%dT%H%M%S")
        seq = 0
        while True:
            name = f"{self.stream}.{stamp}.{seq:06d}{PART_SUFFIX}"
            path = day_dir / name
            if not path.exists() and not (day_dir / (name + OPEN_SUFFIX)).exists():
                break
            seq += 1
        self._path = path
        self._fh = (day_dir / (name + OPEN_SUFFIX)).open("xb")
        self._zw = zstandard.ZstdCompressor(level=self.level).stream_writer(self._fh, closefd=False)
        self._opened_ns = now_ns
        self._last_flush_ns = now_ns
        self.lines = 0
        self._pending = 0

    def _flush(self, now_ns: int) -> None:
        if self._zw is not None and self._pending:
            self._zw.flush(zstandard.FLUSH_FRAME)
            self._fh.flush()
            self._pending = 0
        self._last_flush_ns = now_ns

    def close_part(self) -> Path | None:
        """Close the open part (fsync, rename to its final name); return its path."""
        if self._zw is None or self._path is None:
            return None
        self._zw.flush(zstandard.FLUSH_FRAME)
        self._zw.close()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        temp = self._path.with_name(self._path.name + OPEN_SUFFIX)
        final = self._path
        if self.lines:
            os.replace(temp, final)
            self.parts_closed += 1
            self.bytes_closed += final.stat().st_size
        else:
            temp.unlink()
            final = None  # type: ignore[assignment]
        fsync_dir(self._path.parent)
        self._zw = self._fh = self._path = None
        return final

    # ------------------------------------------------------------------ lines
    def write(self, line: bytes, now_ns: int | None = None) -> None:
        """Append one encoded line (:func:`encode_line`)."""
        now = self.clock() if now_ns is None else now_ns
        if self._zw is not None and now - self._opened_ns >= self.interval_ns:
            self.close_part()
        if self._zw is None:
            self._open(now)
        self._zw.write(line)
        self.lines += 1
        self._pending += 1
        if self._pending >= self.flush_lines or now - self._last_flush_ns >= self.flush_ns:
            self._flush(now)

    def tick(self, now_ns: int | None = None) -> None:
        """Time passes with no message: flush, and roll the part at the interval's end."""
        now = self.clock() if now_ns is None else now_ns
        if self._zw is None:
            return
        if now - self._opened_ns >= self.interval_ns:
            self.close_part()
        elif now - self._last_flush_ns >= self.flush_ns:
            self._flush(now)


# ---------------------------------------------------------------------- reading
def raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw bytes without the newline) of a closed part, streamed
    1 MiB at a time; empty lines included. Raises ``zstandard.ZstdError`` on damage."""
    with path.open("rb") as fh:
        reader = zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
        buffer, number = b"", 0
        while chunk := reader.read(1 << 20):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                number += 1
                yield number, line
        if buffer:
            yield number + 1, buffer


def read_part(path: Path) -> Iterator[dict[str, Any]]:
    """The lines of a closed part, parsed. Raises ``zstandard.ZstdError`` on damage."""
    for _, line in raw_lines(path):
        if line:
            yield orjson.loads(line)


def _salvage(path: Path) -> tuple[bytes, int]:
    """The whole lines of a crashed ``.open`` part and how many torn bytes were cut."""
    data = path.read_bytes()
    out = bytearray()
    decompressor = zstandard.ZstdDecompressor()
    offset = 0
    while offset < len(data):
        try:
            obj = decompressor.decompressobj()
            chunk = obj.decompress(data[offset:])
            if not obj.eof:
                break  # the torn last frame: its lines never reached the disk whole
            out += chunk
            offset = len(data) - len(obj.unused_data)
        except zstandard.ZstdError:
            break
    text = bytes(out)
    cut = text.rfind(b"\n") + 1
    return text[:cut], len(data) - offset


@dataclass
class Recovered:
    """A ``.open`` part turned into a final part by :func:`recover_open_parts`."""

    part: Path | None  # None: nothing whole was in it
    lines: int
    torn_bytes: int


def recover_open_parts(root: Path, market: str) -> list[Recovered]:
    """Finish the parts a crashed collector left open: keep their whole lines."""
    out = []
    for temp in sorted(venue_dir(root, market).glob(f"*/*/*{PART_SUFFIX}{OPEN_SUFFIX}")):
        text, torn = _salvage(temp)
        final = temp.with_name(temp.name[: -len(OPEN_SUFFIX)])
        if text:
            staged = temp.with_name(temp.name + ".salvage")
            with staged.open("wb") as fh:
                fh.write(zstandard.ZstdCompressor(level=3).compress(text))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(staged, final)
        temp.unlink()
        fsync_dir(temp.parent)
        out.append(Recovered(final if text else None, text.count(b"\n"), torn))
    return out


def list_parts(root: Path, market: str | None = None) -> list[Path]:
    """Closed parts under ``root`` (one market, or every ``binance-*``), in name order."""
    bases = [venue_dir(root, market)] if market else sorted(Path(root).glob("binance-*"))
    return sorted(p for base in bases for p in base.glob(f"*/*/*{PART_SUFFIX}"))


# ------------------------------------------------------------------------- gaps
class GapLog:
    """``binance-<market>/gaps.jsonl``: one line per gap, fsynced as it is written."""

    def __init__(self, root: Path, market: str) -> None:
        self.path = venue_dir(root, market) / GAPS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(
        self,
        *,
        stream: str,
        symbol: str,
        reason: str,
        recovered: bool,
        from_ns: int | None = None,
        to_ns: int | None = None,
        from_id: int | None = None,
        to_id: int | None = None,
        now_ns: int | None = None,
    ) -> dict[str, Any]:
        entry = {
            "recorded_ns": time.time_ns() if now_ns is None else now_ns,
            "stream": stream,
            "symbol": symbol,
            "from_ns": from_ns,
            "to_ns": to_ns,
            "from_id": from_id,
            "to_id": to_id,
            "reason": reason,
            "recovered": recovered,
        }
        with self.path.open("ab") as fh:
            fh.write(orjson.dumps(entry) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        return entry

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [orjson.loads(line) for line in self.path.read_bytes().splitlines() if line]
