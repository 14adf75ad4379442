"""Run one pass over one batch of days: load → preprocess → modules → postprocess.

Rows are assigned to buckets in the pipeline's time zone (so ``1h`` and ``1d`` buckets
follow local hours and midnights), labels are stored in UTC. Each row belongs to the
trading day of its **bucket label** (an end label at midnight belongs to the day that
ends there), so bucket metrics, series metrics and the gold partition of a row agree.

- ``bucket`` metrics aggregate per instrument and bucket over time-sorted rows;
- ``series`` metrics run over each instrument's time-sorted rows of one day (plus the
  pass's ``warmup_days``), then are **sampled** at each bucket label with the last value
  at or before the label (strictly before for end-labelled left-closed buckets, whose
  row at the label belongs to the next bucket): never a value from after the label;
- ``frame`` metrics get the batch's rows (``ts`` in the run's zone) and the bucket spec
  and return ``instrument, ts`` (bucket label) and their outputs.

A pass reading an earlier pass's output treats each input row as its whole bucket: the
row is placed by the midpoint of its bucket, so re-bucketing end-labelled rows never
shifts them by one bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import polars as pl
from polars.exceptions import ColumnNotFoundError, InvalidOperationError, SchemaError

from ticklake.analytics.buckets import BucketSpec, duration_ns
from ticklake.analytics.dense import EMPTY, dense_labels
from ticklake.analytics.pipeline import PassSpec, PipelineSpec, ResolvedModule, resolve_modules
from ticklake.analytics.processors import (
    DAY,
    PassContext,
    apply_postprocess,
    apply_preprocess,
    bucket_midpoint,
)
from ticklake.analytics.registry import Metric, get_metric
from ticklake.errors import ConfigError

LABEL = "__label"
UTC = "UTC"


@dataclass
class PassOutput:
    """A pass's result for one batch: bucketed rows (``instrument``, ``ts``, outputs)."""

    name: str
    frame: pl.DataFrame
    bucket: BucketSpec
    rows_in: int


def label_day_expr(label: pl.Expr, bucket: BucketSpec, timezone: str) -> pl.Expr:
    """The trading day a bucket label belongs to (end labels: the day ending there)."""
    local = label.dt.convert_time_zone(timezone)
    if bucket.label == "end":
        local = local.dt.offset_by("-1ns")
    return local.dt.date()


def gold_day_offset(bucket: BucketSpec) -> str | None:
    """The lake ``day_offset`` that partitions labels exactly like :func:`label_day_expr`."""
    return "-1ns" if bucket.label == "end" else None


def _row_label(ctx: PassContext, source_bucket: BucketSpec | None) -> pl.Expr:
    local = pl.col("ts").dt.convert_time_zone(ctx.timezone)
    if source_bucket is not None:
        if duration_ns(ctx.bucket.width) % duration_ns(source_bucket.width):
            raise ConfigError(
                f"pass {ctx.spec.name!r}: its bucket {ctx.bucket.width} is not a whole multiple "
                f"of its input's bucket {source_bucket.width}",
                pass_name=ctx.spec.name,
            )
        local = bucket_midpoint(local, source_bucket)
    return ctx.bucket.label_expr(local).dt.convert_time_zone(UTC)


