"""The Binance collector against a local Binance on 127.0.0.1 that injects faults (issue 14).

The oracle is the exchange's own history (what the fake server generated and serves over
REST), never the collector's output: every aggTrade / trade id the server made while the
collector ran must be in the raw parts exactly once, whatever the faults; the book the
collector keeps must equal the server's book; every unrecoverable gap must be logged.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ticklake.collect.binance import BinanceCollector, CollectorConfig
from ticklake.collect.rawfile import GapLog, list_parts, read_part
from ticklake.collect.rest import run_sync

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fakes"))
from binance_exchange import FakeBinance

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def exchange() -> Iterator[FakeBinance]:
    with FakeBinance(rate_hz=200) as fake:
        yield fake


def config(fake: FakeBinance, out: Path, **extra: Any) -> CollectorConfig:
    values: dict[str, Any] = {
        "market": fake.market,
        "symbols": ["BTCUSDT"],
        "streams": ["aggTrade", "trade", "bookTicker", "depth"],
        "out": out,
        "ws_url": fake.ws_url,
        "rest_url": fake.rest_url,
        "part_seconds": 1.0,
        "backoff_base_seconds": 0.01,
        "backoff_cap_seconds": 0.05,
    }
    values.update(extra)
    return CollectorConfig(**values)


def run(collector: BinanceCollector, scenario: Any) -> None:
    """Run the collector while ``scenario(collector)`` (a coroutine) plays out."""

    async def main() -> None:
        task = asyncio.create_task(collector.run())
        try:
            await scenario(collector)
        finally:
            collector.stop()
            await task

    run_sync(main())


async def caught_up(fake: FakeBinance, collector: BinanceCollector, timeout: float = 60) -> None:
    """Pause the market and wait until the collector holds the server's last ids.

    A trade made while a new connection is being registered on the server reaches the
    collector neither live nor in the reconnect's REST recovery; the next trade reveals
    the gap and REST fills it (and a restart recovers from the last id on disk). So when
    the collector is still behind after 3 s, let the market make more trades, as a real
    one would, and wait again.
    """
    deadline = time.monotonic() + timeout
    while True:
        fake.pause()
        want = {
            "btcusdt@aggTrade": fake.agg_trades["BTCUSDT"][-1]["a"],
            "btcusdt@trade": fake.trades["BTCUSDT"][-1]["id"],
        }
        settle = min(deadline, time.monotonic() + 3)
        while time.monotonic() < settle:
            if all(
                collector.last_id.get(s) == v for s, v in want.items() if s in collector.writers
            ):
                return
            await asyncio.sleep(0.05)
        if time.monotonic() >= deadline:
            raise AssertionError(f"collector stuck at {collector.last_id}, server at {want}")
        fake.resume()
        await asyncio.sleep(0.2)


async def until(condition: Any, timeout: float = 60) -> None:
    """Wait until ``condition()`` holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s")
        await asyncio.sleep(0.02)


def raw_ids(out: Path, stream: str) -> list[int]:
    """Trade ids in the raw parts of ``stream``: websocket aggTrade/REST lines carry
    ``a``, websocket trades ``t``, REST historicalTrades ``id``."""
    return [
        int(next(line["data"][k] for k in ("a", "t", "id") if k in line["data"]))
        for part in list_parts(out)
        if part.name.startswith(stream + ".")
        for line in read_part(part)
    ]


def server_ids(fake: FakeBinance, stream: str, first: int) -> list[int]:
    rows = fake.agg_trades["BTCUSDT"] if stream.endswith("aggTrade") else fake.trades["BTCUSDT"]
    key = "a" if stream.endswith("aggTrade") else "id"
    ids = [int(r[key]) for r in rows]
    return ids[ids.index(first) :]


