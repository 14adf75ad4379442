"""``ingest binance_raw``: raw parts routed into the lake, checked against Binance's own
sample files read with pandas (issue 14).

The parts are built from the real samples (BTCUSDT trades, top-of-book quotes, a USD-M
depth snapshot and its diff updates) in the exact payload shapes Binance documents.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
import zstandard
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app
from ticklake.collect.rawfile import RawPartWriter, encode_line
from ticklake.collect.route import SEQ_LEVELS, SEQ_STRIDE
from ticklake.lake.layout import QUARANTINE_DIR

BINANCE = Path(__file__).resolve().parents[2] / "data" / "binance"
RECV = 1_610_064_000_000_000_000  # 2021-01-08T00:00:00Z, our receive time base
runner = CliRunner()


def write_part(root: Path, stream: str, lines: list[tuple[str, Any]], market: str = "spot") -> None:
    writer = RawPartWriter(root, market, stream, clock=lambda: RECV)
    for i, (source, data) in enumerate(lines):
        writer.write(encode_line(RECV + i, stream, "BTCUSDT", source, data), now_ns=RECV)
    writer.close_part()


def sample_trades() -> pd.DataFrame:
    frame = pq.read_table(BINANCE / "btcusdt-trades.parquet").to_pandas()
    frame["ms"] = frame["timestamp"].astype("datetime64[ns, UTC]").astype("int64") // 1_000_000
    # the file stores buyer_maker as the strings "True" / "False"
    assert set(frame["buyer_maker"]) == {"True", "False"}
    frame["buyer_maker"] = frame["buyer_maker"] == "True"
    return frame


def agg_payload(row: Any) -> dict[str, Any]:
    return {
        "e": "aggTrade", "E": int(row.ms) + 3, "s": "BTCUSDT", "a": int(row.trade_id),
        "p": f"{row.price:.2f}", "q": f"{row.quantity:.6f}", "f": int(row.trade_id),
        "l": int(row.trade_id), "T": int(row.ms), "m": bool(row.buyer_maker), "M": True,
    }  # fmt: skip


def test_trades_are_routed_exactly_once_with_their_values(tmp_path: Path) -> None:
    trades = sample_trades()
    rows = list(trades.itertuples())
    ws = [("ws", agg_payload(r)) for r in rows[:1500]]
    # a reconnect recovered ids 1200..2000 from REST (its element has no e/E/s)
    rest = [("rest", {k: v for k, v in agg_payload(r).items() if k not in ("e", "E", "s")})
            for r in rows[1200:]]  # fmt: skip
    raw = tmp_path / "raw"
    write_part(raw, "btcusdt@aggTrade", ws + rest)
    lake = ticklake.init_lake(tmp_path / "lake")
    summary = lake.ingest_raw(raw)
    assert summary.lines == 1500 + len(rows) - 1200 and summary.lines_quarantined == 0
    got = lake.read("binance_agg_trades").to_pandas().sort_values("ts", kind="stable")
    assert got["trade_id"].tolist() == [str(t) for t in trades["trade_id"]]  # once each
    assert got["price"].tolist() == [float(f"{p:.2f}") for p in trades["price"]]
    assert got["size"].tolist() == [float(f"{q:.6f}") for q in trades["quantity"]]
    assert got["side"].tolist() == ["sell" if m else "buy" for m in trades["buyer_maker"]]
    assert (got["ts"].astype("int64") // 1_000_000).tolist() == trades["ms"].tolist()
    again = lake.ingest_raw(raw)
    assert (again.parts_read, again.parts_skipped) == (0, 1)
    forced = lake.ingest_raw(raw, force=True)
    assert forced.rows_added("binance_agg_trades") == 0  # keys dedupe


def test_quotes_keep_bid_and_ask_and_the_update_id(tmp_path: Path) -> None:
    quotes = pq.read_table(BINANCE / "btcusdt-quotes.parquet").to_pandas()
    lines = [
        ("ws", {"u": 9000 + i, "s": "BTCUSDT", "b": f"{r.bid:.2f}", "B": f"{r.bid_size:.6f}",
                "a": f"{r.ask:.2f}", "A": f"{r.ask_size:.6f}"})
        for i, r in enumerate(quotes.itertuples())
    ]  # fmt: skip
    write_part(tmp_path / "raw", "btcusdt@bookTicker", lines)
    lake = ticklake.init_lake(tmp_path / "lake")
    lake.ingest_raw(tmp_path / "raw")
    got = lake.read("binance_quotes").to_pandas().sort_values("seq")
    assert got["seq"].tolist() == list(range(9000, 9000 + len(quotes)))
    assert got["bid_price"].tolist() == [float(f"{b:.2f}") for b in quotes["bid"]]
    assert got["ask_size"].tolist() == [float(f"{a:.6f}") for a in quotes["ask_size"]]
    # spot bookTicker has no exchange time: ts is our receive time
    assert got["ts"].astype("int64").tolist() == [RECV + i for i in range(len(quotes))]


def depth_lines() -> tuple[list[tuple[str, Any]], dict[str, dict[float, float]]]:
    """A snapshot line and diff lines from the USD-M samples, and the book they make
    (worked out here with dicts, the oracle)."""
    with (BINANCE / "btcusdt-depth-snap.csv").open() as fh:
        snap_rows = list(csv.DictReader(fh))
    with (BINANCE / "btcusdt-depth-update.csv").open() as fh:
        update_rows = list(csv.DictReader(fh))
    last_id = int(snap_rows[0]["last_update_id"])
    snapshot = {
        "lastUpdateId": last_id, "E": int(snap_rows[0]["timestamp"]),
        "T": int(snap_rows[0]["timestamp"]),
        "bids": [[r["price"], r["qty"]] for r in snap_rows if r["side"] == "b"],
        "asks": [[r["price"], r["qty"]] for r in snap_rows if r["side"] == "a"],
    }  # fmt: skip
    book: dict[str, dict[float, float]] = {"bid": {}, "ask": {}}
    for side, key in (("bid", "bids"), ("ask", "asks")):
        book[side] = {float(p): float(q) for p, q in snapshot[key]}
    events: dict[tuple[int, int], dict[str, Any]] = {}
    for r in update_rows:
        ids = (int(r["first_update_id"]), int(r["last_update_id"]))
        ms = int(r["timestamp"])
        new = {"e": "depthUpdate", "E": ms, "T": ms, "s": "BTCUSDT", "U": ids[0], "u": ids[1],
               "pu": int(r["pu"]), "b": [], "a": []}  # fmt: skip
        event = events.setdefault(ids, new)
        event["b" if r["side"] == "b" else "a"].append([r["price"], r["qty"]])
    for event in events.values():
        for side, key in (("bid", "b"), ("ask", "a")):
            for price, qty in event[key]:
                if float(qty) == 0:
                    book[side].pop(float(price), None)
                else:
                    book[side][float(price)] = float(qty)
    lines = [("snapshot", snapshot)] + [("ws", e) for e in events.values()]
    return lines, book


def replay(frame: pd.DataFrame) -> dict[str, dict[float, float]]:
    book: dict[str, dict[float, float]] = {"bid": {}, "ask": {}}
    snapshot_of = None
    for row in frame.sort_values("seq").itertuples():
        if row.is_snapshot and row.seq // SEQ_STRIDE != snapshot_of:
            snapshot_of = row.seq // SEQ_STRIDE
            book = {"bid": {}, "ask": {}}
        if row.size == 0:
            book[row.side].pop(row.price, None)
        else:
            book[row.side][row.price] = row.size
    return book


def test_depth_rows_replay_to_the_book_of_the_vendor_files(tmp_path: Path) -> None:
    lines, expected = depth_lines()
    write_part(tmp_path / "raw", "btcusdt@depth@100ms", lines, market="usdm")
    lake = ticklake.init_lake(tmp_path / "lake")
    summary = lake.ingest_raw(tmp_path / "raw")
    frame = lake.read("binance_book_updates").to_pandas()
    assert len(frame) == 200 == summary.rows_added("binance_book_updates")  # 100 + 100 levels
    assert frame["is_snapshot"].sum() == 100
    assert replay(frame) == expected


def test_one_mixed_file_is_routed_by_stream_and_bad_lines_quarantined(tmp_path: Path) -> None:
    trades = list(sample_trades().itertuples())[:5]
    part = tmp_path / "mixed.jsonl.zst"
    lines = [encode_line(RECV, "btcusdt@aggTrade", "BTCUSDT", "ws", agg_payload(r)) for r in trades]
    ticker = {"u": 1, "s": "BTCUSDT", "b": "1", "B": "2", "a": "3", "A": "4"}
    lines.append(encode_line(RECV, "btcusdt@bookTicker", "BTCUSDT", "ws", ticker))
    lines.append(encode_line(RECV, "btcusdt@forceOrder", "BTCUSDT", "ws", {"o": {}}))  # unknown
    lines.append(
        b'{"recv_ns": 1, "stream": "btcusdt@aggTrade", "symbol": "BTCUSDT", "data": {"a": 7}}\n'
    )
    lines.append(b"{not json\n")
    part.write_bytes(zstandard.ZstdCompressor().compress(b"".join(lines)))
    lake = ticklake.init_lake(tmp_path / "lake")
    summary = lake.ingest_raw(part)
    assert lake.read("binance_agg_trades").height == 5
    assert lake.read("binance_quotes").height == 1
    assert summary.lines == 9 and summary.lines_quarantined == 3
    quarantined = pd.concat(
        pd.read_parquet(p) for p in (lake.root / QUARANTINE_DIR).rglob("*.parquet")
    )
    reasons = sorted(quarantined["reason"])
    assert len(reasons) == 3 and all(r.startswith("mixed.jsonl.zst line ") for r in reasons)
    assert any("line 7" in r and "forceOrder" in r for r in reasons)
    assert any("line 8" in r and "'p'" in r and "missing" in r for r in reasons)
    assert any("line 9" in r for r in reasons)


def test_cli_routes_and_exits_11_when_nothing_routes(tmp_path: Path) -> None:
    trades = list(sample_trades().itertuples())[:50]
    write_part(tmp_path / "raw", "btcusdt@aggTrade", [("ws", agg_payload(r)) for r in trades])
    lake = ticklake.init_lake(tmp_path / "lake")
    args = ["ingest", "binance_raw", str(tmp_path / "raw"), "--lake", str(lake.root)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "bronze.binance_agg_trades" in first.output and "1 part(s) routed" in first.output
    row = next(r for r in first.output.splitlines() if "bronze.binance_agg_trades" in r)
    assert row.replace("│", " ").split() == ["bronze.binance_agg_trades", "1", "50", "50", "0"]
    second = runner.invoke(app, args)
    assert "0 part(s) routed, 1 already routed" in second.output
    bad = tmp_path / "bad"
    write_part(bad, "btcusdt@aggTrade", [("ws", {"a": 1})])
    refused = runner.invoke(app, ["ingest", "binance_raw", str(bad), "--lake", str(lake.root)])
    assert refused.exit_code == 11
    listed = runner.invoke(app, ["ingest", "--list-formats"])
    assert "binance_raw" in listed.output


@pytest.mark.parametrize("missing", ["nowhere", "empty"])
def test_a_raw_dir_without_parts_is_a_clear_error(tmp_path: Path, missing: str) -> None:
    lake = ticklake.init_lake(tmp_path / "lake")
    target = tmp_path / missing
    if missing == "empty":
        target.mkdir()
    result = runner.invoke(app, ["ingest", "binance_raw", str(target), "--lake", str(lake.root)])
    assert result.exit_code == 9
    assert str(target) in result.output and "Traceback" not in result.output


def test_trade_stream_and_an_overlapping_rest_part_count_each_id_once(tmp_path: Path) -> None:
    trades = sample_trades()
    rows = list(trades.itertuples())
    ws = [("ws", {"e": "trade", "E": int(r.ms) + 1, "s": "BTCUSDT", "t": int(r.trade_id),
                  "p": f"{r.price:.2f}", "q": f"{r.quantity:.6f}", "T": int(r.ms),
                  "m": bool(r.buyer_maker), "M": True}) for r in rows[:1500]]  # fmt: skip
    # a second part: REST /api/v3/historicalTrades re-delivers ids 1200.. the ws also sent
    rest = [("rest", {"id": int(r.trade_id), "price": f"{r.price:.2f}", "qty": f"{r.quantity:.6f}",
                      "quoteQty": "0", "time": int(r.ms), "isBuyerMaker": bool(r.buyer_maker),
                      "isBestMatch": True}) for r in rows[1200:]]  # fmt: skip
    raw = tmp_path / "raw"
    write_part(raw, "btcusdt@trade", ws)
    write_part(raw, "btcusdt@trade", rest)
    assert len(list(raw.rglob("*.jsonl.zst"))) == 2
    lake = ticklake.init_lake(tmp_path / "lake")
    summary = lake.ingest_raw(raw)
    assert summary.parts == {"binance_trades": 2}
    assert summary.rows_added("binance_trades") == len(trades)
    got = lake.read("binance_trades").to_pandas().sort_values("ts", kind="stable")
    assert got["trade_id"].tolist() == [str(t) for t in trades["trade_id"]]
    assert got["side"].tolist() == ["sell" if m else "buy" for m in trades["buyer_maker"]]
    assert got["price"].tolist() == [float(f"{p:.2f}") for p in trades["price"]]
    assert set(got["venue"]) == {"binance"}


def test_mark_price_lines_become_funding_rows(tmp_path: Path) -> None:
    line = {"e": "markPriceUpdate", "E": 1667346600000, "s": "BTCUSDT",
            "p": "20377.10000000", "i": "20380.55217391", "P": "20390.1", "r": "0.00010000",
            "T": 1667347200000}  # fmt: skip
    second = {**line, "E": 1667346601000, "p": "20377.20", "r": "-0.00002500"}
    write_part(tmp_path / "raw", "btcusdt@markPrice@1s", [("ws", line), ("ws", second)], "usdm")
    lake = ticklake.init_lake(tmp_path / "lake")
    lake.ingest_raw(tmp_path / "raw")
    got = lake.read("binance_funding").to_pandas().sort_values("ts")
    assert got["ts"].astype("int64").tolist() == [1667346600000 * 10**6, 1667346601000 * 10**6]
    assert got["mark_price"].tolist() == [20377.1, 20377.2]
    assert got["index_price"].tolist() == [20380.55217391] * 2
    assert got["funding_rate"].tolist() == [0.0001, -0.000025]
    assert got["next_funding_ts"].astype("int64").tolist() == [1667347200000 * 10**6] * 2
    assert got["recv_ts"].astype("int64").tolist() == [RECV, RECV + 1]


def test_closed_klines_become_bars_and_open_ones_are_not(tmp_path: Path) -> None:
    trades = sample_trades()
    trades["minute"] = trades["ms"] // 1_000 * 1_000  # spot's 1-second klines
    trades["p"] = trades["price"].map(lambda v: f"{v:.2f}")
    trades["q"] = trades["quantity"].map(lambda v: f"{v:.6f}")
    lines = []
    oracle = []
    for minute, g in trades.groupby("minute"):
        v = sum(float(q) for q in g["q"])
        qv = sum(float(p) * float(q) for p, q in zip(g["p"], g["q"], strict=True))
        buy = sum(float(q) for q, m in zip(g["q"], g["buyer_maker"], strict=True) if not m)
        k = {"t": int(minute), "T": int(minute) + 999, "s": "BTCUSDT", "i": "1s",
             "f": int(g["trade_id"].iloc[0]), "L": int(g["trade_id"].iloc[-1]),
             "o": g["p"].iloc[0], "c": g["p"].iloc[-1], "h": max(g["p"], key=float),
             "l": min(g["p"], key=float), "v": f"{v:.6f}", "n": len(g), "x": True,
             "q": f"{qv:.8f}", "V": f"{buy:.6f}", "Q": "0", "B": "0"}  # fmt: skip
        # a running update of the same bar first, then the closed kline
        lines.append(("ws", {"e": "kline", "E": int(minute) + 500, "s": "BTCUSDT",
                             "k": {**k, "x": False, "n": 1}}))  # fmt: skip
        lines.append(("ws", {"e": "kline", "E": int(minute) + 1_000, "s": "BTCUSDT", "k": k}))
        oracle.append((int(minute), g, v, qv, buy))
    write_part(tmp_path / "raw", "btcusdt@kline_1s", lines)
    lake = ticklake.init_lake(tmp_path / "lake")
    summary = lake.ingest_raw(tmp_path / "raw")
    assert summary.klines_open == len(oracle) and summary.lines_quarantined == 0
    got = lake.read("binance_klines_1s").to_pandas().sort_values("ts")
    assert len(got) == len(oracle) > 40
    assert 0 < sum(b for *_, b in oracle) < sum(v for _, _, v, _, _ in oracle)
    assert (got["ts"].astype("int64") // 10**6).tolist() == [m for m, *_ in oracle]
    assert (got["ts_end"].astype("int64") // 10**6).tolist() == [m + 1_000 for m, *_ in oracle]
    assert got["open"].tolist() == [float(g["p"].iloc[0]) for _, g, *_ in oracle]
    assert got["close"].tolist() == [float(g["p"].iloc[-1]) for _, g, *_ in oracle]
    assert got["high"].tolist() == [float(f"{g['price'].max():.2f}") for _, g, *_ in oracle]
    assert got["low"].tolist() == [float(f"{g['price'].min():.2f}") for _, g, *_ in oracle]
    assert got["trade_count"].tolist() == [len(g) for _, g, *_ in oracle]
    assert got["volume"].tolist() == [float(f"{v:.6f}") for _, _, v, _, _ in oracle]
    assert got["buy_volume"].tolist() == [float(f"{b:.6f}") for *_, b in oracle]
    assert got["vwap"].tolist() == [
        float(f"{q:.8f}") / float(f"{v:.6f}") for _, _, v, q, _ in oracle
    ]
    assert got["sell_volume"].tolist() == pytest.approx(
        [v - b for _, _, v, _, b in oracle], abs=1e-6
    )
    again = lake.ingest_raw(tmp_path / "raw", force=True)
    assert again.rows_added("binance_klines_1s") == 0


def test_a_snapshot_and_the_diff_it_contains_keep_all_their_levels(tmp_path: Path) -> None:
    # USD-M: the snapshot's lastUpdateId is the diff's u and both carry the same time
    diff = {"e": "depthUpdate", "E": 1667346579146, "T": 1667346579146, "s": "BTCUSDT",
            "U": 2098021528300, "u": 2098021528332, "pu": 2098021528299,
            "b": [["20377.00", "1.770"]], "a": [["20377.10", "0.000"]]}  # fmt: skip
    snap = {"lastUpdateId": 2098021528332, "E": 1667346579146, "T": 1667346579146,
            "bids": [["20377.00", "1.770"]], "asks": [["20377.20", "0.500"]]}  # fmt: skip
    write_part(tmp_path / "raw", "btcusdt@depth@100ms", [("ws", diff), ("snapshot", snap)])
    lake = ticklake.init_lake(tmp_path / "lake")
    summary = lake.ingest_raw(tmp_path / "raw")
    got = lake.read("binance_book_updates").to_pandas().sort_values("seq")
    assert summary.rows_added("binance_book_updates") == 4 == len(got)
    base = 2098021528332 * SEQ_STRIDE
    assert got["seq"].tolist() == [base, base + 1, base + SEQ_LEVELS, base + SEQ_LEVELS + 1]
    assert got["is_snapshot"].tolist() == [False, False, True, True]
    assert replay(got) == {"bid": {20377.0: 1.77}, "ask": {20377.2: 0.5}}
