"""The generic CSV reader's typed fast path gives exactly what the careful string path gives.

Oracle: the careful path itself (all-string parse, then the mapping's casts, line-by-line
fallback for malformed chunks), run on the same file, plus DuckDB's ``read_csv`` for the
values of the clean rows.
"""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ticklake
from ticklake.ingest.mapping import Mapping
from ticklake.ingest.pipeline import ingest_files
from ticklake.ingest.readers import ReaderOptions, generic, get_reader
from ticklake.ingest.readers.generic import CsvReader, iter_csv_frames, map_frames

MAPPING = {
    "schema": "trades",
    "columns": {"trade_id": "id", "price": "price", "size": "qty", "side": "is_buyer_maker"},
    "value_maps": {"side": {"true": "sell", "false": "buy"}},
    "time": {"column": "time", "unit": "ms"},
    "constants": {"instrument": "BTCUSDT", "venue": "binance"},
}
HEADER = "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n"
T0 = 1_704_067_200_000


def _good_line(i: int) -> str:
    size = f"{0.001 * (i % 7 + 1):.3f}"
    return f"{1000 + i},{42000 + i / 4},{size},1.0,{T0 + i * 10},{i % 2 == 0},True\n"


BAD_LINES = {
    "bad number": "2000,not-a-price,0.5,1.0,{t},true,True\n",
    "bad time": "2001,42000.5,0.5,1.0,yesterday,true,True\n",
    "too many fields": "2002,42000.5,0.5,1.0,{t},true,True,extra\n",
    "too few fields": "2003,42000.5\n",
    "quoted comma": '2004,"42,000.5",0.5,1.0,{t},false,True\n',
    "quoted newline": '2005,42000.5,0.5,"1.0\nmore",{t},false,True\n',
    "unbalanced quote": '2006,"42000.5,0.5,1.0,{t},false,True\n',
    "float for int time": "2007,42000.5,0.5,1.0,{t}.0,false,True\n",
    "padded number": "2008, 42000.5 ,0.5,1.0,{t},false,True\n",
    "negative size": "2009,42000.5,-0.5,1.0,{t},false,True\n",
    "blank line": "\n",
    "unknown side": "2010,42000.5,0.5,1.0,{t},maybe,True\n",
}


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text(HEADER + "".join(lines))
    return path


def _careful(path: Path, batch_rows: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    mapping = Mapping.from_dict(MAPPING)
    batches = list(
        map_frames(iter_csv_frames(path, mapping.csv, batch_rows), mapping, source=str(path))
    )
    return pl.concat([b.frame for b in batches]), pl.concat([b.rejected for b in batches])


def _fast(path: Path, batch_rows: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    options = ReaderOptions(batch_rows=batch_rows, extra={"mapping": Mapping.from_dict(MAPPING)})
    batches = list(get_reader("csv").read(path, options))
    return pl.concat([b.frame for b in batches]), pl.concat([b.rejected for b in batches])


@pytest.mark.parametrize("case", sorted(BAD_LINES))
@pytest.mark.parametrize("batch_rows", [7, 1_000])
def test_each_bad_line_gives_the_careful_result(tmp_path: Path, case: str, batch_rows: int) -> None:
    lines = [_good_line(i) for i in range(40)]
    lines.insert(23, BAD_LINES[case].format(t=T0 + 5))
    path = _write(tmp_path / "trades.csv", lines)
    fast, careful = _fast(path, batch_rows), _careful(path, batch_rows)
    assert fast[0].equals(careful[0])
    assert fast[1].equals(careful[1])


def test_clean_file_values_match_duckdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "trades.csv", [_good_line(i) for i in range(2_500)])

    def no_careful_parse(*args: object) -> None:
        raise AssertionError("a clean chunk must not need the careful string parse")

    monkeypatch.setattr(generic, "_string_frame", no_careful_parse)
    frame, rejected = _fast(path, 1_000)
    assert rejected.height == 0
    oracle = duckdb.sql(
        f"SELECT CAST(id AS VARCHAR) AS trade_id, price, qty AS size, "
        f"CASE WHEN is_buyer_maker THEN 'sell' ELSE 'buy' END AS side, "
        f"epoch_ms(time) AS ts FROM read_csv('{path}') ORDER BY id"
    ).pl()
    assert frame["trade_id"].to_list() == oracle["trade_id"].to_list()
    assert frame["price"].to_list() == oracle["price"].to_list()
    assert frame["size"].to_list() == oracle["size"].to_list()
    assert frame["side"].to_list() == oracle["side"].to_list()
    expected_ms = [T0 + i * 10 for i in range(2_500)]
    assert (frame["ts"].dt.epoch("ns") // 1_000_000).to_list() == expected_ms


_numberish = st.sampled_from(
    ["1.5", " 2.5", "3.5 ", "inf", "-inf", "NaN", "1e3", ".5", "5.", "+1", "1_0", "0x1",
     "--1", "", "7", "-0", "1.5.", "Infinity", '"8.5"', "9e999", "1,5"]
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_numberish, _numberish, st.sampled_from(["10", "10.0", "x", ""])),
                min_size=1, max_size=25), st.integers(1, 9))  # fmt: skip
def test_random_number_texts_give_the_careful_result(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str, str]], batch_rows: int
) -> None:
    path = tmp_path_factory.mktemp("csv") / "trades.csv"
    lines = [
        f"{1000 + i},{price},{qty},1.0,{T0 + int(t) if t.isdigit() else t},true,True\n"
        for i, (price, qty, t) in enumerate(rows)
    ]
    _write(path, lines)
    fast, careful = _fast(path, batch_rows), _careful(path, batch_rows)
    assert fast[0].equals(careful[0])
    assert fast[1].equals(careful[1])


def test_ingest_commits_the_same_partitions_and_quarantine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    random.seed(3)
    lines = [_good_line(i) for i in range(3_000)]
    for case in sorted(BAD_LINES):
        lines.insert(random.randrange(len(lines)), BAD_LINES[case].format(t=T0 + 7))
    path = _write(tmp_path / "trades.csv", lines)
    mapping = tmp_path / "mapping.yml"
    import yaml

    mapping.write_text(yaml.safe_dump(MAPPING))

    def state(root: Path) -> tuple[list, list]:
        lake = ticklake.init_lake(root)
        ingest_files(
            lake,
            "csv",
            [path],
            "trades",
            options=ReaderOptions(batch_rows=500, extra={"mapping": mapping}),
        )
        quarantine = pl.concat(
            [pl.read_parquet(p) for p in sorted((root / "quarantine").rglob("*.parquet"))]
        )
        return (
            lake.read("trades").rows(),
            sorted(quarantine.drop("ingest_id").rows(), key=repr),
        )

    fast = state(tmp_path / "fast")
    monkeypatch.setattr(CsvReader, "read", lambda self, p, o: _careful_batches(p, o))
    careful = state(tmp_path / "careful")
    assert fast == careful
    assert len(fast[1]) >= 8  # the bad lines really were quarantined


def _careful_batches(path: Path, options: ReaderOptions):  # type: ignore[no-untyped-def]
    mapping = options.extra["mapping"]
    mapping = mapping if isinstance(mapping, Mapping) else Mapping.from_yaml(mapping)
    return map_frames(
        iter_csv_frames(Path(path), mapping.csv, options.batch_rows), mapping, source=str(path)
    )
