from __future__ import annotations

import csv
import gzip
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from ticklake.errors import MappingError
from ticklake.ingest.mapping import (
    Mapping,
    apply_mapping,
    detect_epoch_unit,
    infer_mapping,
    mapping_for_frame,
    render_yaml,
)

TRADES = {
    "schema": "trades",
    "columns": {"price": "px", "size": "qty", "trade_id": "id"},
    "time": {"column": "t", "unit": "ms"},
    "constants": {"instrument": "BTCUSDT", "venue": "binance"},
}


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_from_yaml_rejects_unknown_key_naming_file_and_valid_keys(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("schema: trades\ntime: {column: t, unit: ms}\ncolums: {price: px}\n")
    with pytest.raises(MappingError) as info:
        Mapping.from_yaml(path)
    message = str(info.value)
    assert str(path) in message
    assert "unknown key 'colums'" in message
    assert "columns" in message and "price_scale" in message and "value_maps" in message


def test_from_yaml_rejects_unknown_time_key_with_time_keys(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("schema: trades\ntime: {column: t, units: ms}\n")
    with pytest.raises(MappingError, match=r"unknown key 'time.units'.*column, unit, format"):
        Mapping.from_yaml(path)


def test_from_yaml_rejects_non_canonical_column_and_bad_timezone(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("schema: trades\ntime: {column: t}\ncolumns: {pric: px}\n")
    with pytest.raises(MappingError, match=r"\['pric'\] are not columns of schema 'trades'"):
        Mapping.from_yaml(path)
    path.write_text("schema: trades\ntime: {column: t, timezone: Mars/Olympus}\n")
    with pytest.raises(MappingError, match="not an IANA time zone"):
        Mapping.from_yaml(path)


def test_schema_alias_and_from_yaml_round_trip(tmp_path: Path) -> None:
    mapping = Mapping.model_validate(TRADES)
    assert mapping.dataset_schema == "trades"
    path = tmp_path / "m.yaml"
    path.write_text(render_yaml(mapping))
    assert Mapping.from_yaml(path).model_dump() == mapping.model_dump()


def test_apply_mapping_converts_and_rejects_with_row_and_reason() -> None:
    source = pl.DataFrame(
        {
            "t": ["1704067200123", "1704067200456", "not-a-time", "1704067201000", ""],
            "px": ["42000.5", "abc", "42001", "42002", "42003"],
            "qty": ["0.5", "1", "2", "", "3"],
            "id": ["7", "8", "9", "10", "11"],
        }
    ).with_columns(pl.col("t").replace("", None), pl.col("qty").replace("", None))
    batch = apply_mapping(source, Mapping.model_validate(TRADES), source="f.csv", first_row=2)
    assert batch.frame.to_dicts() == [
        {
            "ts": _utc(2024, 1, 1, 0, 0, 0, 123000),
            "instrument": "BTCUSDT",
            "trade_id": "7",
            "price": 42000.5,
            "size": 0.5,
            "side": None,
            "venue": "binance",
            "recv_ts": None,
        }
    ]
    rejected = batch.rejected.to_dicts()
    assert [r["source_row"] for r in rejected] == [3, 4, 5, 6]
    assert rejected[0]["reason"] == "cannot read price from source column 'px': 'abc'"
    assert rejected[0]["raw"] == "1704067200456,abc,1,8"
    assert rejected[1]["reason"] == "cannot read ts from source column 't': 'not-a-time'"
    assert rejected[2]["reason"] == "missing size: source column 'qty' is empty"
    assert rejected[3]["reason"] == "missing ts: source column 't' is empty"


def test_apply_mapping_missing_source_column_names_key_file_and_columns() -> None:
    mapping = Mapping.model_validate(TRADES)
    frame = pl.DataFrame({"t": [1], "price": [1.0], "qty": [1.0], "id": [1]})
    with pytest.raises(MappingError) as info:
        apply_mapping(frame, mapping, source="data/x.csv", first_row=1)
    message = str(info.value)
    assert "'columns.price'" in message and "'px'" in message and "data/x.csv" in message
    assert "t, price, qty, id" in message


def test_apply_mapping_requires_a_source_for_required_columns() -> None:
    mapping = Mapping.model_validate({**TRADES, "constants": {}})
    frame = pl.DataFrame({"t": [1], "px": [1.0], "qty": [1.0], "id": [1]})
    with pytest.raises(MappingError, match=r"required column\(s\) \['instrument'\].*--instrument"):
        apply_mapping(frame, mapping, source="x.csv", first_row=1)


def test_price_scale_date_time_columns_timezone_and_row_policies() -> None:
    mapping = Mapping.model_validate(
        {
            "schema": "quotes",
            "columns": {"bid_price": "bid", "ask_price": "ask", "bid_size": "bsz"},
            "time": {
                "date_column": "d",
                "time_column": "tm",
                "format": "%Y%m%d %H:%M:%S",
                "timezone": "America/New_York",
            },
            "price_scale": 10000,
            "constants": {"instrument": "AAPL"},
            "seq": "row",
        }
    )
    frame = pl.DataFrame(
        {
            "d": ["20240105", "20240310", "20240705"],
            "tm": ["09:30:00", "02:30:00", "16:00:00"],
            "bid": [1855000, 1856000, 1857000],
            "ask": [1855100, 1856100, 1857100],
            "bsz": [100, 200, 300],
        }
    )
    batch = apply_mapping(frame, mapping, source="q", first_row=10)
    rows = batch.frame.to_dicts()
    # 09:30 EST = 14:30 UTC; 16:00 EDT = 20:00 UTC. 02:30 on 2024-03-10 does not exist.
    assert [r["ts"] for r in rows] == [_utc(2024, 1, 5, 14, 30), _utc(2024, 7, 5, 20, 0)]
    assert [r["bid_price"] for r in rows] == [185.5, 185.7]
    assert [r["bid_size"] for r in rows] == [100.0, 300.0]  # sizes are not scaled
    assert [r["seq"] for r in rows] == [10, 12]
    assert batch.rejected["source_row"].to_list() == [11]
    assert "'d' + 'tm'" in batch.rejected["reason"][0]


def test_bars_interval_with_close_label_gives_open_and_close() -> None:
    mapping = Mapping.model_validate(
        {
            "schema": "bars",
            "columns": {"open": "o", "close": "c"},
            "time": {"column": "t", "format": "%Y-%m-%d %H:%M", "interval": "5min"},
            "constants": {"instrument": "X"},
        }
    )
    frame = pl.DataFrame({"t": ["2024-01-02 10:05"], "o": [1.0], "c": [2.0]})
    open_row = apply_mapping(frame, mapping, source="b", first_row=1).frame.row(0, named=True)
    assert (open_row["ts"], open_row["ts_end"]) == (
        _utc(2024, 1, 2, 10, 5),
        _utc(2024, 1, 2, 10, 10),
    )
    closing = mapping.model_copy(
        update={"time": mapping.time.model_copy(update={"label": "close"})}
    )
    close_row = apply_mapping(frame, closing, source="b", first_row=1).frame.row(0, named=True)
    assert (close_row["ts"], close_row["ts_end"]) == (
        _utc(2024, 1, 2, 10, 0),
        _utc(2024, 1, 2, 10, 5),
    )


def test_value_maps_translate_codes_and_reject_unknown_ones() -> None:
    mapping = Mapping.model_validate(
        {
            **TRADES,
            "columns": {**TRADES["columns"], "side": "maker"},
            "value_maps": {"side": {"True": "sell", "False": "buy"}},
        }
    )
    frame = pl.DataFrame(
        {
            "t": [1, 2, 3],
            "px": [1.0] * 3,
            "qty": [1.0] * 3,
            "id": [1, 2, 3],
            "maker": ["True", "false", "?"],
        }
    )
    batch = apply_mapping(frame, mapping, source="s", first_row=1)
    assert batch.frame["side"].to_list() == ["sell", "buy"]
    assert batch.rejected["reason"].to_list() == [
        "cannot read side from source column 'maker': '?'"
    ]


@pytest.mark.parametrize(
    ("value", "unit"),
    [
        (1_700_000_000, "s"),
        (1_700_000_000_000, "ms"),
        (1_700_000_000_000_000, "us"),
        (1_700_000_000_000_000_000, "ns"),
    ],
)
def test_detect_epoch_unit_by_magnitude(value: int, unit: str) -> None:
    assert detect_epoch_unit(pl.Series([value, value + 1])) == unit


@pytest.mark.parametrize("kind", ["pandas", "arrow", "polars"])
def test_mapping_for_frame_accepts_pandas_arrow_polars(kind: str) -> None:
    data = {
        "timestamp": pd.to_datetime(["2024-01-02 03:04:05.5", "2024-01-02 03:04:06.0"], utc=True),
        "price": [10.0, 11.0],
        "qty": [1.0, 2.0],
    }
    frame: object = pd.DataFrame(data)
    if kind == "arrow":
        frame = pa.Table.from_pandas(frame)  # type: ignore[arg-type]
    elif kind == "polars":
        frame = pl.from_pandas(frame)  # type: ignore[arg-type]
    mapping = mapping_for_frame(frame, "trades", constants={"instrument": "X"})
    assert mapping.columns == {"price": "price", "size": "qty"}
    batch = apply_mapping(frame, mapping, source="frame", first_row=1)
    assert batch.frame["ts"].to_list() == [
        _utc(2024, 1, 2, 3, 4, 5, 500000),
        _utc(2024, 1, 2, 3, 4, 6),
    ]
    assert batch.frame["trade_id"].to_list() == ["1", "2"]  # row numbers when no id column
    assert batch.frame["size"].to_list() == [1.0, 2.0]


def _raw_rows(path: Path) -> list[list[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:  # type: ignore[operator]
        return list(csv.reader(fh))


def test_infer_mapping_on_cme_bars(shared_data: Path) -> None:
    path = shared_data / "cme-6e-1min" / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz"
    mapping = infer_mapping(path)
    assert mapping.dataset_schema == "bars"
    assert mapping.time.column == "timestamp_utc"
    assert mapping.time.format == "%Y-%m-%d %H:%M:%S%.f"
    assert mapping.time.interval == "1m"
    assert mapping.columns == {c: c for c in ("open", "high", "low", "close", "volume")}
    assert mapping.csv.has_header


def test_infer_mapping_on_headerless_klines(shared_data: Path) -> None:
    path = shared_data / "nautilus-crypto-samples" / "binance" / "ADABTC-1m-2021-11-27.csv"
    mapping = infer_mapping(path)
    raw = _raw_rows(path)
    assert mapping.csv.has_header is False
    assert (
        mapping.csv.column_names is not None and len(mapping.csv.column_names) == len(raw[0]) == 12
    )
    assert (mapping.dataset_schema, mapping.time.column, mapping.time.unit) == (
        "bars",
        "column_1",
        "ms",
    )
    assert [mapping.columns[c] for c in ("open", "high", "low", "close")] == [
        "column_2",
        "column_3",
        "column_4",
        "column_5",
    ]
    text = render_yaml(mapping)
    assert "unit: ms  # guessed from magnitude" in text
    assert "# instrument: ?  # required" in text


def test_infer_mapping_on_tardis_trades_and_apply(shared_data: Path) -> None:
    path = shared_data / "nautilus-crypto-samples" / "tardis" / "bitmex_trades_XBTUSD.csv"
    mapping = infer_mapping(path)
    assert mapping.dataset_schema == "trades"
    assert mapping.time.unit == "us"
    assert mapping.columns["size"] == "amount" and mapping.columns["recv_ts"] == "local_timestamp"
    frame = pl.read_csv(path, infer_schema=False)
    batch = apply_mapping(frame, mapping, source=str(path), first_row=2)
    raw = _raw_rows(path)
    header = raw[0]
    first = dict(zip(header, raw[1], strict=True))
    row = batch.frame.row(0, named=True)
    assert row["ts"] == datetime.fromtimestamp(int(first["timestamp"]) / 1e6, UTC)
    assert row["price"] == float(first["price"]) and row["size"] == float(first["amount"])
    assert row["side"] == first["side"] and row["trade_id"] == first["id"]
    assert batch.frame.height == len(raw) - 1


def test_infer_mapping_on_parquet_trades_maps_buyer_maker(shared_data: Path) -> None:
    path = shared_data / "nautilus-crypto-samples" / "binance" / "btcusdt-trades.parquet"
    mapping = infer_mapping(path)
    assert mapping.dataset_schema == "trades"
    assert mapping.columns["side"] == "buyer_maker"
    assert mapping.value_maps["side"] == {"true": "sell", "false": "buy"}


def test_infer_mapping_on_firstrate_uses_open_label_default(shared_data: Path) -> None:
    path = shared_data / "firstratedata-spx-sample" / "SPX_1hour.txt_sample.txt"
    mapping = infer_mapping(path)
    assert (mapping.dataset_schema, mapping.time.interval, mapping.time.label) == (
        "bars",
        "1h",
        "open",
    )
    text = render_yaml(mapping)
    assert "timezone: UTC  # applied to naive times only" in text


def test_infer_mapping_depth_keeps_seq_unique(shared_data: Path) -> None:
    path = shared_data / "nautilus-crypto-samples" / "binance" / "btcusdt-depth-update.csv"
    mapping = infer_mapping(path, "book_updates")
    # last_update_id repeats across the rows of one update, so it cannot be the seq.
    assert "seq" not in mapping.columns and mapping.seq == "row"
    assert mapping.columns["price"] == "price" and mapping.columns["size"] == "qty"
