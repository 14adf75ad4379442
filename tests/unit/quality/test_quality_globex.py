"""Session rules on CME Globex data: the CME_GLOBEX_FX calendar against the real 6EH4 sample.

The sample (../shared/data/cme-6e-1min, PROVENANCE.md) holds 6EH4 1-minute bars from
2024-01-01 23:01 to 2024-01-31 23:59 UTC, stamped at the bar close: 22 complete Globex
sessions (2024-01-02 .. 2024-01-31, MLK day 2024-01-15 included) and the first hour of the
2024-02-01 session, where the file ends. New Year's Day 2024-01-01 is a Globex holiday.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from ticklake.ingest.pipeline import ingest_files
from ticklake.lake import Lake, init_lake
from ticklake.quality import validate_dataset
from ticklake.quality.calendars import GLOBEX_FX, default_calendar, session_bounds_ns
from ticklake.quality.globex import CMEGlobexFXCalendar

SAMPLE = Path("cme-6e-1min") / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz"
CT = "America/Chicago"
COMPLETE_DAYS = 22  # 2024-01-02 .. 2024-01-31 trading days
MLK = date(2024, 1, 15)
LAST_DAY = date(2024, 2, 1)  # the file stops 59 minutes into this session


@pytest.fixture(scope="module")
def cme_lake(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    lake = init_lake(tmp_path_factory.mktemp("cme") / "lake")
    ingest_files(lake, "cme_bars", [shared_data / SAMPLE], "six_e", executor="serial")
    return lake


def _ns(year: int, month: int, day: int, hour: int, minute: int = 0) -> int:
    local = datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(CT))
    return int(local.astimezone(UTC).timestamp()) * 1_000_000_000


def test_globex_calendar_is_the_default_for_chicago_datasets() -> None:
    assert default_calendar(CT) == GLOBEX_FX == CMEGlobexFXCalendar.name


def test_globex_calendar_holidays_and_early_closes() -> None:
    """Hand-listed from CME's Globex FX holiday hours (CT): open the day before at 17:00."""
    bounds = session_bounds_ns(GLOBEX_FX, date(2021, 1, 1), date(2024, 12, 31))
    for closed in (
        date(2024, 1, 1),  # New Year's Day
        date(2023, 1, 2),  # New Year's Day on a Sunday, observed Monday
        date(2022, 4, 15),  # Good Friday 2022: closed
        date(2024, 12, 25),  # Christmas
        date(2022, 12, 26),  # Christmas on a Sunday, observed Monday
        date(2021, 12, 24),  # Christmas on a Saturday, observed Friday
        date(2024, 1, 6),  # Saturday
    ):
        assert closed not in bounds, closed
    assert bounds[date(2024, 1, 2)] == (_ns(2024, 1, 1, 17), _ns(2024, 1, 2, 16))  # after a holiday
    assert bounds[date(2024, 1, 8)] == (_ns(2024, 1, 7, 17), _ns(2024, 1, 8, 16))  # Sunday open
    assert bounds[MLK] == (_ns(2024, 1, 14, 17), _ns(2024, 1, 15, 16))  # FX: full hours
    assert bounds[date(2021, 1, 18)][1] == _ns(2021, 1, 18, 12)  # MLK 2021: 12:00 halt
    assert bounds[date(2024, 3, 29)][1] == _ns(2024, 3, 29, 10, 15)  # Good Friday 2024
    assert bounds[date(2024, 11, 29)][1] == _ns(2024, 11, 29, 12, 15)  # day after Thanksgiving
    assert bounds[date(2024, 12, 24)][1] == _ns(2024, 12, 24, 12, 15)  # Christmas Eve
    assert bounds[date(2024, 12, 26)] == (_ns(2024, 12, 25, 17), _ns(2024, 12, 26, 16))


@pytest.mark.shared_data
def test_globex_sessions_match_the_real_sample(shared_data: Path) -> None:
    """Oracle: each day's first bar open and last bar close, straight from the raw CSV."""
    raw = pl.read_csv(shared_data / SAMPLE, try_parse_dates=True).with_columns(
        close=pl.col("timestamp_utc").dt.replace_time_zone("UTC")
    )
    raw = raw.with_columns(open=pl.col("close") - timedelta(minutes=1))
    days = (
        raw.with_columns(
            day=(pl.col("open").dt.convert_time_zone(CT) + timedelta(hours=7)).dt.date()
        )
        .group_by("day")
        .agg(first_open=pl.col("open").min(), last_close=pl.col("close").max())
        .sort("day")
    )
    assert days["day"].to_list()[-1] == LAST_DAY
    bounds = session_bounds_ns(GLOBEX_FX, date(2024, 1, 1), LAST_DAY)
    assert sorted(bounds) == days["day"].to_list()  # no session without data, no data off-session
    complete = days.filter(pl.col("day") < LAST_DAY)
    assert complete.height == COMPLETE_DAYS
    for day, first_open, last_close in complete.iter_rows():
        open_ns, close_ns = bounds[day]
        assert (first_open.timestamp() * 1e9, last_close.timestamp() * 1e9) == (open_ns, close_ns)


