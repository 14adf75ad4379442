"""Exchange-local times for people: the zone of a run or dataset, named, and columns in it.

Timestamps are stored in UTC. The JSON API keeps every UTC field as it was (API clients
rely on it) and adds ``<column>_local``: the same instant in the exchange's zone, ISO 8601
with its offset (``2024-01-10T09:20:00+05:30``), plus the zone (``timezone``,
``timezone_abbreviation``, ``timezone_label``). Pages show the local field with the zone
named; CSV downloads are in exchange time unless ``tz=UTC`` is asked for.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from ticklake.errors import ConfigError

#: The zone a run spec defaults to (``TimeSpec.timezone``) when spec.json has none.
DEFAULT_TIMEZONE = "Asia/Kolkata"
LOCAL_SUFFIX = "_local"
#: Seconds and a fraction only when there is one, then the offset: ``...T09:20:00+05:30``.
ISO_LOCAL_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%:z"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {name!r}; use an IANA name such as Asia/Kolkata", timezone=name
        ) from None


def zone_abbreviation(name: str, year: int = 2024) -> str:
    """The zone's short name in ``year``: both if it changes for summer time.

    Examples:
        >>> zone_abbreviation("Asia/Kolkata"), zone_abbreviation("America/Chicago")
        ('IST', 'CST/CDT')
        >>> zone_abbreviation("UTC"), zone_abbreviation("Asia/Dubai")
        ('UTC', 'UTC+04')
    """
    zone = _zone(name)
    names: list[str] = []
    for month in (1, 7):
        text = datetime(year, month, 1, 12, tzinfo=zone).tzname() or name
        # Zones without a letter abbreviation report "+04": say whose offset it is.
        text = f"UTC{text}" if text[:1] in "+-" else text
        if text not in names:
            names.append(text)
    return "/".join(names)


def zone_fields(name: str, year: int = 2024) -> dict[str, str]:
    """``timezone``, ``timezone_abbreviation`` and ``timezone_label`` of a zone.

    Examples:
        >>> zone_fields("Asia/Kolkata")["timezone_label"]
        'IST (Asia/Kolkata)'
        >>> zone_fields("UTC")["timezone_label"]
        'UTC'
    """
    abbreviation = zone_abbreviation(name, year)
    label = abbreviation if abbreviation == name else f"{abbreviation} ({name})"
    return {"timezone": name, "timezone_abbreviation": abbreviation, "timezone_label": label}


def run_zone(run_dir: Path) -> dict[str, str]:
    """The exchange zone of a run (:func:`zone_fields`): its spec's ``time.timezone``.

    A sweep's spec.json is its first variant's; a spec without one has the spec default.
    """
    spec_path = run_dir / "spec.json"
    spec: dict[str, Any] = json.loads(spec_path.read_text()) if spec_path.is_file() else {}
    times = spec.get("time") or {}
    start = str(times.get("start") or "")
    year = int(start[:4]) if start[:4].isdigit() else 2024
    return zone_fields(str(times.get("timezone") or DEFAULT_TIMEZONE), year)


def zoned_datetime_columns(schema: pl.Schema) -> list[str]:
    """The columns holding instants (a Datetime with a zone; stored ones are UTC)."""
    return [
        name
        for name, dtype in schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    ]


def with_local_columns(frame: pl.DataFrame, zone: str) -> pl.DataFrame:
    """``frame`` plus ``<column>_local`` (the instant in ``zone``) after each instant column."""
    columns = zoned_datetime_columns(frame.schema)
    if not columns:
        return frame
    return frame.with_columns(
        pl.col(c).dt.convert_time_zone(zone).alias(c + LOCAL_SUFFIX) for c in columns
    )


def local_csv_frame(frame: pl.LazyFrame, zone: str) -> pl.LazyFrame:
    """Each instant column as ISO 8601 text in ``zone`` with its offset (same column names)."""
    columns = zoned_datetime_columns(frame.collect_schema())
    return frame.with_columns(
        pl.col(c).dt.convert_time_zone(zone).dt.strftime(ISO_LOCAL_FORMAT) for c in columns
    )


def local_column_entries(columns: list[dict[str, Any]], schema: pl.Schema) -> list[dict[str, Any]]:
    """Column descriptions with ``local`` = the name of the row field in exchange time."""
    zoned = set(zoned_datetime_columns(schema))
    return [
        {**entry, "local": entry["name"] + LOCAL_SUFFIX} if entry["name"] in zoned else entry
        for entry in columns
    ]
