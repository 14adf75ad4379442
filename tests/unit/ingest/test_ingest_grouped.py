"""Small files staged in groups (``Reader.read_files``) commit exactly what one-by-one does.

The oracle is the per-file path (each file streamed through ``Reader.read`` in its own
stage task), run on the same inputs in another lake: partitions, quarantine (file, row,
reason) and the failed-file messages must be identical.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ticklake
from ticklake.generate import generate_options
from ticklake.ingest.pipeline import IngestSummary, ingest_files
from ticklake.ingest.pipeline import staging as pipeline
from ticklake.ingest.readers.nse_options import NseOptionsReader
from ticklake.lake.layout import QUARANTINE_DIR


@pytest.fixture(scope="module")
def option_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated per-contract files plus the awkward cases, in one folder."""
    out = tmp_path_factory.mktemp("grouped")
    generate_options(
        "BANKNIFTY",
        start=date(2024, 1, 9),
        days=1,
        out=out,
        seed=5,
        strikes_each_side=1,
        seconds_step=30,
    )
    folder = out / "options" / "2024-01-09"
    files = sorted(folder.glob("*.parquet"))
    # Rows without any usable time (quarantined with their row number).
    table = pq.read_table(files[0])
    times = table.column("ts").to_pylist()
    stamps = table.column("timestamp").to_pylist()
    for row in (3, 17):
        times[row] = None
        stamps[row] = None
    last = table.column("lastTradeTime").to_pylist()
    last[3] = last[17] = None
    table = table.set_column(
        table.schema.get_field_index("ts"), "ts", pa.array(times, pa.timestamp("ns"))
    )
    table = table.set_column(
        table.schema.get_field_index("timestamp"), "timestamp", pa.array(stamps, pa.timestamp("ns"))
    )
    table = table.set_column(
        table.schema.get_field_index("lastTradeTime"),
        "lastTradeTime",
        pa.array(last, pa.timestamp("ns")),
    )
    # A negative volume fails the row checks after mapping.
    volumes = table.column("volume").to_pylist()
    volumes[5] = -5
    table = table.set_column(
        table.schema.get_field_index("volume"), "volume", pa.array(volumes, pa.int64())
    )
    pq.write_table(table, files[0])
    # A truncated file, and a file whose contract cannot be told.
    data = files[1].read_bytes()
    (folder / "banknifty24jan47000ce.parquet").write_bytes(data[: len(data) // 2])
    # Intact footer, damaged data pages: the one-scan read must fall back and name it.
    damaged = bytearray(files[3].read_bytes())
    for offset in range(200, len(damaged) // 2, 97):
        damaged[offset] ^= 0x5A
    (folder / "banknifty24jan46000pe.parquet").write_bytes(bytes(damaged))
    unknown = pq.read_table(files[2]).drop_columns(["symbol"])
    pq.write_table(unknown, folder / "mystery.parquet")
    # The same contract twice with one different value: a cross-file conflict.
    clash = pq.read_table(files[2])
    clash = clash.set_column(
        clash.schema.get_field_index("oi"), "oi", pa.array([7] * clash.num_rows, pa.int64())
    )
    pq.write_table(clash, folder / "zz-copy-of-contract.parquet")
    return folder


def _ingest(root: Path, source: Path) -> tuple[IngestSummary, ticklake.Lake]:
    lake = ticklake.init_lake(root)
    return ingest_files(lake, "nse_options", [source], "options"), lake


def _state(summary: IngestSummary, lake: ticklake.Lake) -> dict[str, object]:
    quarantine = sorted((lake.root / QUARANTINE_DIR).rglob("*.parquet"))
    q = pl.concat([pl.read_parquet(p) for p in quarantine]) if quarantine else pl.DataFrame()
    return {
        "rows": lake.read("options").sort("symbol", "ts").to_dicts(),
        # Conflicts are labelled with the (random) ingest id: compare without it.
        "quarantine": sorted(
            q.with_columns(pl.col("source").str.replace(r" ingest \S+$", " ingest"))
            .drop("ingest_id")
            .rows(),
            key=repr,
        )
        if q.height
        else [],
        "files": [
            (f.label, f.status, f.rows_read, f.rows_valid, f.rows_rejected, f.days, f.error)
            for f in summary.files
        ],
        "days": [(d.day, d.rows_in, d.conflicts_quarantined) for d in summary.days],
    }


def test_grouped_equals_one_by_one(
    option_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grouped = _state(*_ingest(tmp_path / "grouped", option_files))
    monkeypatch.setattr(NseOptionsReader, "reads_many_files", False)
    single = _state(*_ingest(tmp_path / "single", option_files))
    assert grouped == single
    # And the cases really happened:
    statuses = {
        label.rsplit("/", 1)[-1]: (status, error) for label, status, *_, error in grouped["files"]
    }  # type: ignore[union-attr]
    assert statuses["banknifty24jan47000ce.parquet"][0] == "failed"
    assert "truncated or corrupt" in statuses["banknifty24jan47000ce.parquet"][1]
    assert statuses["mystery.parquet"][0] == "failed"
    assert "cannot tell the contract" in statuses["mystery.parquet"][1]
    reasons = [row[3] for row in grouped["quarantine"]]  # type: ignore[union-attr]
    assert (
        reasons.count("time: none of ts, timestamp, lastTradeTime holds a parseable date-time") == 2
    )
    # Rows 4 and 18 have no time; row 6 a negative volume, now caught by the reader with
    # its row number (it used to reach the row checks, which know no row number).
    assert {row[1] for row in grouped["quarantine"] if row[1] is not None} == {4, 6, 18}  # type: ignore[union-attr]
    assert "volume is negative or not finite" in reasons
    damaged = statuses["banknifty24jan46000pe.parquet"]
    assert damaged[0] == "failed"
    assert "banknifty24jan46000pe.parquet: Parquet data is corrupt" in damaged[1]
    assert sum(d[2] for d in grouped["days"]) > 0  # type: ignore[union-attr]


def test_grouped_read_crash_falls_back_to_one_by_one(
    option_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _state(*_ingest(tmp_path / "grouped", option_files))

    def crash(self: object, paths: object, options: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(NseOptionsReader, "read_files", crash)
    assert _state(*_ingest(tmp_path / "fallback", option_files)) == expected


def test_groups_are_bounded_and_keep_input_order(
    option_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = pipeline.expand_inputs(
        [option_files], suffixes=(".parquet",), reads_zip=False, staging=option_files
    )
    monkeypatch.setattr(pipeline, "GROUP_FILES", 3)
    groups = pipeline._group_sources(sources, together=True)
    assert [i for group in groups for i, _ in group] == list(range(len(sources)))
    assert max(len(g) for g in groups) == 3
    assert pipeline._group_sources(sources, together=False) == [
        ((i, s),) for i, s in enumerate(sources)
    ]


def test_memory_spool_is_released_after_the_run(option_files: Path, tmp_path: Path) -> None:
    _ingest(tmp_path / "lake", option_files)
    assert pipeline._memory_spool == {}
    assert not (tmp_path / "lake" / "_staging").exists()


def test_time_in_a_dst_gap_falls_through_to_the_next_column(tmp_path: Path) -> None:
    # 02:30 on 2024-03-10 does not exist in New York; the rule then uses `timestamp`.
    from datetime import datetime

    from ticklake.ingest.readers import ReaderOptions, get_reader

    path = tmp_path / "banknifty24jan48000ce.parquet"
    pq.write_table(
        pa.table(
            {
                "ts": pa.array(
                    [datetime(2024, 3, 10, 2, 30), datetime(2024, 3, 10, 4, 0), None],
                    pa.timestamp("ns"),
                ),
                "timestamp": pa.array(
                    [datetime(2024, 3, 10, 3, 15), datetime(2024, 3, 10, 4, 1), None],
                    pa.timestamp("ns"),
                ),
                "price": [10.0, 11.0, 12.0],
            }
        ),
        path,
    )
    options = ReaderOptions(timezone="America/New_York")
    reader = get_reader("nse_options")
    (batch,) = reader.read(path, options)
    # 03:15 EDT = 07:15 UTC; 04:00 EDT = 08:00 UTC (hand-computed).
    assert batch.frame["ts"].dt.to_string("%H:%M").to_list() == ["07:15", "08:00"]
    assert batch.rejected["source_row"].to_list() == [3]
    together = reader.read_files([path], options)
    assert together.frame.drop("__file").equals(batch.frame)
    assert together.rejected.drop("__file").equals(batch.rejected)


def test_progress_is_reported_once_per_file(option_files: Path, tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    lake = ticklake.init_lake(tmp_path / "lake")
    ingest_files(
        lake,
        "nse_options",
        [option_files],
        "options",
        progress=lambda phase, index, total, note: calls.append((phase, index, total)),
    )
    reads = [(index, total) for phase, index, total in calls if phase == "read"]
    total = len(list(option_files.glob("*.parquet")))
    assert sorted(reads) == [(i, total) for i in range(total)]


@pytest.mark.parametrize("sorted_input", [True, False])
def test_conflict_resolution_matches_a_plain_polars_oracle(sorted_input: bool) -> None:
    from ticklake.ingest.pipeline.commit import _resolve_conflicts

    key = ["instrument", "ts", "trade_id"]
    rows = [
        ("A", 1, "x", 1.0),
        ("A", 1, "x", 1.0),  # identical duplicate: kept once
        ("A", 2, "y", 2.0),
        ("A", 2, "y", 3.0),  # same key, other value: the first wins
        ("B", 2, "y", 4.0),
        ("B", 3, None, 5.0),
        ("B", 3, None, 5.0),
    ]
    frame = pl.DataFrame(rows, schema=["instrument", "ts", "trade_id", "price"], orient="row")
    if not sorted_input:
        frame = frame.reverse()
    order = ["ts", "instrument", "trade_id"]
    if sorted_input:
        frame = frame.sort(order, maintain_order=True)
    kept, losers = _resolve_conflicts(frame, key, order)
    distinct = frame.unique(maintain_order=True)
    expected = distinct.unique(subset=key, keep="first", maintain_order=True)
    assert kept.rows() == expected.rows()
    assert losers.height == distinct.height - expected.height == 1
    unique = pl.DataFrame({"instrument": ["A", "B"], "ts": [1, 1], "trade_id": ["x", "x"]})
    assert _resolve_conflicts(unique.sort(order), key, order)[0].height == 2


def test_contract_files_come_in_partition_order_so_the_day_is_not_sorted_again(
    option_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ticklake.lake import merge as lake_module

    checks: list[bool] = []
    real = lake_module.is_sorted_by

    def spy(frame: pl.DataFrame, columns: list[str]) -> bool:
        result = real(frame, columns)
        checks.append(result)
        return result

    monkeypatch.setattr(lake_module, "is_sorted_by", spy)
    in_name_order = _state(*_ingest(tmp_path / "by_name", option_files))
    # The merge found the day already in the partition's order: no sort was needed.
    assert checks and all(checks)
    # The files given one by one in reverse commit the same rows and the same conflicts.
    files = sorted(option_files.glob("*.parquet"), reverse=True)
    lake = ticklake.init_lake(tmp_path / "reversed")
    reversed_state = _state(ingest_files(lake, "nse_options", files, "options"), lake)
    assert reversed_state["rows"] == in_name_order["rows"]
    assert reversed_state["quarantine"] == in_name_order["quarantine"]
    # Oracle: pandas' stable sort by the dataset's order leaves the partition unchanged.
    (part,) = lake.partition_files("options")
    stored = pq.read_table(part).to_pandas()
    ordered = stored.sort_values(
        ["underlying", "expiry", "opt_type", "strike", "ts"], kind="stable"
    ).reset_index(drop=True)
    assert stored.equals(ordered)
