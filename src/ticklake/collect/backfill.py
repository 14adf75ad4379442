"""``ticklake backfill binance``: history from REST into raw parts, then into the lake.

What it fetches (Binance's documented endpoints, ``/api/v3`` spot, ``/fapi/v1`` USD-M):

- ``klines``: ``/klines?symbol&interval&startTime&endTime&limit=1000``, pages of 1,000
  bars from ``start`` to ``end``; only closed bars (close time in the past) are kept.
- ``aggTrades``: ``/aggTrades?symbol&startTime&endTime`` for the first page (Binance
  allows at most one hour between the two), then ``fromId`` = last id + 1, 1,000 a page,
  until a trade time passes ``end``.
- ``fundingRate`` (USD-M): ``/fapi/v1/fundingRate``, 1,000 settled rates a page;
  ``openInterest`` (USD-M): ``/futures/data/openInterestHist?period=`` (``--interval``,
  5m..1d), 500 a page; Binance keeps only the last 30 days of it. Both page by time.

Each page is written as raw lines (``source: "rest"``) in the collector's layout: klines
in the websocket's kline shape (``{"e": "kline", "k": {...}, "x": true}``) under
``<sym>@kline_<interval>``, aggTrades under ``<sym>@aggTrade``. So the same router
(``ingest binance_raw``) commits them, with the same dedupe by key against what the lake
already holds (a backfill overlapping the live collector adds nothing twice).

Resumable: after every page the position (next open time / next id) is saved in
``binance-<market>/backfill/<SYMBOL>-<kind>[-<interval>].json`` (atomically); a re-run
of the same range continues from there, a finished range fetches nothing. The REST limits
(weight header, 429/418 ``Retry-After``, bounded retries) are
:class:`~ticklake.collect.rest.BinanceRest`'s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from ticklake.collect.binance import DEFAULT_REST, KLINE_MS
from ticklake.collect.rawfile import RawPartWriter, encode_line, venue_dir
from ticklake.collect.rest import BinanceRest, kline_payload
from ticklake.errors import ConfigError
from ticklake.lake.commit import write_text_atomic

PAGE = 1000
OI_PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
#: kind -> (path, time field, page size, stream suffix)
TIMED = {
    "fundingRate": ("/fundingRate", "fundingTime", 1000, "@fundingRate"),
    "openInterest": ("/futures/data/openInterestHist", "timestamp", 500, "@openInterest"),
}
HOUR_MS = 3_600_000


def _ms(value: date | datetime, *, end: bool = False) -> int:
    """A bound in epoch ms (UTC); a date ``end`` means the whole day."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
        if end:
            value += timedelta(days=1)
            return int(value.timestamp() * 1000) - 1
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


class BackfillSpec(BaseModel):
    """What to fetch: one kind over one range for some symbols."""

    model_config = ConfigDict(extra="forbid")

    market: Literal["spot", "usdm"] = "spot"
    symbols: list[str]
    kind: Literal["klines", "aggTrades", "fundingRate", "openInterest"]
    interval: str = "1m"
    start: date | datetime
    end: date | datetime
    out: Path
    rest_url: str | None = None
    rest_retries: int = 8

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        out = [s.strip().upper() for s in value if s.strip()]
        if not out:
            raise ValueError("give at least one symbol, e.g. BTCUSDT")
        return out

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        if value not in KLINE_MS:
            raise ValueError(f"unknown interval {value!r}; known: {', '.join(KLINE_MS)}")
        return value

    def model_post_init(self, __context: Any) -> None:
        if self.kind in ("fundingRate", "openInterest") and self.market != "usdm":
            raise ConfigError(f"{self.kind} exists for USD-M futures only: use --market usdm")
        if self.kind == "openInterest" and self.interval not in OI_PERIODS:
            raise ConfigError(
                f"openInterest periods are {', '.join(OI_PERIODS)}, not {self.interval!r}"
            )

    def bounds(self) -> tuple[int, int]:
        first, last = _ms(self.start), _ms(self.end, end=True)
        if last < first:
            raise ConfigError(f"--end {self.end} is before --start {self.start}")
        return first, last


@dataclass
class BackfillSummary:
    """Lines fetched per stream, pages, and what the REST client waited."""

    lines: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    resumed_from: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    waited_seconds: float = 0.0
    seconds: float = 0.0


def _state_path(spec: BackfillSpec, symbol: str) -> Path:
    suffix = f"-{spec.interval}" if spec.kind == "klines" else ""
    return venue_dir(spec.out, spec.market) / "backfill" / f"{symbol}-{spec.kind}{suffix}.json"


def _load_state(path: Path, first: int, last: int) -> int | None:
    """The saved position of the same range, or None (a new range starts over)."""
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if state.get("start") == first and state.get("end") == last:
        return int(state["next"])
    return None


def _save_state(path: Path, first: int, last: int, position: int, done: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"start": first, "end": last, "next": position, "done": done}
    write_text_atomic(path, json.dumps(state))


