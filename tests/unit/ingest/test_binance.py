"""Binance readers against the real samples (klines, depth) and against Binance-format
files written from the real trades / quotes sample (no trades or bookTicker CSV is in
the shared data; the oracle is the sample itself, read with pyarrow)."""

from __future__ import annotations

import csv
import gzip
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ticklake.errors import IngestError
from ticklake.ingest.readers import ReaderOptions, get_reader
from ticklake.ingest.readers.binance import DEPTH_SEQ_FACTOR


def _ms(value: int | str) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, UTC)


@pytest.fixture(scope="module")
def binance_dir(shared_data: Path) -> Path:
    return shared_data / "nautilus-crypto-samples" / "binance"


@pytest.fixture(scope="module")
def real_trades(binance_dir: Path) -> list[dict[str, object]]:
    return pq.read_table(binance_dir / "btcusdt-trades.parquet").to_pylist()


def _write_trades_csv(
    path: Path, trades: list[dict[str, object]], *, header: bool, micros: bool = False
) -> None:
    """Write trades in data.binance.vision's trades layout (spot: no header, True/False)."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        if header:
            writer.writerow(["id", "price", "qty", "quote_qty", "time", "is_buyer_maker"])
        for t in trades:
            stamp = t["timestamp"]
            assert isinstance(stamp, datetime)
            epoch = int(stamp.timestamp() * 1000) * (1000 if micros else 1)
            maker = t["buyer_maker"] == "True"
            row = [t["trade_id"], t["price"], t["quantity"], 0, epoch]
            writer.writerow(row + ([str(maker).lower()] if header else [str(maker), "True"]))


@pytest.mark.parametrize(("header", "micros"), [(False, False), (True, False), (False, True)])
def test_trades_csv_with_and_without_header_ms_and_us(
    tmp_path: Path, real_trades: list[dict[str, object]], header: bool, micros: bool
) -> None:
    path = tmp_path / "BTCUSDT-trades-2021-01-08.csv"
    _write_trades_csv(path, real_trades, header=header, micros=micros)
    batches = list(get_reader("binance_trades").read(path, ReaderOptions(batch_rows=700)))
    assert sum(b.frame.height for b in batches) == 2_001
    assert all(b.frame.height <= 700 and b.rejected.height == 0 for b in batches)
    rows = [r for b in batches for r in b.frame.iter_rows(named=True)]
    for index in (0, 1, 1_000, 2_000):
        expected = real_trades[index]
        row = rows[index]
        assert row["ts"] == expected["timestamp"]
        assert row["trade_id"] == str(expected["trade_id"])
        assert (row["price"], row["size"]) == (expected["price"], expected["quantity"])
        assert row["side"] == ("sell" if expected["buyer_maker"] == "True" else "buy")
        assert (row["instrument"], row["venue"]) == ("BTCUSDT", "binance")


def test_agg_trades_headerless_layout(tmp_path: Path) -> None:
    path = tmp_path / "ETHUSDT-aggTrades-2024-03-01.csv"
    path.write_text(
        "3001,3400.10,0.5,10,12,1709251200123,True,True\n"
        "3002,3400.20,1.25,13,13,1709251200456,False,True\n"
    )
    (batch,) = list(get_reader("binance_trades").read(path, ReaderOptions()))
    assert batch.frame.select("trade_id", "price", "size", "side").rows() == [
        ("3001", 3400.10, 0.5, "sell"),
        ("3002", 3400.20, 1.25, "buy"),
    ]
    assert batch.frame["ts"].to_list() == [_ms(1709251200123), _ms(1709251200456)]


def test_trades_bad_timestamp_and_missing_instrument(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-trades-2024-01-01.csv"
    path.write_text(
        "1,42000.1,0.1,4200.01,1704067200000,True,True\n2,42000.2,0.1,4200.02,17O4067200001,False,True\n"
    )
    (batch,) = list(get_reader("binance_trades").read(path, ReaderOptions()))
    assert batch.frame["trade_id"].to_list() == ["1"]
    assert batch.rejected.row(0, named=True) == {
        "source_row": 2,
        "raw": "2,42000.2,0.1,4200.02,17O4067200001,False,True",
        "reason": "cannot read ts from source column 'time': '17O4067200001'",
    }
    anonymous = tmp_path / "trades.csv"
    anonymous.write_text(path.read_text())
    with pytest.raises(IngestError, match="cannot tell the instrument from the file name"):
        list(get_reader("binance_trades").read(anonymous, ReaderOptions()))
    (named,) = list(get_reader("binance_trades").read(anonymous, ReaderOptions(instrument="XYZ")))
    assert named.frame["instrument"].to_list() == ["XYZ"]


def test_trades_truncated_gzip_names_the_file(
    tmp_path: Path, real_trades: list[dict[str, object]]
) -> None:
    plain = tmp_path / "plain.csv"
    _write_trades_csv(plain, real_trades * 5, header=False)
    blob = gzip.compress(plain.read_bytes())
    path = tmp_path / "BTCUSDT-trades-2021-01-08.csv.gz"
    path.write_bytes(blob[: len(blob) * 2 // 3])
    with pytest.raises(
        IngestError, match=r"BTCUSDT-trades-2021-01-08\.csv\.gz: file is corrupt or truncated"
    ):
        list(get_reader("binance_trades").read(path, ReaderOptions(batch_rows=1_000)))


def test_book_ticker_from_real_quotes(tmp_path: Path, binance_dir: Path) -> None:
    quotes = pq.read_table(binance_dir / "btcusdt-quotes.parquet").to_pylist()
    path = tmp_path / "BTCUSDT-bookTicker-2021-01-08.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "update_id",
                "best_bid_price",
                "best_bid_qty",
                "best_ask_price",
                "best_ask_qty",
                "transaction_time",
                "event_time",
            ]
        )
        for update_id, q in enumerate(quotes, start=900_000_000):
            stamp = q["timestamp"]
            ms = int(stamp.timestamp() * 1000)
            writer.writerow(
                [update_id, q["bid"], q["bid_size"], q["ask"], q["ask_size"], ms, ms + 3]
            )
    batches = list(get_reader("binance_book_ticker").read(path, ReaderOptions(batch_rows=200)))
    assert [b.frame.height for b in batches] == [199, 200, 52]
    rows = [r for b in batches for r in b.frame.iter_rows(named=True)]
    for index in (0, 225, 450):
        q = quotes[index]
        assert rows[index]["ts"] == q["timestamp"]
        assert rows[index]["seq"] == 900_000_000 + index
        assert (rows[index]["bid_price"], rows[index]["bid_size"]) == (q["bid"], q["bid_size"])
        assert (rows[index]["ask_price"], rows[index]["ask_size"]) == (q["ask"], q["ask_size"])
        assert rows[index]["instrument"] == "BTCUSDT"


def test_klines_real_sample(binance_dir: Path) -> None:
    path = binance_dir / "ADABTC-1m-2021-11-28.csv"
    with path.open(newline="") as fh:
        raw = list(csv.reader(fh))
    (batch,) = list(get_reader("binance_klines").read(path, ReaderOptions()))
    frame = batch.frame
    assert frame.height == len(raw) == 11 and batch.rejected.height == 0
    # Binance's close_time is the bar's last ms: ts_end = close_time + 1 ms = open + 60 s.
    assert all(int(r[6]) - int(r[0]) == 59_999 for r in raw)
    assert ((frame["ts_end"] - frame["ts"]).dt.total_seconds() == 60).all()
    for index in (0, 5, 10):
        r, row = raw[index], frame.row(index, named=True)
        assert row["ts"] == _ms(r[0]) and row["ts_end"] == _ms(int(r[6]) + 1)
        assert [row[c] for c in ("open", "high", "low", "close", "volume")] == [
            float(v) for v in r[1:6]
        ]
        assert row["quote_volume"] == float(r[7]) and row["trade_count"] == int(r[8])
        assert row["buy_volume"] == float(r[9])
        assert row["sell_volume"] == pytest.approx(float(r[5]) - float(r[9]))
        assert row["vwap"] == pytest.approx(float(r[7]) / float(r[5]))
        assert row["instrument"] == "ADABTC"


def test_klines_microseconds_and_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-1m-2025-01-01.csv"
    path.write_text(
        "1735689600000000,93576.00,93610.93,93537.50,93610.93,8.21827,1735689659999999,769008.39,1860,4.59,429647.42,0\n"
    )
    (batch,) = list(get_reader("binance_klines").read(path, ReaderOptions()))
    row = batch.frame.row(0, named=True)
    assert row["ts"] == datetime(2025, 1, 1, tzinfo=UTC)
    assert row["ts_end"] == datetime(2025, 1, 1, 0, 1, tzinfo=UTC)
    short = tmp_path / "BTCUSDT-1h-2024-01-01.csv"
    short.write_text("open_time,open,high,low,close,volume\n1704067200000,1,2,0.5,1.5,10\n")
    with pytest.raises(
        IngestError,
        # A preset reader names its format and the missing column, not a "mapping" the
        # user never wrote (issue 13), and still lists the file's columns.
        match=r"format 'binance_klines' needs a column 'close_time'.*open_time, open",
    ):
        list(get_reader("binance_klines").read(short, ReaderOptions()))


def test_depth_snapshot_and_updates(binance_dir: Path) -> None:
    for name, snapshot in (("btcusdt-depth-snap.csv", True), ("btcusdt-depth-update.csv", False)):
        path = binance_dir / name
        with path.open(newline="") as fh:
            raw = list(csv.DictReader(fh))
        batches = list(get_reader("binance_depth").read(path, ReaderOptions(batch_rows=30)))
        rows = [r for b in batches for r in b.frame.iter_rows(named=True)]
        assert len(rows) == len(raw) == 100
        seqs = [r["seq"] for r in rows]
        assert len(set(seqs)) == 100 and seqs == sorted(seqs)  # unique, in file order
        for index in (0, 29, 30, 99):
            r, row = raw[index], rows[index]
            assert row["ts"] == _ms(r["timestamp"])
            assert row["side"] == {"b": "bid", "a": "ask"}[r["side"]]
            assert (row["price"], row["size"]) == (float(r["price"]), float(r["qty"]))
            assert row["is_snapshot"] is snapshot
            assert row["seq"] // DEPTH_SEQ_FACTOR == int(r["last_update_id"])
        # The position within an update continues across the 30-row batch boundary.
        same_update = [
            s % DEPTH_SEQ_FACTOR
            for s, r in zip(seqs, raw, strict=True)
            if r["last_update_id"] == raw[29]["last_update_id"]
        ]
        assert same_update == list(range(len(same_update)))
