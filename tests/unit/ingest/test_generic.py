from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest
import zstandard

from ticklake.errors import IngestError, MappingError
from ticklake.ingest.mapping import Mapping, render_yaml
from ticklake.ingest.readers import ReaderOptions, get_reader

ROWS = 300_000
BASE_MS = 1_704_067_200_000  # 2024-01-01 00:00:00 UTC

TRADES_MAPPING = Mapping.model_validate(
    {
        "schema": "trades",
        "columns": {"trade_id": "id", "price": "price", "size": "qty", "side": "side"},
        "time": {"column": "time", "unit": "ms"},
        "constants": {"instrument": "BTCUSDT", "venue": "test"},
    }
)


def _generated(rows: int = ROWS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "id": np.arange(1, rows + 1),
        "time": BASE_MS + np.cumsum(rng.integers(0, 50, rows)),
        "price": np.round(42_000 + rng.normal(0, 10, rows).cumsum() * 0.01, 2),
        "qty": np.round(rng.uniform(0.001, 2, rows), 6),
        "side": np.where(rng.random(rows) < 0.5, "buy", "sell"),
    }


@pytest.fixture(scope="module")
def generated() -> dict[str, np.ndarray]:
    return _generated()


def _csv_text(data: dict[str, np.ndarray], header: bool = True) -> str:
    lines = ["id,time,price,qty,side"] if header else []
    lines += [
        f"{i},{t},{p!r},{q!r},{s}"
        for i, t, p, q, s in zip(
            data["id"].tolist(),
            data["time"].tolist(),
            data["price"].tolist(),
            data["qty"].tolist(),
            data["side"].tolist(),
            strict=True,
        )
    ]
    return "\n".join(lines) + "\n"


def _options(batch_rows: int, mapping: object = TRADES_MAPPING) -> ReaderOptions:
    return ReaderOptions(batch_rows=batch_rows, extra={"mapping": mapping})


def _expected_row(data: dict[str, np.ndarray], index: int) -> dict[str, object]:
    return {
        "ts": datetime.fromtimestamp(int(data["time"][index]) / 1000, UTC),
        "instrument": "BTCUSDT",
        "trade_id": str(int(data["id"][index])),
        "price": float(data["price"][index]),
        "size": float(data["qty"][index]),
        "side": str(data["side"][index]),
        "venue": "test",
        "recv_ts": None,
    }


def test_csv_gz_streams_bounded_batches(tmp_path: Path, generated: dict[str, np.ndarray]) -> None:
    path = tmp_path / "trades.csv.gz"
    with gzip.open(path, "wt", compresslevel=1) as fh:
        fh.write(_csv_text(generated))
    batches = list(get_reader("csv").read(path, _options(50_000)))
    # 300,001 lines (header + rows) in chunks of 50,000 lines.
    assert [b.frame.height for b in batches] == [49_999] + [50_000] * 5 + [1]
    assert all(b.rejected.height == 0 for b in batches)
    # The header is re-applied to every chunk: a row deep in chunk 5 maps correctly.
    index = 200_123
    line = index + 2  # 1-based line number, after the header
    chunk = (line - 1) // 50_000
    position = line - 1 - chunk * 50_000 - (1 if chunk == 0 else 0)
    assert batches[chunk].frame.row(position, named=True) == _expected_row(generated, index)
    assert batches[-1].frame.row(0, named=True) == _expected_row(generated, ROWS - 1)


def test_csv_yaml_mapping_path_and_zst(tmp_path: Path) -> None:
    data = _generated(1_000)
    path = tmp_path / "trades.csv.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(_csv_text(data).encode()))
    mapping_path = tmp_path / "mapping.yaml"
    mapping_path.write_text(render_yaml(TRADES_MAPPING))
    batches = list(get_reader("csv").read(path, _options(400, str(mapping_path))))
    assert [b.frame.height for b in batches] == [399, 400, 201]
    assert batches[2].frame.row(200, named=True) == _expected_row(data, 999)


def test_csv_bad_rows_are_rejected_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "id,time,price,qty,side\n"
        "1,1704067200000,100.5,1,buy\n"
        "2,yesterday,100.5,1,buy\n"
        "3,1704067200002,1o0.5,1,sell\n"
        "4,1704067200003,100.5,1,sell,extra\n"
        "5,1704067200004,100.5,,sell\n"
        "6,1704067200005,101.0,2,sell\n"
    )
    batches = list(get_reader("csv").read(path, _options(1_000)))
    frame = batches[0].frame
    assert frame["trade_id"].to_list() == ["1", "6"]
    rejected = {r["source_row"]: r for r in batches[0].rejected.to_dicts()}
    assert sorted(rejected) == [3, 4, 5, 6]
    assert rejected[3]["reason"] == "cannot read ts from source column 'time': 'yesterday'"
    assert rejected[3]["raw"] == "2,yesterday,100.5,1,buy"
    assert rejected[4]["reason"] == "cannot read price from source column 'price': '1o0.5'"
    assert rejected[5]["reason"] == "expected 5 fields, got 6"
    assert rejected[5]["raw"] == "4,1704067200003,100.5,1,sell,extra"
    assert rejected[6]["reason"] == "missing size: source column 'qty' is empty"


