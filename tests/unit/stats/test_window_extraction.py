"""Window values against hand-built series: as-of edges, missing seconds, volume, metrics."""

from __future__ import annotations

import itertools
import math
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from ticklake.errors import ConfigError
from ticklake.lake import Lake
from ticklake.stats import window_statistics

IST = ZoneInfo("Asia/Kolkata")
MONDAY, FRIDAY, SATURDAY = date(2024, 1, 8), date(2024, 1, 5), date(2024, 1, 6)


def _rows(day: date, points: list[tuple[str, float, float | None]]) -> list[dict]:
    return [
        {
            "ts": datetime.combine(day, time.fromisoformat(clock), IST),
            "instrument": "IDX",
            "price": price,
            "volume": volume,
        }
        for clock, price, volume in points
    ]


MONDAY_POINTS = [
    ("09:14:58", 99.0, 1000.0),  # before the window: only used with a tolerance
    ("09:15:02", 100.0, 1010.0),  # 09:15:00 and :01 are missing
    ("09:16:00", 101.0, 1030.0),
    ("09:19:58", 102.0, 1060.0),
    ("09:20:03", 150.0, 2000.0),  # after the window: never used
    ("15:19:00", 110.0, 3000.0),
    ("15:21:30", 111.0, 3100.0),  # 90 s after 15:20
    ("15:29:00", 112.0, 3200.0),
]
FRIDAY_POINTS = [
    ("09:15:00", 90.0, 10.0),
    ("09:19:30", 91.0, 20.0),
    ("15:20:00", 93.0, 25.0),
    ("15:29:59", 95.0, 30.0),
]


@pytest.fixture
def hand_lake(lake: Lake) -> Lake:
    frame = pl.DataFrame(
        _rows(FRIDAY, FRIDAY_POINTS) + _rows(SATURDAY, FRIDAY_POINTS) + _rows(MONDAY, MONDAY_POINTS)
    ).with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
    lake.write("idx", frame, schema="prices", timezone="Asia/Kolkata")
    return lake


def _row(stats, day: date, window: str) -> dict:
    rows = stats.per_day.filter((pl.col("date") == day) & (pl.col("window") == window))
    assert rows.height == 1
    return rows.row(0, named=True)


def test_edges_are_inside_the_window_and_as_of_backward(hand_lake: Lake) -> None:
    stats = window_statistics(
        hand_lake, "idx", windows=["09:15-09:20"], weekdays=["mon"],
        measures=["return", "volume_change_per_second"],
    )  # fmt: skip
    row = _row(stats, MONDAY, "09:15-09:20")
    # 09:15:00 is missing and 09:14:58 lies outside: the window's first point is used.
    assert (row["first_time"], row["first_value"]) == (time(9, 15, 2), 100.0)
    # The value at 09:20:00 is the last one at or before it (09:19:58), not 09:20:03.
    assert (row["last_time"], row["last_value"]) == (time(9, 19, 58), 102.0)
    assert row["window_points"] == 3
    assert row["return_bps"] == pytest.approx((102 / 100 - 1) * 10_000)
    assert row["up"] is True
    # Cumulative volume (never falls): (V_last - V_first) / (t_last - t_first).
    assert row["volume_change_per_second"] == pytest.approx((1060 - 1010) / 296)
    assert row["excluded_reason"] is None


def test_tolerance_takes_the_value_at_the_start_from_just_before_it(hand_lake: Lake) -> None:
    stats = window_statistics(
        hand_lake, "idx", windows=["09:15-09:20"], weekdays=["mon"],
        measures=["return", "volume_change_per_second"], edge_tolerance_seconds=5,
    )  # fmt: skip
    row = _row(stats, MONDAY, "09:15-09:20")
    assert (row["first_time"], row["first_value"]) == (time(9, 14, 58), 99.0)
    assert row["return_bps"] == pytest.approx((102 / 99 - 1) * 10_000)
    assert row["volume_change_per_second"] == pytest.approx((1060 - 1000) / 300)


def test_per_tick_volume_sums_the_points_after_the_first(hand_lake: Lake) -> None:
    stats = window_statistics(
        hand_lake, "idx", windows=["09:15-09:20"], weekdays=["mon"],
        measures=["volume_change_per_second"], volume_kind="per_tick",
    )  # fmt: skip
    row = _row(stats, MONDAY, "09:15-09:20")
    assert row["volume_change_per_second"] == pytest.approx((1030 + 1060) / 296)


def test_missing_and_incomplete_windows_are_kept_with_a_reason(hand_lake: Lake) -> None:
    stats = window_statistics(
        hand_lake, "idx", windows=["12:00-12:05", "15:20-15:30"], weekdays=["mon"]
    )
    assert _row(stats, MONDAY, "12:00-12:05")["excluded_reason"] == "no data in window"
    late = _row(stats, MONDAY, "15:20-15:30")
    assert late["excluded_reason"] == "incomplete: first point 90.0 s after the window start"
    assert late["return_bps"] == pytest.approx((112 / 111 - 1) * 10_000)
    assert stats.summary.height == 0
    relaxed = window_statistics(
        hand_lake, "idx", windows=["15:20-15:30"], weekdays=["mon"], max_edge_gap_seconds=120
    )
    assert _row(relaxed, MONDAY, "15:20-15:30")["excluded_reason"] is None
    assert relaxed.days_used("15:20-15:30") == 1