def test_100_forced_disconnects_lose_and_duplicate_no_trade(
    exchange: FakeBinance, tmp_path: Path
) -> None:
    # depth resyncs: a test below; trades (historicalTrades weighs 25, so 100 catch-ups
    # would reach the minute's weight limit and the collector would rightly wait for the
    # next minute): 10 disconnects in the next test
    streams = ["aggTrade", "bookTicker"]
    collector = BinanceCollector(config(exchange, tmp_path, streams=streams))

    async def scenario(c: BinanceCollector) -> None:
        drops = 0
        while drops < 100:
            await asyncio.sleep(0.01)
            if c.stats.connections > drops:  # drop each connection once it is up
                drops += exchange.drop_connections() and 1
        # Wait for the connection after the last drop (a loaded machine may still be
        # reconnecting when the data has already caught up).
        while c.stats.connections <= drops:
            await asyncio.sleep(0.01)
        await caught_up(exchange, c)

    run(collector, scenario)
    assert collector.stats.reconnects >= 100
    for stream in ("btcusdt@aggTrade",):
        got = raw_ids(tmp_path, stream)
        expected = server_ids(exchange, stream, got[0])
        assert len(got) == len(set(got)), f"{stream}: duplicates written"
        assert sorted(got) == expected, f"{stream}: {len(set(expected) - set(got))} ids lost"
    stats = collector.stats.stream("btcusdt@aggTrade")
    assert stats.recovered > 0  # the reconnects really cost messages that REST gave back
    gaps = GapLog(tmp_path, "spot").read()
    bookticker = [g for g in gaps if g["stream"] == "btcusdt@bookTicker"]
    assert len(bookticker) >= 99 and not any(g["recovered"] for g in bookticker)
    assert all(g["from_ns"] <= g["to_ns"] for g in bookticker)
    assert not [g for g in gaps if g["stream"].endswith("aggTrade") and not g["recovered"]]


def test_trades_across_10_disconnects_come_back_from_historical_trades(
    exchange: FakeBinance, tmp_path: Path
) -> None:
    collector = BinanceCollector(config(exchange, tmp_path, streams=["trade"]))

    async def scenario(c: BinanceCollector) -> None:
        drops = 0
        while drops < 10:
            await asyncio.sleep(0.1)
            if c.stats.connections > drops:
                drops += exchange.drop_connections() and 1
        await caught_up(exchange, c)

    run(collector, scenario)
    got = raw_ids(tmp_path, "btcusdt@trade")
    assert len(got) == len(set(got))
    assert sorted(got) == server_ids(exchange, "btcusdt@trade", got[0])
    assert collector.stats.stream("btcusdt@trade").recovered > 0
    assert exchange.rest_calls["/api/v3/historicalTrades"] >= 10


def test_duplicated_and_reordered_messages_are_written_once(
    exchange: FakeBinance, tmp_path: Path
) -> None:
    collector = BinanceCollector(config(exchange, tmp_path, streams=["aggTrade"]))

    async def scenario(c: BinanceCollector) -> None:
        await asyncio.sleep(0.5)
        for _ in range(20):
            exchange.duplicate(3)
            exchange.reorder(2)
            await asyncio.sleep(0.05)
        await caught_up(exchange, c)

    run(collector, scenario)
    got = raw_ids(tmp_path, "btcusdt@aggTrade")
    assert len(got) == len(set(got))
    assert sorted(got) == server_ids(exchange, "btcusdt@aggTrade", got[0])
    assert collector.stats.stream("btcusdt@aggTrade").duplicates >= 20


def test_skipped_depth_updates_are_a_logged_gap_and_the_book_resyncs(
    exchange: FakeBinance, tmp_path: Path
) -> None:
    collector = BinanceCollector(config(exchange, tmp_path, streams=["depth"]))
    stream = "btcusdt@depth@100ms"

    async def scenario(c: BinanceCollector) -> None:
        await asyncio.sleep(1.0)
        for _ in range(5):
            before = exchange.last_update_id["BTCUSDT"]
            exchange.skip_depth(2)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                sync = c.depth.get(stream)
                if sync and sync.synced and sync.last_u and sync.last_u > before + 20:
                    break
                await asyncio.sleep(0.05)
        exchange.pause()
        await asyncio.sleep(0.5)

    run(collector, scenario)
    sync = collector.depth[stream]
    assert sync.synced
    server = exchange.snapshot("BTCUSDT", 5000)
    assert sync.last_u == server["lastUpdateId"]
    assert sync.top(5000) == {
        "bids": [(float(p), float(q)) for p, q in server["bids"]],
        "asks": [(float(p), float(q)) for p, q in server["asks"]],
    }
    breaks = [g for g in GapLog(tmp_path, "spot").read() if "sequence break" in g["reason"]]
    assert len(breaks) == 5
    assert all(g["to_id"] - g["from_id"] >= 1 for g in breaks)  # 2 events, >= 2 update ids
    lines = [line for part in list_parts(tmp_path) for line in read_part(part)]
    assert sum(line["source"] == "snapshot" for line in lines) >= 6  # start + 5 resyncs


