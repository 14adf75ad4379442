from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from ticklake.errors import ConfigError
from ticklake.market.calendar import (
    expiries,
    is_trading_day,
    monthly_expiry,
    session_bounds,
    trading_days,
)


def test_holidays_and_weekends_are_not_trading_days() -> None:
    assert not is_trading_day(date(2017, 1, 26))  # Republic Day (a Thursday)
    assert not is_trading_day(date(2024, 11, 15))  # Guru Nanak Jayanti
    assert not is_trading_day(date(2024, 1, 13))  # Saturday
    assert is_trading_day(date(2024, 1, 10))
    days = trading_days(date(2017, 1, 23), date(2017, 1, 29))
    assert days == [date(2017, 1, 23), date(2017, 1, 24), date(2017, 1, 25), date(2017, 1, 27)]


def test_outside_the_calendar_is_an_error() -> None:
    with pytest.raises(ConfigError, match="outside the XBOM calendar"):
        is_trading_day(date(2040, 1, 2))


def test_session_is_0915_to_1530_ist() -> None:
    start, end = session_bounds(date(2024, 1, 10))
    assert start.astimezone(UTC) == datetime(2024, 1, 10, 3, 45, tzinfo=UTC)
    assert end.astimezone(UTC) == datetime(2024, 1, 10, 10, 0, tzinfo=UTC)


def test_expiries_match_the_2017_vendor_sample(shared_data: Path) -> None:
    # The vendor file's Expiry column is an independent record of the real dates.
    path = shared_data / "banknifty-2017-options-1min-snippet" / "BANKNIFTY_2017_OPTIONS.csv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    weekly = {date.fromisoformat(r["Expiry"]) for r in rows if r["Contract_Monthly"] == "W"}
    monthly = {date.fromisoformat(r["Expiry"]) for r in rows if r["Contract_Monthly"] == "I"}
    assert weekly == {date(2017, 1, 5)} and monthly == {date(2017, 1, 25)}
    assert monthly_expiry("BANKNIFTY", 2017, 1) == date(2017, 1, 25)  # Thu 26th is a holiday
    jan = expiries("BANKNIFTY", date(2017, 1, 1), date(2017, 1, 31), kind="weekly")
    assert weekly <= set(jan) and monthly <= set(jan)
    futures = shared_data / "banknifty-2017-options-1min-snippet" / "BANKNIFTY_2017_FUTURES.csv"
    with futures.open(newline="") as fh:
        future_expiries = {date.fromisoformat(r["Expiry"]) for r in csv.DictReader(fh)}
    for expiry in future_expiries:
        assert monthly_expiry("BANKNIFTY", expiry.year, expiry.month) == expiry


def test_banknifty_expiry_history() -> None:
    sep_2023 = expiries("BANKNIFTY", date(2023, 8, 28), date(2023, 10, 5))
    # Thursday monthly, then Wednesday weeklies, with no weekly in the monthly's week.
    assert sep_2023 == [
        date(2023, 8, 31),
        date(2023, 9, 6),
        date(2023, 9, 13),
        date(2023, 9, 20),
        date(2023, 9, 28),
        date(2023, 10, 4),
    ]
    assert monthly_expiry("BANKNIFTY", 2024, 3) == date(2024, 3, 27)  # last Wednesday
    # The last weekly was 2024-11-13; after it only monthlies; Dec 25 is a holiday.
    weekly = expiries("BANKNIFTY", date(2024, 11, 1), date(2025, 1, 31))
    assert weekly == [date(2024, 11, 6), date(2024, 11, 13)]
    monthly = expiries("BANKNIFTY", date(2024, 11, 1), date(2025, 1, 31), kind="monthly")
    assert monthly == [date(2024, 11, 27), date(2024, 12, 24), date(2025, 1, 30)]
    assert monthly_expiry("BANKNIFTY", 2025, 9) == date(2025, 9, 30)  # last Tuesday


def test_nifty_weekly_history() -> None:
    assert expiries("NIFTY", date(2018, 1, 1), date(2018, 3, 31)) == []
    assert expiries("NIFTY", date(2019, 2, 1), date(2019, 2, 28))[0] == date(2019, 2, 14)
    around_switch = expiries("NIFTY", date(2025, 8, 25), date(2025, 9, 12))
    assert around_switch == [date(2025, 8, 28), date(2025, 9, 2), date(2025, 9, 9)]


def test_holiday_moves_weekly_expiry_back() -> None:
    # 2024-03-29 Good Friday is no Thursday; 2023-06-29 (Thu, Bakri Id) is.
    assert not is_trading_day(date(2023, 6, 29))
    june_2023 = expiries("NIFTY", date(2023, 6, 26), date(2023, 6, 30), kind="monthly")
    assert june_2023 == [date(2023, 6, 28)]


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match="'weekly' or 'monthly'"):
        expiries("NIFTY", date(2024, 1, 1), date(2024, 2, 1), kind="daily")  # type: ignore[arg-type]
