"""CME Globex FX sessions as an ``exchange_calendars`` calendar (``CME_GLOBEX_FX``).

exchange_calendars' ``CMES`` runs every session 17:00 CT to 17:00 CT with no daily break
and closes at 12:00 CT on every US holiday, so a Globex dataset looks "partial" (it
stops at 16:00 CT) on every normal day and trades "after the close" on MLK day. This
calendar follows Globex:

- A session labelled D opens at 17:00 America/Chicago on the calendar day before D and
  closes at 16:00 on D; 16:00-17:00 CT is the daily maintenance break, and a Monday opens
  on Sunday 17:00. After a holiday the next session opens at 17:00 on the holiday.
- Closed: New Year's Day (a Sunday one is observed on Monday), Christmas (nearest
  weekday), Good Friday except in 2021 and from 2023 on.
- Early closes (CT): Good Friday 10:15 in 2021 and from 2023 on; the day after
  Thanksgiving and Christmas Eve (Mon-Thu) 12:15; MLK, Presidents', Memorial,
  Independence (observed), Labor and Thanksgiving days 12:00 up to 2021. From 2022 FX
  trades those US holidays in full Globex hours (16:00 close), as the real 6EH4 January
  2024 sample shows on MLK day 2024-01-15.

Regular hours are those of every Globex product; the holiday hours are FX's (equity
and interest-rate products halt at 12:00 CT on US holidays: pass ``calendar`` for them).
US national days of mourning are not included (FX traded through them).

Examples:
    >>> cal = CMEGlobexFXCalendar(start="2024-01-01", end="2024-01-31")
    >>> str(cal.schedule.loc["2024-01-15", "open"]), str(cal.schedule.loc["2024-01-15", "close"])
    ('2024-01-14 23:00:00+00:00', '2024-01-15 22:00:00+00:00')
    >>> "2024-01-01" in cal.schedule.index
    False
"""

from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfo

import pandas as pd
from dateutil.easter import easter
from exchange_calendars.exchange_calendar import ExchangeCalendar, HolidayCalendar
from exchange_calendars.us_holidays import (
    Christmas,
    ChristmasEveInOrAfter1993,
    USBlackFridayInOrAfter1993,
    USIndependenceDay,
    USMartinLutherKingJrAfter1998,
    USMemorialDay,
    USNewYearsDay,
)
from pandas.tseries.holiday import USLaborDay, USPresidentsDay, USThanksgivingDay

NAME = "CME_GLOBEX_FX"
#: Years the calendar is defined for (Good Friday and the US-holiday rule are per year).
FIRST_YEAR, LAST_YEAR = 2000, 2100
#: Good Friday is an abbreviated session (10:15 CT close) in these years, closed otherwise.
GOOD_FRIDAY_OPEN_YEARS = frozenset({2021, *range(2023, LAST_YEAR + 1)})
#: Last year FX closed at 12:00 CT on the US holidays; from the next year it trades them.
US_HOLIDAY_EARLY_CLOSE_UNTIL = 2021


def _good_fridays(open_years: bool) -> list[pd.Timestamp]:
    return [
        pd.Timestamp(easter(year)) - pd.Timedelta(days=2)
        for year in range(FIRST_YEAR, LAST_YEAR + 1)
        if (year in GOOD_FRIDAY_OPEN_YEARS) == open_years
    ]


def _us_holidays_with_early_close() -> pd.DatetimeIndex:
    rules = [
        USMartinLutherKingJrAfter1998,
        USPresidentsDay,
        USMemorialDay,
        USIndependenceDay,
        USLaborDay,
        USThanksgivingDay,
    ]
    start = pd.Timestamp(f"{FIRST_YEAR}-01-01")
    end = pd.Timestamp(f"{US_HOLIDAY_EARLY_CLOSE_UNTIL}-12-31")
    days = sorted({day for rule in rules for day in rule.dates(start, end)})
    return pd.DatetimeIndex(days)


class CMEGlobexFXCalendar(ExchangeCalendar):
    """CME Globex FX: 17:00 CT (previous day) to 16:00 CT, FX holiday hours."""

    name = NAME
    tz = ZoneInfo("America/Chicago")
    open_times = ((None, time(17)),)
    close_times = ((None, time(16)),)

    @property
    def open_offset(self) -> int:
        return -1

    @property
    def regular_holidays(self) -> HolidayCalendar:
        return HolidayCalendar([USNewYearsDay, Christmas])

    @property
    def adhoc_holidays(self) -> list[pd.Timestamp]:
        return _good_fridays(open_years=False)

    @property
    def special_closes(self) -> list[tuple[time, HolidayCalendar]]:
        return [
            (time(12, 15), HolidayCalendar([USBlackFridayInOrAfter1993, ChristmasEveInOrAfter1993]))
        ]

    @property
    def special_closes_adhoc(self) -> list[tuple[time, pd.DatetimeIndex]]:
        return [
            (time(10, 15), pd.DatetimeIndex(_good_fridays(open_years=True))),
            (time(12), _us_holidays_with_early_close()),
        ]