def test_rate_limited_rest_waits_retry_after_and_still_recovers(
    exchange: FakeBinance, tmp_path: Path
) -> None:
    collector = BinanceCollector(config(exchange, tmp_path, streams=["aggTrade"]))
    waited: list[float] = []

    async def scenario(c: BinanceCollector) -> None:
        await asyncio.sleep(0.5)
        exchange.rate_limit(answers=2, retry_after=1)
        started = time.monotonic()
        exchange.drop_connections()
        while c.stats.rest_retries < 2:
            await asyncio.sleep(0.02)
        await caught_up(exchange, c)
        waited.append(time.monotonic() - started)

    run(collector, scenario)
    assert collector.stats.rest_retries == 2
    assert waited[0] >= 2.0  # two answers of Retry-After: 1 each
    got = raw_ids(tmp_path, "btcusdt@aggTrade")
    assert sorted(got) == server_ids(exchange, "btcusdt@aggTrade", got[0])


def test_a_silent_stall_is_noticed_and_the_connection_reopened(
    exchange: FakeBinance, tmp_path: Path
) -> None:
    collector = BinanceCollector(
        config(exchange, tmp_path, streams=["aggTrade"], stall_seconds=0.5)
    )

    async def scenario(c: BinanceCollector) -> None:
        await asyncio.sleep(0.5)
        exchange.stall(1.5)
        await until(lambda: c.stats.stalls >= 1 and c.stats.reconnects >= 1)
        await caught_up(exchange, c)

    run(collector, scenario)
    assert collector.stats.stalls >= 1 and collector.stats.reconnects >= 1
    got = raw_ids(tmp_path, "btcusdt@aggTrade")
    assert sorted(got) == server_ids(exchange, "btcusdt@aggTrade", got[0])


def test_klines_missed_while_disconnected_come_from_rest(
    exchange: FakeBinance, tmp_path: Path
) -> None:
    """1 s klines across 5 reconnects: every closed second between the first and the last
    is in the raw parts once, with the server's own values."""
    collector = BinanceCollector(config(exchange, tmp_path, streams=["kline_1s"]))

    async def scenario(c: BinanceCollector) -> None:
        await asyncio.sleep(1.5)
        for _ in range(5):
            exchange.refuse(1.5)  # unreachable for 1.5 s: one or two klines close unseen
            exchange.drop_connections()
            await asyncio.sleep(2.5)
        await asyncio.sleep(1.2)

    run(collector, scenario)
    lines = [line for part in list_parts(tmp_path) for line in read_part(part)]
    opens = [int(line["data"]["k"]["t"]) for line in lines if line["data"]["k"]["x"]]
    assert len(opens) == len(set(opens)), "a closed kline written twice"
    assert opens == list(range(min(opens), max(opens) + 1000, 1000)), "a second missing"
    assert any(line["source"] == "rest" for line in lines)
    for line in lines[::7]:
        k = line["data"]["k"]
        expected = exchange.kline(int(k["t"]), 1000)
        assert (k["o"], k["h"], k["l"], k["c"], k["v"]) == tuple(expected[1:6])


