"""Bitstamp L3 and trades readers against the ob-analytics capture, parsed with gzip/csv."""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from ticklake.errors import IngestError
from ticklake.ingest.readers import ReaderOptions, get_reader
from ticklake.ingest.readers.bitstamp import FLAG_SNAPSHOT, FLAG_SYNTHETIC_CLOSE

ACTIONS = {"created": "add", "changed": "modify", "deleted": "delete"}


@pytest.fixture(scope="module")
def sample(shared_data: Path) -> Path:
    return shared_data / "bitstamp-btcusd-l3"


@pytest.fixture(scope="module")
def orders(sample: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    batches = list(
        get_reader("bitstamp_l3").read(sample / "orders.csv.gz", ReaderOptions(batch_rows=120_000))
    )
    assert all(b.frame.height <= 120_000 for b in batches)
    return pl.concat([b.frame for b in batches]), pl.concat([b.rejected for b in batches])


@pytest.fixture(scope="module")
def raw_orders(sample: Path) -> list[dict[str, str]]:
    with gzip.open(sample / "orders.csv.gz", "rt", newline="") as fh:
        return list(csv.DictReader(fh))


def test_order_rows_and_actions_match_raw_file(
    orders: tuple[pl.DataFrame, pl.DataFrame], raw_orders: list[dict[str, str]]
) -> None:
    frame, rejected = orders
    assert rejected.height == 0
    assert frame.height == len(raw_orders) == 314_057
    assert Counter(frame["action"].to_list()) == Counter(ACTIONS[r["action"]] for r in raw_orders)
    assert Counter(frame["side"].to_list()) == Counter(r["direction"] for r in raw_orders)
    ts = frame["ts"].dt.epoch("ns").to_list()
    for i in [0, 6511, 6512, 100_000, 200_000, len(raw_orders) - 1]:
        line, row = raw_orders[i], frame.row(i, named=True)
        assert ts[i] == int(line["exchange_timestamp"]) * 1_000_000
        assert row["order_id"] == int(line["id"])
        assert row["price"] == float(Decimal(line["price"]))
        assert row["size"] == float(Decimal(line["volume"]))
        assert row["seq"] == i + 2  # line number; line 1 is the header
    assert frame["ts"][0].isoformat() == "2026-05-02T02:36:20.521000+00:00"


def test_changed_rows_are_modifies_with_remaining_size(
    orders: tuple[pl.DataFrame, pl.DataFrame], raw_orders: list[dict[str, str]]
) -> None:
    frame, _ = orders
    changed = [i for i, r in enumerate(raw_orders) if r["action"] == "changed"]
    assert len(changed) == 266
    first = frame.row(changed[0], named=True)
    assert first["action"] == "modify"
    assert first["order_id"] == int(raw_orders[changed[0]]["id"])
    assert first["size"] == float(raw_orders[changed[0]]["volume"])


def test_synthetic_rows_are_flagged_from_meta(
    orders: tuple[pl.DataFrame, pl.DataFrame], sample: Path
) -> None:
    frame, _ = orders
    meta = json.loads((sample / "meta.json").read_text())
    created, deleted = meta["synthetic_created"], meta["synthetic_deleted"]
    flags = frame["flags"].to_list()
    assert flags[:created] == [FLAG_SNAPSHOT] * created
    assert flags[-deleted:] == [FLAG_SYNTHETIC_CLOSE] * deleted
    assert set(flags[created:-deleted]) == {None}
    assert set(frame["action"][:created]) == {"add"}
    assert set(frame["action"][-deleted:]) == {"delete"}


def test_trades_match_raw_rows(sample: Path) -> None:
    with (sample / "trades.csv").open(newline="") as fh:
        raw = list(csv.DictReader(fh))
    batches = list(get_reader("bitstamp_trades").read(sample / "trades.csv", ReaderOptions()))
    frame = pl.concat([b.frame for b in batches])
    assert sum(b.rejected.height for b in batches) == 0
    assert frame.height == len(raw) == 284
    assert frame["ts"].dt.epoch("ns").to_list() == [
        int(r["exchange_timestamp"]) * 1_000_000 for r in raw
    ]
    assert frame["recv_ts"].dt.epoch("ns").to_list() == [
        int(r["timestamp"]) * 1_000_000 for r in raw
    ]
    assert frame["side"].to_list() == [r["side"] for r in raw]
    assert frame["trade_id"].to_list() == [r["trade_id"] for r in raw]
    assert frame["price"].to_list() == [float(r["price"]) for r in raw]
    assert frame["size"].to_list() == [float(r["amount"]) for r in raw]
    assert set(frame["instrument"]) == {"BTCUSD"}  # from meta.json "pair"


def _small_orders(tmp_path: Path, sample: Path, lines: int) -> Path:
    with gzip.open(sample / "orders.csv.gz", "rb") as fh:
        head = b"".join(line for _, line in zip(range(lines), fh, strict=False))
    path = tmp_path / "orders.csv"
    path.write_bytes(head)
    return path


def test_without_meta_the_instrument_is_required(tmp_path: Path, sample: Path) -> None:
    path = _small_orders(tmp_path, sample, 50)
    with pytest.raises(IngestError, match=r"orders\.csv: .*pass the instrument"):
        list(get_reader("bitstamp_l3").read(path, ReaderOptions()))
    (frame_batch,) = get_reader("bitstamp_l3").read(path, ReaderOptions(instrument="BTCUSD"))
    assert frame_batch.frame.height == 49
    assert frame_batch.frame["flags"].null_count() == 49  # no meta: nothing flagged


def test_meta_that_does_not_fit_the_file_is_refused(tmp_path: Path, sample: Path) -> None:
    path = _small_orders(tmp_path, sample, 50)
    (tmp_path / "meta.json").write_text(
        json.dumps({"pair": "btcusd", "synthetic_created": 0, "synthetic_deleted": 10})
    )
    with pytest.raises(IngestError, match=r"line 41 should be a synthetic deleted row"):
        list(get_reader("bitstamp_l3").read(path, ReaderOptions()))


def test_bad_rows_are_rejected_with_reasons(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(
        b"id,timestamp,exchange_timestamp,price,volume,action,direction\r\n"
        b"1,1777689383201,1777689380521,78318.0,1.5,created,bid\r\n"
        b"2,1777689383201,1777689380521,78318.0,1.5,amended,bid\r\n"
        b"-3,1777689383201,1777689380521,78318.0,1.5,created,ask\r\n"
        b"4,1777689383201,1777689380521,78318.0,1.5,created,up\r\n"
    )
    (batch,) = get_reader("bitstamp_l3").read(path, ReaderOptions(instrument="BTCUSD"))
    assert batch.frame["order_id"].to_list() == [1]
    reasons = dict(zip(batch.rejected["source_row"], batch.rejected["reason"], strict=True))
    assert "field 'action'" in reasons[3] and "amended" in reasons[3]
    assert "field 'id'" in reasons[4]
    assert "field 'direction'" in reasons[5]


def test_truncated_gzip_raises_naming_the_file(tmp_path: Path, sample: Path) -> None:
    data = (sample / "orders.csv.gz").read_bytes()
    path = tmp_path / "orders.csv.gz"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(IngestError, match=r"orders\.csv\.gz: file is corrupt or truncated") as info:
        for _ in get_reader("bitstamp_l3").read(path, ReaderOptions(instrument="BTCUSD")):
            pass
    assert str(path) in str(info.value)
