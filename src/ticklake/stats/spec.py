"""What a window-statistics question is: windows, measures, rules and regimes, as data."""

from __future__ import annotations

import re
from datetime import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ticklake.errors import ConfigError

WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WEEKDAY_WORDS = {
    **{name.lower(): i + 1 for i, name in enumerate(WEEKDAY_NAMES)},
    **{
        word: i + 1
        for i, word in enumerate(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        )
    },
}
BUILTIN_MEASURES = ("return", "volume_change_per_second", "spread")
_TIME = r"(\d{1,2}):(\d{2})(?::(\d{2}))?"
_WINDOW = re.compile(rf"^\s*{_TIME}\s*-\s*{_TIME}\s*$")
_MEASURE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)(?:\((?P<args>[^)]*)\))?(?:@(?P<reduce>\w+))?$")

MetricReduce = Literal["end", "mean"]
OutlierRule = Literal["mad", "iqr", "both"]
VolumeKind = Literal["auto", "cumulative", "per_tick"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeWindow(_Spec):
    """A window of the day in the dataset's exchange time zone, both edges included."""

    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} must be after its start {self.start}")
        return self

    @property
    def label(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"

    @property
    def seconds(self) -> float:
        return _seconds(self.end) - _seconds(self.start)

    @classmethod
    def parse(cls, text: str) -> TimeWindow:
        """Parse ``HH:MM-HH:MM`` (seconds optional).

        Examples:
            >>> TimeWindow.parse("09:15-09:20").label
            '09:15-09:20'
        """
        match = _WINDOW.match(text)
        if match is None:
            raise ConfigError(
                f"window {text!r} is not HH:MM-HH:MM (e.g. 09:15-09:20, seconds optional)",
                window=text,
            )
        h1, m1, s1, h2, m2, s2 = match.groups()
        try:
            return cls(
                start=time(int(h1), int(m1), int(s1 or 0)), end=time(int(h2), int(m2), int(s2 or 0))
            )
        except ValueError as exc:
            raise ConfigError(f"window {text!r}: {exc}", window=text) from None


class MeasureSpec(_Spec):
    """One measure: a built-in (``return``, ``volume_change_per_second``, ``spread``) or a
    registered series metric with its arguments and reduction over the window."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    reduce: MetricReduce | None = None

    @property
    def is_builtin(self) -> bool:
        return self.name in BUILTIN_MEASURES

    @classmethod
    def parse(cls, text: str) -> MeasureSpec:
        """Parse ``NAME``, ``NAME(key=value, ...)`` and an optional ``@end`` / ``@mean``.

        Examples:
            >>> MeasureSpec.parse("ema(minutes=5)@mean").args
            {'minutes': 5}
        """
        match = _MEASURE.match(text.strip())
        if match is None:
            raise ConfigError(
                f"measure {text!r} is not NAME, NAME(key=value, ...) or NAME@end|@mean; "
                f"built-ins: {', '.join(BUILTIN_MEASURES)}",
                measure=text,
            )
        args: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in (match["args"] or "").split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                raise ConfigError(f"measure {text!r}: argument {part!r} is not key=value")
            args[key.strip()] = _literal(value.strip())
        reduce = match["reduce"]
        if reduce not in (None, "end", "mean"):
            raise ConfigError(f"measure {text!r}: reduce must be @end or @mean, not @{reduce}")
        return cls(name=match["name"], args=args, reduce=reduce)


class WindowStatisticsSpec(_Spec):
    """Every parameter of :func:`ticklake.stats.window_statistics` (see its docstring)."""

    dataset: str
    instrument: str | None = None
    windows: tuple[TimeWindow, ...]
    weekdays: tuple[int, ...] = (1, 2, 3, 4, 5)
    measures: tuple[MeasureSpec, ...] = (MeasureSpec(name="return"),)
    start: str | None = None
    end: str | None = None
    session: TimeWindow | None = None
    edge_tolerance_seconds: float = Field(default=0.0, ge=0)
    max_edge_gap_seconds: float = Field(default=60.0, gt=0)
    volume_kind: VolumeKind = "auto"
    metric_reduce: MetricReduce = "end"
    far_from_mean_k: float = Field(default=0.5, ge=0)
    outlier_rule: OutlierRule = "both"
    mad_threshold: float = Field(default=3.5, gt=0)
    iqr_multiplier: float = Field(default=1.5, gt=0)
    volatility_buckets: int = Field(default=10, ge=1)
    gap_edges_bps: tuple[float, ...] = (-50.0, -20.0, 20.0, 50.0)
    opening_range_minutes: int = Field(default=5, ge=1)
    opening_range_buckets: int = Field(default=3, ge=1)
    drop_duplicates: bool = True

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(not 1 <= d <= 7 for d in value):
            raise ValueError("weekdays are 1 (Monday) .. 7 (Sunday)")
        return tuple(sorted(set(value)))

    @field_validator("gap_edges_bps")
    @classmethod
    def _edges(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if list(value) != sorted(set(value)):
            raise ValueError("gap_edges_bps must be strictly increasing")
        return value

    @model_validator(mode="after")
    def _unique(self) -> WindowStatisticsSpec:
        if not self.windows:
            raise ValueError("give at least one window, e.g. 09:15-09:20")
        labels = [w.label for w in self.windows]
        if len(set(labels)) != len(labels):
            raise ValueError(f"windows repeat: {labels}")
        if not self.measures:
            raise ValueError("give at least one measure, e.g. return")
        return self


def parse_weekdays(values: list[str] | tuple[str, ...] | str) -> tuple[int, ...]:
    """Parse weekday names or numbers (1 = Monday): ``"mon,fri"``, ``["Monday"]``, ``"1"``.

    Examples:
        >>> parse_weekdays("mon,Friday")
        (1, 5)
    """
    items = values.split(",") if isinstance(values, str) else list(values)
    out = []
    for item in (str(i).strip().lower() for i in items):
        if not item:
            continue
        if item.isdigit() and 1 <= int(item) <= 7:
            out.append(int(item))
        elif item in _WEEKDAY_WORDS:
            out.append(_WEEKDAY_WORDS[item])
        else:
            raise ConfigError(
                f"unknown weekday {item!r}; use mon..sun, monday..sunday or 1 (Monday)..7",
                weekday=item,
            )
    return tuple(sorted(set(out)))


def _literal(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            continue
    return value.strip("'\"")


def _seconds(moment: time) -> float:
    return moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6


def _clock(moment: time) -> str:
    text = moment.strftime("%H:%M:%S")
    return text[:-3] if text.endswith(":00") else text
