"""``Lake.write(mode="replace")``: a rebuild leaves no stale rows, and touches nothing else.

The oracle is a plain dict of rows keyed like the dataset, with each row's trading day
computed by ``zoneinfo`` (Kolkata), independently of the lake's partitioning code.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_lake_write import (
    BASE_NS,
    PROPERTY_SETTINGS,
    file_hashes,
    frame_from,
    keys,
    new_lake,
    row_values,
    stored,
    write,
)

from ticklake.errors import CommitError, ConfigError
from ticklake.lake.lake import Lake

KOLKATA = ZoneInfo("Asia/Kolkata")


def trading_day(key: tuple) -> date:
    moment = datetime.fromtimestamp((BASE_NS + key[1]) / 1e9, tz=UTC)
    return moment.astimezone(KOLKATA).date()


def replace(lake: Lake, rows: dict[tuple, tuple], replace_by: tuple[str, ...] = ()):
    return lake.write("ticks", frame_from(rows), mode="replace", replace_by=replace_by)


@PROPERTY_SETTINGS
@given(
    old=st.dictionaries(keys, row_values, min_size=1, max_size=40),
    new=st.dictionaries(keys, row_values, min_size=1, max_size=40),
)
def test_replace_rebuilds_exactly_the_days_it_is_given(old: dict, new: dict) -> None:
    holder, lake = new_lake()
    with holder:
        write(lake, old)
        replace(lake, new)
        rebuilt = {trading_day(k) for k in new}
        expected = {k: v for k, v in old.items() if trading_day(k) not in rebuilt}
        expected.update(new)
        assert stored(lake) == expected


@PROPERTY_SETTINGS
@given(
    old=st.dictionaries(keys, row_values, min_size=1, max_size=40),
    new=st.dictionaries(keys, row_values, min_size=1, max_size=40),
)
def test_replace_by_instrument_keeps_the_other_instruments(old: dict, new: dict) -> None:
    holder, lake = new_lake()
    with holder:
        write(lake, old)
        replace(lake, new, replace_by=("instrument",))
        slices = {(trading_day(k), k[0]) for k in new}
        expected = {k: v for k, v in old.items() if (trading_day(k), k[0]) not in slices}
        expected.update(new)
        assert stored(lake) == expected


def test_replacing_with_the_same_rows_rewrites_nothing(lake: Lake) -> None:
    rows = {("NIFTY24MARFUT", 3_600 * 10**9 * h, "1"): (20_000.0, 25.0, "buy") for h in range(5)}
    write(lake, rows)
    before = file_hashes(lake)
    result = replace(lake, rows)
    assert not any(p.changed for p in result.partitions)
    assert file_hashes(lake) == before


def test_a_smaller_rebuild_drops_the_rows_it_no_longer_has(lake: Lake) -> None:
    day_rows = {("NIFTY24MARFUT", 60 * 10**9 * m, "1"): (20_000.0, 25.0, "buy") for m in range(10)}
    write(lake, day_rows)
    kept = dict(list(day_rows.items())[:3])
    result = replace(lake, kept)
    assert [(p.rows_before, p.rows_after) for p in result.partitions] == [(10, 3)]
    assert stored(lake) == kept
    manifest_rows = sum(p.rows for p in lake.partitions("ticks"))
    assert manifest_rows == 3


def test_replace_options_are_checked(lake: Lake) -> None:
    rows = {("NIFTY24MARFUT", 0, "1"): (20_000.0, 25.0, "buy")}
    write(lake, rows)
    with pytest.raises(ConfigError, match="'merge' or 'replace'"):
        lake.write("ticks", frame_from(rows), mode="overwrite")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="only applies to mode='replace'"):
        lake.write("ticks", frame_from(rows), replace_by=("instrument",))
    with pytest.raises(ConfigError, match=r"\['strike'\] are not columns of bronze.ticks"):
        lake.write("ticks", frame_from(rows), mode="replace", replace_by=("strike",))
    assert stored(lake) == rows


def test_replace_leaves_the_partition_whole_when_the_commit_fails(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ticklake.lake import commit

    rows = {("NIFTY24MARFUT", 60 * 10**9 * m, "1"): (20_000.0, 25.0, "buy") for m in range(4)}
    write(lake, rows)

    def boom(step: str) -> None:
        if step == "replace_data":
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(commit, "FAULT_HOOK", boom)
    with pytest.raises(CommitError, match=r"failed at step .replace_data.*previous data is intact"):
        replace(lake, dict(list(rows.items())[:1]))
    monkeypatch.setattr(commit, "FAULT_HOOK", None)
    assert stored(lake) == rows
    assert pl.read_parquet(lake.partitions("ticks")[0].path).height == 4
