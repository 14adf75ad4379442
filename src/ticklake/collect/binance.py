"""The Binance collector: combined websocket streams to raw parts, gaps recovered or logged.

Protocol (Binance's public docs, spot and USD-M futures):

- One connection per group of at most ``max_streams_per_connection`` streams (spot
  allows 1,024, USD-M 200), at ``<ws_url>/stream?streams=a/b/c``; each message is
  ``{"stream": name, "data": payload}``. The ``websockets`` library answers the
  server's pings (spot every 20 s) and pings the server itself; the server ends every
  connection after 24 hours, which is one more reconnect.
- Reconnects wait a random time in ``[0, min(cap, base * 2^attempt)]`` (exponential
  backoff, full jitter); the attempt count resets once a connection delivered messages.
- A connection that is open but silent for ``stall_seconds`` is closed and reopened.

Never losing a message silently (each case is a line in ``gaps.jsonl`` or a recovery):

- ``trade`` / ``aggTrade``: ids are consecutive. After a reconnect, and whenever a
  message skips ids, the missing ids are fetched from REST (``/api/v3/aggTrades?fromId=``,
  ``/api/v3/historicalTrades?fromId=``; ``/fapi/v1/...`` for USD-M, 1,000 per request)
  and written as ``source: "rest"`` lines before the message that revealed the gap; a
  message whose id was already written (a duplicate, a late reordered one) is skipped and
  counted. What REST cannot return is logged as an unrecovered gap.
- ``depth``: every diff and every snapshot is written; :class:`~ticklake.collect.depth.DepthSync`
  keeps the book by the documented ``U``/``u``/``pu`` rules, and on a break or a reconnect
  a snapshot is fetched while diffs keep being read and buffered (no window where updates
  are dropped). Each break is logged with its update ids; the book is rebuilt.
- ``bookTicker``, ``markPrice``: no history exists; a reconnect logs the gap (from the last
  message received to the reconnect), ``recovered: false``.

Back-pressure: one task per connection reads, handles and writes each message before it
reads the next; there is no queue between the socket and the disk. A slow disk therefore
slows reading, the kernel's socket buffer fills, and Binance eventually drops the
connection (then the gap is recovered as above); each write that blocks > 100 ms is
counted in ``slow_writes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import orjson
import websockets
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ticklake.collect.depth import DepthSync
from ticklake.collect.rawfile import (
    PART_SUFFIX,
    GapLog,
    RawPartWriter,
    encode_line,
    read_part,
    recover_open_parts,
    venue_dir,
)
from ticklake.collect.rest import BinanceRest, CollectError, kline_payload
from ticklake.collect.stats import CollectorStats
from ticklake.errors import ConfigError

log = logging.getLogger("ticklake.collect")

DEFAULT_WS = {"spot": "wss://stream.binance.com:9443", "usdm": "wss://fstream.binance.com"}
DEFAULT_REST = {"spot": "https://api.binance.com", "usdm": "https://fapi.binance.com"}
MAX_STREAMS = {"spot": 1024, "usdm": 200}
#: stream kind (as given on the command line) -> the stream name's suffix
STREAM_SUFFIX = {
    "trade": "@trade",
    "aggTrade": "@aggTrade",
    "bookTicker": "@bookTicker",
    "depth": "@depth@100ms",
    "markPrice": "@markPrice@1s",
}
#: kline intervals Binance streams (``kline_1m`` on the command line -> ``<sym>@kline_1m``)
KLINE_MS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}
REST_PAGE = 1000
SLOW_WRITE_NS = 100_000_000


class CollectorConfig(BaseModel):
    """What ``ticklake collect binance`` collects (flags or a TOML ``[collect]`` table)."""

    model_config = ConfigDict(extra="forbid")

    market: Literal["spot", "usdm"] = "spot"
    symbols: list[str]
    streams: list[str] = Field(default_factory=lambda: ["aggTrade", "bookTicker", "depth"])
    out: Path
    ws_url: str | None = None
    rest_url: str | None = None
    part_seconds: float = Field(60.0, gt=0)
    flush_seconds: float = Field(1.0, gt=0)
    backoff_base_seconds: float = Field(0.5, gt=0)
    backoff_cap_seconds: float = Field(30.0, gt=0)
    stall_seconds: float = Field(30.0, gt=0)
    max_streams_per_connection: int | None = Field(None, ge=1)
    depth_limit: int = Field(1000, ge=5, le=5000)
    rest_retries: int = Field(8, ge=0)
    status_every_seconds: float = Field(5.0, gt=0)

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        out = [s.strip().upper() for s in value if s.strip()]
        if not out:
            raise ValueError("give at least one symbol, e.g. BTCUSDT")
        return out

    @field_validator("streams")
    @classmethod
    def _streams(cls, value: list[str]) -> list[str]:
        unknown = [
            s for s in value if s not in STREAM_SUFFIX and s.removeprefix("kline_") not in KLINE_MS
        ]
        if unknown:
            raise ValueError(
                f"unknown stream(s) {', '.join(unknown)}; known: {', '.join(STREAM_SUFFIX)}, "
                f"kline_<interval> ({', '.join(KLINE_MS)})"
            )
        return value

    def stream_names(self) -> list[str]:
        if "markPrice" in self.streams and self.market != "usdm":
            raise ConfigError("markPrice is a USD-M futures stream: use --market usdm")
        return [
            f"{s.lower()}{STREAM_SUFFIX.get(k, '@' + k)}"
            for s in self.symbols
            for k in self.streams
        ]

    def groups(self) -> list[list[str]]:
        names = self.stream_names()
        size = self.max_streams_per_connection or MAX_STREAMS[self.market]
        size = min(size, MAX_STREAMS[self.market])
        return [names[i : i + size] for i in range(0, len(names), size)]


def _kind(stream: str) -> str:
    return stream.split("@", 1)[1].split("@", 1)[0]


def _symbol_of(stream: str) -> str:
    return stream.split("@", 1)[0].upper()


class BinanceCollector:
    """Run with ``await collector.run(stop_event)``; ``stats`` and ``depth`` are live."""

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.market = config.market
        self.ws_url = (config.ws_url or DEFAULT_WS[self.market]).rstrip("/")
        self.rest_url = (config.rest_url or DEFAULT_REST[self.market]).rstrip("/")
        self.dir = venue_dir(config.out, self.market)
        self.stats = CollectorStats(self.market)
        self.gaps = GapLog(config.out, self.market)
        self.writers: dict[str, RawPartWriter] = {}
        self.last_id: dict[str, int] = {}
        self.last_kline: dict[str, int] = {}  # open time (ms) of the last closed kline
        self.depth: dict[str, DepthSync] = {}
        self._snapshot_tasks: dict[str, asyncio.Task[None]] = {}
        self._rest: BinanceRest | None = None
        self._stop = asyncio.Event()
        self._received = 0
        self._restored = False

    # ------------------------------------------------------------------ output
    def _writer(self, stream: str) -> RawPartWriter:
        writer = self.writers.get(stream)
        if writer is None:
            writer = RawPartWriter(
                self.config.out,
                self.market,
                stream,
                interval_seconds=self.config.part_seconds,
                flush_seconds=self.config.flush_seconds,
            )
            self.writers[stream] = writer
        return writer

    def _write(self, stream: str, source: str, data: Any, recv_ns: int) -> None:
        started = time.monotonic_ns()
        self._writer(stream).write(encode_line(recv_ns, stream, _symbol_of(stream), source, data))
        self.stats.stream(stream).written += 1
        if time.monotonic_ns() - started > SLOW_WRITE_NS:
            self.stats.slow_writes += 1

    def _gap(self, stream: str, reason: str, recovered: bool, **ids: int | None) -> None:
        stats = self.stats.stream(stream)
        stats.gaps += 1
        if not recovered:
            stats.gaps_unrecovered += 1
        entry = self.gaps.record(
            stream=stream, symbol=_symbol_of(stream), reason=reason, recovered=recovered, **ids
        )
        log.warning("gap on %s: %s", stream, entry)

    # -------------------------------------------------------------------- REST
    async def _get(self, path: str, params: dict[str, Any]) -> Any:
        assert self._rest is not None
        before = self._rest.retried
        try:
            return await self._rest.get(path, params)
        finally:
            self.stats.rest_retries += self._rest.retried - before

    async def _recover_ids(self, stream: str, first: int, last: int | None) -> int | None:
        """Fetch trade/aggTrade ids ``first..last`` (``None``: up to now) from REST and
        write them; returns the last id written (or None)."""
        kind = _kind(stream)
        path, id_key = ("/aggTrades", "a") if kind == "aggTrade" else ("/historicalTrades", "id")
        symbol = _symbol_of(stream)
        wanted, written = first, None
        while last is None or wanted <= last:
            try:
                rows = await self._get(
                    path, {"symbol": symbol, "fromId": wanted, "limit": REST_PAGE}
                )
            except CollectError as exc:
                self.stats.last_error = str(exc)
                break
            rows = [r for r in rows if int(r[id_key]) >= wanted]
            if last is not None:
                rows = [r for r in rows if int(r[id_key]) <= last]
            if not rows:
                break
            now = time.time_ns()
            for row in rows:
                if int(row[id_key]) != wanted:
                    break  # REST itself skips: stop here, the rest is a gap
                self._write(stream, "rest", row, now)
                self.stats.stream(stream).recovered += 1
                written = wanted
                wanted += 1
            else:
                continue
            break
        if last is not None and wanted <= last:
            self._gap(
                stream,
                "ids missing from the stream and from REST",
                False,
                from_id=wanted,
                to_id=last,
            )
        elif written is not None or last is not None:
            self._gap(
                stream,
                "ids missing from the stream, recovered from REST",
                True,
                from_id=first,
                to_id=written if last is None else last,
            )
        return written

    async def _recover_klines(self, stream: str, interval: str) -> None:
        """The closed klines after the last one received, from ``/klines``, as REST lines."""
        step = KLINE_MS[interval]
        first = self.last_kline[stream] + step
        start, written = first, 0
        symbol = _symbol_of(stream)
        now_ms = time.time_ns() // 1_000_000
        while start + step <= now_ms:
            params = {
                "symbol": symbol,
                "interval": interval,
                "startTime": start,
                "limit": REST_PAGE,
            }
            try:
                rows = await self._get("/klines", params)
            except CollectError as exc:
                self.stats.last_error = str(exc)
                break
            closed = [r for r in rows if int(r[6]) < now_ms]
            for row in closed:
                self._write(stream, "rest", kline_payload(symbol, interval, row), time.time_ns())
                self.last_kline[stream] = int(row[0])
                written += 1
            self.stats.stream(stream).recovered += len(closed)
            if len(rows) < REST_PAGE or not closed:
                break
            start = int(closed[-1][0]) + step
        if written:
            self._gap(
                stream,
                "reconnect; closed klines recovered from REST",
                True,
                from_ns=first * 1_000_000,
                to_ns=self.last_kline[stream] * 1_000_000,
            )

    # ------------------------------------------------------------------ depth
    def _depth_sync(self, stream: str) -> DepthSync:
        if stream not in self.depth:
            self.depth[stream] = DepthSync(futures=self.market == "usdm")
        return self.depth[stream]

    def _want_snapshot(self, stream: str) -> None:
        task = self._snapshot_tasks.get(stream)
        if task is None or task.done():
            self._snapshot_tasks[stream] = asyncio.create_task(self._snapshot(stream))

    async def _snapshot(self, stream: str) -> None:
        sync = self._depth_sync(stream)
        symbol = _symbol_of(stream)
        for attempt in range(50):
            while not sync.buffer:  # the documented order: buffer first, then snapshot
                await asyncio.sleep(0.01)
            try:
                answer = await self._get(
                    "/depth", {"symbol": symbol, "limit": self.config.depth_limit}
                )
            except CollectError as exc:
                self.stats.last_error = str(exc)
                await asyncio.sleep(min(self.config.backoff_cap_seconds, 2**attempt))
                continue
            self._write(stream, "snapshot", answer, time.time_ns())
            outcome = sync.on_snapshot(answer)
            if outcome == "synced":
                return
            await asyncio.sleep(0.05 * (attempt + 1))
        self._gap(stream, "no snapshot matched the buffered diffs after 50 tries", False)

    def _on_depth(self, stream: str, data: dict[str, Any]) -> None:
        sync = self._depth_sync(stream)
        gap = sync.on_event(data)
        if gap is not None:
            self._gap(
                stream,
                gap.reason + "; book rebuilt from a fresh snapshot",
                True,
                from_id=gap.from_id,
                to_id=gap.to_id,
            )
        if sync.needs_snapshot:
            self._want_snapshot(stream)

    # --------------------------------------------------------------- messages
    async def handle(self, raw: str | bytes, recv_ns: int | None = None) -> None:
        """One websocket message: check, recover what it reveals, write."""
        recv_ns = time.time_ns() if recv_ns is None else recv_ns
        message = orjson.loads(raw)
        stream, data = message.get("stream"), message.get("data")
        if not isinstance(stream, str) or not isinstance(data, dict):
            log.warning("not a combined-stream message, skipped: %.200s", raw)
            return
        kind = _kind(stream)
        stats = self.stats.stream(stream)
        stats.seen(recv_ns, data.get("E") or data.get("T"))
        if kind in ("aggTrade", "trade"):
            trade_id = int(data["a" if kind == "aggTrade" else "t"])
            last = self.last_id.get(stream)
            if last is not None and trade_id <= last:
                stats.duplicates += 1
                return
            if last is not None and trade_id > last + 1:
                await self._recover_ids(stream, last + 1, trade_id - 1)
            self._write(stream, "ws", data, recv_ns)
            self.last_id[stream] = trade_id
        elif kind == "depth":
            self._write(stream, "ws", data, recv_ns)
            self._on_depth(stream, data)
        elif kind.startswith("kline_"):
            k = data.get("k", {})
            if k.get("x") and int(k["t"]) <= self.last_kline.get(stream, -1):
                stats.duplicates += 1  # already written from REST after a reconnect
                return
            self._write(stream, "ws", data, recv_ns)
            if k.get("x"):
                self.last_kline[stream] = int(k["t"])
        else:
            self._write(stream, "ws", data, recv_ns)

    async def _after_reconnect(self, streams: Iterable[str], down_ns: int) -> None:
        """Recover what the break cost: trade ids from REST, the book from a snapshot,
        and log what has no history."""
        for stream in streams:
            kind = _kind(stream)
            if kind in ("aggTrade", "trade") and stream in self.last_id:
                written = await self._recover_ids(stream, self.last_id[stream] + 1, None)
                if written is not None:
                    self.last_id[stream] = written
            elif kind.startswith("kline_") and stream in self.last_kline:
                await self._recover_klines(stream, kind.removeprefix("kline_"))
            elif kind == "depth" and stream in self.depth:
                gap = self.depth[stream].lose_sync("reconnect")
                self._gap(
                    stream,
                    "reconnect; book rebuilt from a fresh snapshot",
                    True,
                    from_id=gap.from_id,
                )
            elif self.stats.stream(stream).last_recv_ns is not None:
                self._gap(
                    stream,
                    f"disconnected: {kind} has no history to recover",
                    False,
                    from_ns=self.stats.stream(stream).last_recv_ns,
                    to_ns=down_ns,
                )

    # ------------------------------------------------------------- connection
    async def _connection(self, streams: list[str]) -> None:
        url = f"{self.ws_url}/stream?streams={'/'.join(streams)}"
        attempt, connected_before = 0, False
        while not self._stop.is_set():
            down_ns = time.time_ns()
            received = self._received
            try:
                async with websockets.connect(
                    url, max_size=2**24, open_timeout=10, ping_interval=20, ping_timeout=20
                ) as ws:
                    self.stats.connections += 1
                    self.stats.state = "running"
                    if connected_before:
                        self.stats.reconnects += 1
                        await self._after_reconnect(streams, down_ns)
                    elif self._restored:
                        # a restart: recover what arrived while the collector was down
                        await self._after_reconnect(streams, down_ns)
                    connected_before = True
                    await self._read(ws)
            except (
                websockets.ConnectionClosed,
                websockets.InvalidHandshake,
                OSError,
                TimeoutError,
            ) as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.info("connection to %s ended: %s", self.ws_url, self.stats.last_error)
            if self._stop.is_set():
                break
            if self._received > received:
                attempt = 0  # that connection worked: start the backoff again
            delay = random.uniform(
                0,
                min(self.config.backoff_cap_seconds, self.config.backoff_base_seconds * 2**attempt),
            )
            attempt = min(attempt + 1, 30)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    async def _read(self, ws: Any) -> None:
        """Read until the connection ends, the collector stops, or it stalls.

        A watchdog task checks the time of the last message (a per-message timeout
        would cost a timer per message: measured 23 k vs 34 k msg/s end to end)."""
        last = [time.monotonic()]
        stalled = [False]

        async def watchdog() -> None:
            limit = self.config.stall_seconds
            while True:
                await asyncio.sleep(min(1.0, limit / 4))
                if self._stop.is_set() or time.monotonic() - last[0] > limit:
                    stalled[0] = not self._stop.is_set()
                    await ws.close()
                    return

        guard = asyncio.create_task(watchdog())
        try:
            async for raw in ws:
                last[0] = time.monotonic()
                self._received += 1
                await self.handle(raw)
                if self._stop.is_set():
                    break
        finally:
            guard.cancel()
        if stalled[0]:
            self.stats.stalls += 1
            self.stats.last_error = f"no message for {self.config.stall_seconds:g} s"

    async def _ticker(self) -> None:
        next_status = 0.0
        while not self._stop.is_set():
            for writer in self.writers.values():
                writer.tick()
            if time.monotonic() >= next_status:
                self.stats.write(self.dir)
                next_status = time.monotonic() + self.config.status_every_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.25)

    def _restore(self) -> None:
        """Pick up where the raw parts end (a restart, after a crash or a stop): the last
        trade id and closed kline of each stream, and the last receive time, so the first
        connection recovers the downtime from REST (or logs it) like any reconnect."""
        for stream in self.config.stream_names():
            days = sorted((self.dir / stream).glob("*"))
            parts = sorted(days[-1].glob(f"*{PART_SUFFIX}")) if days else []
            if not parts:
                continue
            last_line = None
            for line in read_part(parts[-1]):
                last_line = line
            if last_line is None:
                continue
            data, kind = last_line["data"], _kind(stream)
            self.stats.stream(stream).last_recv_ns = int(last_line["recv_ns"])
            if kind in ("aggTrade", "trade"):
                self.last_id[stream] = int(next(data[k] for k in ("a", "t", "id") if k in data))
            elif kind.startswith("kline_") and data.get("k", {}).get("x"):
                self.last_kline[stream] = int(data["k"]["t"])
            elif kind == "depth":
                self._depth_sync(stream)  # unsynced: the restart's gap is logged, a snapshot taken
            self._restored = True

    def stop(self) -> None:
        self._stop.set()

    async def run(self, stop: asyncio.Event | None = None, duration: float | None = None) -> None:
        """Collect until ``stop`` is set, ``duration`` seconds pass, or :meth:`stop`."""
        for item in recover_open_parts(self.config.out, self.market):
            log.warning("recovered an open part of a crashed run: %s", item)
        self._restore()
        groups = self.config.groups()
        self._rest = BinanceRest(
            self.rest_url,
            self.market,
            retries=self.config.rest_retries,
            backoff_cap_seconds=self.config.backoff_cap_seconds,
        )
        tasks = [asyncio.create_task(self._connection(g)) for g in groups]
        tasks.append(asyncio.create_task(self._ticker()))

        async def watch() -> None:
            waits: list[asyncio.Task[Any]] = [asyncio.create_task(self._stop.wait())]
            if stop is not None:
                waits.append(asyncio.create_task(stop.wait()))
            if duration is not None:
                waits.append(asyncio.create_task(asyncio.sleep(duration)))
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            self._stop.set()

        try:
            await watch()
        finally:
            self._stop.set()
            for task in [*tasks, *self._snapshot_tasks.values()]:
                task.cancel()
            await asyncio.gather(*tasks, *self._snapshot_tasks.values(), return_exceptions=True)
            await self._rest.close()
            for writer in self.writers.values():
                writer.close_part()
            self.stats.state = "stopped"
            self.stats.write(self.dir)