def _resume(
    spec: BackfillSpec, symbol: str, summary: BackfillSummary
) -> tuple[Path, int, int, int | None]:
    """(state file, first, last, the saved position of this range or None); a resumed
    position is noted in ``summary.resumed_from``."""
    first, last = spec.bounds()
    state = _state_path(spec, symbol)
    position = _load_state(state, first, last)
    if position is not None:
        summary.resumed_from[symbol] = position
    return state, first, last, position


async def _klines(
    rest: BinanceRest, spec: BackfillSpec, symbol: str, summary: BackfillSummary
) -> None:
    state, first, last, start = _resume(spec, symbol, summary)
    start = first if start is None else start
    stream = f"{symbol.lower()}@kline_{spec.interval}"
    writer = RawPartWriter(spec.out, spec.market, stream)
    step = KLINE_MS[spec.interval]
    try:
        while start <= last:
            params = {
                "symbol": symbol,
                "interval": spec.interval,
                "startTime": start,
                "endTime": last,
                "limit": PAGE,
            }
            rows = await rest.get("/klines", params)
            summary.pages += 1
            now = time.time_ns()
            for row in rows:
                writer.write(
                    encode_line(
                        now, stream, symbol, "rest", kline_payload(symbol, spec.interval, row)
                    )
                )
            summary.lines[stream] = summary.lines.get(stream, 0) + len(rows)
            if not rows:
                break
            start = int(rows[-1][0]) + step
            writer.close_part()  # the page is on disk before the position moves past it
            _save_state(state, first, last, start, start > last)
        _save_state(state, first, last, start, True)
    finally:
        writer.close_part()


async def _agg_trades(
    rest: BinanceRest, spec: BackfillSpec, symbol: str, summary: BackfillSummary
) -> None:
    state, first, last, next_id = _resume(spec, symbol, summary)
    stream = f"{symbol.lower()}@aggTrade"
    writer = RawPartWriter(spec.out, spec.market, stream)
    try:
        window = first
        while next_id is None and window <= last:  # find the first id in range
            params = {
                "symbol": symbol,
                "startTime": window,
                "endTime": min(last, window + HOUR_MS - 1),
                "limit": PAGE,
            }
            rows = await rest.get("/aggTrades", params)
            summary.pages += 1
            if rows:
                next_id = int(rows[0]["a"])
            window += HOUR_MS
        while next_id is not None:
            params = {"symbol": symbol, "fromId": next_id, "limit": PAGE}
            rows = await rest.get("/aggTrades", params)
            summary.pages += 1
            now = time.time_ns()
            kept = [r for r in rows if int(r["T"]) <= last]
            for row in kept:
                writer.write(encode_line(now, stream, symbol, "rest", row))
            summary.lines[stream] = summary.lines.get(stream, 0) + len(kept)
            writer.close_part()
            finished = len(kept) < len(rows) or not rows
            if kept:
                next_id = int(kept[-1]["a"]) + 1
            _save_state(state, first, last, next_id, finished)
            if finished or len(rows) < PAGE:
                break
    finally:
        writer.close_part()


async def _timed(
    rest: BinanceRest, spec: BackfillSpec, symbol: str, summary: BackfillSummary
) -> None:
    """Endpoints paged by time (``startTime`` = the last row's time + 1 ms)."""
    path, key, page, suffix = TIMED[spec.kind]
    state, first, last, start = _resume(spec, symbol, summary)
    start = first if start is None else start
    stream = f"{symbol.lower()}{suffix}"
    writer = RawPartWriter(spec.out, spec.market, stream)
    try:
        while start <= last:
            params: dict[str, Any] = {
                "symbol": symbol,
                "startTime": start,
                "endTime": last,
                "limit": page,
            }
            if spec.kind == "openInterest":
                params["period"] = spec.interval
            rows = await rest.get(path, params)
            summary.pages += 1
            rows = [r for r in rows if start <= int(r[key]) <= last]
            now = time.time_ns()
            for row in rows:
                writer.write(encode_line(now, stream, symbol, "rest", row))
            summary.lines[stream] = summary.lines.get(stream, 0) + len(rows)
            writer.close_part()
            if not rows:
                break
            start = int(rows[-1][key]) + 1
            _save_state(state, first, last, start, len(rows) < page)
            if len(rows) < page:
                break
        _save_state(state, first, last, start, True)
    finally:
        writer.close_part()


async def run_backfill(
    spec: BackfillSpec, progress: Callable[[str, int], None] | None = None
) -> BackfillSummary:
    """Fetch ``spec`` into raw parts under ``spec.out``; returns what was fetched."""
    started = time.perf_counter()
    summary = BackfillSummary()
    rest = BinanceRest(
        spec.rest_url or DEFAULT_REST[spec.market], spec.market, retries=spec.rest_retries
    )
    try:
        for symbol in spec.symbols:
            if spec.kind == "klines":
                await _klines(rest, spec, symbol, summary)
            elif spec.kind == "aggTrades":
                await _agg_trades(rest, spec, symbol, summary)
            else:
                await _timed(rest, spec, symbol, summary)
            if progress is not None:
                progress(symbol, sum(summary.lines.values()))
    finally:
        summary.retries = rest.retried
        summary.waited_seconds = rest.waited_seconds
        await rest.close()
    summary.seconds = time.perf_counter() - started
    return summary
