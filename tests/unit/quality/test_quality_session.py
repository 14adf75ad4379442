from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import exchange_calendars
import polars as pl
import pytest

from ticklake.lake import Lake
from ticklake.quality import validate_dataset

IST_OFFSET = timedelta(hours=5, minutes=30)


def _day(
    day: date, start: str, end: str, step_seconds: int = 60, base: float = 100.0
) -> pl.DataFrame:
    """A price row every ``step_seconds`` from ``start`` to ``end`` IST on ``day``."""
    first = datetime.combine(day, datetime.strptime(start, "%H:%M").time()) - IST_OFFSET
    last = datetime.combine(day, datetime.strptime(end, "%H:%M").time()) - IST_OFFSET
    count = int((last - first).total_seconds() // step_seconds) + 1
    ts = [(first + timedelta(seconds=i * step_seconds)).replace(tzinfo=UTC) for i in range(count)]
    return pl.DataFrame(
        {"ts": ts, "instrument": ["X"] * count, "price": [base + i * 0.01 for i in range(count)]}
    )


@pytest.mark.filterwarnings("ignore:Series.values returning")
def test_session_rules_on_an_nse_week(lake: Lake) -> None:
    # 2024-01-01 .. 2024-01-07: Mon-Fri trading (XBOM), Sat/Sun not.
    xbom = exchange_calendars.get_calendar("XBOM")
    sessions = [d.date() for d in xbom.sessions_in_range("2024-01-01", "2024-01-07")]
    assert sessions == [date(2024, 1, d) for d in range(1, 6)]
    frames = [
        _day(date(2024, 1, 1), "09:00", "15:30", base=100.0),  # with 15 min of pre-open
        _day(date(2024, 1, 2), "09:15", "15:29", base=200.0),
        # 2024-01-03 missing
        _day(date(2024, 1, 4), "09:15", "11:00", base=300.0),  # partial: ends 11:00
        _day(date(2024, 1, 5), "09:15", "15:29", base=400.0),
        _day(date(2024, 1, 6), "09:15", "15:29", base=500.0),  # Saturday with data
    ]
    # Sunday repeats Friday's values at Friday's times of day: a mislabelled copy.
    friday = frames[3]
    frames.append(friday.with_columns(pl.col("ts") + timedelta(days=2)))
    lake.write("idx", pl.concat(frames), schema="prices", timezone="Asia/Kolkata")
    report = validate_dataset(lake, "idx", rules=["S"], start="2024-01-01", end="2024-01-07")
    assert report.calendar == "XBOM"
    s1, s2, s3 = report.rule("S1"), report.rule("S2"), report.rule("S3")
    assert (s1.checked, s1.violations) == (5, 1)
    assert s1.offending["date"].to_list() == [date(2024, 1, 3)]
    assert s2.failed_days == [date(2024, 1, 6), date(2024, 1, 7)]
    assert s2.statistics["rows_on_non_trading_days"] == 2 * friday.height
    assert s3.failed_days == [date(2024, 1, 7)]
    assert s3.offending["copy_of"].to_list() == [date(2024, 1, 5)]
    s4 = report.rule("S4")
    assert s4.failed_days == [date(2024, 1, 4)]
    assert s4.offending["early_end_minutes"].to_list() == [270.0]  # 11:00 -> 15:30
    s5 = report.rule("S5")
    # 09:00..09:14 = 15 pre-open rows; 15:30 is the close (post-close row) on Jan 1
    assert s5.statistics == {"pre_open_rows": 15, "post_close_rows": 1}
    assert s5.status == "noted"
    assert report.failing_days == {date(2024, 1, 6): ["S2"], date(2024, 1, 7): ["S2", "S3"]}


def test_calendar_parameter_overrides_the_time_zone_default(lake: Lake) -> None:
    saturday = _day(date(2024, 1, 6), "09:15", "10:00")
    lake.write("idx", saturday, schema="prices", timezone="Asia/Kolkata")
    default = validate_dataset(lake, "idx", rules=["S2"])
    assert default.rule("S2").violations == 1
    always_open = validate_dataset(
        lake, "idx", rules=["S2"], parameters={"S2": {"calendar": "24/7"}}
    )
    assert always_open.rule("S2").violations == 0
