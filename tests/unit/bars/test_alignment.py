"""Interval parsing and session-aware alignment (time zones, anchors, day offsets, DST)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from ticklake.bars import BarGrid, parse_interval, prices_to_bars, trades_to_bars
from ticklake.errors import ConfigError


def _prints(*moments: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": pl.Series(list(moments)).dt.cast_time_unit("ns"),
            "instrument": ["X"] * len(moments),
            "trade_id": [str(i) for i in range(len(moments))],
            "price": [float(i + 1) for i in range(len(moments))],
            "size": [1.0] * len(moments),
        }
    )


@pytest.mark.parametrize(
    ("text", "label", "seconds"),
    [("1s", "1s", 1), ("5s", "5s", 5), ("1min", "1m", 60), ("90s", "90s", 90),
     ("60m", "1h", 3600), ("1hour", "1h", 3600), ("1d", "1d", 86400), ("1day", "1d", 86400)],
)  # fmt: skip
def test_parse_interval_normalises_labels(text: str, label: str, seconds: int) -> None:
    interval = parse_interval(text)
    assert interval.label == label
    assert interval.nanoseconds == seconds * 1_000_000_000
    assert interval.dataset_name() == f"bars_{label}"


@pytest.mark.parametrize("text", ["0s", "1w", "1mo", "2d", "fast", "-1m"])
def test_parse_interval_refuses_bad_or_calendar_lengths(text: str) -> None:
    with pytest.raises(ConfigError, match="interval"):
        parse_interval(text)


def test_nse_hourly_bars_start_at_the_session_anchor() -> None:
    ist = ZoneInfo("Asia/Kolkata")
    moments = [
        datetime(2024, 1, 2, h, m, tzinfo=ist) for h, m in [(9, 15), (10, 14), (10, 15), (15, 29)]
    ]
    grid = BarGrid.create("1h", timezone="Asia/Kolkata", anchor="09:15")
    bars = trades_to_bars(_prints(*moments), grid)
    opens = [t.astimezone(ist).strftime("%H:%M") for t in bars["ts"]]
    ends = [t.astimezone(ist).strftime("%H:%M") for t in bars["ts_end"]]
    assert opens == ["09:15", "10:15", "15:15"]
    assert ends == ["10:15", "11:15", "16:15"]
    assert bars["trade_count"].to_list() == [2, 1, 1]
    # Without the anchor the same prints fall on midnight-aligned hours.
    plain = trades_to_bars(_prints(*moments), BarGrid.create("1h", timezone="Asia/Kolkata"))
    assert [t.astimezone(ist).strftime("%H:%M") for t in plain["ts"]] == [
        "09:00", "10:00", "15:00",
    ]  # fmt: skip


def test_cme_daily_bar_spans_the_globex_day() -> None:
    # Trading day 2024-01-03 runs 17:00 CT on the 2nd to 17:00 CT on the 3rd.
    chicago = ZoneInfo("America/Chicago")
    moments = [
        datetime(2024, 1, 2, 17, 0, tzinfo=chicago),
        datetime(2024, 1, 3, 16, 59, tzinfo=chicago),
    ]
    grid = BarGrid.create("1d", timezone="America/Chicago", day_offset="7h")
    bars = trades_to_bars(_prints(*moments), grid)
    assert bars.height == 1
    assert bars["ts"][0] == datetime(2024, 1, 2, 23, 0, tzinfo=UTC)
    assert bars["ts_end"][0] == datetime(2024, 1, 3, 23, 0, tzinfo=UTC)
    assert bars.row(0, named=True)["open"] == 1.0 and bars.row(0, named=True)["close"] == 2.0


def test_daylight_saving_day_has_a_23_hour_daily_bar_and_hourly_bars_stay_on_the_hour() -> None:
    new_york = ZoneInfo("America/New_York")
    # 2024-03-10: clocks jump from 02:00 EST to 03:00 EDT.
    moments = [
        datetime(2024, 3, 9, 23, 30, tzinfo=new_york),
        datetime(2024, 3, 10, 0, 30, tzinfo=new_york),
        datetime(2024, 3, 10, 1, 59, tzinfo=new_york),
        datetime(2024, 3, 10, 3, 1, tzinfo=new_york),
        datetime(2024, 3, 10, 23, 59, tzinfo=new_york),
        datetime(2024, 3, 11, 0, 0, tzinfo=new_york),
    ]
    daily = trades_to_bars(_prints(*moments), BarGrid.create("1d", timezone="America/New_York"))
    day = daily.filter(pl.col("ts") == datetime(2024, 3, 10, 5, 0, tzinfo=UTC))
    assert day["ts_end"][0] == datetime(2024, 3, 11, 4, 0, tzinfo=UTC)  # 23 hours later
    assert day["trade_count"][0] == 4
    assert daily["trade_count"].to_list() == [1, 4, 1]
    hourly = trades_to_bars(_prints(*moments), BarGrid.create("1h", timezone="America/New_York"))
    for opened, ended in hourly.select("ts", "ts_end").iter_rows():
        assert opened.astimezone(new_york).minute == 0
        assert ended - opened == timedelta(hours=1)
    assert [t.astimezone(new_york).hour for t in hourly["ts"]] == [23, 0, 1, 3, 23, 0]


def test_grid_restarts_each_day_and_cuts_the_bar_crossing_midnight() -> None:
    # 7-minute bars do not divide a day: the last bar of a day ends at midnight.
    moments = [datetime(2024, 1, 2, 23, 58, tzinfo=UTC), datetime(2024, 1, 3, 0, 1, tzinfo=UTC)]
    bars = prices_to_bars(
        _prints(*moments).select("ts", "instrument", "price"), BarGrid.create("7m")
    )
    assert bars["ts"].to_list() == [
        datetime(2024, 1, 2, 23, 55, tzinfo=UTC),
        datetime(2024, 1, 3, 0, 0, tzinfo=UTC),
    ]
    assert bars["ts_end"].to_list() == [
        datetime(2024, 1, 3, 0, 0, tzinfo=UTC),
        datetime(2024, 1, 3, 0, 7, tzinfo=UTC),
    ]


def test_bad_anchor_and_day_offset_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="HH:MM"):
        BarGrid.create("1h", anchor="9h15")
    with pytest.raises(ConfigError, match="7h"):
        BarGrid.create("1h", day_offset="seven hours")
