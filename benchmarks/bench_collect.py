"""Collector throughput: messages/s the Binance collector parses, checks and writes.

Three measurements on generated aggTrade messages in Binance's combined-stream shape
(``{"stream": "btcusdt@aggTrade", "data": {...}}``, consecutive ids):

1. **in process**: ``BinanceCollector.handle`` on each message (parse, id check, stats,
   raw line, zstd part), against a peer: the fastest plain loop a good engineer would
   write for the same output (``orjson.loads``, an id check, one zstd stream writer, no
   stats). Both outputs are read back and their ids checked equal to the input before a
   time counts. Prints msg/s, the ratio, the per-message p99 of ``handle`` (the latency
   our process adds) and RSS after each million messages (flat = bounded memory).
2. **from a local websocket server** in another process (one core each), sending as fast
   as it can: the collector's end-to-end rate, ids checked.

Target (issue 14): ≥ 100,000 msg/s for trades on one core; RSS flat over 5 M messages.

    .venv/bin/python benchmarks/bench_collect.py                 # 2 M messages
    .venv/bin/python benchmarks/bench_collect.py --messages 5000000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import socket
import tempfile
import time
from pathlib import Path

import orjson
import zstandard

from ticklake.collect.binance import BinanceCollector, CollectorConfig
from ticklake.collect.rawfile import list_parts, read_part

STREAM = "btcusdt@aggTrade"
FIRST_ID = 3_000_000_000


def message(i: int, ms: int) -> bytes:
    data = {
        "e": "aggTrade", "E": ms + 2, "s": "BTCUSDT", "a": FIRST_ID + i,
        "p": f"{42000 + (i % 500) * 0.01:.2f}", "q": f"{0.001 + (i % 97) * 0.0001:.5f}",
        "f": 9_000_000_000 + i, "l": 9_000_000_000 + i, "T": ms, "m": i % 3 == 0, "M": True,
    }  # fmt: skip
    return orjson.dumps({"stream": STREAM, "data": data})


def messages(n: int) -> list[bytes]:
    ms = int(time.time() * 1000)
    return [message(i, ms + i // 100) for i in range(n)]


def rss_mib() -> float:
    """The process's resident memory now (VmRSS), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ours(batch: list[bytes], out: Path, rounds: int) -> tuple[float, list[float], list[float]]:
    config = CollectorConfig(symbols=["BTCUSDT"], streams=["aggTrade"], out=out, part_seconds=60)
    collector = BinanceCollector(config)
    durations: list[float] = []
    rss: list[float] = []

    async def run() -> float:
        started = time.perf_counter()
        for r in range(rounds):
            for raw in batch:
                t0 = time.perf_counter_ns()
                await collector.handle(raw)
                if r == 0:
                    durations.append(time.perf_counter_ns() - t0)
            if (r + 1) * len(batch) % 1_000_000 == 0:
                rss.append(rss_mib())
            collector.last_id.pop(STREAM, None)  # the next round repeats the ids
        for writer in collector.writers.values():
            writer.close_part()
        return time.perf_counter() - started

    seconds = asyncio.run(run())
    return seconds, sorted(durations), rss


def peer(batch: list[bytes], out: Path) -> float:
    """A plain loop: parse, check the id, write recv time + payload to one zstd stream."""
    started = time.perf_counter()
    last = None
    with (out / "peer.jsonl.zst").open("wb") as fh:
        writer = zstandard.ZstdCompressor(level=3).stream_writer(fh)
        for raw in batch:
            recv = time.time_ns()
            msg = orjson.loads(raw)
            data = msg["data"]
            if last is not None and data["a"] <= last:
                continue
            last = data["a"]
            writer.write(orjson.dumps({"recv_ns": recv, "stream": msg["stream"], "data": data}))
            writer.write(b"\n")
        writer.flush(zstandard.FLUSH_FRAME)
        writer.close()
    return time.perf_counter() - started


def check_ours(out: Path, n: int, rounds: int) -> None:
    ids = [line["data"]["a"] for p in list_parts(out) for line in read_part(p)]
    expected = list(range(FIRST_ID, FIRST_ID + n)) * rounds
    assert ids == expected, "collector output differs from the input"


def check_peer(out: Path, n: int) -> None:
    with (out / "peer.jsonl.zst").open("rb") as fh:
        text = zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True).read()
    ids = [orjson.loads(line)["data"]["a"] for line in text.splitlines()]
    assert ids == list(range(FIRST_ID, FIRST_ID + n)), "peer output differs from the input"