@pytest.mark.shared_data
def test_session_rules_on_the_real_cme_sample(cme_lake: Lake) -> None:
    report = validate_dataset(cme_lake, "six_e", rules=["S1", "S2", "S4", "S5"])
    assert report.calendar == GLOBEX_FX
    s1, s2, s4, s5 = (report.rule(r) for r in ("S1", "S2", "S4", "S5"))
    assert (s1.checked, s1.violations) == (COMPLETE_DAYS + 1, 0)
    assert (s2.checked, s2.violations) == (COMPLETE_DAYS + 1, 0)
    # 0 false partial sessions on the 22 complete days (MLK included); the real one is found.
    assert (s4.checked, s4.violations) == (COMPLETE_DAYS + 1, 1)
    assert s4.failed_days == [LAST_DAY]
    assert s4.offending["late_start_minutes"].to_list() == [0.0]
    assert s4.offending["early_end_minutes"].to_list() == [1322.0]  # 18:59 CT -> 16:00 CT
    assert s5.violations == 0  # nothing in the 16:00-17:00 CT break, nothing after MLK noon
    # exchange_calendars' CMES (17:00-17:00, MLK closes 12:00) is what reported them before.
    cmes = validate_dataset(
        cme_lake, "six_e", rules=["S4", "S5"], parameters={"S4": {"calendar": "CMES"},
                                                           "S5": {"calendar": "CMES"}}
    )  # fmt: skip
    assert cmes.rule("S4").violations == COMPLETE_DAYS
    assert cmes.rule("S5").failed_days == [MLK]


@pytest.mark.shared_data
def test_real_holiday_early_close_and_missing_day_are_still_found(
    cme_lake: Lake, lake: Lake
) -> None:
    bars = cme_lake.read("bronze.six_e")
    session = (pl.col("ts").dt.convert_time_zone(CT) + timedelta(hours=7)).dt.date()
    bars = bars.with_columns(day=session)
    jan2 = bars.filter(pl.col("day") == date(2024, 1, 2))
    day_before = pl.duration(days=1, time_unit="ns")
    edited = pl.concat(
        [
            bars.filter(pl.col("day") != date(2024, 1, 10)),  # a missing trading day
            jan2.with_columns(pl.col("ts", "ts_end") - day_before),  # data on New Year's Day
        ]
    )
    # MLK stops at 12:00 CT (last bar 17:59 UTC); Jan 16 ends exactly 15 minutes before
    # the 16:00 CT close (allowed: the bound is inclusive), Jan 17 16 minutes before.
    last_bar = {
        MLK: datetime(2024, 1, 15, 17, 59, tzinfo=UTC),
        date(2024, 1, 16): datetime(2024, 1, 16, 21, 45, tzinfo=UTC),
        date(2024, 1, 17): datetime(2024, 1, 17, 21, 44, tzinfo=UTC),
    }
    for day, last in last_bar.items():
        edited = edited.filter((pl.col("day") != day) | (pl.col("ts") <= last))
    edited = edited.drop("day")
    lake.write("six_e", edited, schema="bars", timezone=CT, day_offset="7h")
    report = validate_dataset(lake, "six_e", rules=["S1", "S2", "S4"])
    assert report.calendar == GLOBEX_FX
    assert report.rule("S1").offending["date"].to_list() == [date(2024, 1, 10)]
    assert report.rule("S2").failed_days == [date(2024, 1, 1)]  # New Year's Day holiday
    s4 = report.rule("S4")
    assert s4.failed_days == [MLK, date(2024, 1, 17), LAST_DAY]
    early = dict(zip(s4.offending["date"], s4.offending["early_end_minutes"], strict=True))
    assert early[MLK] == 241.0  # last bar opens 11:59 CT, close 16:00 CT
    assert early[date(2024, 1, 17)] == 16.0
