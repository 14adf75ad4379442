"""Pre-processors (before a pass's modules) and post-processors (after them).

Pre-processors enrich or reshape the raw rows of one batch: aggressor side by the quote
rule with tick-rule fallback, consolidated best bid/offer across venues, L3 → L2 book
reconstruction, column renames. Post-processors reshape the bucketed output:
re-aggregation to a wider bucket or to instrument groups, and cross-sectional factors.

Every path-dependent step (tick rule, per-venue forward fill) restarts each trading day
(the ``__day`` column the pass adds), so a day's result never depends on how days were
batched.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from ticklake.analytics.buckets import BucketSpec, duration_ns
from ticklake.analytics.pipeline import (
    AggregationSpec,
    AggressorSideSpec,
    BookFromOrdersSpec,
    ConsolidatedBboSpec,
    CrossSectionSpec,
    OptionGridSpec,
    PassSpec,
    PipelineSpec,
    ReaggregateSpec,
    RenameSpec,
)
from ticklake.errors import ConfigError

if TYPE_CHECKING:
    from ticklake.lake import Lake

DAY = "__day"


@dataclass(frozen=True)
class PassContext:
    """What a pass needs besides its rows: the lake, specs, zone and days of the batch."""

    lake: Lake
    pipeline: PipelineSpec
    spec: PassSpec
    timezone: str
    days: tuple[date, ...]
    bucket: BucketSpec

    @property
    def first_day(self) -> date:
        return self.days[0] - timedelta(days=self.spec.warmup_days)

    def day_start_utc(self, day: date) -> datetime:
        """Midnight of ``day`` in the run's time zone, as a UTC datetime."""
        from zoneinfo import ZoneInfo

        local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(self.timezone))
        return local.astimezone(ZoneInfo("UTC"))

    def universe_filter(self, columns: tuple[str, ...] = ("instrument",)) -> dict[str, Any] | None:
        """Rows of the universe: by ``instrument``, or ``underlying`` for option chains."""
        universe = self.pipeline.universe
        if universe == "all":
            return None
        column = "instrument" if "instrument" in columns else "underlying"
        if column not in columns:
            raise ConfigError(
                f"pass {self.spec.name!r}: its input has neither 'instrument' nor 'underlying' "
                "to select the universe by",
                pass_name=self.spec.name,
            )
        return {column: list(universe)}


def _ts_local(ctx: PassContext, column: str = "ts") -> pl.Expr:
    return pl.col(column).dt.convert_time_zone(ctx.timezone)


# ---------------------------------------------------------------------- preprocess
def _quote_columns(columns: list[str], dataset: str) -> tuple[str, str]:
    for bid, ask in (("bid_price", "ask_price"), ("bid_price_0", "ask_price_0"), ("bid", "ask")):
        if bid in columns and ask in columns:
            return bid, ask
    raise ConfigError(
        f"aggressor_side: dataset {dataset!r} has no best bid/ask columns (bid_price/ask_price, "
        f"bid_price_0/ask_price_0 or bid/ask); its columns: {', '.join(columns)}",
        dataset=dataset,
    )


def tick_rule_expr(price: str = "price", over: tuple[str, ...] = ("instrument", DAY)) -> pl.Expr:
    """+1 for an up-tick, -1 for a down-tick; a zero tick repeats the last non-zero tick."""
    change = pl.col(price).diff().over(list(over)).sign()
    signed = pl.when(change != 0).then(change)
    return signed.forward_fill().over(list(over))