def test_day_values_gap_volatility_and_opening_range(hand_lake: Lake) -> None:
    stats = window_statistics(hand_lake, "idx", windows=["09:15-09:20"], weekdays=["mon"])
    row = _row(stats, MONDAY, "09:15-09:20")
    # The previous partition is the Saturday copy of Friday: same close.
    assert row["previous_close"] == 95.0
    assert row["open"] == 100.0
    assert row["gap_bps"] == pytest.approx((100 / 95 - 1) * 10_000)
    assert row["gap_bucket"] == ">= 50 bps"
    session = [100.0, 101.0, 102.0, 150.0, 110.0, 111.0, 112.0]  # 09:14:58 is pre-open
    expected = 10_000 * math.sqrt(sum(math.log(b / a) ** 2 for a, b in itertools.pairwise(session)))
    assert row["realized_volatility_bps"] == pytest.approx(expected)
    assert row["opening_range_bps"] == pytest.approx((102 - 100) / 100 * 10_000)


def test_a_copy_of_the_previous_day_is_flagged_and_left_out(hand_lake: Lake) -> None:
    stats = window_statistics(
        hand_lake, "idx", windows=["09:15-09:20", "15:20-15:30"], weekdays=["fri", "sat"]
    )
    saturday = _row(stats, SATURDAY, "09:15-09:20")
    assert saturday["suspected_duplicate_of"] == FRIDAY
    assert saturday["excluded_reason"] == "suspected duplicate of 2024-01-05"
    assert _row(stats, FRIDAY, "09:15-09:20")["suspected_duplicate_of"] is None
    assert stats.days_used("09:15-09:20") == 1
    assert any("suspected duplicate" in note for note in stats.notes)
    kept = window_statistics(
        hand_lake, "idx", windows=["09:15-09:20"], weekdays=["fri", "sat"], drop_duplicates=False
    )
    assert kept.days_used("09:15-09:20") == 2


def test_series_metric_at_the_end_and_mean_over_the_window(hand_lake: Lake) -> None:
    stats = window_statistics(
        hand_lake, "idx", windows=["09:15-09:20"], weekdays=["mon"],
        measures=["sma(minutes=1)@end", "sma(minutes=1)@mean"],
    )  # fmt: skip
    row = _row(stats, MONDAY, "09:15-09:20")
    # sma over (t - 1 min, t] of session points: 09:14:58 is before the session.
    assert row["sma_1m_price_end"] == pytest.approx(102.0)
    assert row["sma_1m_price_mean"] == pytest.approx((100.0 + 100.5 + 102.0) / 3)


def test_bars_open_the_window_with_the_first_open_and_close_it_with_the_last_close(
    lake: Lake,
) -> None:
    starts = [datetime(2024, 1, 8, 9, 14 + i, tzinfo=IST) for i in range(8)]  # 09:14 .. 09:21
    frame = pl.DataFrame(
        {
            "ts": starts,
            "ts_end": [s.replace(minute=s.minute + 1) for s in starts],
            "instrument": "FUT",
            "open": [10.0 + i for i in range(8)],
            "close": [10.5 + i for i in range(8)],
            "volume": [100.0] * 8,
            "bid_price": [9.9 + i for i in range(8)],
            "ask_price": [10.1 + i for i in range(8)],
        }
    ).with_columns(pl.col("ts", "ts_end").dt.convert_time_zone("UTC"))
    lake.write("fut", frame, schema="bars", timezone="Asia/Kolkata")
    stats = window_statistics(
        lake, "fut", windows=["09:15-09:20"], weekdays=["mon"],
        measures=["return", "volume_change_per_second", "spread"],
    )  # fmt: skip
    row = _row(stats, MONDAY, "09:15-09:20")
    # Bars 09:15..09:19 (they end by 09:20): open of 09:15, close of 09:19.
    assert (row["first_value"], row["last_value"]) == (11.0, 15.5)
    assert row["volume_change_per_second"] == pytest.approx(5 * 100.0 / 300)
    spreads = [(0.2 / (10.0 + i)) * 10_000 for i in range(1, 6)]
    assert row["spread_bps"] == pytest.approx(sum(spreads) / 5)


def test_bad_inputs_name_the_problem(hand_lake: Lake) -> None:
    with pytest.raises(ConfigError, match="not HH:MM-HH:MM"):
        window_statistics(hand_lake, "idx", windows=["9.15-9.20"])
    with pytest.raises(ConfigError, match="unknown weekday 'funday'"):
        window_statistics(hand_lake, "idx", windows=["09:15-09:20"], weekdays=["funday"])
    with pytest.raises(ConfigError, match="no partition on Sun"):
        window_statistics(hand_lake, "idx", windows=["09:15-09:20"], weekdays=["sun"])
    with pytest.raises(KeyError, match="unknown metric 'emma'"):
        window_statistics(hand_lake, "idx", windows=["09:15-09:20"], measures=["emma"])
