"""Dense output: every bucket of each instrument's session, the empty ones marked.

A pass with ``dense: true`` writes a row for every bucket label between the first and
the last bucket an instrument has on a day (its own session, from the data), or, with
``session: "HH:MM-HH:MM"`` (local time of the run's time zone), for every bucket of that
session on each day of the batch for each instrument seen in the batch, plus any bucket
the data has outside it. ``empty`` is true on the rows no input row fell in: their
bucket metrics are null, series metrics carry their last value (as-of, never ahead),
frame metrics whatever their frame says.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import polars as pl

from ticklake.analytics.buckets import BucketSpec, duration_ns
from ticklake.errors import ConfigError

#: The column that marks the buckets no input row fell in.
EMPTY = "empty"


def parse_session(text: str) -> tuple[time, time]:
    """``"09:15-15:30"`` → (09:15, 15:30).

    Examples:
        >>> parse_session("09:15-15:30")
        (datetime.time(9, 15), datetime.time(15, 30))
    """
    try:
        first, last = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError:
        raise ConfigError(
            f"session {text!r} is not HH:MM-HH:MM (local time of the run's time zone)",
            session=text,
        ) from None
    if not first < last:
        raise ConfigError(f"session {text!r}: its start is not before its end", session=text)
    return first, last


def session_labels(
    days: tuple[date, ...], session: str, bucket: BucketSpec, timezone: str
) -> list[datetime]:
    """Every bucket label of ``session`` on each of ``days`` (UTC)."""
    first, last = parse_session(session)
    zone, width = ZoneInfo(timezone), _width(bucket)
    labels: list[datetime] = []
    for day in days:
        start = datetime.combine(day, first, tzinfo=zone).astimezone(ZoneInfo("UTC"))
        end = datetime.combine(day, last, tzinfo=zone).astimezone(ZoneInfo("UTC"))
        label = start + width if bucket.label == "end" else start
        stop = end if bucket.label == "end" else end - width
        while label <= stop:
            labels.append(label)
            label += width
    return labels


def _width(bucket: BucketSpec) -> timedelta:
    """The bucket width as a timedelta (a ConfigError for a calendar width like ``1mo``)."""
    return timedelta(microseconds=duration_ns(bucket.width) / 1000)


def dense_labels(
    observed: pl.DataFrame,
    *,
    label: str,
    day: str,
    bucket: BucketSpec,
    timezone: str,
    days: tuple[date, ...],
    session: str | None,
    day_of: pl.Expr,
) -> pl.DataFrame:
    """``observed`` (instrument, label, day) widened to every bucket (see the module)."""
    if observed.height == 0:
        return observed
    width = _width(bucket)
    dtype = observed.schema[label]
    if session is None:
        spans = observed.group_by("instrument", day).agg(
            pl.col(label).min().alias("__first"), pl.col(label).max().alias("__last")
        )
        filled = (
            spans.select(
                "instrument",
                pl.datetime_ranges("__first", "__last", interval=width).alias(label),
            )
            .explode(label)
            .with_columns(pl.col(label).cast(dtype))
        )
    else:
        grid = pl.DataFrame(
            {label: session_labels(days, session, bucket, timezone)},
            schema={label: pl.Datetime("us", "UTC")},
        ).with_columns(pl.col(label).cast(dtype))
        instruments = observed.select("instrument").unique()
        filled = instruments.join(grid, how="cross")
    filled = filled.with_columns(day_of.alias(day))
    return (
        pl.concat(
            [observed.select("instrument", label, day), filled.select("instrument", label, day)]
        )
        .unique(["instrument", label])
        .sort(label, "instrument")
    )