def aggressor_side(frame: pl.DataFrame, spec: AggressorSideSpec, ctx: PassContext) -> pl.DataFrame:
    """Add ``side`` ('buy'/'sell') and ``side_source`` ('vendor', 'quote', 'tick')."""
    for column in ("price", "instrument", "ts"):
        if column not in frame.columns:
            raise ConfigError(
                f"pass {ctx.spec.name!r}: aggressor_side needs trades with a {column!r} column; "
                f"the input has {', '.join(frame.columns)}",
                pass_name=ctx.spec.name,
            )
    info = ctx.lake.dataset_info(spec.quotes)
    bid, ask = _quote_columns(list(info.dataset_schema.column_names), spec.quotes)
    lookback = timedelta(days=1)
    if spec.max_quote_age is not None:
        lookback = timedelta(microseconds=duration_ns(spec.max_quote_age) // 1000 + 1)
    quotes = (
        ctx.lake.scan(
            spec.quotes,
            start=ctx.day_start_utc(ctx.first_day) - lookback,
            end=ctx.day_start_utc(ctx.days[-1] + timedelta(days=1)) + timedelta(seconds=1),
            columns=["ts", "instrument", bid, ask],
            filters=ctx.universe_filter(),
        )
        .filter(pl.col(bid).is_not_null() & pl.col(ask).is_not_null())
        .select(
            "instrument",
            pl.col("ts").cast(frame.schema["ts"]).alias("__quote_ts"),
            ((pl.col(bid) + pl.col(ask)) / 2).alias("__mid"),
        )
        .sort("__quote_ts")
        .collect()
    )
    ordered = frame.with_row_index("__row").sort("ts", maintain_order=True)
    joined = ordered.join_asof(
        quotes,
        left_on="ts",
        right_on="__quote_ts",
        by="instrument",
        strategy="backward",
        tolerance=spec.max_quote_age,
        # A quote stamped with the trade's own time may already include the trade.
        allow_exact_matches=False,
        check_sortedness=False,  # both sides are sorted by time
    )
    over = ("instrument", DAY) if DAY in frame.columns else ("instrument",)
    quote_sign = (
        pl.when(pl.col("price") > pl.col("__mid"))
        .then(1)
        .when(pl.col("price") < pl.col("__mid"))
        .then(-1)
    )
    tick = tick_rule_expr("price", over)
    has_vendor = pl.col("side").is_in(["buy", "sell"]) if "side" in frame.columns else pl.lit(False)
    if not spec.keep_vendor_side:
        has_vendor = pl.lit(False)
    vendor_side = pl.col("side") if "side" in frame.columns else pl.lit(None, pl.String)
    classified = joined.with_columns(__quote=quote_sign, __tick=tick).with_columns(
        pl.when(has_vendor)
        .then(vendor_side)
        .when(pl.col("__quote").is_not_null())
        .then(pl.when(pl.col("__quote") > 0).then(pl.lit("buy")).otherwise(pl.lit("sell")))
        .when(pl.col("__tick").is_not_null())
        .then(pl.when(pl.col("__tick") > 0).then(pl.lit("buy")).otherwise(pl.lit("sell")))
        .alias("side"),
        pl.when(has_vendor)
        .then(pl.lit("vendor"))
        .when(pl.col("__quote").is_not_null())
        .then(pl.lit("quote"))
        .when(pl.col("__tick").is_not_null())
        .then(pl.lit("tick"))
        .alias("side_source"),
    )
    return classified.sort("__row").drop("__row", "__quote_ts", "__mid", "__quote", "__tick")


def consolidated_bbo(
    frame: pl.DataFrame, spec: ConsolidatedBboSpec, ctx: PassContext
) -> pl.DataFrame:
    """Best bid (max) and ask (min) over every venue's latest quote, per instrument instant."""
    needed = ["ts", "instrument", "venue", "bid_price", "bid_size", "ask_price", "ask_size"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"pass {ctx.spec.name!r}: consolidated_bbo needs quotes with columns {missing}; "
            f"the input has {', '.join(frame.columns)}",
            pass_name=ctx.spec.name,
        )
    venues = sorted(v for v in frame["venue"].unique().to_list() if v is not None)
    if frame["venue"].null_count():
        raise ConfigError(
            f"pass {ctx.spec.name!r}: consolidated_bbo found quotes without a venue; every "
            "quote must name its venue",
            pass_name=ctx.spec.name,
        )
    order = ["ts", "seq"] if "seq" in frame.columns else ["ts"]
    data = frame.sort(order, maintain_order=True)
    over = ["instrument", DAY] if DAY in frame.columns else ["instrument"]
    per_venue: list[pl.Expr] = []
    for i, venue in enumerate(venues):
        mine = pl.col("venue") == venue
        for column in ("bid_price", "bid_size", "ask_price", "ask_size", "ts"):
            per_venue.append(
                pl.when(mine)
                .then(pl.col(column))
                .forward_fill()
                .over(over)
                .alias(f"__{column}_{i}")
            )
    data = data.with_columns(per_venue)
    if spec.max_quote_age is not None:
        oldest = pl.col("ts").dt.offset_by(f"-{spec.max_quote_age}")
        stale = []
        for i in range(len(venues)):
            fresh = pl.col(f"__ts_{i}") >= oldest
            for column in ("bid_price", "bid_size", "ask_price", "ask_size"):
                name = f"__{column}_{i}"
                stale.append(pl.when(fresh).then(pl.col(name)).alias(name))
        data = data.with_columns(stale)
    bids = [pl.col(f"__bid_price_{i}") for i in range(len(venues))]
    asks = [pl.col(f"__ask_price_{i}") for i in range(len(venues))]
    data = data.with_columns(
        pl.max_horizontal(bids).alias("bid_price"), pl.min_horizontal(asks).alias("ask_price")
    )

    def at_best(side: str) -> tuple[pl.Expr, pl.Expr]:
        sizes, counts = [], []
        for i in range(len(venues)):
            hit = pl.col(f"__{side}_price_{i}") == pl.col(f"{side}_price")
            sizes.append(pl.when(hit).then(pl.col(f"__{side}_size_{i}")).otherwise(0.0))
            counts.append(hit.fill_null(False).cast(pl.Int64))
        return pl.sum_horizontal(sizes), pl.sum_horizontal(counts)

    bid_size, bid_count = at_best("bid")
    ask_size, ask_count = at_best("ask")
    data = data.with_columns(
        pl.when(pl.col("bid_price").is_not_null()).then(bid_size).alias("bid_size"),
        pl.when(pl.col("ask_price").is_not_null()).then(ask_size).alias("ask_size"),
        bid_count.alias("venues_at_bid"),
        ask_count.alias("venues_at_ask"),
    )
    keep = ["ts", "instrument", "bid_price", "bid_size", "ask_price", "ask_size"]
    keep += ["venues_at_bid", "venues_at_ask"] + ([DAY] if DAY in frame.columns else [])
    # Several updates at one instant: the book after the last of them is the state.
    out = data.select(keep).unique(subset=["instrument", "ts"], keep="last", maintain_order=True)
    return out.with_columns(pl.col("bid_price").alias("bid"), pl.col("ask_price").alias("ask"))


RECONSTRUCT_BOOK = "ticklake.analytics.metrics.l3:reconstruct_book"


def book_from_orders(
    frame: pl.DataFrame, spec: BookFromOrdersSpec, ctx: PassContext
) -> pl.DataFrame:
    """Replay L3 events into L2 snapshots with the L3 family's ``reconstruct_book``."""
    module_name, function_name = RECONSTRUCT_BOOK.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        module = None
    reconstruct: Callable[..., pl.DataFrame] | None = getattr(module, function_name, None)
    if reconstruct is None:
        raise ConfigError(
            f"pass {ctx.spec.name!r}: the l3_to_l2 pre-processor needs {RECONSTRUCT_BOOK} "
            "(the L3 metric family's book replay), which is not available in this "
            "installation; remove the pre-processor or install a ticklake with the L3 family",
            pass_name=ctx.spec.name,
        )
    parts = []
    # The book restarts each trading day (LOBSTER-style files start from a snapshot).
    for (day,), rows in frame.partition_by(DAY, as_dict=True, maintain_order=True).items():
        book = reconstruct(rows.drop(DAY), levels=spec.levels)
        parts.append(book.with_columns(pl.lit(day, pl.Date).alias(DAY)))
    return pl.concat(parts, how="vertical_relaxed") if parts else frame


def option_grid(frame: pl.DataFrame, spec: OptionGridSpec, ctx: PassContext) -> pl.DataFrame:
    """Option snapshots joined to their underlying, in the option metrics' columns."""
    needed = ["ts", "symbol", "underlying", "expiry", "strike", "opt_type", "last_price"]
    missing = [c for c in [*needed, "bid_price_0", "ask_price_0"] if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"pass {ctx.spec.name!r}: option_grid needs option snapshots; missing {missing}",
            pass_name=ctx.spec.name,
        )
    lookback = timedelta(days=1)
    if spec.max_spot_age is not None:
        lookback = timedelta(microseconds=duration_ns(spec.max_spot_age) // 1000 + 1)
    spot = (
        ctx.lake.scan(
            spec.underlying,
            start=ctx.day_start_utc(ctx.first_day) - lookback,
            end=ctx.day_start_utc(ctx.days[-1] + timedelta(days=1)) + timedelta(seconds=1),
            columns=["ts", "instrument", "price"],
        )
        .select(
            pl.col("instrument").alias("underlying"),
            pl.col("ts").cast(frame.schema["ts"]).alias("__spot_ts"),
            pl.col("price").alias("spot"),
        )
        .sort("__spot_ts")
        .collect()
    )
    hour, minute = (int(x) for x in spec.expiry_time.split(":"))
    expiry_at = (
        pl.col("expiry")
        .cast(pl.Datetime("ns"))
        .dt.offset_by(f"{hour}h{minute}m")
        .dt.replace_time_zone(ctx.timezone)
        .dt.convert_time_zone("UTC")
    )
    seconds_left = (expiry_at - pl.col("ts").dt.convert_time_zone("UTC")).dt.total_nanoseconds()
    years = seconds_left.cast(pl.Float64) / (365 * 86_400 * 1e9)
    # Zero means "no price / no level" in the vendor format.
    positive = lambda name: pl.when(pl.col(name) > 0).then(pl.col(name))  # noqa: E731
    out = (
        frame.with_row_index("__row")
        .sort("ts", maintain_order=True)
        .join_asof(
            spot,
            left_on="ts",
            right_on="__spot_ts",
            by="underlying",
            strategy="backward",
            tolerance=spec.max_spot_age,
            allow_exact_matches=True,  # snapshots of one second describe the same state
            check_sortedness=False,
        )
        .sort("__row")
        .with_columns(
            pl.col("symbol").alias("instrument"),
            positive("bid_price_0").alias("bid"),
            positive("ask_price_0").alias("ask"),
            positive("last_price").alias("price"),
            pl.col("opt_type")
            .replace_strict({"CE": True, "PE": False}, default=None)
            .alias("is_call"),
            pl.when(years > 0).then(years).alias("years_to_expiry"),
        )
    )
    return out.drop("__row", "__spot_ts")


def rename_columns(frame: pl.DataFrame, spec: RenameSpec, ctx: PassContext) -> pl.DataFrame:
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"pass {ctx.spec.name!r}: rename of missing column(s) {missing}; the input has "
            f"{', '.join(frame.columns)}",
            pass_name=ctx.spec.name,
        )
    return frame.rename(spec.columns)


def apply_preprocess(frame: pl.DataFrame, spec: Any, ctx: PassContext) -> pl.DataFrame:
    """Run one pre-processor spec on a batch's rows."""
    if isinstance(spec, AggressorSideSpec):
        return aggressor_side(frame, spec, ctx)
    if isinstance(spec, ConsolidatedBboSpec):
        return consolidated_bbo(frame, spec, ctx)
    if isinstance(spec, BookFromOrdersSpec):
        return book_from_orders(frame, spec, ctx)
    if isinstance(spec, OptionGridSpec):
        return option_grid(frame, spec, ctx)
    if isinstance(spec, RenameSpec):
        return rename_columns(frame, spec, ctx)
    raise ConfigError(f"unknown pre-processor {spec!r}")


# --------------------------------------------------------------------- postprocess
def bucket_midpoint(ts_local: pl.Expr, bucket: BucketSpec) -> pl.Expr:
    """The midpoint of the bucket a label stands for (never on any wider boundary)."""
    width = duration_ns(bucket.width)
    start = ts_local.dt.offset_by(f"-{bucket.width}") if bucket.label == "end" else ts_local
    return start.dt.offset_by(f"{width // 2}ns")


def relabel(ts_local: pl.Expr, source: BucketSpec, target: BucketSpec) -> pl.Expr:
    """Map labels of ``source`` buckets to the ``target`` bucket that contains them.

    ``target.width`` must be a multiple of ``source.width``. Mapping the midpoint makes
    end- and start-labelled inputs land in the right bucket on either side: Basalt's
    ``truncate`` put the 1-minute bar labelled 10:15 (10:14–10:15) into 10:15–10:30.
    """
    wide, narrow = duration_ns(target.width), duration_ns(source.width)
    if wide % narrow:
        raise ConfigError(
            f"cannot re-aggregate {source.width} buckets to {target.width}: the new width must "
            "be a whole multiple of the old one",
        )
    return target.label_expr(bucket_midpoint(ts_local, source))


def _aggregation(name: str, rule: AggregationSpec) -> pl.Expr:
    source = pl.col(rule.source or name)
    present = source.is_not_null().any()
    expr: pl.Expr
    if rule.how == "sum":
        expr = pl.when(present).then(source.sum())
    elif rule.how == "first":
        expr = source.drop_nulls().first()
    elif rule.how == "last":
        expr = source.drop_nulls().last()
    elif rule.how == "min":
        expr = source.min()
    elif rule.how == "max":
        expr = source.max()
    elif rule.weight is None:
        expr = source.mean()
    else:
        weight = pl.col(rule.weight)
        usable = source.is_not_null() & weight.is_not_null()
        total = weight.filter(usable).sum()
        expr = pl.when(total != 0).then((source * weight).filter(usable).sum() / total)
    return expr.alias(name)


def reaggregate(
    frame: pl.DataFrame, spec: ReaggregateSpec, bucket: BucketSpec, ctx: PassContext
) -> tuple[pl.DataFrame, BucketSpec]:
    """Re-aggregate bucketed rows; returns the frame and its new bucket."""
    target = spec.bucket or bucket
    keys = {"instrument", "ts"}
    needed = {rule.source or name for name, rule in spec.columns.items()}
    needed |= {rule.weight for rule in spec.columns.values() if rule.weight}
    missing = sorted(needed - set(frame.columns))
    if missing:
        raise ConfigError(
            f"pass {ctx.spec.name!r}: reaggregate names column(s) {missing} that the pass does "
            f"not produce; its columns: {', '.join(frame.columns)}",
            pass_name=ctx.spec.name,
        )
    unlisted = [c for c in frame.columns if c not in keys | set(spec.columns) and c != DAY]
    if unlisted and not spec.drop_unlisted:
        raise ConfigError(
            f"pass {ctx.spec.name!r}: reaggregate has no rule for column(s) {unlisted}; give "
            "each a rule (sum/first/last/min/max/mean) or set drop_unlisted: true",
            pass_name=ctx.spec.name,
        )
    label = relabel(_ts_local(ctx), bucket, target).dt.convert_time_zone("UTC")
    data = frame.with_columns(label.alias("__label")).sort("ts", maintain_order=True)
    group = pl.col("instrument")
    if spec.instrument_groups is not None:
        unknown = sorted(set(data["instrument"].unique().to_list()) - set(spec.instrument_groups))
        if unknown:
            raise ConfigError(
                f"pass {ctx.spec.name!r}: instrument_groups has no group for {unknown[:10]}",
                pass_name=ctx.spec.name,
            )
        group = pl.col("instrument").replace_strict(spec.instrument_groups, return_dtype=pl.String)
    data = data.with_columns(group.alias("__group"))
    out = (
        data.group_by(["__group", "__label"], maintain_order=True)
        .agg([_aggregation(name, rule) for name, rule in spec.columns.items()])
        .rename({"__group": "instrument", "__label": "ts"})
    )
    return out.sort(["ts", "instrument"]), target


def cross_section(frame: pl.DataFrame, spec: CrossSectionSpec, ctx: PassContext) -> pl.DataFrame:
    """Add ``{column}_{method}`` computed across instruments within each bucket."""
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"pass {ctx.spec.name!r}: cross_section names column(s) {missing} that the pass "
            f"does not produce; its columns: {', '.join(frame.columns)}",
            pass_name=ctx.spec.name,
        )
    exprs = []
    for name in spec.columns:
        x = pl.col(name)
        if spec.method == "zscore":
            # Sample standard deviation (ddof=1); a bucket with one instrument gives null.
            expr = (x - x.mean().over("ts")) / x.std(ddof=1).over("ts")
        elif spec.method == "rank":
            expr = x.rank("average").over("ts")
        else:
            count = x.count().over("ts")
            expr = pl.when(count > 1).then((x.rank("average").over("ts") - 1) / (count - 1))
        exprs.append(expr.cast(pl.Float64).alias(f"{name}_{spec.method}"))
    return frame.with_columns(exprs)


def apply_postprocess(
    frame: pl.DataFrame, spec: Any, bucket: BucketSpec, ctx: PassContext
) -> tuple[pl.DataFrame, BucketSpec]:
    """Run one post-processor spec; returns the frame and the bucket of its rows."""
    if isinstance(spec, ReaggregateSpec):
        return reaggregate(frame, spec, bucket, ctx)
    if isinstance(spec, CrossSectionSpec):
        return cross_section(frame, spec, ctx), bucket
    raise ConfigError(f"unknown post-processor {spec!r}")