# ------------------------------------------------------------------ websocket server
def _serve(port: int, n: int, ready: multiprocessing.synchronize.Event) -> None:
    import websockets.asyncio.server as ws_server

    batch = messages(n)

    async def handler(connection: ws_server.ServerConnection) -> None:
        for raw in batch:
            await connection.send(raw.decode())
        await connection.close()

    async def main() -> None:
        async with ws_server.serve(handler, "127.0.0.1", port, max_size=None):
            ready.set()
            await asyncio.Future()

    asyncio.run(main())


def _start_server(n: int) -> tuple[int, multiprocessing.Process]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(port, n, ready), daemon=True)
    server.start()
    ready.wait(60)
    return port, server


def plain_receive(n: int) -> float:
    """The peer end to end: a bare ``websockets`` client that only counts and parses."""
    import websockets

    port, server = _start_server(n)

    async def run() -> float:
        async with websockets.connect(f"ws://127.0.0.1:{port}", max_size=None) as ws:
            started = time.perf_counter()
            last = FIRST_ID - 1
            async for raw in ws:
                data = orjson.loads(raw)["data"]
                assert data["a"] == last + 1
                last = data["a"]
                if last == FIRST_ID + n - 1:
                    break
            return time.perf_counter() - started

    seconds = asyncio.run(run())
    server.terminate()
    return seconds


def end_to_end(n: int, out: Path) -> float:
    port, server = _start_server(n)
    config = CollectorConfig(
        symbols=["BTCUSDT"], streams=["aggTrade"], out=out, ws_url=f"ws://127.0.0.1:{port}",
        rest_url=f"http://127.0.0.1:{port}", backoff_base_seconds=30,
    )  # fmt: skip
    collector = BinanceCollector(config)

    async def run() -> float:
        task = asyncio.create_task(collector.run())
        started = time.perf_counter()
        while collector.stats.stream(STREAM).written < n:
            await asyncio.sleep(0.01)
            if time.perf_counter() - started > 600:
                break
        seconds = time.perf_counter() - started
        collector.stop()
        await task
        return seconds

    seconds = asyncio.run(run())
    server.terminate()
    ids = [line["data"]["a"] for p in list_parts(out) for line in read_part(p)]
    assert ids == list(range(FIRST_ID, FIRST_ID + n)), "end-to-end output differs"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2_000_000)
    args = parser.parse_args()
    per_round = min(100_000, args.messages)  # replayed: the ids repeat each round
    rounds = max(1, args.messages // per_round)
    n = per_round * rounds
    batch = messages(per_round)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "ours").mkdir()
        (root / "peer").mkdir()
        seconds, durations, rss = ours(batch, root / "ours", rounds)
        check_ours(root / "ours", per_round, rounds)
        peer_seconds = peer(batch, root / "peer") * rounds  # the peer runs one round
        check_peer(root / "peer", per_round)
        p99 = durations[int(len(durations) * 0.99)] / 1e3
        p50 = durations[len(durations) // 2] / 1e3
        print(f"in process, {n:,} aggTrade messages (outputs checked equal to the input)")
        print(f"  ticklake collector  {n / seconds:>10,.0f} msg/s   handle p50 {p50:.1f} us, "
              f"p99 {p99:.1f} us")  # fmt: skip
        print(f"  plain loop (peer)   {n / peer_seconds:>10,.0f} msg/s   ratio ours/peer "
              f"{peer_seconds / seconds:.2f}x")  # fmt: skip
        print(f"  RSS after each 1 M: {', '.join(f'{r:.0f}' for r in rss)} MiB")
        e2e_n = min(n, 300_000)
        e2e = end_to_end(e2e_n, root / "e2e")
        bare = plain_receive(e2e_n)
        print(f"from a local websocket server (another process), {e2e_n:,} messages, ids "
              f"checked: collector {e2e_n / e2e:,.0f} msg/s, bare websockets client "
              f"{e2e_n / bare:,.0f} msg/s (ratio {bare / e2e:.2f}x)")  # fmt: skip
        target = "met" if n / seconds >= 100_000 else "MISSED"
        print(f"target >= 100,000 msg/s in process: {target}")


if __name__ == "__main__":
    main()
