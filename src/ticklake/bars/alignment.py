"""Bar intervals and session-aware alignment in the exchange time zone.

Rules (one set for building and rolling up, so labels never mix):

- A bar is ``[ts, ts_end)``: ``ts`` is its open time, ``ts_end`` its exclusive close,
  both UTC. A row (trade, snapshot, smaller bar) belongs to the bar containing its
  ``ts``.
- Bars of a day or less are aligned to the **trading day's start** in the dataset's
  exchange time zone: local midnight, shifted by the dataset's ``day_offset`` (CME's
  "7h" makes the day start at 17:00 Chicago the evening before). An ``anchor`` time of
  day (``09:15`` for NSE) moves the grid's origin; bars before the origin continue the
  grid backwards. The grid restarts every trading day: a bar that would cross the next
  day's start is cut there, and the first bar of a day starts no earlier than the day.
- ``1d`` bars are whole trading days (23 or 25 hours on a daylight-saving change).
- Sub-day grids step in elapsed time from the day's origin, so on a daylight-saving
  change day the bars keep their real length.

Examples:
    >>> parse_interval("5m").label, parse_interval("1hour").nanoseconds
    ('5m', 3600000000000)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from ticklake.errors import ConfigError

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND

_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": NS_PER_SECOND,
    "sec": NS_PER_SECOND,
    "m": 60 * NS_PER_SECOND,
    "min": 60 * NS_PER_SECOND,
    "h": 3_600 * NS_PER_SECOND,
    "hour": 3_600 * NS_PER_SECOND,
    "d": NS_PER_DAY,
    "day": NS_PER_DAY,
}
_LABEL_UNITS: tuple[tuple[str, int], ...] = (
    ("d", NS_PER_DAY),
    ("h", 3_600 * NS_PER_SECOND),
    ("m", 60 * NS_PER_SECOND),
    ("s", NS_PER_SECOND),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
)
_INTERVAL = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$")
_DURATION_PART = re.compile(r"(\d+)(ns|us|ms|s|m|h|d)")


@dataclass(frozen=True)
class Interval:
    """A bar length: ``nanoseconds`` and its canonical ``label`` (``1s``, ``5m``, ``1h``)."""

    nanoseconds: int

    @property
    def label(self) -> str:
        for unit, size in _LABEL_UNITS:
            if self.nanoseconds % size == 0:
                return f"{self.nanoseconds // size}{unit}"
        raise AssertionError("unreachable: 1 ns divides everything")

    @property
    def is_daily(self) -> bool:
        return self.nanoseconds == NS_PER_DAY

    def dataset_name(self) -> str:
        """Default silver dataset name, e.g. ``bars_1m``."""
        return f"bars_{self.label}"


def parse_interval(text: str) -> Interval:
    """Parse ``1s``, ``5s``, ``1m``/``1min``, ``1h``/``1hour``, ``1d``/``1day``, ``100ms``.

    ``m`` is minutes. Intervals longer than one day are refused: weeks and months are
    calendar periods, not fixed lengths.
    """
    match = _INTERVAL.match(text.lower())
    unit = match.group(2) if match else ""
    if match is None or unit not in _UNIT_NS or int(match.group(1)) <= 0:
        raise ConfigError(
            f"bad bar interval {text!r}; use a positive count and a unit among "
            "ns, us, ms, s, m (minutes), h, d — e.g. 1s, 5s, 1m, 5m, 1h, 1d",
            interval=text,
        )
    nanoseconds = int(match.group(1)) * _UNIT_NS[unit]
    if nanoseconds > NS_PER_DAY:
        raise ConfigError(
            f"bar interval {text!r} is longer than one day; bars of a day or less are "
            "supported (weeks and months are calendar periods: aggregate 1d bars yourself)",
            interval=text,
        )
    return Interval(nanoseconds)


def parse_duration_ns(text: str | None) -> int:
    """Parse a day offset such as ``7h``, ``-3h30m`` or ``90m`` into nanoseconds."""
    if not text:
        return 0
    raw = text.strip().lower()
    sign = -1 if raw.startswith("-") else 1
    body = raw.lstrip("+-")
    parts = _DURATION_PART.findall(body)
    if not parts or "".join(n + u for n, u in parts) != body:
        raise ConfigError(
            f"cannot read the duration {text!r}; write it like 7h, 30m or 1h30m",
            duration=text,
        )
    return sign * sum(int(n) * _UNIT_NS[u] for n, u in parts)


def parse_anchor(text: str | time | None) -> time | None:
    """Parse a session anchor ``HH:MM[:SS]`` (exchange local time) or pass ``None`` through."""
    if text is None or isinstance(text, time):
        return text
    try:
        return time.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"bad anchor {text!r}; give the session's local start time as HH:MM, e.g. 09:15",
            anchor=text,
        ) from None


@dataclass(frozen=True)
class DayTable:
    """Trading days covering a time range: UTC starts, grid origins, next-day starts."""

    days: tuple[date, ...]
    starts_ns: np.ndarray
    origins_ns: np.ndarray

    @property
    def ends_ns(self) -> np.ndarray:
        return self.starts_ns[1:]

    @property
    def is_uniform(self) -> bool:
        """True when every day is 24 h and the origin sits at the same offset each day."""
        return bool(
            np.all(np.diff(self.starts_ns) == NS_PER_DAY)
            and np.all(self.origins_ns - self.starts_ns == self.origins_ns[0] - self.starts_ns[0])
        )


@dataclass(frozen=True)
class BarGrid:
    """Where bars of one ``interval`` start and end for a dataset's trading days."""

    interval: Interval
    timezone: str = "UTC"
    day_offset_ns: int = 0
    anchor: time | None = None

    @classmethod
    def create(
        cls,
        interval: str | Interval,
        *,
        timezone: str = "UTC",
        day_offset: str | None = None,
        anchor: str | time | None = None,
    ) -> BarGrid:
        resolved = parse_interval(interval) if isinstance(interval, str) else interval
        return cls(resolved, timezone, parse_duration_ns(day_offset), parse_anchor(anchor))

    # ----------------------------------------------------------------- days
    def trading_day(self, ts_ns: int) -> date:
        """The trading date of an instant (same rule as the lake's partitions)."""
        local = datetime.fromtimestamp(ts_ns // 1_000 / 1e6, ZoneInfo(self.timezone))
        return (
            local.replace(tzinfo=None) + timedelta(microseconds=self.day_offset_ns // 1000)
        ).date()

    def day_start_ns(self, day: date) -> int:
        """UTC instant at which trading ``day`` starts."""
        local = datetime.combine(day, time()) - timedelta(microseconds=self.day_offset_ns // 1000)
        return _local_to_ns(local, self.timezone)

    def day_origin_ns(self, day: date) -> int:
        """UTC instant of the grid origin of ``day``: its start, or the anchor after it."""
        start_local = datetime.combine(day, time()) - timedelta(
            microseconds=self.day_offset_ns // 1000
        )
        if self.anchor is None or self.interval.is_daily:
            return _local_to_ns(start_local, self.timezone)
        candidate = datetime.combine(start_local.date(), self.anchor)
        if candidate < start_local:
            candidate += timedelta(days=1)
        return _local_to_ns(candidate, self.timezone)

    def day_table(self, first_ns: int, last_ns: int) -> DayTable:
        """Trading days from the one before ``first_ns`` to the one after ``last_ns``."""
        first = self.trading_day(first_ns) - timedelta(days=1)
        last = self.trading_day(last_ns) + timedelta(days=1)
        days = tuple(first + timedelta(days=i) for i in range((last - first).days + 1))
        starts = np.array([self.day_start_ns(d) for d in days], dtype=np.int64)
        origins = np.array([self.day_origin_ns(d) for d in days], dtype=np.int64)
        return DayTable(days, starts, origins)

    # ------------------------------------------------------------ expressions
    def _day_columns(self, ts_ns: pl.Expr, table: DayTable) -> tuple[pl.Expr, pl.Expr]:
        """(day start, day origin) of each row's trading day, as Int64 ns expressions."""
        start0 = int(table.starts_ns[0])
        if table.is_uniform:
            # The common case (no DST change in range): pure integer arithmetic.
            start = (ts_ns - start0) // NS_PER_DAY * NS_PER_DAY + start0
            return start, start + int(table.origins_ns[0] - start0)
        starts = pl.lit(pl.Series(table.starts_ns))
        index = starts.search_sorted(ts_ns, side="right").cast(pl.Int64) - 1
        return starts.gather(index), pl.lit(pl.Series(table.origins_ns)).gather(index)

    def day_start_ns_expr(self, ts_ns: pl.Expr, table: DayTable) -> pl.Expr:
        """The start (UTC ns) of each ``ts_ns``'s trading day."""
        return self._day_columns(ts_ns, table)[0]

    def open_ns_expr(self, ts_ns: pl.Expr, table: DayTable) -> pl.Expr:
        """The open (UTC ns) of the bar containing each ``ts_ns``."""
        start, origin = self._day_columns(ts_ns, table)
        if self.interval.is_daily:
            return start
        step = self.interval.nanoseconds
        grid_open = origin + (ts_ns - origin) // step * step
        return pl.max_horizontal(grid_open, start)

    def end_ns_expr(self, open_ns: pl.Expr, table: DayTable) -> pl.Expr:
        """The exclusive close (UTC ns) of the bar opening at ``open_ns``."""
        _start, origin = self._day_columns(open_ns, table)
        next_start = self._next_start(open_ns, table)
        if self.interval.is_daily:
            return next_start
        step = self.interval.nanoseconds
        grid_open = origin + (open_ns - origin) // step * step
        return pl.min_horizontal(grid_open + step, next_start)

    def _next_start(self, ts_ns: pl.Expr, table: DayTable) -> pl.Expr:
        if table.is_uniform:
            start0 = int(table.starts_ns[0])
            return (ts_ns - start0) // NS_PER_DAY * NS_PER_DAY + start0 + NS_PER_DAY
        starts = pl.lit(pl.Series(table.starts_ns))
        return starts.gather(starts.search_sorted(ts_ns, side="right").cast(pl.Int64))

    def opens_between(self, first_open_ns: int, last_open_ns: int, table: DayTable) -> np.ndarray:
        """Every bar open from ``first_open_ns`` to ``last_open_ns`` (same trading day)."""
        day = int(np.searchsorted(table.starts_ns, first_open_ns, side="right") - 1)
        start, origin = int(table.starts_ns[day]), int(table.origins_ns[day])
        if self.interval.is_daily:
            return np.array([start], dtype=np.int64)
        step = self.interval.nanoseconds
        k_first = (first_open_ns - origin) // step
        k_last = (last_open_ns - origin) // step
        opens = origin + np.arange(k_first, k_last + 1, dtype=np.int64) * step
        return np.maximum(opens, start)


def _local_to_ns(local: datetime, timezone: str) -> int:
    """Nanoseconds since the epoch of a naive local wall-clock time (earlier of a fold)."""
    aware = local.replace(tzinfo=ZoneInfo(timezone), fold=0)
    seconds = int(aware.timestamp())
    # timestamp() is float seconds; rebuild exact ns from whole seconds and microseconds.
    return seconds * NS_PER_SECOND + aware.microsecond * 1_000
