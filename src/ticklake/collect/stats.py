"""What a collector measures: per-stream rates, receive latency, gaps, reconnects.

Latency is the exchange's event time (``E``, else ``T``) to our receive time, in ms,
kept as the last ``LATENCY_SAMPLES`` values per stream (bounded memory) for p50/p95/p99.
Both clocks are wall clocks on different machines, so the figure includes their offset
(NTP keeps it to a few ms); a negative value is kept, never clipped.

The collector writes :meth:`CollectorStats.snapshot` to ``binance-<market>/status.json``
(atomically, every few seconds and on exit); ``ticklake collect status`` and the health
file read it.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ticklake.lake.commit import write_text_atomic

LATENCY_SAMPLES = 10_000
RATE_WINDOW_SECONDS = 60
STATUS_FILE = "status.json"


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation, as numpy's default does."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class StreamStats:
    """Counters of one stream."""

    messages: int = 0
    written: int = 0
    duplicates: int = 0
    recovered: int = 0  # lines written from REST to fill a gap
    gaps: int = 0
    gaps_unrecovered: int = 0
    last_recv_ns: int | None = None
    last_event_ms: int | None = None
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    _per_second: deque[tuple[int, int]] = field(default_factory=deque)

    def seen(self, recv_ns: int, event_ms: int | None) -> None:
        self.messages += 1
        self.last_recv_ns = recv_ns
        if event_ms is not None:
            self.last_event_ms = event_ms
            self.latencies_ms.append(recv_ns / 1e6 - event_ms)
        second = recv_ns // 1_000_000_000
        if self._per_second and self._per_second[-1][0] == second:
            self._per_second[-1] = (second, self._per_second[-1][1] + 1)
        else:
            self._per_second.append((second, 1))
        while self._per_second and self._per_second[0][0] <= second - RATE_WINDOW_SECONDS:
            self._per_second.popleft()

    def rate(self, now_ns: int) -> float:
        """Messages per second over the last minute (or since the first message)."""
        if not self._per_second:
            return 0.0
        now = now_ns // 1_000_000_000
        recent = [(s, n) for s, n in self._per_second if s > now - RATE_WINDOW_SECONDS]
        if not recent:
            return 0.0
        span = max(1, min(RATE_WINDOW_SECONDS, now - recent[0][0] + 1))
        return sum(n for _, n in recent) / span

    def snapshot(self, now_ns: int) -> dict[str, Any]:
        lat = list(self.latencies_ms)
        return {
            "messages": self.messages,
            "written": self.written,
            "duplicates_skipped": self.duplicates,
            "recovered_from_rest": self.recovered,
            "gaps": self.gaps,
            "gaps_unrecovered": self.gaps_unrecovered,
            "rate_per_second": round(self.rate(now_ns), 3),
            "last_recv_ns": self.last_recv_ns,
            "latency_ms": {
                name: None if (v := percentile(lat, q)) is None else round(v, 3)
                for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
            },
        }


@dataclass
class CollectorStats:
    """All streams of one collector, plus connection-level counters."""

    market: str
    started_ns: int = field(default_factory=time.time_ns)
    streams: dict[str, StreamStats] = field(default_factory=dict)
    connections: int = 0
    reconnects: int = 0
    stalls: int = 0
    rest_retries: int = 0
    slow_writes: int = 0  # a write or part close that blocked longer than 100 ms
    state: str = "starting"
    last_error: str | None = None

    def stream(self, name: str) -> StreamStats:
        if name not in self.streams:
            self.streams[name] = StreamStats()
        return self.streams[name]

    def snapshot(self, now_ns: int | None = None) -> dict[str, Any]:
        now = time.time_ns() if now_ns is None else now_ns
        return {
            "market": self.market,
            "state": self.state,
            "written_ns": now,
            "started_ns": self.started_ns,
            "pid": os.getpid(),
            "connections": self.connections,
            "reconnects": self.reconnects,
            "stalls": self.stalls,
            "rest_retries": self.rest_retries,
            "slow_writes": self.slow_writes,
            "last_error": self.last_error,
            "streams": {name: s.snapshot(now) for name, s in sorted(self.streams.items())},
        }

    def write(self, directory: Path) -> Path:
        """Write ``status.json`` atomically (temp file, fsync, rename)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / STATUS_FILE
        write_text_atomic(path, json.dumps(self.snapshot(), indent=1))
        return path


def read_status(directory: Path) -> dict[str, Any] | None:
    path = directory / STATUS_FILE
    if not path.is_file():
        return None
    return dict(json.loads(path.read_text()))
