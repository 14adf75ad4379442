"""expiries() for a range ending in the calendar's last weeks (it used to look 7 days past it)."""

from __future__ import annotations

from calendar import monthrange
from datetime import date, timedelta

import exchange_calendars
import pandas as pd
import pytest

from ticklake.errors import ConfigError
from ticklake.market.calendar import CALENDAR_CODE, expiries


def _xbom() -> exchange_calendars.ExchangeCalendar:
    return exchange_calendars.get_calendar(CALENDAR_CODE)


def _previous_session(day: date) -> date:
    """Oracle: exchange_calendars' own session lookup (on or before ``day``)."""
    label = _xbom().date_to_session(pd.Timestamp(day), direction="previous")
    return date.fromisoformat(str(label.date()))


def _tuesdays(start: date, end: date) -> list[date]:
    first = start + timedelta(days=(1 - start.weekday()) % 7)
    return [first + timedelta(days=7 * i) for i in range((end - first).days // 7 + 1)]


def test_expiries_up_to_the_day_before_the_last_session() -> None:
    last = _xbom().last_session.date()
    end = last - timedelta(days=1)
    start = end - timedelta(days=41)
    # NIFTY: weekly and monthly on Tuesday (market_rules.csv from 2025-08-29), each moved
    # back to the previous session on a holiday; the monthly stands in for its week.
    want = sorted({_previous_session(t) for t in _tuesdays(start, last)})
    want = [d for d in want if start <= d <= end]
    got = expiries("NIFTY", start, end)
    assert got == want and got
    assert got[-1] > last - timedelta(days=7)  # a week that the old scan could not reach
    months = {(d.year, d.month) for d in _tuesdays(start, end)}
    last_tuesday = [
        _tuesdays(date(y, m, 1), date(y, m, monthrange(y, m)[1]))[-1] for y, m in months
    ]
    monthly = sorted(_previous_session(t) for t in last_tuesday)
    assert expiries("NIFTY", start, end, kind="monthly") == [
        d for d in monthly if start <= d <= end
    ]


def test_monthly_expiries_up_to_the_last_session() -> None:
    last = _xbom().last_session.date()
    got = expiries("NIFTY", date(last.year, 1, 1), last, kind="monthly")
    assert [d.month for d in got] == list(range(1, last.month + 1))


def test_a_weekly_past_the_calendar_that_could_move_back_is_an_error() -> None:
    """Ending on the last session, the next Tuesday's expiry depends on unknown holidays."""
    last = _xbom().last_session.date()
    with pytest.raises(ConfigError, match="cannot tell whether the expiry scheduled on") as info:
        expiries("NIFTY", last - timedelta(days=30), last)
    assert f"ends {last.isoformat()}" in str(info.value)
    assert "upgrade exchange-calendars" in str(info.value)