def load_input(
    ctx: PassContext, earlier: dict[str, PassOutput]
) -> tuple[pl.DataFrame, BucketSpec | None]:
    """The pass's rows for the batch (plus warm-up days), with ``__label`` and ``__day``."""
    spec = ctx.spec
    source = spec.reads_pass(ctx.pipeline)
    if source is not None:
        if spec.warmup_days:
            raise ConfigError(
                f"pass {spec.name!r}: warmup_days needs a lake dataset input; pass "
                f"{source!r} is computed batch by batch",
                pass_name=spec.name,
            )
        previous = earlier[source]
        frame = previous.frame
        if spec.columns is not None:
            frame = frame.select(_with_keys(spec.columns, frame.columns))
        source_bucket: BucketSpec | None = previous.bucket
    else:
        info = ctx.lake.dataset_info(spec.input)
        columns = None
        if spec.columns is not None:
            columns = _with_keys(spec.columns, list(info.dataset_schema.column_names))
        start = ctx.day_start_utc(ctx.first_day)
        end = ctx.day_start_utc(ctx.days[-1] + timedelta(days=1))
        # One bucket of slack each side; rows are kept by the day of their bucket label.
        slack = timedelta(microseconds=duration_ns(ctx.bucket.width) // 1000 + 1)
        frame = ctx.lake.scan(
            spec.input,
            start=start - slack,
            end=end + slack,
            columns=columns,
            filters=ctx.universe_filter(info.dataset_schema.column_names),
        ).collect()
        source_bucket = None
    if "ts" not in frame.columns:
        raise ConfigError(
            f"pass {spec.name!r}: input {spec.input!r} has no 'ts' column", pass_name=spec.name
        )
    frame = frame.with_columns(_row_label(ctx, source_bucket).alias(LABEL))
    frame = frame.with_columns(label_day_expr(pl.col(LABEL), ctx.bucket, ctx.timezone).alias(DAY))
    frame = frame.filter(pl.col(DAY).is_between(ctx.first_day, ctx.days[-1]))
    return _time_sorted(frame), source_bucket


def _with_keys(columns: tuple[str, ...], available: list[str]) -> list[str]:
    keys = [c for c in ("ts", "instrument", "seq") if c in available and c not in columns]
    return [*keys, *columns]


def _time_sorted(frame: pl.DataFrame) -> pl.DataFrame:
    order = ["ts", "seq"] if "seq" in frame.columns else ["ts"]
    return frame.sort(order, maintain_order=True)


def _check_module(frame: pl.DataFrame, module: ResolvedModule, exprs: list[pl.Expr]) -> None:
    """Fail with the pass and module named when a metric needs a missing column."""
    try:
        frame.head(0).lazy().select(exprs).collect_schema()
    except (ColumnNotFoundError, SchemaError, InvalidOperationError) as exc:
        first_line = str(exc).strip().splitlines()[0]
        visible = [c for c in frame.columns if not c.startswith("__")]
        raise ConfigError(
            f"{module.where}: cannot run on this input ({type(exc).__name__}: {first_line}); "
            f"the input columns are {', '.join(visible)}",
            pass_name=module.pass_name,
            module=module.index,
        ) from None


def _bucket_exprs(metric: Metric, module: ResolvedModule) -> list[pl.Expr]:
    exprs = metric.expressions(module.params)
    if len(exprs) == 1:
        return [exprs[0].alias(metric.output_name(module.params))]
    return exprs


def _series(
    frame: pl.DataFrame, ctx: PassContext, exprs: list[pl.Expr], names: list[str]
) -> pl.DataFrame:
    """Series values on every row, restarting each day (after its warm-up days)."""
    if ctx.spec.warmup_days == 0:
        return frame.select("instrument", "ts", DAY, *[e.over(["instrument", DAY]) for e in exprs])
    parts = []
    for day in ctx.days:
        window = frame.filter(
            pl.col(DAY).is_between(day - timedelta(days=ctx.spec.warmup_days), day)
        )
        values = window.select("instrument", "ts", DAY, *[e.over("instrument") for e in exprs])
        parts.append(values.filter(pl.col(DAY) == day))
    empty = frame.head(0).select("instrument", "ts", DAY, *exprs)
    return (
        pl.concat(parts, how="vertical")
        if parts
        else empty.select(["instrument", "ts", DAY, *names])
    )


def compute_modules(
    frame: pl.DataFrame, modules: list[ResolvedModule], ctx: PassContext
) -> pl.DataFrame:
    """Evaluate every module; one row per instrument and bucket label of the batch."""
    in_batch = pl.col(DAY).is_between(ctx.days[0], ctx.days[-1])
    labels = frame.filter(in_batch).select("instrument", LABEL, DAY).unique().sort(LABEL)
    observed = labels
    if ctx.spec.dense:
        labels = dense_labels(
            labels,
            label=LABEL,
            day=DAY,
            bucket=ctx.bucket,
            timezone=ctx.timezone,
            days=ctx.days,
            session=ctx.spec.session,
            day_of=label_day_expr(pl.col(LABEL), ctx.bucket, ctx.timezone),
        ).filter(in_batch)
    if "session_date" not in frame.columns:  # the technical metrics restart each session
        frame = frame.with_columns(pl.col(DAY).alias("session_date"))
    bucket_exprs: list[pl.Expr] = []
    series_exprs: list[pl.Expr] = []
    series_names: list[str] = []
    frame_modules: list[tuple[Metric, ResolvedModule]] = []
    for module in modules:
        metric = get_metric(module.metric_name)
        if metric.kind == "bucket":
            exprs = _bucket_exprs(metric, module)
            _check_module(frame, module, exprs)
            bucket_exprs += exprs
        elif metric.kind == "series":
            expr = metric.series(module.params)
            _check_module(frame, module, [expr])
            series_exprs.append(expr)
            series_names.append(metric.output_name(module.params))
        else:
            frame_modules.append((metric, module))
    out = labels
    if bucket_exprs:
        aggregated = (
            frame.filter(in_batch)
            .group_by(["instrument", LABEL], maintain_order=True)
            .agg(bucket_exprs)
        )
        out = out.join(aggregated, on=["instrument", LABEL], how="left")
    if series_exprs:
        values = _series(frame, ctx, series_exprs, series_names).sort("ts", maintain_order=True)
        exact = not (ctx.bucket.label == "end" and ctx.bucket.closed == "left")
        sampled = (
            out.select("instrument", LABEL, DAY)
            .sort(LABEL)
            .join_asof(
                values.rename({"ts": "__value_ts"}),
                left_on=LABEL,
                right_on="__value_ts",
                by=["instrument", DAY],
                strategy="backward",
                allow_exact_matches=exact,
                check_sortedness=False,  # both sides were sorted by time just above
            )
        )
        out = out.join(
            sampled.select("instrument", LABEL, *series_names), on=["instrument", LABEL], how="left"
        )
    for metric, module in frame_modules:
        result = _run_frame_metric(frame, metric, module, ctx)
        out = out.join(result, on=["instrument", LABEL], how="full", coalesce=True)
    out = out.drop(DAY).with_columns(
        label_day_expr(pl.col(LABEL), ctx.bucket, ctx.timezone).alias(DAY)
    )
    out = out.filter(in_batch).drop(DAY)
    if ctx.spec.dense:
        seen = observed.select("instrument", LABEL).with_columns(pl.lit(False).alias(EMPTY))
        out = out.join(seen, on=["instrument", LABEL], how="left").with_columns(
            pl.col(EMPTY).fill_null(True)
        )
    return out.rename({LABEL: "ts"}).sort(["ts", "instrument"])


def _run_frame_metric(
    frame: pl.DataFrame, metric: Metric, module: ResolvedModule, ctx: PassContext
) -> pl.DataFrame:
    visible = [c for c in frame.columns if not c.startswith("__")]
    rows = frame.select(visible).with_columns(pl.col("ts").dt.convert_time_zone(ctx.timezone))
    try:
        result = metric.fn(rows, module.params, ctx.bucket)
    except (ColumnNotFoundError, SchemaError) as exc:
        raise ConfigError(
            f"{module.where}: cannot run on this input ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0]}); the input columns are {', '.join(visible)}",
            pass_name=module.pass_name,
            module=module.index,
        ) from None
    if not isinstance(result, pl.DataFrame) or not {"instrument", "ts"} <= set(result.columns):
        raise ConfigError(
            f"{module.where}: a frame metric must return a DataFrame with 'instrument' and 'ts'",
            pass_name=module.pass_name,
        )
    return result.with_columns(
        pl.col("ts").dt.convert_time_zone(UTC).dt.cast_time_unit("ns").alias(LABEL)
    ).drop("ts")


def run_pass(
    lake: Any,
    pipeline: PipelineSpec,
    spec: PassSpec,
    timezone: str,
    days: tuple[Any, ...],
    earlier: dict[str, PassOutput],
) -> PassOutput:
    """Compute one pass for one batch of days (outputs of earlier passes in ``earlier``)."""
    modules = resolve_modules(pipeline, spec)
    bucket = pipeline.bucket_of(spec)
    source = spec.reads_pass(pipeline)
    if not modules and source is not None and spec.bucket is None:
        bucket = earlier[source].bucket  # rows pass through with their own buckets
    ctx = PassContext(
        lake=lake, pipeline=pipeline, spec=spec, timezone=timezone, days=days, bucket=bucket
    )
    frame, source_bucket = load_input(ctx, earlier)
    rows_in = int(frame.filter(pl.col(DAY) >= ctx.days[0]).height)
    for pre in spec.preprocess:
        frame = _time_sorted(apply_preprocess(frame, pre, ctx))
        if LABEL not in frame.columns or DAY not in frame.columns:
            frame = frame.with_columns(_row_label(ctx, source_bucket).alias(LABEL))
            frame = frame.with_columns(
                label_day_expr(pl.col(LABEL), ctx.bucket, ctx.timezone).alias(DAY)
            )
    if "instrument" not in frame.columns:
        raise ConfigError(
            f"pass {spec.name!r}: its rows have no 'instrument' column (input {spec.input!r}); "
            "option snapshots need the option_grid pre-processor, others a rename",
            pass_name=spec.name,
        )
    if modules:
        out = compute_modules(frame, modules, ctx)
    else:
        if source_bucket is None:
            raise ConfigError(
                f"pass {spec.name!r} has no modules: that passes rows through, which needs an "
                "earlier pass as input (raw rows have no buckets); add modules",
                pass_name=spec.name,
            )
        bucket = source_bucket
        out = frame.filter(pl.col(DAY) >= ctx.days[0]).drop(LABEL, DAY)
    for post in spec.postprocess:
        out, bucket = apply_postprocess(out, post, bucket, ctx)
    out = out.with_columns(pl.col("ts").dt.convert_time_zone(UTC).dt.cast_time_unit("ns"))
    return PassOutput(spec.name, out.sort(["ts", "instrument"]), bucket, rows_in)