def test_the_24_hour_disconnect_is_one_more_reconnect(tmp_path: Path) -> None:
    """The server closes every connection after its limit (Binance: 24 h; here 0.5 s)."""
    with FakeBinance(rate_hz=200, max_connection_seconds=0.5) as fake:
        collector = BinanceCollector(config(fake, tmp_path, streams=["aggTrade"]))

        async def scenario(c: BinanceCollector) -> None:
            # wait for the reconnects themselves, not a fixed time: a starved CI machine
            # can take longer than 0.5 s a connection to reconnect
            await until(lambda: c.stats.reconnects >= 3)
            await caught_up(fake, c)

        run(collector, scenario)
        got = raw_ids(tmp_path, "btcusdt@aggTrade")
        assert collector.stats.reconnects >= 3
        assert sorted(got) == server_ids(fake, "btcusdt@aggTrade", got[0])


def test_streams_past_the_per_connection_limit_open_more_connections(tmp_path: Path) -> None:
    symbols = [f"S{i:03d}USDT" for i in range(60)]
    usdm = CollectorConfig(market="usdm", symbols=symbols, out=tmp_path,
                           streams=["aggTrade", "bookTicker", "depth", "markPrice"])  # fmt: skip
    groups = usdm.groups()
    assert [len(g) for g in groups] == [200, 40]  # USD-M: 200 streams a connection
    assert sorted(s for g in groups for s in g) == sorted(usdm.stream_names())
    spot = CollectorConfig(market="spot", symbols=symbols, out=tmp_path, streams=["aggTrade"])
    assert [len(g) for g in spot.groups()] == [60]
    with pytest.raises(ValueError, match="kline_<interval>"):
        CollectorConfig(symbols=["X"], out=tmp_path, streams=["kline_7m"])


def test_kill_9_and_restart_lose_no_trade_and_leave_no_torn_part(
    exchange: FakeBinance, tmp_path: Path
) -> None:
    """``ticklake collect binance`` as a real process, SIGKILLed twice at different points
    and restarted: every closed part is readable, and across the crashes every aggTrade id
    is in the raw parts exactly once (a restart picks up after the last id on disk and
    fetches the downtime from REST); the bookTicker downtime is in the gap log."""
    import os
    import signal
    import subprocess

    exe = str(Path(sys.executable).parent / "ticklake")
    args = [exe, "collect", "binance", "--symbols", "BTCUSDT", "--streams",
            "aggTrade,bookTicker", "--out", str(tmp_path), "--ws-url", exchange.ws_url,
            "--rest-url", exchange.rest_url, "--part-seconds", "0.5"]  # fmt: skip

    def closed_parts(stream: str) -> int:
        return sum(1 for p in list_parts(tmp_path) if p.name.startswith(stream + "."))

    for extra in (0.3, 1.1):  # two different points in a part's life
        before = {s: closed_parts(s) for s in ("btcusdt@aggTrade", "btcusdt@bookTicker")}
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60  # the CLI's start-up is slow on a loaded machine
        while any(closed_parts(s) <= n for s, n in before.items()):
            assert time.monotonic() < deadline, "the collector closed no part in 60 s"
            time.sleep(0.1)
        time.sleep(extra)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for part in list_parts(tmp_path):
            list(read_part(part))  # a torn final part would raise here
        time.sleep(0.5)  # trades go on while the collector is down
    before = closed_parts("btcusdt@aggTrade")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while closed_parts("btcusdt@aggTrade") <= before:  # connected and writing again
        assert time.monotonic() < deadline, "the restarted collector closed no part in 60 s"
        time.sleep(0.1)
    exchange.pause()
    last = exchange.agg_trades["BTCUSDT"][-1]["a"]
    while max(raw_ids(tmp_path, "btcusdt@aggTrade")) < last:  # its last part is closed
        assert time.monotonic() < deadline + 30, "the collector did not catch up"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert not list(tmp_path.rglob("*.open"))
    got = raw_ids(tmp_path, "btcusdt@aggTrade")
    assert len(got) == len(set(got)), "an id written twice across the restarts"
    assert sorted(got) == server_ids(exchange, "btcusdt@aggTrade", got[0]), "an id lost"
    downtime = [g for g in GapLog(tmp_path, "spot").read() if g["stream"] == "btcusdt@bookTicker"]
    assert len(downtime) == 2 and not any(g["recovered"] for g in downtime)
