from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ticklake.errors import IngestError
from ticklake.generate import generate_options
from ticklake.ingest.readers import ReaderOptions, get_reader
from ticklake.schemas import get_schema

IST = timedelta(hours=5, minutes=30)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nse_options")
    generate_options(
        "BANKNIFTY", start=date(2024, 1, 9), days=1, out=out, seed=11, strikes_each_side=1
    )
    return out / "options" / "2024-01-09"


def _read(path: Path, **options: object) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    batches = list(get_reader("nse_options").read(path, ReaderOptions(**options)))  # type: ignore[arg-type]
    frame = pl.concat([b.frame for b in batches])
    return frame, pl.concat([b.rejected for b in batches]), len(batches)


def test_round_trip_of_generated_files(generated: Path) -> None:
    for path in sorted(generated.glob("*.parquet"))[:6]:
        raw = pq.read_table(path).to_pylist()  # the vendor values, independently
        frame, rejected, batch_count = _read(path, batch_rows=4_000, keep_all_columns=True)
        assert batch_count == -(-len(raw) // 4_000) and rejected.height == 0
        assert frame.columns == list(get_schema("option_snapshots_full").column_names)
        assert frame.height == len(raw)
        symbol = path.name.removesuffix(".parquet").upper()
        weekly = symbol.startswith("BANKNIFTY24110")
        assert set(frame["symbol"]) == {symbol}
        assert set(frame["expiry"]) == {date(2024, 1, 10) if weekly else date(2024, 1, 25)}
        assert set(frame["underlying"]) == {"BANKNIFTY"}
        rows = frame.iter_rows(named=True)
        for i, (vendor, canon) in enumerate(zip(raw, rows, strict=True)):
            if i % 251:
                continue
            assert canon["ts"] == (vendor["ts"] - IST).replace(tzinfo=UTC)
            assert canon["vendor_ts"] == (vendor["timestamp"] - IST).replace(tzinfo=UTC)
            assert canon["strike"] == vendor["strike"] and canon["opt_type"] == vendor["opt_type"]
            assert canon["last_price"] == (vendor["price"] or None)
            assert canon["volume"] == vendor["volume"] and canon["oi"] == vendor["oi"]
            assert canon["avg_price"] == (vendor["avgPrice"] or None)
            assert canon["total_bid_qty"] == vendor["bQty"]
            for level in range(5):
                bid_price = vendor[f"bp{level}"] or None
                assert canon[f"bid_price_{level}"] == bid_price
                assert canon[f"bid_qty_{level}"] == (vendor[f"bq{level}"] if bid_price else None)
                assert canon[f"ask_price_{level}"] == vendor[f"sp{level}"]
                assert canon[f"ask_orders_{level}"] == vendor[f"so{level}"]
            if vendor["lastTradeTime"] is None:
                assert canon["last_trade_ts"] is None
            else:
                assert canon["last_trade_ts"] == (vendor["lastTradeTime"] - IST).replace(tzinfo=UTC)


def test_lean_schema_by_default(generated: Path) -> None:
    path = sorted(generated.glob("*.parquet"))[0]
    frame, _, _ = _read(path)
    assert frame.columns == list(get_schema("option_snapshots").column_names)
    assert frame["ts"].min() == datetime(2024, 1, 9, 3, 45, tzinfo=UTC)
    assert frame["ts"].max() <= datetime(2024, 1, 9, 9, 59, 59, tzinfo=UTC)


def _vendor_like(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


def test_time_rule_falls_back_and_rejects_rows_without_time(tmp_path: Path) -> None:
    ts = [datetime(2024, 1, 9, 9, 15, 0), None, None, None]
    table = pa.table(
        {
            "timestamp": pa.array(
                ["2024-01-09 09:15:00.3", "2024-01-09 09:15:01.4", "garbage", None]
            ),
            "price": [100.0, 0.0, 101.0, 102.0],
            "bp0": [99.0, 0.0, 99.5, 99.5],
            "bq0": [15, 0, 30, 30],
            "sp0": [100.5, 101.0, 101.0, 101.0],
            "sq0": [15, 15, 15, 15],
            "lastTradeTime": pa.array(
                [None, None, datetime(2024, 1, 9, 9, 15, 2), None], pa.timestamp("ns")
            ),
            "ts": pa.array(ts, pa.timestamp("ns")),
            "volume": [15, 15, 30, 45],
            "oi": [150, 150, 165, 180],
        }
    )
    # No symbol column: the contract comes from the file name.
    path = _vendor_like(tmp_path / "banknifty2411048000ce.parquet", table)
    frame, rejected, _ = _read(path)
    assert frame["ts"].to_list() == [
        datetime(2024, 1, 9, 3, 45, 0, tzinfo=UTC),  # ts
        datetime(2024, 1, 9, 3, 45, 1, 400_000, tzinfo=UTC),  # timestamp (text)
        datetime(2024, 1, 9, 3, 45, 2, tzinfo=UTC),  # lastTradeTime
    ]
    assert frame["last_price"].to_list() == [100.0, None, 101.0]
    assert frame["bid_price_0"].to_list() == [99.0, None, 99.5]
    assert frame["bid_qty_0"].to_list() == [15, None, 30]
    assert set(frame["symbol"]) == {"BANKNIFTY2411048000CE"}
    assert rejected["source_row"].to_list() == [4]
    assert "none of ts, timestamp, lastTradeTime" in rejected["reason"][0]


def test_trading_date_comes_from_inside_the_file(tmp_path: Path) -> None:
    # The folder and file name say nothing about the day; the times do.
    table = pa.table(
        {
            "ts": pa.array([datetime(2024, 1, 11, 10, 0)], pa.timestamp("ns")),
            "price": [5.0],
            "symbol": ["BANKNIFTY24JAN48000PE"],
        }
    )
    path = _vendor_like(tmp_path / "2024-01-09-whatever.parquet", table)
    frame, _, _ = _read(path)
    assert frame["ts"][0] == datetime(2024, 1, 11, 4, 30, tzinfo=UTC)
    assert frame["expiry"][0] == date(2024, 1, 25) and frame["opt_type"][0] == "PE"


def test_unknown_contract_names_the_file(tmp_path: Path) -> None:
    table = pa.table({"ts": pa.array([datetime(2024, 1, 11, 10, 0)], pa.timestamp("ns"))})
    path = _vendor_like(tmp_path / "mystery.parquet", table)
    with pytest.raises(IngestError, match=r"mystery\.parquet: cannot tell the contract"):
        _read(path)


def test_truncated_file_raises_naming_it(generated: Path, tmp_path: Path) -> None:
    source = sorted(generated.glob("*.parquet"))[0]
    broken = tmp_path / source.name
    data = source.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(IngestError) as info:
        _read(broken)
    assert str(broken) in str(info.value) and "corrupt" in str(info.value)
