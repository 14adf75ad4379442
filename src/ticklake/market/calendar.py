"""NSE trading days, session times and F&O expiry dates.

Trading days come from ``exchange_calendars``' ``XBOM`` calendar. BSE and NSE publish
the same list of equity / F&O trading holidays each year (both follow the same
settlement holidays), and exchange_calendars ships no separate NSE calendar, so XBOM
is the NSE holiday list here. Special sessions (Muhurat trading on Diwali, the odd
Saturday session) are not regular sessions and are not trading days here.

Expiries follow the market rules file (:mod:`ticklake.market.rules`): each contract
expires on its scheduled weekday, or on the previous trading day when that weekday is
a holiday. The weekday of a weekly expiry is the one in force on the Monday of its
week; the weekday of a monthly expiry is the one in force on the first day of its
month (NSE moved expiry days at month and week boundaries). In the week of a monthly
expiry there is no separate weekly contract: the monthly contract is that week's
expiry, so ``expiries(kind="weekly")`` lists it. A range may end anywhere inside the
calendar: an expiry scheduled past its last session cannot move back into the range when
a trading day lies between them and is skipped; otherwise (a range ending on the last
session) unknown holidays would decide, and that is an error, not a guess.

Examples:
    >>> expiries("BANKNIFTY", date(2017, 1, 1), date(2017, 1, 31), kind="monthly")
    [datetime.date(2017, 1, 25)]
    >>> is_trading_day(date(2017, 1, 26))  # Republic Day
    False
"""

from __future__ import annotations

import calendar as _stdlib_calendar
import contextlib
import os
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from ticklake.errors import ConfigError
from ticklake.market.rules import market_rules

#: NSE's time zone: every session time and naive vendor time is in it.
EXCHANGE_TIMEZONE = ZoneInfo("Asia/Kolkata")
#: Continuous trading session (the 09:00-09:08 pre-open is not part of it).
SESSION_OPEN = time(9, 15)
SESSION_CLOSE = time(15, 30)
#: The exchange_calendars code used for NSE trading days.
CALENDAR_CODE = "XBOM"
#: A holiday moves an expiry back this many days at most (NSE: a weekend plus holidays).
MAX_EXPIRY_SHIFT_DAYS = 7

ExpiryKind = Literal["weekly", "monthly"]


@lru_cache(maxsize=1)
def _exchange_calendar() -> Any:
    import exchange_calendars

    return exchange_calendars.get_calendar(CALENDAR_CODE)


def _sessions_cache_file() -> Path | None:
    """Where the session list of this exchange_calendars version is kept, if anywhere.

    Building the calendar costs ≈ 1.5 s of CPU (pandas and the holiday rules) in every
    process; its session list only changes with the package's version, so it is kept
    under ``$XDG_CACHE_HOME/ticklake`` (``~/.cache/ticklake``), keyed by that version.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        stamp = version("exchange-calendars")
    except PackageNotFoundError:
        return None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ticklake" / f"sessions-{CALENDAR_CODE}-{stamp}.txt"


@lru_cache(maxsize=1)
def _session_set() -> tuple[frozenset[date], date, date]:
    path = _sessions_cache_file()
    if path is not None:
        try:
            days = [date.fromisoformat(line) for line in path.read_text().split()]
            if days:
                return frozenset(days), days[0], days[-1]
        except (OSError, ValueError):
            pass  # absent or unreadable: build it from the calendar below
    cal = _exchange_calendar()
    listed = sorted(d.date() for d in cal.sessions)
    if path is not None:
        with contextlib.suppress(OSError):  # a read-only home only costs the 1.5 s again
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text("\n".join(d.isoformat() for d in listed) + "\n")
            os.replace(tmp, path)
    return frozenset(listed), cal.first_session.date(), cal.last_session.date()


def _check_range(day: date) -> None:
    _, first, last = _session_set()
    if not first <= day <= last:
        raise ConfigError(
            f"{day.isoformat()} is outside the {CALENDAR_CODE} calendar of exchange_calendars "
            f"({first} .. {last}); upgrade exchange-calendars for later years.",
            date=day.isoformat(),
        )


def is_trading_day(day: date) -> bool:
    """Return whether NSE holds a regular session on ``day``."""
    _check_range(day)
    return day in _session_set()[0]


def trading_days(start: date, end: date) -> list[date]:
    """List NSE trading days from ``start`` to ``end``, both included."""
    if end < start:
        return []
    _check_range(start)
    _check_range(end)
    days = _session_set()[0]
    return [d for d in _date_range(start, end) if d in days]


def previous_trading_day(day: date) -> date:
    """Return the last trading day on or before ``day``."""
    sessions = _session_set()[0]
    current = day
    while current not in sessions:
        _check_range(current)
        current -= timedelta(days=1)
    return current


def next_trading_day(day: date) -> date:
    """Return the first trading day strictly after ``day``."""
    sessions = _session_set()[0]
    current = day + timedelta(days=1)
    while current not in sessions:
        _check_range(current)
        current += timedelta(days=1)
    return current


def session_bounds(day: date) -> tuple[datetime, datetime]:
    """Return the session's open and close on ``day`` as aware Asia/Kolkata datetimes."""
    return (
        datetime.combine(day, SESSION_OPEN, tzinfo=EXCHANGE_TIMEZONE),
        datetime.combine(day, SESSION_CLOSE, tzinfo=EXCHANGE_TIMEZONE),
    )


