"""repack: same rows, new order and row groups, atomic, verify stays clean.

Option data comes from the vendor-format generator, ingested once per module through
the real NSE options reader; each test works on its own copy of that lake. Content is
checked with DuckDB (multiset difference with EXCEPT ALL), order with Polars
``is_sorted`` on the key, row groups with pyarrow's footer.
"""

from __future__ import annotations

import json
import math
import shutil
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app
from ticklake.errors import CommitError, ConfigError, CorruptPartitionError, SchemaMismatchError
from ticklake.generate.options import generate_options
from ticklake.ingest.pipeline import ingest_files
from ticklake.lake import Lake, commit
from ticklake.lake.layout import is_temp_file
from ticklake.lake.manifest import Manifest, sha256_file
from ticklake.lake.repack import repack

OPTION_SORT = ("expiry", "opt_type", "strike", "ts")
TIME_SORT = ("ts", "symbol")


@pytest.fixture(scope="module")
def option_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A lake holding one generated NSE option day (72 contracts, 1-minute grid)."""
    base = tmp_path_factory.mktemp("options")
    generate_options(
        "BANKNIFTY",
        start=date(2024, 1, 8),
        days=1,
        out=base / "generated",
        strikes_each_side=2,
        seconds_step=60,
    )
    lake = ticklake.init_lake(base / "lake")
    ingest_files(lake, "nse_options", [base / "generated" / "options"], "options")
    return base / "lake", base / "generated" / "options"


@pytest.fixture
def option_lake(option_template: tuple[Path, Path], tmp_path: Path) -> Lake:
    shutil.copytree(option_template[0], tmp_path / "lake")
    return ticklake.open_lake(tmp_path / "lake")


def _only_partition(lake: Lake, dataset: str) -> Path:
    (part,) = lake.partitions(dataset)
    return part.path


def _same_rows(a: Path | pl.DataFrame | pa.Table, b: Path | pl.DataFrame | pa.Table) -> bool:
    """Multiset equality in DuckDB: both EXCEPT ALL differences are empty."""
    con = duckdb.connect()
    for name, source in (("a", a), ("b", b)):
        if isinstance(source, Path):
            con.execute(
                f"CREATE VIEW {name} AS SELECT * FROM "
                f"read_parquet('{source}', hive_partitioning = false)"
            )
        else:
            con.register(name, source if isinstance(source, pa.Table) else source.to_arrow())
    count_a = con.execute("SELECT count(*) FROM a").fetchone()
    count_b = con.execute("SELECT count(*) FROM b").fetchone()
    only_a = con.execute(
        "SELECT count(*) FROM (SELECT * FROM a EXCEPT ALL SELECT * FROM b)"
    ).fetchone()
    only_b = con.execute(
        "SELECT count(*) FROM (SELECT * FROM b EXCEPT ALL SELECT * FROM a)"
    ).fetchone()
    return count_a == count_b and only_a == (0,) and only_b == (0,)


def _is_sorted(path: Path, key: tuple[str, ...]) -> bool:
    return bool(pl.read_parquet(path).select(pl.struct(list(key)).is_sorted()).item())


def _descriptor(lake: Lake, dataset: str) -> dict:
    return json.loads((lake.root / "bronze" / dataset / "_dataset.json").read_text())


def test_repack_keeps_rows_and_applies_sort_and_row_groups(
    option_lake: Lake, tmp_path: Path
) -> None:
    path = _only_partition(option_lake, "options")
    repack(option_lake, "options", sort=TIME_SORT, row_group_rows=2048)
    before = tmp_path / "before.parquet"
    shutil.copy(path, before)
    old_manifest = Manifest.read(path.parent / "_manifest.json")
    rows = pq.read_metadata(before).num_rows

    report = repack(option_lake, "options", sort=OPTION_SORT, row_group_rows=2048)

    assert _same_rows(before, path)
    # declared sort first, then the rest of the key: the order Lake.write merges into
    assert _is_sorted(path, (*OPTION_SORT, "symbol"))
    assert not _is_sorted(before, OPTION_SORT)
    meta = pq.read_metadata(path)
    assert meta.num_rows == rows
    assert meta.num_row_groups == math.ceil(rows / 2048)
    assert all(meta.row_group(i).num_rows <= 2048 for i in range(meta.num_row_groups))
    assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {"ZSTD"}

    descriptor = _descriptor(option_lake, "options")
    assert tuple(descriptor["schema"]["sort"]) == OPTION_SORT
    manifest = Manifest.read(path.parent / "_manifest.json")
    info = option_lake.dataset_info("options")
    assert manifest.schema_fingerprint == info.dataset_schema.fingerprint()
    assert manifest.lineage == old_manifest.lineage  # rows unchanged: lineage kept
    assert manifest.rows == rows and manifest.file_sha256 == sha256_file(path)
    assert option_lake.verify().ok

    (part,) = report.partitions
    assert report.sort_before == TIME_SORT and report.sort_after == OPTION_SORT
    assert part.rows == rows
    assert part.bytes_before == before.stat().st_size
    assert part.bytes_after == path.stat().st_size
    assert part.row_groups_before == pq.read_metadata(before).num_row_groups
    assert part.row_groups_after == meta.num_row_groups
    # Oracle for the probe: rows matching it, counted by DuckDB on the raw file.
    expiry, strike = _probe_values(part.probe)
    matching = (
        duckdb.connect()
        .execute(
            f"SELECT count(*) FROM read_parquet('{path}', hive_partitioning = false) "
            f"WHERE expiry = DATE '{expiry}' AND strike = {strike}"
        )
        .fetchone()
    )
    assert matching == (part.probe_rows,) and part.probe_rows > 0
    # Time-sorted row groups each hold every strike: nothing can be skipped. Sorted by
    # strike, the groups without the strike (all but a few) are skipped, and never one
    # that holds a matching row.
    groups_with_match = _row_groups_with_match(path, expiry, strike)
    assert part.row_groups_skipped_before == 0
    assert part.row_groups_skipped_after >= part.row_groups_after // 2
    assert part.row_groups_skipped_after <= part.row_groups_after - groups_with_match


def _probe_values(probe: str) -> tuple[str, float]:
    # "expiry = 2024-01-10 and strike = 47400.0" (one strike: the range is narrow here)
    expiry_part, strike_part = probe.split(" and ")
    return expiry_part.split(" = ")[1], float(strike_part.split(" = ")[1])


def _row_groups_with_match(path: Path, expiry: str, strike: float) -> int:
    parquet = pq.ParquetFile(path)
    wanted = date.fromisoformat(expiry)
    count = 0
    for i in range(parquet.num_row_groups):
        group = parquet.read_row_group(i, columns=["expiry", "strike"]).to_pylist()
        count += any(r["expiry"] == wanted and r["strike"] == strike for r in group)
    return count


def test_default_sort_and_day_range_leave_other_days_alone(
    lake: Lake, trades_frame: pl.DataFrame
) -> None:
    lake.write("trades", trades_frame, schema="trades", timezone="Asia/Kolkata")
    parts = lake.partitions("trades")
    assert len(parts) == 3
    manifests = {p.date: p.manifest for p in parts}
    fingerprint = lake.dataset_info("trades").dataset_schema.fingerprint()

    report = repack(lake, "trades", start=parts[1].date, end=parts[1].date)

    assert [p.day for p in report.partitions] == [parts[1].date]
    assert not report.sort_changed and report.row_group_rows == 262_144
    after = {p.date: p.manifest for p in lake.partitions("trades")}
    assert after[parts[0].date] == manifests[parts[0].date]
    assert after[parts[2].date] == manifests[parts[2].date]
    rewritten, old = after[parts[1].date], manifests[parts[1].date]
    assert rewritten is not None and old is not None
    assert rewritten.written_at != old.written_at and rewritten.rows == old.rows
    assert lake.dataset_info("trades").dataset_schema.fingerprint() == fingerprint
    assert lake.verify().ok


def test_bad_requests_are_refused_and_change_nothing(
    lake: Lake, trades_frame: pl.DataFrame
) -> None:
    lake.write("trades", trades_frame, schema="trades", timezone="Asia/Kolkata")
    descriptor = _descriptor(lake, "trades")
    shas = [p.manifest.file_sha256 for p in lake.partitions("trades") if p.manifest]
    with pytest.raises(SchemaMismatchError, match="cannot sort by strike"):
        repack(lake, "trades", sort=("strike", "ts"))
    with pytest.raises(SchemaMismatchError, match="names ts more than once"):
        repack(lake, "trades", sort=("ts", "ts"))
    with pytest.raises(ConfigError, match="drop --start/--end"):
        repack(lake, "trades", sort=("instrument", "ts"), start="2024-01-03")
    with pytest.raises(ConfigError, match="at least 1,024"):
        repack(lake, "trades", row_group_rows=100)
    assert _descriptor(lake, "trades") == descriptor
    assert [p.manifest.file_sha256 for p in lake.partitions("trades") if p.manifest] == shas


def test_later_writes_merge_in_the_new_order(lake: Lake, trades_frame: pl.DataFrame) -> None:
    lake.write("trades", trades_frame, schema="trades", timezone="Asia/Kolkata")
    repack(lake, "trades", sort=("instrument", "ts"))
    first_day = lake.partitions("trades")[0]
    old = pl.read_parquet(first_day.path)
    # Corrections for ten existing trades (new price) plus twenty new ones, same day.
    corrected = old.head(10).with_columns(pl.col("price") + 0.05)
    added = old.tail(20).with_columns(
        pl.col("trade_id") + "-late", pl.col("ts") + pl.duration(microseconds=1, time_unit="ns")
    )
    lake.write("trades", pl.concat([corrected, added]))

    con = duckdb.connect()
    con.register("old", old.to_arrow())
    con.register("new", pl.concat([corrected, added]).to_arrow())
    expected = con.sql(
        "SELECT old.* FROM old ANTI JOIN new USING (instrument, ts, trade_id) "
        "UNION ALL SELECT * FROM new"
    ).to_arrow_table()
    assert expected.num_rows == old.height + 20
    assert _same_rows(first_day.path, expected)
    assert _is_sorted(first_day.path, ("instrument", "ts", "trade_id"))
    assert lake.verify().ok


def test_failure_at_replace_leaves_the_old_partition(
    option_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _only_partition(option_lake, "options")
    manifest_path = path.parent / "_manifest.json"
    sha, manifest_text = sha256_file(path), manifest_path.read_text()

    def fail(step: str) -> None:
        if step == "replace_data":
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(commit, "FAULT_HOOK", fail)
    with pytest.raises(CommitError, match="replace_data"):
        repack(option_lake, "options", row_group_rows=2048)
    assert sha256_file(path) == sha and manifest_path.read_text() == manifest_text
    assert sorted(p.name for p in path.parent.iterdir()) == ["_manifest.json", "data.parquet"]
    assert option_lake.verify().ok

    # With a sort change the descriptor is updated first: the partition not yet
    # rewritten shows as a schema mismatch until the same repack is run again.
    with pytest.raises(CommitError):
        repack(option_lake, "options", sort=OPTION_SORT, row_group_rows=2048)
    assert sha256_file(path) == sha
    assert [p.kind for p in option_lake.verify().problems] == ["schema_mismatch"]
    monkeypatch.setattr(commit, "FAULT_HOOK", None)
    repack(option_lake, "options", sort=OPTION_SORT, row_group_rows=2048)
    assert option_lake.verify().ok
    assert pq.read_metadata(path).num_row_groups > 1


def test_rewrite_that_loses_a_row_is_refused(
    option_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _only_partition(option_lake, "options")
    sha = sha256_file(path)
    write = commit.write_parquet

    def lossy(table, target, **kwargs):  # a writer bug: drops the last row
        write(table.slice(0, table.num_rows - 1), target, **kwargs)

    monkeypatch.setattr(commit, "write_parquet", lossy)
    with pytest.raises(CorruptPartitionError, match="does not hold the same rows"):
        repack(option_lake, "options", row_group_rows=2048)
    assert sha256_file(path) == sha
    assert not [p for p in path.parent.iterdir() if is_temp_file(p.name)]
    assert option_lake.verify().ok


def test_damaged_file_is_not_laundered(option_lake: Lake) -> None:
    path = _only_partition(option_lake, "options")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptPartitionError, match="sha256 differs"):
        repack(option_lake, "options")
    assert path.read_bytes() == bytes(data)


def test_ingest_after_sort_change(option_lake: Lake, option_template: tuple[Path, Path]) -> None:
    repack(option_lake, "options", sort=OPTION_SORT)
    ingest_files(option_lake, "nse_options", [option_template[1]], "options", force=True)
    assert _is_sorted(_only_partition(option_lake, "options"), (*OPTION_SORT, "symbol"))


def test_cli_repack_prints_the_table(option_lake: Lake) -> None:
    rows = pq.read_metadata(_only_partition(option_lake, "options")).num_rows
    result = CliRunner().invoke(
        app,
        [
            "lake",
            "repack",
            "options",
            "--lake",
            str(option_lake.root),
            "--sort",
            "expiry,opt_type,strike,ts",
            "--row-group-rows",
            "2048",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "sort expiry, opt_type, strike, ts, 2,048 rows per row group" in result.output
    day = next(line for line in result.output.splitlines() if "2024-01-08" in line)
    assert f"{rows:,}" in day
    assert f"1 → {math.ceil(rows / 2048)}" in day
    assert "probe query (per day, best of 3): expiry = " in result.output
    assert "declared sort changed from underlying, expiry, opt_type, strike, ts" in result.output

    bad = CliRunner().invoke(
        app, ["lake", "repack", "options", "--lake", str(option_lake.root), "--sort", "nope"]
    )
    assert bad.exit_code != 0
    assert "cannot sort by nope" in bad.output and "Traceback" not in bad.output


def test_datetime_bounds_pick_trading_days(lake: Lake, trades_frame: pl.DataFrame) -> None:
    lake.write("trades", trades_frame, schema="trades", timezone="Asia/Kolkata")
    days = [p.date for p in lake.partitions("trades")]
    report = repack(lake, "trades", start=datetime(2024, 1, 3), end=days[-1])
    assert [p.day for p in report.partitions] == days[1:]


# ------------------------------------------------------ per-dataset row group size
def test_option_snapshots_are_cut_in_65536_row_groups_and_others_keep_the_lake_setting(
    tmp_path: Path, trades_frame: pl.DataFrame
) -> None:
    from ticklake.schemas.canonical import OPTION_ROW_GROUP_ROWS

    # Two contracts of one more 1-second row than a group holds (an IST day from its
    # midnight): the cut lands exactly at the size.
    lake = ticklake.init_lake(tmp_path / "lake")
    seconds = OPTION_ROW_GROUP_ROWS + 1  # one more row than a group holds, per contract
    start = datetime(2024, 1, 7, 18, 30)  # 2024-01-08 00:00 IST
    frame = pl.DataFrame(
        {
            "ts": pl.datetime_range(
                start,
                start + pl.duration(seconds=seconds - 1),
                "1s",
                eager=True,
                time_zone="UTC",
            ),
        }
    )
    rows = []
    for strike in (47_000.0, 47_100.0):
        rows.append(
            frame.with_columns(
                symbol=pl.lit(f"BANKNIFTY24JAN{int(strike)}CE"),
                underlying=pl.lit("BANKNIFTY"),
                expiry=pl.lit(date(2024, 1, 10)),
                strike=pl.lit(strike),
                opt_type=pl.lit("CE"),
                last_price=pl.lit(100.0),
            )
        )
    options = pl.concat(rows)
    lake.write("chain", options, schema="option_snapshots", timezone="Asia/Kolkata")
    (part,) = lake.partitions("chain")
    meta = pq.read_metadata(part.path)
    assert meta.num_rows == 2 * seconds
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert max(sizes) == OPTION_ROW_GROUP_ROWS  # exactly at the size, never above
    assert meta.num_row_groups == math.ceil(2 * seconds / OPTION_ROW_GROUP_ROWS)
    schema = lake.dataset_info("chain").dataset_schema
    assert schema.row_group_rows == OPTION_ROW_GROUP_ROWS
    # Trades have no size of their own: the lake's (262,144) applies; 1 group here.
    lake.write("trades", trades_frame, schema="trades", timezone="Asia/Kolkata")
    assert lake.dataset_info("trades").dataset_schema.row_group_rows is None
    # The size is not part of the fingerprint (it changes how files are cut).
    import dataclasses

    assert dataclasses.replace(schema, row_group_rows=None).fingerprint() == schema.fingerprint()


def test_a_whole_repack_to_another_size_makes_it_the_datasets_own(option_lake: Lake) -> None:
    path = _only_partition(option_lake, "options")
    before = option_lake.dataset_info("options").dataset_schema.row_group_rows
    # A day range repacks those days only and keeps the dataset's size.
    day = option_lake.partitions("options")[0].date
    repack(option_lake, "options", row_group_rows=2048, start=day, end=day)
    assert option_lake.dataset_info("options").dataset_schema.row_group_rows == before
    repack(option_lake, "options", row_group_rows=2048)
    assert _descriptor(option_lake, "options")["schema"]["row_group_rows"] == 2048
    # A later merge keeps cutting 2,048-row groups.
    frame = option_lake.scan("options").collect()
    changed = frame.with_columns(pl.col("last_price") + 1)
    option_lake.write("options", changed)
    meta = pq.read_metadata(path)
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) == 2048
    assert option_lake.verify().ok
