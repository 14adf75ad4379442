"""R5 timestamp continuity and alignment: duplicates, order, gaps, bar alignment."""

from __future__ import annotations

import polars as pl
from pydantic import Field

from ticklake.quality.base import (
    PartitionContext,
    Rule,
    RuleFinding,
    RuleParameters,
    Severity,
    instrument_column,
    register_rule,
    schema_family,
    top_offending,
)
from ticklake.schemas import DatasetSchema

ALL_SCHEMAS = ("trades", "prices", "bars", "quotes", "l2", "l3", "book_updates", "option_snapshots")
NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND


class DuplicateParameters(RuleParameters):
    key_columns: tuple[str, ...] | None = Field(
        None, description="columns that identify a row; default: the schema's key"
    )


@register_rule
class DuplicateKeyRule(Rule):
    id = "R5.duplicates"
    name = "duplicate_keys"
    description = (
        "No two rows share the key (the schema's key, or key_columns, e.g. instrument,ts to "
        "find several quotes stamped with one time). Only the repeats count: a key seen "
        "three times is two violations."
    )
    severity = Severity.error
    schemas = ALL_SCHEMAS
    Parameters = DuplicateParameters
    rank_by = "copies"

    def _key(self, schema: DatasetSchema) -> list[str]:
        params = self.parameters
        assert isinstance(params, DuplicateParameters)
        return list(params.key_columns or schema.key)

    def columns(self, schema: DatasetSchema) -> set[str]:
        return set(self._key(schema))

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        key = self._key(context.schema)
        counts = frame.group_by(key).len("copies").filter(pl.col("copies") > 1)
        repeats = int(counts.select((pl.col("copies") - 1).sum()).item() or 0)
        offending = top_offending(counts, "copies").drop("score")
        return RuleFinding(context.day, frame.height, repeats, offending)


def _event_order(schema: DatasetSchema) -> list[str]:
    """The order events happened in: the venue sequence where the schema has one."""
    return [instrument_column(schema), "seq"] if "seq" in schema.column_names else []


@register_rule
class TimeOrderRule(Rule):
    id = "R5.order"
    name = "monotonic_time"
    description = (
        "Within an instrument, time never runs backwards in event order: ordered by seq "
        "(the venue sequence or source line) where the schema has one, else in stored "
        "order. Each row earlier than the row before it counts once; the score is how far "
        "back it jumps, in milliseconds."
    )
    severity = Severity.error
    schemas = ALL_SCHEMAS
    rank_by = "backwards_ms"

    def columns(self, schema: DatasetSchema) -> set[str]:
        return {schema.ts_column, instrument_column(schema), *_event_order(schema)}

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        schema = context.schema
        ts, instrument = schema.ts_column, instrument_column(schema)
        order = _event_order(schema)
        ordered = frame.sort(order, maintain_order=True) if order else frame
        back = (
            ordered.with_columns(
                pl.col(ts).shift(1).over(instrument).alias("previous_ts"),
            )
            .with_columns(
                ((pl.col("previous_ts") - pl.col(ts)).dt.total_nanoseconds() / 1e6).alias(
                    "backwards_ms"
                )
            )
            .filter(pl.col("backwards_ms") > 0)
        )
        stats = {"max_backwards_ms": float(back["backwards_ms"].max())} if back.height else {}  # type: ignore[arg-type]
        keep = [
            c for c in (ts, instrument, "seq", "previous_ts", "backwards_ms") if c in back.columns
        ]
        offending = top_offending(back.select(keep), "backwards_ms").drop("score")
        return RuleFinding(context.day, frame.height, back.height, offending, stats)


class GapParameters(RuleParameters):
    gap_factor: float = Field(
        5.0, gt=0.0, description="a gap is an interval above gap_factor × the typical interval"
    )
    min_gap_seconds: float = Field(
        1.0, ge=0.0, description="never call an interval shorter than this a gap"
    )
    typical_interval_seconds: float | None = Field(
        None,
        gt=0.0,
        description="the expected interval; default: per instrument and day, the bar length "
        "for bars, else the median positive interval between rows",
    )


