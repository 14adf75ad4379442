"""``ticklake fetch binance-vision``: Binance's public archives, checksum-verified.

data.binance.vision publishes one zip per symbol, kind and day, and one per month, each
with a ``.CHECKSUM`` file beside it (``<sha256>  <name>.zip``)::

    data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-01-01.zip
    data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-01-01.zip
    data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip
    data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip
    data/futures/um/daily/bookTicker/BTCUSDT/BTCUSDT-bookTicker-2024-01-01.zip

``period``: ``daily`` fetches one zip a day; ``monthly`` one a month touching the range
(a monthly zip holds the whole month, so days outside the range come too); ``auto`` (the
default) takes the monthly zip for each calendar month wholly inside the range and the
daily zips for the rest, and falls back to a month's daily zips when its monthly one is
not published (yet): a month's zip appears some days after it ends.

Each zip is downloaded to ``<name>.zip.part``, its sha256 compared with the published
checksum, and only then renamed to its final name under ``OUT`` (the same relative
path). A mismatch deletes the download and fails the day with a one-line error naming the
file and both hashes; a day not published (404) is reported, not an error. A zip already
on disk whose sha256 matches its checksum is not fetched again (resumable). Downloads run
``parallel`` at a time. Ingest (``--lake``) reads only verified zips, with the Binance
readers (``binance_trades``, ``binance_klines``, ``binance_book_ticker``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import httpx

from ticklake.collect.rest import CollectError

DEFAULT_BASE = "https://data.binance.vision"
MARKET_PATH = {"spot": "data/spot", "usdm": "data/futures/um"}
KINDS = ("trades", "aggTrades", "klines", "bookTicker")
READER = {
    "trades": "binance_trades",
    "aggTrades": "binance_trades",
    "klines": "binance_klines",
    "bookTicker": "binance_book_ticker",
}


Period = Literal["daily", "monthly", "auto"]


def archive_path(
    market: str,
    kind: str,
    symbol: str,
    day: date,
    interval: str = "1m",
    period: Literal["daily", "monthly"] = "daily",
) -> str:
    """The archive's path under the base URL (and under ``OUT``); ``monthly``: ``day``'s month."""
    if kind == "bookTicker" and market != "usdm":
        raise CollectError("bookTicker archives exist for USD-M futures only: use --market usdm")
    base = f"{MARKET_PATH[market]}/{period}/{kind}/{symbol}"
    stamp = day.isoformat() if period == "daily" else f"{day:%Y-%m}"
    if kind == "klines":
        return f"{base}/{interval}/{symbol}-{interval}-{stamp}.zip"
    return f"{base}/{symbol}-{kind}-{stamp}.zip"


def _months(start: date, end: date) -> list[tuple[date, date]]:
    """(first, last) day of each calendar month touching ``[start, end]``."""
    out = []
    first = start.replace(day=1)
    while first <= end:
        following = (first + timedelta(days=32)).replace(day=1)
        out.append((first, following - timedelta(days=1)))
        first = following
    return out


def plan_archives(start: date, end: date, period: Period) -> list[tuple[str, date]]:
    """``(period, day)`` of each archive to fetch: see the module docstring."""
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    if period == "daily":
        return [("daily", d) for d in days]
    if period == "monthly":
        return [("monthly", first) for first, _ in _months(start, end)]
    out: list[tuple[str, date]] = []
    for first, last in _months(start, end):
        if start <= first and last <= end:
            out.append(("monthly", first))
        else:
            out += [("daily", d) for d in days if first <= d <= last]
    return out


@dataclass
class VisionSummary:
    """Per archive path: "fetched", "present" (verified on disk), "missing" (404)."""

    status: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    monthly_fallbacks: list[str] = field(default_factory=list)  # fetched day by day instead
    bytes_fetched: int = 0

    def verified(self, out: Path) -> list[Path]:
        return [out / p for p, s in sorted(self.status.items()) if s in ("fetched", "present")]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _published_sha(text: str, name: str) -> str:
    fields = text.split()
    if len(fields) < 1 or len(fields[0]) != 64:
        raise CollectError(f"{name}.CHECKSUM: not '<sha256>  <file>' ({text[:80]!r})")
    return fields[0].lower()


async def _fetch_one(
    client: httpx.AsyncClient, base: str, relative: str, out: Path, summary: VisionSummary
) -> None:
    url = f"{base}/{relative}"
    target = out / relative
    checksum = await client.get(url + ".CHECKSUM")
    if checksum.status_code == 404:
        summary.status[relative] = "missing"
        return
    if checksum.status_code != 200:
        summary.failed[relative] = f"{url}.CHECKSUM: HTTP {checksum.status_code}"
        return
    try:
        expected = _published_sha(checksum.text, target.name)
    except CollectError as exc:
        summary.failed[relative] = str(exc)
        return
    if target.is_file() and _sha256(target) == expected:
        summary.status[relative] = "present"
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    async with client.stream("GET", url) as response:
        if response.status_code != 200:
            summary.failed[relative] = f"{url}: HTTP {response.status_code}"
            return
        digest = hashlib.sha256()
        with part.open("wb") as fh:
            async for chunk in response.aiter_bytes(1 << 20):
                digest.update(chunk)
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
    got = digest.hexdigest()
    if got != expected:
        part.unlink()
        summary.failed[relative] = (
            f"{relative}: sha256 {got[:16]}… is not the published {expected[:16]}… (a corrupt "
            "or tampered download); nothing of it was kept or ingested; fetch again, or check "
            "--base-url"
        )
        return
    os.replace(part, target)
    summary.status[relative] = "fetched"
    summary.bytes_fetched += target.stat().st_size


async def fetch_vision(
    *,
    symbols: list[str],
    kind: Literal["trades", "aggTrades", "klines", "bookTicker"],
    start: date,
    end: date,
    out: Path,
    market: str = "spot",
    interval: str = "1m",
    base_url: str | None = None,
    parallel: int = 4,
    period: Period = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> VisionSummary:
    """Download and verify the archives of ``symbols`` over ``[start, end]``."""
    if end < start:
        raise CollectError(f"--end {end} is before --start {start}")
    base = (base_url or DEFAULT_BASE).rstrip("/")
    plan = plan_archives(start, end, period)
    wanted = [
        archive_path(market, kind, s.upper(), d, interval, p)  # type: ignore[arg-type]
        for s in symbols
        for p, d in plan
    ]
    summary = VisionSummary()
    gate = asyncio.Semaphore(max(1, parallel))
    done = [0]
    async with httpx.AsyncClient(timeout=60.0, follow_redirects=True) as client:

        async def one(relative: str) -> None:
            async with gate:
                try:
                    await _fetch_one(client, base, relative, out, summary)
                except httpx.HTTPError as exc:
                    summary.failed[relative] = f"{base}/{relative}: {type(exc).__name__}: {exc}"
            done[0] += 1
            if progress is not None:
                progress(done[0], len(wanted))

        await asyncio.gather(*(one(r) for r in wanted))
        if period == "auto":  # a month not published yet: its days one by one
            fallback = []
            for symbol in symbols:
                for p, first in plan:
                    monthly = archive_path(market, kind, symbol.upper(), first, interval, "monthly")
                    if p != "monthly" or summary.status.get(monthly) != "missing":
                        continue
                    del summary.status[monthly]
                    summary.monthly_fallbacks.append(monthly)
                    last = _months(first, first)[0][1]
                    fallback += [
                        archive_path(
                            market, kind, symbol.upper(), first + timedelta(days=i), interval
                        )
                        for i in range((last - first).days + 1)
                    ]
            wanted += fallback
            await asyncio.gather(*(one(r) for r in fallback))
    return summary
