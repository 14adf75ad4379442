"""Helpers shared by the quality tests (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ticklake.quality import ValidationReport

Validate = Callable[..., ValidationReport]

NIFTY_DAYS = (
    "2022-08-12",  # the 16529.40 pre-open print at 09:00:02
    "2022-08-25",
    "2022-08-26",
    "2022-08-27",  # Saturday: a copy of 2022-08-26
    "2022-09-02",
    "2022-09-03",  # Saturday: a copy of 2022-09-02
    "2022-09-30",
    "2022-10-01",  # Saturday: a copy of 2022-09-30
    "2022-10-02",  # Sunday: a copy of the copy
    "2022-11-30",
    "2022-12-01",  # partial: ends 11:15:48
)


def at(second: float, day: datetime = datetime(2024, 1, 2, 10, tzinfo=UTC)) -> datetime:
    """A UTC time ``second`` seconds after 10:00 UTC on 2024-01-02 (a Tuesday)."""
    return day + timedelta(seconds=second)