def monthly_expiry(
    underlying: str, year: int, month: int, rules_path: Path | str | None = None
) -> date:
    """Return the monthly expiry of ``underlying`` in ``year``-``month``."""
    return previous_trading_day(_scheduled_monthly(underlying, year, month, rules_path))


def _scheduled_monthly(
    underlying: str, year: int, month: int, rules_path: Path | str | None
) -> date:
    """The monthly expiry's scheduled day (before any holiday shift)."""
    weekday = market_rules(underlying, date(year, month, 1), rules_path).monthly_expiry_weekday
    last_day = date(year, month, _stdlib_calendar.monthrange(year, month)[1])
    return last_day - timedelta(days=(last_day.weekday() - weekday) % 7)


def _expiry_up_to(scheduled: date, end: date) -> date | None:
    """The expiry of a contract scheduled on ``scheduled``; None when it is surely after ``end``.

    A holiday moves an expiry back at most :data:`MAX_EXPIRY_SHIFT_DAYS`. A scheduled day
    past the calendar's last session is surely after ``end`` when a trading day lies
    between ``end`` and that last session (the expiry cannot move back past it); otherwise
    the unknown holidays after the calendar decide, and that is an error, not a guess.
    """
    if scheduled > end + timedelta(days=MAX_EXPIRY_SHIFT_DAYS):
        return None
    sessions, _, last = _session_set()
    if scheduled <= last:
        return previous_trading_day(scheduled)
    if any(day in sessions for day in _date_range(end + timedelta(days=1), last)):
        return None
    raise ConfigError(
        f"cannot tell whether the expiry scheduled on {scheduled.isoformat()} falls on or "
        f"before {end.isoformat()}: the {CALENDAR_CODE} calendar of exchange_calendars ends "
        f"{last.isoformat()}; end the range before {last.isoformat()} or upgrade "
        "exchange-calendars.",
        date=scheduled.isoformat(),
    )


def expiries(
    underlying: str,
    start: date,
    end: date,
    kind: ExpiryKind = "weekly",
    rules_path: Path | str | None = None,
) -> list[date]:
    """List expiry dates of ``underlying`` from ``start`` to ``end`` (both included).

    ``kind="monthly"`` lists the monthly expiries; ``kind="weekly"`` lists one expiry per
    week while weekly contracts exist, the monthly expiry standing in for its week, and
    nothing for weeks without weekly contracts.
    """
    if kind not in ("weekly", "monthly"):
        raise ConfigError(f"expiry kind must be 'weekly' or 'monthly', not {kind!r}", kind=kind)
    if end < start:
        return []
    # Holiday shifts move an expiry a few days back at most, so scan a little past `end`
    # (never past what the calendar knows: see _expiry_up_to).
    scan_end = end + timedelta(days=MAX_EXPIRY_SHIFT_DAYS)
    monthly: list[date] = []
    year, month = start.year, start.month
    while date(year, month, 1) <= scan_end:
        expiry = _expiry_up_to(_scheduled_monthly(underlying, year, month, rules_path), end)
        if expiry is not None:
            monthly.append(expiry)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    if kind == "monthly":
        return [d for d in monthly if start <= d <= end]
    monthly_weeks = {_monday(d) for d in monthly}
    by_monday = {_monday(d): d for d in monthly}
    out: list[date] = []
    monday = _monday(start)
    while monday <= scan_end:
        # A week that starts before `start` takes the rules of `start` (the rules
        # file may begin mid-week).
        in_force = max(monday, start)
        weekday = market_rules(underlying, in_force, rules_path).weekly_expiry_weekday
        if weekday is not None:
            if monday in monthly_weeks:
                out.append(by_monday[monday])
            elif (expiry := _expiry_up_to(monday + timedelta(days=weekday), end)) is not None:
                out.append(expiry)
        monday += timedelta(days=7)
    return sorted({d for d in out if start <= d <= end})


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _date_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]
