"""Trading days and time bounds: a dataset's day of a timestamp, and UTC instants.

A partition is one trading day in the dataset's exchange time zone (optionally shifted
by ``day_offset`` for sessions that start the evening before); everything stored is UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from ticklake.errors import SchemaMismatchError
from ticklake.lake.manifest import DatasetInfo


def check_timezone(tz: str) -> None:
    """Raise a clear error unless ``tz`` is an IANA time zone name."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise SchemaMismatchError(
            f"unknown time zone {tz!r}; use an IANA name such as 'Asia/Kolkata' or "
            "'America/New_York'",
            timezone=tz,
        ) from None


def trading_day_expr(ts_column: str, info: DatasetInfo) -> pl.Expr:
    """The trading date of ``ts_column`` in the dataset's time zone (and day offset)."""
    local = pl.col(ts_column).dt.convert_time_zone(info.timezone)
    if info.day_offset:
        local = local.dt.offset_by(info.day_offset)
    return local.dt.date()


def epoch_ns(value: Any) -> int | None:
    """An int64-ns bound from a Polars min/max (an int, a datetime or None)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(pl.Series([value]).dt.epoch("ns")[0])
    return int(value)


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken as UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def as_day(value: date | datetime | str | None) -> date | None:
    """A date from a date, a datetime (its own date) or an ISO string (its first 10 chars).

    Examples:
        >>> as_day("2024-01-02T10:00:00")
        datetime.date(2024, 1, 2)
        >>> as_day(None) is None
        True
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