@register_rule
class GapRule(Rule):
    id = "R5.gaps"
    name = "time_gaps"
    description = (
        "Intervals between consecutive rows of an instrument must stay below gap_factor × "
        "its typical interval (the median positive interval that day, or the bar length), "
        "and never below min_gap_seconds. Checked counts intervals; each gap counts once, "
        "and the offending rows show where it starts and ends."
    )
    severity = Severity.warning
    schemas = ALL_SCHEMAS
    unit = "intervals"
    Parameters = GapParameters
    rank_by = "gap_seconds"

    def columns(self, schema: DatasetSchema) -> set[str]:
        extra = {"ts_end"} if schema_family(schema.name) == "bars" else set()
        return {schema.ts_column, instrument_column(schema), *extra}

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        params = self.parameters
        assert isinstance(params, GapParameters)
        schema = context.schema
        ts, instrument = schema.ts_column, instrument_column(schema)
        intervals = (
            frame.select(ts, instrument, *(["ts_end"] if "ts_end" in frame.columns else []))
            .sort(instrument, ts)
            .with_columns(
                pl.col(ts).shift(1).over(instrument).alias("gap_start"),
            )
            .with_columns(
                ((pl.col(ts) - pl.col("gap_start")).dt.total_nanoseconds() / 1e9).alias(
                    "gap_seconds"
                )
            )
        )
        if params.typical_interval_seconds is not None:
            typical = pl.lit(params.typical_interval_seconds)
        elif "ts_end" in intervals.columns:
            typical = (
                ((pl.col("ts_end") - pl.col(ts)).dt.total_nanoseconds() / 1e9)
                .median()
                .over(instrument)
            )
        else:
            typical = (
                pl.col("gap_seconds").filter(pl.col("gap_seconds") > 0).median().over(instrument)
            )
        measured = intervals.with_columns(typical.alias("typical_seconds")).filter(
            pl.col("gap_seconds").is_not_null()
        )
        threshold = pl.max_horizontal(
            pl.col("typical_seconds") * params.gap_factor, pl.lit(params.min_gap_seconds)
        )
        gaps = measured.filter(pl.col("gap_seconds") > threshold).select(
            instrument,
            "gap_start",
            pl.col(ts).alias("gap_end"),
            "gap_seconds",
            "typical_seconds",
        )
        stats: dict[str, float] = {}
        if gaps.height:
            stats = {
                "max_gap_seconds": float(gaps["gap_seconds"].max()),  # type: ignore[arg-type]
                "gap_seconds_total": float(gaps["gap_seconds"].sum()),
            }
        offending = top_offending(gaps, "gap_seconds").drop("score")
        return RuleFinding(context.day, measured.height, gaps.height, offending, stats)


class AlignmentParameters(RuleParameters):
    interval_seconds: float | None = Field(
        None, gt=0.0, description="the bar length; default: the most common ts_end - ts that day"
    )
    anchor_offset_seconds: float = Field(
        0.0,
        ge=0.0,
        description="bars start at local midnight + offset + k × interval (e.g. 900 for "
        "NSE hourly bars starting 09:15)",
    )


@register_rule
class BarAlignmentRule(Rule):
    id = "R5.alignment"
    name = "bar_alignment"
    description = (
        "Bars have one length (ts_end - ts equal to the interval) and start on the "
        "interval's grid in the dataset's exchange time zone (local midnight + "
        "anchor_offset_seconds + k × interval). Intervals of a day or more are checked for "
        "length only. A bar failing both checks counts once."
    )
    severity = Severity.error
    schemas = ("bars",)
    unit = "bars"
    Parameters = AlignmentParameters

    def columns(self, schema: DatasetSchema) -> set[str]:
        return {schema.ts_column, "ts_end", "instrument"}

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        params = self.parameters
        assert isinstance(params, AlignmentParameters)
        ts = context.schema.ts_column
        lengths = frame.select(
            ts,
            "instrument",
            "ts_end",
            (pl.col("ts_end") - pl.col(ts)).dt.total_nanoseconds().alias("length_ns"),
        )
        if frame.height == 0:
            return RuleFinding(context.day, 0, 0)
        if params.interval_seconds is not None:
            interval_ns = round(params.interval_seconds * NS_PER_SECOND)
        else:
            interval_ns = int(lengths["length_ns"].mode().sort()[0])
        local = pl.col(ts).dt.convert_time_zone(context.dataset.timezone)
        since_midnight = (local - local.dt.truncate("1d")).dt.total_nanoseconds()
        offset_ns = round(params.anchor_offset_seconds * NS_PER_SECOND)
        wrong_length = pl.col("length_ns") != interval_ns
        if 0 < interval_ns < NS_PER_DAY:
            off_grid = ((since_midnight - offset_ns) % interval_ns) != 0
        else:
            off_grid = pl.lit(False)
        bad = lengths.with_columns(
            wrong_length.alias("wrong_length"), off_grid.alias("off_grid")
        ).filter(pl.col("wrong_length") | pl.col("off_grid"))
        stats = {
            "wrong_length_bars": float(bad["wrong_length"].sum()),
            "off_grid_bars": float(bad["off_grid"].sum()),
            "max_bar_interval_seconds": interval_ns / NS_PER_SECOND,
        }
        offending = bad.select(
            ts,
            "instrument",
            "ts_end",
            (pl.col("length_ns") / 1e9).alias("length_seconds"),
            "wrong_length",
            "off_grid",
        ).head(25)
        return RuleFinding(context.day, frame.height, bad.height, offending, stats)
