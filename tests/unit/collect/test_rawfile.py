"""Raw parts: interval roll-over, crash safety, the gap log (issue 14).

Oracles: the lines handed to the writer, decompressed with plain ``zstandard`` and
``json`` (not ticklake's reader) where the format itself is checked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import zstandard

from ticklake.collect.rawfile import (
    GapLog,
    RawPartWriter,
    encode_line,
    list_parts,
    read_part,
    recover_open_parts,
)

T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
STREAM = "btcusdt@aggTrade"


def plain_lines(path: Path) -> list[dict]:
    with path.open("rb") as fh:
        text = zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True).read()
    return [json.loads(line) for line in text.decode().splitlines()]


def test_parts_roll_at_the_interval_and_hold_every_line(tmp_path: Path) -> None:
    clock = [T0]
    writer = RawPartWriter(tmp_path, "spot", STREAM, interval_seconds=60, clock=lambda: clock[0])
    sent = []
    for i in range(150):  # one line a second: 2.5 minutes
        data = {"a": i, "p": "42000.10"}
        writer.write(encode_line(clock[0], STREAM, "BTCUSDT", "ws", data))
        sent.append(data)
        clock[0] += 1_000_000_000
    writer.close_part()
    parts = list_parts(tmp_path)
    assert [p.name for p in parts] == [
        f"{STREAM}.20240101T000000.000000.jsonl.zst",
        f"{STREAM}.20240101T000100.000000.jsonl.zst",
        f"{STREAM}.20240101T000200.000000.jsonl.zst",
    ]
    assert parts[0].parent == tmp_path / "binance-spot" / STREAM / "2024-01-01"
    lines = [line for p in parts for line in plain_lines(p)]
    assert [line["data"] for line in lines] == sent
    assert [len(plain_lines(p)) for p in parts] == [60, 60, 30]  # 60 s exactly rolls
    assert lines[0] == {
        "recv_ns": T0, "stream": STREAM, "symbol": "BTCUSDT", "source": "ws", "data": sent[0]
    }  # fmt: skip
    assert [line["data"] for p in parts for line in read_part(p)] == sent
    assert not list(tmp_path.rglob("*.open"))


_CRASH = """
import sys, time
from pathlib import Path
from ticklake.collect.rawfile import RawPartWriter, encode_line
w = RawPartWriter(Path(sys.argv[1]), "spot", "btcusdt@aggTrade", interval_seconds=0.2,
                  flush_lines=50, flush_seconds=0.05)
i = 0
while True:
    w.write(encode_line(time.time_ns(), "btcusdt@aggTrade", "BTCUSDT", "ws", {"a": i}))
    i += 1
    time.sleep(0.0002)
    if i % 1000 == 0:
        print(i, flush=True)
"""


def test_kill_9_at_random_points_never_leaves_a_torn_part(tmp_path: Path) -> None:
    """SIGKILL a writer mid-stream five times: every final part is whole, and the
    ``.open`` leftovers become parts holding whole lines only, ids in order."""
    for round_ in range(5):
        out = tmp_path / f"run{round_}"
        proc = subprocess.Popen(
            [sys.executable, "-c", _CRASH, str(out)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        for _ in range(1 + round_ * 2):
            proc.stdout.readline()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        finals = list_parts(out)
        assert finals, "parts closed before the kill"
        for part in finals:
            plain_lines(part)  # a torn final part would raise here
        open_parts = list(out.rglob("*.open"))
        assert len(open_parts) <= 1
        recovered = recover_open_parts(out, "spot")
        assert len(recovered) == len(open_parts)
        assert not list(out.rglob("*.open"))
        ids = [line["data"]["a"] for p in list_parts(out) for line in plain_lines(p)]
        assert ids == list(range(len(ids))), "whole lines, in order, none twice"
        assert len(ids) >= 1000 * (1 + round_ * 2) - 50 * 2  # at most the unflushed tail lost


def test_gap_log_lines_are_json_with_every_field(tmp_path: Path) -> None:
    log = GapLog(tmp_path, "usdm")
    log.record(stream="btcusdt@bookTicker", symbol="BTCUSDT", reason="no history",
               recovered=False, from_ns=1, to_ns=2, now_ns=3)  # fmt: skip
    log.record(stream="btcusdt@aggTrade", symbol="BTCUSDT", reason="REST", recovered=True,
               from_id=10, to_id=12, now_ns=4)  # fmt: skip
    text = (tmp_path / "binance-usdm" / "gaps.jsonl").read_text().splitlines()
    first = json.loads(text[0])
    assert first == {
        "recorded_ns": 3, "stream": "btcusdt@bookTicker", "symbol": "BTCUSDT", "from_ns": 1,
        "to_ns": 2, "from_id": None, "to_id": None, "reason": "no history", "recovered": False,
    }  # fmt: skip
    assert json.loads(text[1])["from_id"] == 10 and log.read()[1]["to_id"] == 12
