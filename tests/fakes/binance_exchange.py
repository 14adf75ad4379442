"""A local Binance for the tests: the websocket and REST protocol on 127.0.0.1, with faults.

It follows Binance's public documentation (spot: api.binance.com / stream.binance.com,
USD-M futures: fapi.binance.com / fstream.binance.com) as far as a collector sees it:

- ``/stream?streams=a/b/c``: combined streams, each message ``{"stream": s, "data": d}``;
  streams ``<sym>@trade``, ``@aggTrade``, ``@bookTicker``, ``@depth@100ms`` (``@depth``),
  ``@markPrice@1s`` (USD-M); at most ``max_streams`` per connection (spot 1024, USD-M
  200), more closes the handshake with an error; uvicorn pings every 20 s as Binance does;
  ``max_connection_seconds`` closes a connection like the 24-hour disconnect; a client
  whose queue of unsent messages passes 10,000 is disconnected, as Binance drops slow
  consumers.
- REST ``/api/v3/aggTrades`` (``/fapi/v1/aggTrades``) by ``fromId`` / latest, ``limit``
  ≤ 1000; ``/api/v3/historicalTrades``; ``/api/v3/depth`` (``/fapi/v1/depth``) with
  ``lastUpdateId``; every answer carries ``X-MBX-USED-WEIGHT-1m``; past the weight limit,
  or on command, 429 with ``Retry-After`` (418 when a client keeps going after a 429).
- Depth diffs: ``U`` = previous ``u`` + 1 (spot), and ``pu`` = previous ``u`` (USD-M); a
  snapshot's ``lastUpdateId`` is the last ``u`` applied to the book it returns.

Prices and sizes come from the real Binance BTCUSDT trades, quotes and depth snapshot in
``tests/data/binance`` (copied from ``../shared/data``), cycled, with fresh ids and times.

Faults on command (thread-safe, from the test's thread): :meth:`drop_connections`,
:meth:`stall` (no messages, no close), :meth:`skip_depth` (update ids consumed, events
never sent), :meth:`duplicate` and :meth:`reorder` (the next messages of every client),
:meth:`rate_limit` (the next REST answers are 429 with ``Retry-After``), :meth:`refuse`
(no new connection for a while: the exchange unreachable).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import random
import socket
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import uvicorn
from fastapi import FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response

BINANCE = Path(__file__).resolve().parents[1] / "data" / "binance"  # see its PROVENANCE.md
WEIGHT_LIMIT = {"spot": 6000, "usdm": 2400}
MAX_STREAMS = {"spot": 1024, "usdm": 200}
QUEUE_LIMIT = 10_000
INTERVAL_MS = {"1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000,
               "1h": 3_600_000, "1d": 86_400_000}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fmt(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}"


class _Client:
    def __init__(self, streams: set[str]) -> None:
        self.streams = streams
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.opened = time.monotonic()


class FakeBinance:
    """The fake exchange; :meth:`start` serves it on a free port in a thread."""

    def __init__(
        self,
        market: str = "spot",
        symbols: tuple[str, ...] = ("BTCUSDT",),
        *,
        rate_hz: float = 200.0,
        depth_every: int = 20,
        seed: int = 7,
        max_connection_seconds: float | None = None,
    ) -> None:
        self.market = market
        self.symbols = tuple(s.upper() for s in symbols)
        self.rate_hz = rate_hz
        self.depth_every = depth_every
        self.random = random.Random(seed)
        self.max_connection_seconds = max_connection_seconds
        self.port = _free_port()
        self._lock = threading.Lock()
        trades = pl.read_parquet(BINANCE / "btcusdt-trades.parquet")
        self._prices = trades["price"].to_list()
        self._sizes = trades["quantity"].to_list()
        self._makers = trades["buyer_maker"].to_list()
        self._first_id = int(trades["trade_id"][0])
        quotes = pl.read_parquet(BINANCE / "btcusdt-quotes.parquet")
        self._quotes = quotes.select("bid", "bid_size", "ask", "ask_size").rows()
        # state per symbol (the exchange's whole history: REST serves it)
        self.agg_trades: dict[str, list[dict[str, Any]]] = {s: [] for s in self.symbols}
        self.trades: dict[str, list[dict[str, Any]]] = {s: [] for s in self.symbols}
        self.books: dict[str, dict[str, dict[float, float]]] = {}
        self.last_update_id: dict[str, int] = {}
        self.bookticker_id: dict[str, int] = {}
        self._load_books()
        self.step_count = 0
        self._kline_second = 0
        self.sent: dict[str, int] = defaultdict(int)
        self.connections_opened = 0
        self.rest_calls: dict[str, int] = defaultdict(int)
        # faults
        self._stall_until = 0.0
        self._refuse_until = 0.0
        self._skip_depth = 0
        self._duplicate = 0
        self._reorder = 0
        self._rate_limited = 0
        self._banned = 0
        self.bans_answered = 0
        self._retry_after = 1
        self._weight: dict[int, int] = defaultdict(int)
        self._ignored_429 = 0
        self._clients: set[_Client] = set()
        self._paused = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = self._build_app()

    # --------------------------------------------------------------- market
    def _load_books(self) -> None:
        with (BINANCE / "btcusdt-depth-snap.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        for sym in self.symbols:
            book: dict[str, dict[float, float]] = {"bids": {}, "asks": {}}
            for row in rows:
                side = "bids" if row["side"] == "b" else "asks"
                book[side][float(row["price"])] = float(row["qty"])
            self.books[sym] = book
            self.last_update_id[sym] = int(rows[0]["last_update_id"])
            self.bookticker_id[sym] = 400_900_000

    def _now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def _make_trade(self, sym: str) -> list[tuple[str, dict[str, Any]]]:
        i = self.step_count % len(self._prices)
        ms = self._now_ms()
        history = self.agg_trades[sym]
        trade_id = self._first_id + len(self.trades[sym])
        agg_id = 1_000_000 + len(history)
        price, qty, maker = self._prices[i], self._sizes[i], bool(self._makers[i])
        rest = {
            "a": agg_id, "p": _fmt(price, 2), "q": _fmt(qty, 6), "f": trade_id,
            "l": trade_id, "T": ms, "m": maker, "M": True,
        }  # fmt: skip
        history.append(rest)
        self.trades[sym].append(
            {"id": trade_id, "price": rest["p"], "qty": rest["q"], "quoteQty": _fmt(price * qty, 8),
             "time": ms, "isBuyerMaker": maker, "isBestMatch": True}
        )  # fmt: skip
        low = sym.lower()
        agg = {"e": "aggTrade", "E": ms, "s": sym, **rest}
        trade = {"e": "trade", "E": ms, "s": sym, "t": trade_id, "p": rest["p"], "q": rest["q"],
                 "T": ms, "m": maker, "M": True}  # fmt: skip
        out = [(f"{low}@aggTrade", agg), (f"{low}@trade", trade)]
        bid, bid_size, ask, ask_size = self._quotes[self.step_count % len(self._quotes)]
        self.bookticker_id[sym] += 1
        ticker = {"u": self.bookticker_id[sym], "s": sym, "b": _fmt(bid, 2),
                  "B": _fmt(bid_size, 6), "a": _fmt(ask, 2), "A": _fmt(ask_size, 6)}  # fmt: skip
        if self.market == "usdm":
            ticker = {"e": "bookTicker", "E": ms, "T": ms, **ticker}
        if self.market == "usdm" and self.step_count % max(1, int(self.rate_hz)) == 0:
            out.append((f"{low}@markPrice@1s", {
                "e": "markPriceUpdate", "E": ms, "s": sym, "p": _fmt(price, 2),
                "i": _fmt(price * 0.9999, 2), "P": _fmt(price, 2), "r": "0.00010000",
                "T": (ms // 28_800_000 + 1) * 28_800_000,
            }))  # fmt: skip
        out.append((f"{low}@bookTicker", ticker))
        return out

    def _make_depth(self, sym: str) -> dict[str, Any]:
        book = self.books[sym]
        prev = self.last_update_id[sym]
        first = prev + 1
        last = prev + self.random.randint(1, 4)
        changes: dict[str, list[list[str]]] = {"b": [], "a": []}
        for side, key in (("bids", "b"), ("asks", "a")):
            levels = sorted(book[side], reverse=side == "bids")[:10]
            for price in self.random.sample(levels, k=min(len(levels), self.random.randint(0, 2))):
                qty = (
                    0.0
                    if len(book[side]) > 20 and self.random.random() < 0.3
                    else round(self.random.choice(self._sizes) * 10, 3)
                )
                if qty == 0.0:
                    book[side].pop(price, None)
                else:
                    book[side][price] = qty
                changes[key].append([_fmt(price, 2), _fmt(qty, 3)])
        self.last_update_id[sym] = last
        ms = self._now_ms()
        event: dict[str, Any] = {"e": "depthUpdate", "E": ms, "s": sym, "U": first, "u": last,
                                 "b": changes["b"], "a": changes["a"]}  # fmt: skip
        if self.market == "usdm":
            event.update({"T": ms, "pu": prev})
        return event

    def step(self) -> list[tuple[str, dict[str, Any]]]:
        """One tick of the market: trades, quotes, and every ``depth_every`` ticks a diff."""
        with self._lock:
            out = []
            for sym in self.symbols:
                out += self._make_trade(sym)
                if self.step_count % self.depth_every == 0:
                    event = self._make_depth(sym)
                    if self._skip_depth:
                        self._skip_depth -= 1
                        continue
                    out.append((f"{sym.lower()}@depth@100ms", event))
                    out.append((f"{sym.lower()}@depth", event))
            second = self._now_ms() // 1000 * 1000
            if self._kline_second and second > self._kline_second:
                for sym in self.symbols:  # the last second's 1 s kline closed
                    row = self.kline(self._kline_second, 1000)
                    out.append((f"{sym.lower()}@kline_1s", {
                        "e": "kline", "E": second, "s": sym,
                        "k": {"t": row[0], "T": row[6], "s": sym, "i": "1s", "o": row[1],
                              "c": row[4], "h": row[2], "l": row[3], "v": row[5], "n": row[8],
                              "x": True, "q": row[7], "V": row[9], "Q": row[10]},
                    }))  # fmt: skip
            self._kline_second = second
            self.step_count += 1
            return out

    def kline(self, open_ms: int, step_ms: int) -> list[Any]:
        """The exchange's kline opening at ``open_ms``: a deterministic function of the
        time (prices from the real trades sample), so any history can be asked for."""
        i = open_ms // step_ms
        n = len(self._prices)
        prices = [self._prices[(i * 7 + k) % n] for k in range(8)]
        volume = round(sum(self._sizes[(i * 3 + k) % n] for k in range(8)), 6)
        taker_buy = round(volume * 0.375, 6)
        quote = round(sum(p * self._sizes[(i * 3 + k) % n] for k, p in enumerate(prices)), 8)
        return [
            open_ms, _fmt(prices[0], 2), _fmt(max(prices), 2), _fmt(min(prices), 2),
            _fmt(prices[-1], 2), _fmt(volume, 6), open_ms + step_ms - 1, _fmt(quote, 8),
            8 + i % 5, _fmt(taker_buy, 6), _fmt(quote * 0.375, 8), "0",
        ]  # fmt: skip

    def funding(self, symbol: str, t: int) -> dict[str, Any]:
        """The funding rate settled at ``t`` (every 8 hours), deterministic."""
        i = t // 28_800_000
        return {"symbol": symbol, "fundingTime": t, "fundingRate": f"{(i % 7 - 3) * 1e-4:.8f}",
                "markPrice": _fmt(self._prices[i % len(self._prices)], 8)}  # fmt: skip

    def open_interest(self, symbol: str, t: int, step: int) -> dict[str, Any]:
        """Open interest at ``t`` for a period of ``step`` ms, deterministic."""
        oi = 80_000 + (t // step % 1000) * 1.5
        price = self._prices[(t // step) % len(self._prices)]
        return {"symbol": symbol, "sumOpenInterest": _fmt(oi, 8),
                "sumOpenInterestValue": _fmt(oi * price, 8), "timestamp": t}  # fmt: skip

    def snapshot(self, sym: str, limit: int = 1000) -> dict[str, Any]:
        with self._lock:
            book = self.books[sym]
            bids = sorted(book["bids"].items(), reverse=True)[:limit]
            asks = sorted(book["asks"].items())[:limit]
            answer: dict[str, Any] = {
                "lastUpdateId": self.last_update_id[sym],
                "bids": [[_fmt(p, 2), _fmt(q, 3)] for p, q in bids],
                "asks": [[_fmt(p, 2), _fmt(q, 3)] for p, q in asks],
            }
            if self.market == "usdm":
                ms = self._now_ms()
                answer.update({"E": ms, "T": ms})
            return answer

    # --------------------------------------------------------------- faults
    def drop_connections(self) -> int:
        """Close every websocket abruptly; returns how many were open."""
        clients = list(self._clients)
        for client in clients:
            self._call(client.queue.put_nowait, None)
        return len(clients)

    def refuse(self, seconds: float) -> None:
        """Refuse new websocket connections for ``seconds`` (the exchange is unreachable)."""
        self._refuse_until = time.monotonic() + seconds

    def stall(self, seconds: float) -> None:
        self._stall_until = time.monotonic() + seconds

    def skip_depth(self, events: int = 1) -> None:
        with self._lock:
            self._skip_depth += events

    def duplicate(self, messages: int = 1) -> None:
        self._duplicate += messages

    def reorder(self, pairs: int = 1) -> None:
        self._reorder += pairs

    def rate_limit(self, answers: int = 1, retry_after: int = 1) -> None:
        self._rate_limited += answers
        self._retry_after = retry_after

    def ban(self, answers: int = 1, retry_after: int = 2) -> None:
        """Answer 418 (an IP ban, Binance's answer to a client that ignored 429s) with
        ``Retry-After`` = the ban's length, ``answers`` times."""
        self._banned += answers
        self._retry_after = retry_after

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def _call(self, fn: Any, *args: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(fn, *args)

    # ------------------------------------------------------------------ app
    def _weigh(self, request: Request, weight: int) -> Response | None:
        minute = int(time.time() // 60)
        self.rest_calls[request.url.path] += 1
        if self._banned > 0:
            self._banned -= 1
            self.bans_answered += 1
            return JSONResponse(
                {"code": -1003, "msg": "Way too many requests; IP banned until later."},
                status_code=418,
                headers={"Retry-After": str(self._retry_after)},
            )
        if self._rate_limited > 0:
            self._rate_limited -= 1
            self._ignored_429 += 1
            status = 418 if self._ignored_429 > 5 else 429
            return JSONResponse(
                {"code": -1003, "msg": "Too many requests; current limit is exceeded."},
                status_code=status,
                headers={"Retry-After": str(self._retry_after)},
            )
        self._ignored_429 = 0
        self._weight[minute] += weight
        if self._weight[minute] > WEIGHT_LIMIT[self.market]:
            return JSONResponse(
                {"code": -1003, "msg": "Too much request weight used."},
                status_code=429,
                headers={"Retry-After": str(60 - int(time.time()) % 60)},
            )
        return None

    def _headers(self) -> dict[str, str]:
        return {"X-MBX-USED-WEIGHT-1m": str(self._weight[int(time.time() // 60)])}

    def _symbol(self, symbol: str) -> str | None:
        return symbol.upper() if symbol.upper() in self.symbols else None

    def _build_app(self) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            self._loop = asyncio.get_running_loop()
            producer = asyncio.create_task(self._produce())
            yield
            producer.cancel()

        app = FastAPI(lifespan=lifespan)
        prefix = "/api/v3" if self.market == "spot" else "/fapi/v1"
        bad_symbol = JSONResponse({"code": -1121, "msg": "Invalid symbol."}, status_code=400)

        @app.get(f"{prefix}/aggTrades")
        def agg_trades(
            request: Request,
            symbol: str,
            fromId: int | None = None,
            startTime: int | None = None,
            endTime: int | None = None,
            limit: int = Query(500),
        ) -> Response:
            refused = self._weigh(request, 2 if self.market == "spot" else 20)
            if refused is not None:
                return refused
            sym = self._symbol(symbol)
            if sym is None:
                return bad_symbol
            limit = max(1, min(limit, 1000))
            with self._lock:
                history = self.agg_trades[sym]
                if startTime is not None and endTime is not None and fromId is None:
                    if endTime - startTime > 3_600_000:
                        return JSONResponse(
                            {"code": -1127, "msg": "More than 1 hours between startTime and "
                             "endTime."}, status_code=400)  # fmt: skip
                    rows = [r for r in history if startTime <= r["T"] <= endTime][:limit]
                elif fromId is None:
                    rows = history[-limit:]
                else:
                    start = max(0, fromId - 1_000_000)
                    rows = history[start : start + limit]
            return Response(orjson.dumps(rows), media_type="application/json",
                            headers=self._headers())  # fmt: skip

        @app.get(f"{prefix}/historicalTrades")
        def historical(
            request: Request, symbol: str, fromId: int | None = None, limit: int = Query(500)
        ) -> Response:
            refused = self._weigh(request, 25 if self.market == "spot" else 20)
            if refused is not None:
                return refused
            sym = self._symbol(symbol)
            if sym is None:
                return bad_symbol
            limit = max(1, min(limit, 1000))
            with self._lock:
                history = self.trades[sym]
                start = len(history) - limit if fromId is None else fromId - self._first_id
                rows = history[max(0, start) : max(0, start) + limit]
            return Response(orjson.dumps(rows), media_type="application/json",
                            headers=self._headers())  # fmt: skip

        @app.get(f"{prefix}/klines")
        def klines(
            request: Request,
            symbol: str,
            interval: str,
            startTime: int | None = None,
            endTime: int | None = None,
            limit: int = Query(500),
        ) -> Response:
            refused = self._weigh(request, 2)
            if refused is not None:
                return refused
            sym = self._symbol(symbol)
            if sym is None:
                return bad_symbol
            if interval not in INTERVAL_MS:
                return JSONResponse({"code": -1120, "msg": "Invalid interval."}, status_code=400)
            step = INTERVAL_MS[interval]
            limit = max(1, min(limit, 1000 if self.market == "spot" else 1500))
            now = self._now_ms()
            end = min(endTime if endTime is not None else now, now)
            first = (startTime if startTime is not None else end - step * limit) + step - 1
            first = first // step * step
            rows = [self.kline(t, step) for t in range(first, end + 1, step)][:limit]
            rows = [r for r in rows if r[6] < now]  # closed klines only
            return Response(orjson.dumps(rows), media_type="application/json",
                            headers=self._headers())  # fmt: skip

        @app.get("/fapi/v1/fundingRate")
        def funding_rate(
            request: Request, symbol: str, startTime: int | None = None,
            endTime: int | None = None, limit: int = Query(100),
        ) -> Response:  # fmt: skip
            refused = self._weigh(request, 1)
            if refused is not None:
                return refused
            if self._symbol(symbol) is None:
                return bad_symbol
            step, now = 28_800_000, self._now_ms()
            end = min(endTime if endTime is not None else now, now)
            limit = max(1, min(limit, 1000))
            first = (startTime if startTime is not None else end - step * limit) + step - 1
            times = range(first // step * step, end + 1, step)
            rows = [self.funding(symbol.upper(), t) for t in times][:limit]
            return Response(orjson.dumps(rows), media_type="application/json",
                            headers=self._headers())  # fmt: skip

        @app.get("/futures/data/openInterestHist")
        def open_interest(
            request: Request, symbol: str, period: str, startTime: int | None = None,
            endTime: int | None = None, limit: int = Query(30),
        ) -> Response:  # fmt: skip
            refused = self._weigh(request, 1)
            if refused is not None:
                return refused
            if self._symbol(symbol) is None:
                return bad_symbol
            if period not in INTERVAL_MS or period == "1s":
                return JSONResponse({"code": -1120, "msg": "Invalid period."}, status_code=400)
            step, now = INTERVAL_MS[period], self._now_ms()
            oldest = now - 30 * 86_400_000  # Binance keeps the last 30 days only
            end = min(endTime if endTime is not None else now, now)
            limit = max(1, min(limit, 500))
            begin = max(startTime if startTime is not None else end - step * limit, oldest)
            times = range((begin + step - 1) // step * step, end + 1, step)
            rows = [self.open_interest(symbol.upper(), t, step) for t in times][:limit]
            return Response(orjson.dumps(rows), media_type="application/json",
                            headers=self._headers())  # fmt: skip

        @app.get(f"{prefix}/depth")
        def depth(request: Request, symbol: str, limit: int = Query(100)) -> Response:
            refused = self._weigh(request, 50 if limit > 1000 else 10)
            if refused is not None:
                return refused
            sym = self._symbol(symbol)
            if sym is None:
                return bad_symbol
            return Response(orjson.dumps(self.snapshot(sym, min(limit, 5000))),
                            media_type="application/json", headers=self._headers())  # fmt: skip

        @app.websocket("/stream")
        async def stream(websocket: WebSocket, streams: str = "") -> None:
            names = {s for s in streams.split("/") if s}
            if time.monotonic() < self._refuse_until:
                await websocket.close(code=1013, reason="try again later")
                return
            if len(names) > MAX_STREAMS[self.market]:
                await websocket.close(code=1008, reason="too many streams")
                return
            await websocket.accept()
            client = _Client(names)
            self._clients.add(client)
            self.connections_opened += 1
            try:
                await self._serve(websocket, client)
            except (WebSocketDisconnect, RuntimeError, OSError):
                pass
            finally:
                self._clients.discard(client)

        return app

    async def _serve(self, websocket: WebSocket, client: _Client) -> None:
        held: bytes | None = None
        while True:
            message = await client.queue.get()
            if message is None:
                await websocket.close(code=1001, reason="dropped by the test")
                return
            if (
                self.max_connection_seconds is not None
                and time.monotonic() - client.opened > self.max_connection_seconds
            ):
                await websocket.close(code=1001, reason="24h connection limit")
                return
            while time.monotonic() < self._stall_until:
                await asyncio.sleep(0.01)  # silent: no message, no close
            if self._reorder and held is None:
                self._reorder -= 1
                held = message
                continue
            await websocket.send_text(message.decode())
            if held is not None:
                await websocket.send_text(held.decode())
                held = None
            if self._duplicate:
                self._duplicate -= 1
                await websocket.send_text(message.decode())

    async def _produce(self) -> None:
        period = 1.0 / self.rate_hz
        next_at = time.monotonic()
        while True:
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._paused.is_set():
                next_at = time.monotonic()
                continue
            for stream, data in self.step():
                encoded = orjson.dumps({"stream": stream, "data": data})
                for client in list(self._clients):
                    if stream in client.streams:
                        if client.queue.qsize() >= QUEUE_LIMIT:
                            client.queue.put_nowait(None)  # slow consumer: disconnected
                            self._clients.discard(client)
                            continue
                        client.queue.put_nowait(encoded)
                        self.sent[stream] += 1

    # ------------------------------------------------------------- lifecycle
    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeBinance:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", ws="websockets-sansio",
            ws_ping_interval=20.0, ws_ping_timeout=20.0, lifespan="on",
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="fake-binance")
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake exchange did not start in 20 s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self.drop_connections()
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