def test_csv_headerless_with_column_names_and_skip_rows(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text(
        "# exported by a vendor\n2024-01-02 09:30:00;10.5;3\n2024-01-02 09:30:01;10.6;4\n"
    )
    mapping = Mapping.model_validate(
        {
            "schema": "trades",
            "columns": {"price": "px", "size": "qty"},
            "time": {"column": "when", "format": "%Y-%m-%d %H:%M:%S", "timezone": "Asia/Kolkata"},
            "constants": {"instrument": "NIFTY"},
            "csv": {
                "has_header": False,
                "separator": ";",
                "column_names": ["when", "px", "qty"],
                "skip_rows": 1,
            },
        }
    )
    (batch,) = list(get_reader("csv").read(path, _options(10, mapping)))
    assert batch.frame["ts"].to_list() == [
        datetime(2024, 1, 2, 4, 0, 0, tzinfo=UTC),
        datetime(2024, 1, 2, 4, 0, 1, tzinfo=UTC),
    ]
    assert batch.frame["trade_id"].to_list() == ["2", "3"]  # source line numbers
    assert batch.frame["price"].to_list() == [10.5, 10.6]


def test_csv_without_mapping_points_to_infer(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a\n1\n")
    # The advice is the real command line (`ingest FORMAT PATH --infer`; there is no
    # --format option): tests/unit/ingest/test_ingest_errors.py runs it.
    with pytest.raises(MappingError, match=r"`ticklake ingest csv FILE --infer --schema trades"):
        list(get_reader("csv").read(path, ReaderOptions()))


def test_csv_truncated_gzip_raises_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv.gz"
    blob = gzip.compress(_csv_text(_generated(20_000)).encode())
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(IngestError, match=r"cut\.csv\.gz: file is corrupt or truncated after line"):
        list(get_reader("csv").read(path, _options(5_000)))


def test_jsonl_chunks_and_rejects_bad_lines(tmp_path: Path) -> None:
    data = _generated(2_500)
    lines = [
        json.dumps(
            {"id": int(i), "time": int(t), "price": float(p), "qty": float(q), "side": str(s)}
        )
        for i, t, p, q, s in zip(
            *(data[k] for k in ("id", "time", "price", "qty", "side")), strict=True
        )
    ]
    lines[1_234] = '{"id": 1235, "time": '  # truncated JSON
    lines[1_500] = ""  # blank line: not a row
    path = tmp_path / "trades.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    batches = list(get_reader("jsonl").read(path, _options(1_000)))
    assert [b.frame.height for b in batches] == [1_000, 998, 500]
    (bad,) = [r for b in batches for r in b.rejected.to_dicts()]
    assert bad["source_row"] == 1_235 and bad["reason"].startswith("invalid JSON")
    assert batches[2].frame.row(499, named=True) == _expected_row(data, 2_499)
    assert batches[1].frame.row(0, named=True) == _expected_row(data, 1_000)


def test_parquet_reads_by_bounded_batches(tmp_path: Path, generated: dict[str, np.ndarray]) -> None:
    path = tmp_path / "trades.parquet"
    pq.write_table(pa.table(generated), path, row_group_size=120_000)
    batches = list(get_reader("parquet").read(path, _options(50_000)))
    assert max(b.frame.height for b in batches) <= 50_000
    assert sum(b.frame.height for b in batches) == ROWS
    # pyarrow's iter_batches reads across the 3 row groups (120k, 120k, 60k).
    assert [b.frame.height for b in batches] == [50_000] * 6
    flat = [b.frame for b in batches]
    assert flat[-1].row(-1, named=True) == _expected_row(generated, ROWS - 1)
    assert flat[3].row(0, named=True) == _expected_row(generated, 150_000)


def test_parquet_real_trades_sample(shared_data: Path) -> None:
    path = shared_data / "nautilus-crypto-samples" / "binance" / "btcusdt-trades.parquet"
    mapping = Mapping.model_validate(
        {
            "schema": "trades",
            "columns": {
                "trade_id": "trade_id",
                "price": "price",
                "size": "quantity",
                "side": "buyer_maker",
            },
            "value_maps": {"side": {"true": "sell", "false": "buy"}},
            "time": {"column": "timestamp"},
            "constants": {"instrument": "BTCUSDT", "venue": "binance"},
        }
    )
    batches = list(get_reader("parquet").read(path, _options(500, mapping)))
    assert [b.frame.height for b in batches] == [500, 500, 500, 500, 1]
    raw = pq.read_table(path).to_pylist()  # independent reader
    assert len(raw) == 2_001
    for index in (0, 1, 777, 2_000):
        row = batches[index // 500].frame.row(index % 500, named=True)
        expected = raw[index]
        assert row["ts"] == expected["timestamp"]
        assert row["trade_id"] == str(expected["trade_id"])
        assert (row["price"], row["size"]) == (expected["price"], expected["quantity"])
        assert row["side"] == ("sell" if expected["buyer_maker"] == "True" else "buy")


def test_arrow_ipc_file_and_stream(tmp_path: Path) -> None:
    data = _generated(10_000)
    table = pa.table(data)
    file_path, stream_path = tmp_path / "t.arrow", tmp_path / "t.arrows"
    with pa.ipc.new_file(file_path, table.schema) as writer:
        for piece in table.to_batches(max_chunksize=4_000):
            writer.write_batch(piece)
    with pa.ipc.new_stream(stream_path, table.schema) as writer:
        writer.write_table(table)
    for path in (file_path, stream_path):
        batches = list(get_reader("arrow").read(path, _options(3_000)))
        assert max(b.frame.height for b in batches) <= 3_000
        assert sum(b.frame.height for b in batches) == 10_000
        assert batches[-1].frame.row(-1, named=True) == _expected_row(data, 9_999)


def test_arrow_and_parquet_corrupt_files_raise_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    pq.write_table(pa.table(_generated(1_000)), path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(IngestError, match=r"broken\.parquet: not a readable Parquet file"):
        list(get_reader("parquet").read(path, _options(100)))
    arrow_path = tmp_path / "broken.arrow"
    arrow_path.write_bytes(b"not arrow at all")
    with pytest.raises(IngestError, match=r"broken\.arrow: not a readable Arrow IPC"):
        list(get_reader("arrow").read(arrow_path, _options(100)))
