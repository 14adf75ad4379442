"""Exchange calendars for the session rules: which days trade, and when.

The calendar of a dataset defaults from its time zone (:data:`DEFAULT_CALENDARS`);
rules take the calendar name as a parameter to override it. Sessions come from
``exchange_calendars`` (holidays, early closes), so a CME half day is what the calendar
publishes, not a guess. CME datasets (America/Chicago) use ``CME_GLOBEX_FX``
(:mod:`ticklake.quality.globex`): Globex hours, 17:00 CT the day before to 16:00 CT with
the 16:00-17:00 break, and FX's holiday hours; exchange_calendars' ``CMES`` runs 17:00 to
17:00 and stays available by name. Special one-hour sessions (NSE's Diwali Muhurat trading) are not
regular sessions there, so data on them shows up under S2.

Examples:
    >>> default_calendar("Asia/Kolkata")
    'XBOM'
    >>> from datetime import date
    >>> sorted(session_bounds_ns("XBOM", date(2022, 8, 26), date(2022, 8, 29)))
    [datetime.date(2022, 8, 26), datetime.date(2022, 8, 29)]
"""

from __future__ import annotations

import warnings
from datetime import date
from functools import lru_cache
from typing import Any

from ticklake.errors import ConfigError

#: CME Globex FX hours (:class:`ticklake.quality.globex.CMEGlobexFXCalendar`).
GLOBEX_FX = "CME_GLOBEX_FX"

#: Time zone of a dataset -> exchange_calendars name used unless a rule says otherwise.
DEFAULT_CALENDARS: dict[str, str] = {
    "Asia/Kolkata": "XBOM",  # NSE and BSE share the trading holiday list
    "America/New_York": "XNYS",
    "America/Chicago": GLOBEX_FX,  # CME Globex hours; "CMES" is exchange_calendars' own
    "UTC": "24/7",
}
#: First day the calendars are built from (exchange_calendars defaults to 20 years back).
CALENDAR_START = "2000-01-03"


def default_calendar(timezone: str) -> str:
    """The calendar for a dataset time zone; unknown zones trade 24/7."""
    return DEFAULT_CALENDARS.get(timezone, "24/7")


@lru_cache(maxsize=8)
def _calendar(name: str) -> Any:
    import exchange_calendars

    try:
        with warnings.catch_warnings():
            # exchange_calendars 4.13 trips a pandas deprecation while building sessions;
            # it is the library's to fix and says nothing about our data.
            warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
            if name == GLOBEX_FX:
                from ticklake.quality.globex import CMEGlobexFXCalendar

                return CMEGlobexFXCalendar(start=CALENDAR_START)
            return exchange_calendars.get_calendar(name, start=CALENDAR_START)
    except exchange_calendars.errors.InvalidCalendarName:
        raise ConfigError(
            f"unknown exchange calendar {name!r}; use an exchange_calendars name such as "
            f"XBOM, XNYS, CMES or 24/7, or {GLOBEX_FX}",
            calendar=name,
        ) from None


def calendar_range(name: str) -> tuple[date, date]:
    """First and last session the calendar knows."""
    cal = _calendar(name)
    return cal.first_session.date(), cal.last_session.date()


@lru_cache(maxsize=64)
def session_bounds_ns(name: str, start: date, end: date) -> dict[date, tuple[int, int]]:
    """Map each session date in [start, end] to its (open, close) in UTC epoch ns."""
    cal = _calendar(name)
    schedule = cal.schedule.loc[start.isoformat() : end.isoformat()]
    return {
        label.date(): (int(row_open.value), int(row_close.value))
        for label, row_open, row_close in zip(
            schedule.index, schedule["open"], schedule["close"], strict=True
        )
    }
