"""Tardis readers against the nautilus Tardis samples, parsed independently with csv."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from ticklake.errors import IngestError
from ticklake.ingest.readers import ReaderOptions, get_reader
from ticklake.ingest.readers.tardis import detect_snapshot_levels


def _sample(shared_data: Path, name: str) -> Path:
    return shared_data / "nautilus-crypto-samples" / "tardis" / name


def _raw(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _read(reader_name: str, path: Path, **options: object) -> tuple[pl.DataFrame, pl.DataFrame]:
    batches = list(get_reader(reader_name).read(path, ReaderOptions(**options)))  # type: ignore[arg-type]
    for batch in batches:
        assert batch.frame.height <= ReaderOptions(**options).batch_rows  # type: ignore[arg-type]
    return pl.concat([b.frame for b in batches]), pl.concat([b.rejected for b in batches])


def _ns(microseconds: str) -> int:
    return int(microseconds) * 1000


def test_trades_match_raw_rows(shared_data: Path) -> None:
    path = _sample(shared_data, "bitmex_trades_XBTUSD.csv")
    raw = _raw(path)
    frame, rejected = _read("tardis_trades", path, batch_rows=4)
    assert frame.height == len(raw) == 10 and rejected.height == 0
    assert frame["ts"].dt.epoch("ns").to_list() == [_ns(r["timestamp"]) for r in raw]
    assert frame["recv_ts"].dt.epoch("ns").to_list() == [_ns(r["local_timestamp"]) for r in raw]
    assert frame["ts"][0].isoformat() == "2020-03-01T00:00:03.145000+00:00"
    assert frame["trade_id"].to_list() == [r["id"] for r in raw]
    assert frame["price"].to_list() == [float(Decimal(r["price"])) for r in raw]
    assert frame["size"].to_list() == [float(Decimal(r["amount"])) for r in raw]
    assert frame["side"].to_list() == [r["side"] for r in raw]
    assert set(frame["instrument"]) == {"XBTUSD"} and set(frame["venue"]) == {"bitmex"}


def test_quotes_match_raw_rows(shared_data: Path) -> None:
    path = _sample(shared_data, "huobi-dm-swap_quotes_BTC-USD.csv")
    raw = _raw(path)
    frame, rejected = _read("tardis_quotes", path)
    assert frame.height == len(raw) and rejected.height == 0
    assert frame["seq"].to_list() == list(range(2, len(raw) + 2))  # line numbers
    for row, line in zip(frame.iter_rows(named=True), raw, strict=True):
        assert row["bid_price"] == float(line["bid_price"])
        assert row["bid_size"] == float(line["bid_amount"])
        assert row["ask_price"] == float(line["ask_price"])
        assert row["ask_size"] == float(line["ask_amount"])
    assert frame["recv_ts"].dt.epoch("ns")[5] == 1_588_291_201_671_346_000


@pytest.mark.parametrize("levels", [5, 25])
def test_book_snapshots_match_raw_rows(shared_data: Path, levels: int) -> None:
    path = _sample(shared_data, f"binance-futures_book_snapshot_{levels}_BTCUSDT.csv")
    assert detect_snapshot_levels(path) == levels
    reader = get_reader("tardis_book_snapshot")
    assert reader.schema_for(ReaderOptions(extra={"levels": levels})) == f"l2_{levels}"
    raw = _raw(path)
    frame, rejected = _read("tardis_book_snapshot", path, extra={"levels": levels})
    assert frame.height == len(raw) and rejected.height == 0
    assert frame.columns[-1] == f"ask_size_{levels - 1}"
    for row, line in zip(frame.iter_rows(named=True), raw, strict=True):
        for i in range(levels):
            assert row[f"ask_price_{i}"] == float(line[f"asks[{i}].price"])
            assert row[f"ask_size_{i}"] == float(line[f"asks[{i}].amount"])
            assert row[f"bid_price_{i}"] == float(line[f"bids[{i}].price"])
            assert row[f"bid_size_{i}"] == float(line[f"bids[{i}].amount"])
    assert frame["ts"].dt.epoch("ns").to_list() == [_ns(r["timestamp"]) for r in raw]


def test_book_snapshot_depth_mismatch_is_refused(shared_data: Path) -> None:
    path = _sample(shared_data, "binance-futures_book_snapshot_5_BTCUSDT.csv")
    with pytest.raises(IngestError, match=r"5 levels but levels=25 .*pass levels=5"):
        list(get_reader("tardis_book_snapshot").read(path, ReaderOptions()))


def test_incremental_l2_matches_raw_rows(shared_data: Path) -> None:
    path = _sample(shared_data, "deribit_incremental_book_L2_BTC-PERPETUAL.csv")
    raw = _raw(path)
    frame, rejected = _read("tardis_incremental_l2", path, batch_rows=6)
    assert frame.height == len(raw) == 15 and rejected.height == 0
    assert frame["is_snapshot"].to_list() == [r["is_snapshot"] == "true" for r in raw]
    assert frame["side"].to_list() == [r["side"] for r in raw]
    assert frame["price"].to_list() == [float(r["price"]) for r in raw]
    assert frame["size"].to_list() == [float(r["amount"]) for r in raw]
    assert frame["ts"].dt.epoch("ns")[0] == 1_585_699_200_245_000_000


def test_bad_rows_are_rejected_with_the_field_named(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    path.write_text(
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "bitmex,XBTUSD,1583020803145000,1583020803307160,a,sell,8531.5,2152\n"
        "bitmex,XBTUSD,1583020803145000,1583020803307160,b,sell,abc,1\n"
        "bitmex,XBTUSD,15830208031x5000,1583020803307160,c,buy,8531.5,1\n"
        "bitmex,XBTUSD,1583020803145000,1583020803307160,d,sideways,8531.5,1\n"
        "bitmex,XBTUSD,1583020803145000,1583020803307160,e,sell,8531.5\n"
        "\n"
        "bitmex,XBTUSD,1583020803146000,,,unknown,8531,3\n"
    )
    frame, rejected = _read("tardis_trades", path, batch_rows=3)
    reasons = dict(zip(rejected["source_row"], rejected["reason"], strict=True))
    assert reasons.keys() == {3, 4, 5, 6}
    assert reasons[3] == "field 'price': cannot read abc as a number"
    assert "field 'timestamp'" in reasons[4]
    assert "field 'side'" in reasons[5] and "sideways" in reasons[5]
    assert reasons[6].startswith("expected 8 comma-separated fields")
    assert rejected.filter(pl.col("source_row") == 3)["raw"][0].endswith(",b,sell,abc,1")
    # An empty id falls back to the line number; 'unknown' side is valid but null.
    assert frame["trade_id"].to_list() == ["a", "8"]
    assert frame["side"].to_list() == ["sell", None]
    assert frame["recv_ts"].to_list()[1] is None


def test_missing_column_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "quotes.csv"
    path.write_text("exchange,symbol,timestamp,local_timestamp,bid_price\nx,y,1,2,3\n")
    with pytest.raises(IngestError, match=r"missing column\(s\) \['ask_amount'"):
        list(get_reader("tardis_quotes").read(path, ReaderOptions()))
