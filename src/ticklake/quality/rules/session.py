"""Session completeness against the exchange calendar (S1-S5).

The calendar defaults from the dataset's time zone (Asia/Kolkata -> XBOM,
America/New_York -> XNYS, America/Chicago -> CME_GLOBEX_FX, UTC -> 24/7); every rule here takes
``calendar`` to override it. Partition dates are trading dates in the dataset's time
zone (with its day offset), which is how exchange_calendars labels sessions too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import polars as pl
from pydantic import Field

from ticklake.quality.base import (
    DatasetContext,
    PartitionContext,
    Rule,
    RuleFinding,
    RuleParameters,
    Severity,
    instrument_column,
    register_rule,
)
from ticklake.quality.calendars import calendar_range, default_calendar, session_bounds_ns
from ticklake.schemas import DatasetSchema

ALL_SCHEMAS = ("trades", "prices", "bars", "quotes", "l2", "l3", "book_updates", "option_snapshots")
NS_PER_MINUTE = 60_000_000_000


class SessionParameters(RuleParameters):
    calendar: str | None = Field(
        None,
        description="exchange_calendars name; default from the dataset time zone "
        "(Asia/Kolkata XBOM, America/New_York XNYS, America/Chicago CME_GLOBEX_FX, UTC 24/7)",
    )


def _calendar_name(params: RuleParameters, context: DatasetContext) -> str:
    assert isinstance(params, SessionParameters)
    return params.calendar or context.calendar or default_calendar(context.timezone)


def _session(calendar: str, day: date) -> tuple[int, int] | str | None:
    """(open, close) in UTC ns, None on a non-trading day, "outside" beyond the calendar."""
    first, last = calendar_range(calendar)
    if not first <= day <= last:
        return "outside"
    return session_bounds_ns(calendar, day, day).get(day)


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


@register_rule
class MissingDaysRule(Rule):
    id = "S1"
    name = "missing_trading_days"
    description = (
        "Every trading day of the calendar between the first and last day validated (or "
        "--start/--end) has a partition. Checked counts calendar trading days; each missing "
        "day is one violation (listed in the offending rows)."
    )
    severity = Severity.warning
    schemas = ALL_SCHEMAS
    unit = "days"
    Parameters = SessionParameters
    cross_day = True

    def columns(self, schema: DatasetSchema) -> set[str]:
        return {schema.ts_column}

    def conclude(self, summaries: dict[date, Any], context: DatasetContext) -> list[RuleFinding]:
        calendar = _calendar_name(self.parameters, context)
        if not context.days and (context.start is None or context.end is None):
            return []
        start = context.start or min(context.days)
        end = context.end or max(context.days)
        first, last = calendar_range(calendar)
        start, end = max(start, first), min(end, last)
        if end < start:
            return []
        present = set(context.all_days)
        findings = []
        for day in sorted(session_bounds_ns(calendar, start, end)):
            missing = day not in present
            offending = (
                pl.DataFrame({"date": [day], "weekday": [day.strftime("%A")]})
                if missing
                else pl.DataFrame()
            )
            findings.append(RuleFinding(day, 1, int(missing), offending))
        return findings


@register_rule
class NonTradingDayRule(Rule):
    id = "S2"
    name = "non_trading_day_data"
    description = (
        "No partition is dated on a day the calendar has no session (weekends, holidays). "
        "Unit: days; a day holding rows counts once, and its rows are counted in the "
        "statistics."
    )
    severity = Severity.error
    schemas = ALL_SCHEMAS
    unit = "days"
    Parameters = SessionParameters

    def columns(self, schema: DatasetSchema) -> set[str]:
        return {schema.ts_column}

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        calendar = _calendar_name(self.parameters, context.dataset)
        session = _session(calendar, context.day)
        if session == "outside" or frame.height == 0:
            return RuleFinding(context.day, 0, 0)
        if session is not None:
            return RuleFinding(context.day, 1, 0)
        ts = frame[context.schema.ts_column]
        offending = pl.DataFrame(
            {
                "date": [context.day],
                "weekday": [context.day.strftime("%A")],
                "rows": [frame.height],
                "first_ts": [ts.min()],
                "last_ts": [ts.max()],
            }
        )
        return RuleFinding(context.day, 1, 1, offending, {"rows_on_non_trading_days": frame.height})


class CopiedDayParameters(SessionParameters):
    sample_every_seconds: int = Field(
        60, gt=0, description="profile a day by its first row per instrument in each bucket"
    )
    max_instruments: int = Field(50, gt=0, description="instruments profiled per day")
    lookback_days: int = Field(
        7, gt=0, description="compare with every partition up to this many days earlier"
    )
    min_identical_share: float = Field(
        0.9,
        gt=0.0,
        le=1.0,
        description="share of profile points (same instrument, same time of day) with "
        "identical values that marks a copy",
    )
    min_matched_points: int = Field(30, gt=0, description="points needed to compare two days")


def _content_columns(schema: DatasetSchema) -> list[str]:
    """Columns whose values a copy repeats: everything but times, sequence and dates."""
    skip = {"seq", "recv_ts"}
    return [
        c.name
        for c in schema.columns
        if c.type not in ("timestamp[ns, UTC]", "date32")
        and c.name not in skip
        and c.name != instrument_column(schema)
    ]


@register_rule
class CopiedDayRule(Rule):
    id = "S3"
    name = "day_holds_other_date"
    description = (
        "A partition must not hold another day's data. Each day is profiled by its first "
        "row per instrument in every sample_every_seconds bucket of local time; a day whose "
        "profile repeats an earlier partition's (same instrument, same time of day, same "
        "values in every non-time column) for at least min_identical_share of the matched "
        "points is a copy (e.g. a scraper stamping the previous session with a weekend "
        "date). Unit: days; the offending row names the original (following chains of "
        "copies back to the first)."
    )
    severity = Severity.error
    schemas = ALL_SCHEMAS
    unit = "days"
    Parameters = CopiedDayParameters
    cross_day = True

    @property
    def lookback_days(self) -> int:
        params = self.parameters
        assert isinstance(params, CopiedDayParameters)
        return params.lookback_days

    def columns(self, schema: DatasetSchema) -> set[str]:
        return {schema.ts_column, instrument_column(schema), *_content_columns(schema)}

    def summarize(self, frame: pl.DataFrame, context: PartitionContext) -> pl.DataFrame:
        params = self.parameters
        assert isinstance(params, CopiedDayParameters)
        schema = context.schema
        ts, instrument = schema.ts_column, instrument_column(schema)
        content = _content_columns(schema)
        instruments = frame[instrument].unique().sort().head(params.max_instruments)
        local = pl.col(ts).dt.convert_time_zone(context.dataset.timezone)
        time_of_day_ns = (local - local.dt.truncate("1d")).dt.total_nanoseconds()
        bucket_ns = params.sample_every_seconds * 1_000_000_000
        return (
            frame.filter(pl.col(instrument).is_in(instruments.implode()))
            .sort(ts)
            .select(
                pl.col(instrument).alias("instrument"),
                time_of_day_ns.alias("time_of_day_ns"),
                pl.struct(content).hash(seed=7).alias("value_hash"),
            )
            .with_columns((pl.col("time_of_day_ns") // bucket_ns).alias("bucket"))
            .group_by("instrument", "bucket", maintain_order=True)
            .first()
            .drop("bucket")
        )

    def conclude(self, summaries: dict[date, Any], context: DatasetContext) -> list[RuleFinding]:
        params = self.parameters
        assert isinstance(params, CopiedDayParameters)
        origin: dict[date, date] = {}
        findings = []
        for day in sorted(summaries):
            profile = summaries[day]
            if day not in context.days or profile is None:
                continue
            best: tuple[float, int, date] | None = None
            for earlier in sorted(summaries):
                gap = (day - earlier).days
                if not 0 < gap <= params.lookback_days or summaries[earlier] is None:
                    continue
                joined = profile.join(
                    summaries[earlier], on=["instrument", "time_of_day_ns"], suffix="_earlier"
                )
                if joined.height < params.min_matched_points:
                    continue
                identical = int((joined["value_hash"] == joined["value_hash_earlier"]).sum())
                share = identical / joined.height
                if share >= params.min_identical_share and (best is None or share > best[0]):
                    best = (share, joined.height, earlier)
            if best is None:
                findings.append(RuleFinding(day, 1, 0))
                continue
            share, matched, earlier = best
            first = origin.get(earlier, earlier)
            origin[day] = first
            offending = pl.DataFrame(
                {
                    "date": [day],
                    "weekday": [day.strftime("%A")],
                    "copy_of": [earlier],
                    "original": [first],
                    "identical_share": [round(share, 4)],
                    "matched_points": [matched],
                }
            )
            findings.append(RuleFinding(day, 1, 1, offending))
        return findings


class PartialSessionParameters(SessionParameters):
    max_late_start_minutes: float = Field(
        15.0, ge=0.0, description="first row may come this long after the session open"
    )
    max_early_end_minutes: float = Field(
        15.0, ge=0.0, description="last row may come this long before the session close"
    )


@register_rule
class PartialSessionRule(Rule):
    id = "S4"
    name = "partial_session"
    description = (
        "On a trading day the data covers the calendar's session (early closes included): "
        "the first row is at most max_late_start_minutes after the open and the last row at "
        "most max_early_end_minutes before the close. Unit: days; a day late at both ends "
        "counts once."
    )
    severity = Severity.warning
    schemas = ALL_SCHEMAS
    unit = "days"
    Parameters = PartialSessionParameters

    def columns(self, schema: DatasetSchema) -> set[str]:
        return {schema.ts_column}

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        params = self.parameters
        assert isinstance(params, PartialSessionParameters)
        session = _session(_calendar_name(params, context.dataset), context.day)
        if not isinstance(session, tuple) or frame.height == 0:
            return RuleFinding(context.day, 0, 0)
        open_ns, close_ns = session
        ts_ns = frame[context.schema.ts_column].dt.epoch("ns")
        first_ns, last_ns = int(ts_ns.min()), int(ts_ns.max())  # type: ignore[arg-type]
        late_minutes = max(0.0, (first_ns - open_ns) / NS_PER_MINUTE)
        early_minutes = max(0.0, (close_ns - last_ns) / NS_PER_MINUTE)
        partial = (
            late_minutes > params.max_late_start_minutes
            or early_minutes > params.max_early_end_minutes
        )
        if not partial:
            return RuleFinding(context.day, 1, 0)
        covered = max(0, min(last_ns, close_ns) - max(first_ns, open_ns))
        offending = pl.DataFrame(
            {
                "date": [context.day],
                "session_open": [_utc(open_ns)],
                "session_close": [_utc(close_ns)],
                "first_ts": [_utc(first_ns)],
                "last_ts": [_utc(last_ns)],
                "late_start_minutes": [round(late_minutes, 2)],
                "early_end_minutes": [round(early_minutes, 2)],
                "session_covered_share": [round(covered / (close_ns - open_ns), 4)],
            }
        )
        return RuleFinding(
            context.day, 1, 1, offending, {"minutes_missing": late_minutes + early_minutes}
        )


@register_rule
class OutsideSessionRule(Rule):
    id = "S5"
    name = "outside_session_rows"
    description = (
        "Rows before the session open (pre-open, e.g. NSE 09:00-09:15 IST) or at/after the "
        "close on a trading day. Informational: such rows are real but are not continuous "
        "trading. Unit: rows on trading days; statistics split pre-open and post-close."
    )
    severity = Severity.info
    schemas = ALL_SCHEMAS
    Parameters = SessionParameters

    def columns(self, schema: DatasetSchema) -> set[str]:
        return {schema.ts_column}

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        session = _session(_calendar_name(self.parameters, context.dataset), context.day)
        if not isinstance(session, tuple):
            return RuleFinding(context.day, 0, 0)
        open_ns, close_ns = session
        ts = frame[context.schema.ts_column]
        ts_ns = ts.dt.epoch("ns")
        before = ts.filter(ts_ns < open_ns)
        after = ts.filter(ts_ns >= close_ns)
        outside = before.len() + after.len()
        stats: dict[str, float] = {"pre_open_rows": before.len(), "post_close_rows": after.len()}
        if not outside:
            return RuleFinding(context.day, frame.height, 0, statistics=stats)
        offending = pl.DataFrame(
            {
                "date": [context.day],
                "session_open": [_utc(open_ns)],
                "pre_open_rows": [before.len()],
                "first_pre_open_ts": [before.min() if before.len() else None],
                "session_close": [_utc(close_ns)],
                "post_close_rows": [after.len()],
                "last_post_close_ts": [after.max() if after.len() else None],
            }
        )
        return RuleFinding(context.day, frame.height, outside, offending, stats)
