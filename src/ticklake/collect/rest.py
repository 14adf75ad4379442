"""Binance REST with the documented limits, shared by the collector and the backfill.

Every answer's ``X-MBX-USED-WEIGHT-1m`` is read; past 90 % of the minute's limit the
client waits for the next minute. 429 (too many requests) and 418 (banned for ignoring
429s) wait ``Retry-After`` seconds; 5xx and transport errors back off exponentially
(capped); after ``retries`` retries :class:`CollectError`. Any other 4xx (an unknown
symbol, a bad parameter) is a :class:`CollectError` at once: retrying cannot help.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import orjson

from ticklake.errors import TicklakeError

log = logging.getLogger("ticklake.collect")

REST_PREFIX = {"spot": "/api/v3", "usdm": "/fapi/v1"}
WEIGHT_LIMIT = {"spot": 6000, "usdm": 2400}


class CollectError(TicklakeError, RuntimeError):
    """The collector or backfill cannot go on (a refused REST call, retries exhausted)."""

    exit_code = 13


class BinanceRest:
    """An ``httpx.AsyncClient`` speaking Binance's REST limits (see the module text)."""

    def __init__(
        self,
        base_url: str,
        market: str,
        *,
        retries: int = 8,
        backoff_cap_seconds: float = 30.0,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.market = market
        self.retries = retries
        self.backoff_cap = backoff_cap_seconds
        self.client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)
        self.weight_used = 0
        self.retried = 0  # retries so far (429/418/5xx/transport)
        self.waited_seconds = 0.0  # time spent waiting for Retry-After and weight

    async def close(self) -> None:
        await self.client.aclose()

    async def get(self, path: str, params: dict[str, Any]) -> Any:
        # /futures/data/... (open interest history) sits outside the versioned prefix
        url = path if path.startswith("/futures/") else REST_PREFIX[self.market] + path
        error = ""
        for attempt in range(self.retries + 1):
            try:
                response = await self.client.get(url, params=params)
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__}: {exc}"
                delay = min(self.backoff_cap, 0.5 * 2**attempt)
            else:
                used = response.headers.get("X-MBX-USED-WEIGHT-1m")
                if used is not None and used.isdigit():
                    self.weight_used = int(used)
                if response.status_code == 200:
                    if self.weight_used > 0.9 * WEIGHT_LIMIT[self.market]:
                        pause = 60 - time.time() % 60  # let the minute's weight roll over
                        self.waited_seconds += pause
                        await asyncio.sleep(pause)
                    return orjson.loads(response.content)
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code in (429, 418):
                    retry = response.headers.get("Retry-After", "")
                    delay = float(retry) if retry.replace(".", "", 1).isdigit() else 2**attempt
                elif response.status_code >= 500:
                    delay = min(self.backoff_cap, 0.5 * 2**attempt)
                else:
                    raise CollectError(
                        f"{self.base_url}{url} refused {params}: {error}; check the symbol "
                        "and --rest-url",
                        status=response.status_code,
                    )
            self.retried += 1
            self.waited_seconds += delay
            log.info("REST %s %s: %s; retry in %.1f s", url, params, error, delay)
            await asyncio.sleep(delay)
        raise CollectError(
            f"{self.base_url}{url} failed {self.retries + 1} times: {error}", params=params
        )


def kline_payload(symbol: str, interval: str, row: list[Any]) -> dict[str, Any]:
    """A REST kline array in the websocket's ``kline`` shape (a closed bar)."""
    return {
        "e": "kline", "E": int(row[6]) + 1, "s": symbol,
        "k": {"t": int(row[0]), "T": int(row[6]), "s": symbol, "i": interval,
              "o": row[1], "h": row[2], "l": row[3], "c": row[4], "v": row[5],
              "n": int(row[8]), "x": True, "q": row[7], "V": row[9], "Q": row[10]},
    }  # fmt: skip


def run_sync(coroutine: Any) -> Any:
    """Run a coroutine to completion from synchronous code and return its result.

    ``asyncio.run`` when this thread runs no event loop (a script, the CLI); in a fresh
    thread when it does (a Jupyter notebook, a test session driving a browser), where
    ``asyncio.run`` would raise "cannot be called from a running event loop".
    """
    import threading

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(coroutine)
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="ticklake-async")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")
