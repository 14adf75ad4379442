"""Per-contract option files spanning several trading days (as vendors ship them).

Oracles: the same rows given as one-day files, and a pyarrow read of the inputs
grouped by IST day (NSE trades 09:15-15:30 IST; one extra row at 00:10 IST lies on
the previous UTC date but belongs to the IST day).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ticklake
from ticklake.errors import ExecutionError
from ticklake.generate import generate_options
from ticklake.ingest.pipeline import files as pipeline_files
from ticklake.ingest.pipeline import ingest_files, staging

EARLY = datetime(2024, 1, 10, 0, 10)  # IST wall clock: 2024-01-09 18:40 UTC


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(folder of one-day files in day folders, folder of multi-day files): same rows."""
    out = tmp_path_factory.mktemp("multiday")
    summary = generate_options(
        "BANKNIFTY",
        start=date(2024, 1, 8),
        days=3,
        out=out,
        seed=3,
        strikes_each_side=1,
        seconds_step=120,
    )
    by_name: dict[str, list[Path]] = {}
    for day in summary.dates:
        for path in sorted((out / "options" / day.isoformat()).glob("*.parquet")):
            by_name.setdefault(path.name, []).append(path)
    # A 00:10 IST snapshot on day 2 of the first contract that trades every day.
    name = next(n for n, paths in sorted(by_name.items()) if len(paths) == 3)
    day2 = pq.read_table(by_name[name][1])
    early = day2.slice(0, 1)
    for column in ("ts", "timestamp"):
        index = early.schema.get_field_index(column)
        early = early.set_column(index, column, pa.array([EARLY], pa.timestamp("ns")))
    pq.write_table(pa.concat_tables([early, day2]), by_name[name][1])
    multi = out / "multi"
    multi.mkdir()
    for file_name, paths in by_name.items():
        pq.write_table(pa.concat_tables([pq.read_table(p) for p in paths]), multi / file_name)
    return out / "options", multi


def _partitions(lake: ticklake.Lake) -> dict[str, pl.DataFrame]:
    root = lake.root / "bronze" / "options"
    return {p.parent.name[5:]: pl.read_parquet(p) for p in sorted(root.glob("date=*/data.parquet"))}


def _expected(multi: Path) -> dict[str, tuple[int, int]]:
    """Rows and sum of UTC ns of ``ts`` per IST day, straight from the vendor files."""
    table = pa.concat_tables([pq.read_table(p, columns=["ts"]) for p in multi.glob("*.parquet")])
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    grouped = frame.group_by(pl.col("ts").dt.date().alias("day")).agg(
        pl.len(), (pl.col("ts").dt.epoch("ns") - 19_800 * 10**9).sum().alias("ns")
    )
    return {d.isoformat(): (n, ns) for d, n, ns in grouped.iter_rows()}


def _observed(parts: dict[str, pl.DataFrame]) -> dict[str, tuple[int, int]]:
    return {d: (f.height, int(f["ts"].dt.epoch("ns").sum())) for d, f in parts.items()}


def test_multiday_files_commit_what_one_day_files_do(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    one_day, multi = inputs
    lake_a = ticklake.init_lake(tmp_path / "a")
    lake_b = ticklake.init_lake(tmp_path / "b")
    days_dirs = sorted(p for p in one_day.iterdir() if p.is_dir())
    ingest_files(lake_a, "nse_options", days_dirs, "options")
    summary = ingest_files(lake_b, "nse_options", [multi], "options")
    assert not summary.failed and summary.rows_quarantined == 0
    a, b = _partitions(lake_a), _partitions(lake_b)
    assert sorted(b) == ["2024-01-08", "2024-01-09", "2024-01-10"]
    assert sorted(a) == sorted(b)
    for day in a:
        assert a[day].equals(b[day]), day
    assert _observed(b) == _expected(multi)
    early = b["2024-01-10"].filter(pl.col("ts") == pl.datetime(2024, 1, 9, 18, 40, time_zone="UTC"))
    assert early.height == 1  # previous UTC date, IST day 2024-01-10


def test_multiday_batches_spill_their_days_to_disk(
    inputs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory holds no day of a multi-day batch: every staged part is on disk."""
    _, multi = inputs
    lake = ticklake.init_lake(tmp_path / "lake")
    seen: list[tuple[str, int, bool]] = []
    real = pipeline_files.commit_day

    def spy(task: pipeline_files.DayTask) -> object:
        on_disk = all(Path(p).stat().st_size > 0 for p in task.parts)
        seen.append((task.day, len(staging._memory_spool), on_disk))
        return real(task)

    monkeypatch.setattr(pipeline_files, "commit_day", spy)
    ingest_files(lake, "nse_options", [multi], "options")
    assert [day for day, _, _ in seen] == ["2024-01-08", "2024-01-09", "2024-01-10"]
    assert all(count == 0 and on_disk for _, count, on_disk in seen)
    assert staging._memory_spool == {} and staging._memory_day == {}


def test_failure_in_day_two_leaves_whole_days_and_rerun_completes(
    inputs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, multi = inputs
    lake = ticklake.init_lake(tmp_path / "lake")
    real = pipeline_files.commit_day

    def failing(task: pipeline_files.DayTask) -> object:
        if task.day == "2024-01-09":
            raise OSError("disk went away during day 2")
        return real(task)

    monkeypatch.setattr(pipeline_files, "commit_day", failing)
    with pytest.raises(ExecutionError, match="day 2"):
        ingest_files(lake, "nse_options", [multi], "options")
    expected = _expected(multi)
    parts = _partitions(lake)
    assert sorted(parts) == ["2024-01-08"]  # committed whole, nothing of days 2 and 3
    assert _observed(parts)["2024-01-08"] == expected["2024-01-08"]
    assert lake.ingested_sources("options") == {}  # not recorded: a re-run reads them again
    assert not list((lake.root / "_staging").glob("*"))

    monkeypatch.setattr(pipeline_files, "commit_day", real)
    summary = ingest_files(lake, "nse_options", [multi], "options")
    assert not summary.failed
    assert _observed(_partitions(lake)) == expected
    assert len(lake.ingested_sources("options")) == len(list(multi.glob("*.parquet")))
    again = ingest_files(lake, "nse_options", [multi], "options")
    assert len(again.skipped) == len(again.files)
