"""Per-day values of windows of the day, read from a lake dataset in chunks of days.

A dataset is first mapped to one series of points (:class:`SeriesSource`):

- ``prices``: a point per row at ``ts`` with the row's ``price`` and ``volume``;
- ``bars``: a point per bar, known at ``ts_end`` (its close), opened at ``ts`` (its
  open), with the bar's volume, high/low and last bid/ask;
- ``option_snapshots`` (lean or full): one contract (``symbol``), ``last_price``,
  cumulative ``volume`` and the level-0 bid/ask; rows without a last price (no trade
  yet) carry no value and are dropped.

Times of day are wall-clock times in the dataset's exchange time zone; the day is the
partition's trading date.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path

import polars as pl

from ticklake.analytics.registry import Metric, MetricParams
from ticklake.errors import ConfigError
from ticklake.lake.days import trading_day_expr
from ticklake.lake.manifest import DatasetInfo
from ticklake.stats.spec import TimeWindow

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
#: Days read and reduced at once: bounds memory on multi-year 1 s datasets.
DAYS_PER_CHUNK = 40


@dataclass(frozen=True)
class SeriesSource:
    """How a dataset's columns map to the point series the statistics read."""

    schema: str
    instrument_column: str
    time_column: str
    start_time_column: str
    open_column: str
    value_column: str
    volume_column: str | None
    bid_column: str | None
    ask_column: str | None
    high_column: str | None
    low_column: str | None
    volume_is_cumulative: bool | None  # None: decide from the data ("auto")

    def columns(self) -> list[str]:
        names = [
            self.instrument_column,
            self.time_column,
            self.start_time_column,
            self.open_column,
            self.value_column,
            self.volume_column,
            self.bid_column,
            self.ask_column,
            self.high_column,
            self.low_column,
        ]
        return list(dict.fromkeys(n for n in names if n is not None))


def series_source(info: DatasetInfo) -> SeriesSource:
    """The point-series mapping of a dataset's schema; unknown schemas raise ConfigError."""
    name = info.dataset_schema.name
    if name == "prices":
        return SeriesSource(
            name, "instrument", "ts", "ts", "price", "price", "volume", None, None, None, None, None
        )
    if name == "bars":
        return SeriesSource(
            name, "instrument", "ts_end", "ts", "open", "close", "volume",
            "bid_price", "ask_price", "high", "low", False,
        )  # fmt: skip
    if name in ("option_snapshots", "option_snapshots_full"):
        return SeriesSource(
            name, "symbol", "ts", "ts", "last_price", "last_price", "volume",
            "bid_price_0", "ask_price_0", None, None, True,
        )  # fmt: skip
    raise ConfigError(
        f"dataset {info.layer}.{info.name} has schema {name!r}; window statistics read "
        "'prices', 'bars' and 'option_snapshots' datasets (build bars from trades first: "
        "ticklake bars build)",
        dataset=info.name,
    )


def time_ns(moment: time) -> int:
    seconds = moment.hour * 3600 + moment.minute * 60 + moment.second
    return seconds * NS_PER_SECOND + moment.microsecond * 1000


def load_points(
    files: Sequence[Path],
    info: DatasetInfo,
    source: SeriesSource,
    instrument: str,
) -> pl.DataFrame:
    """Read one chunk of partitions (in date order) as points in time order.

    Columns: ``day`` (trading date), ``sod`` / ``start_sod`` (ns since local midnight of
    the point's time and of its start), ``ts`` (UTC, for metrics), ``open_value``,
    ``value``, ``volume`` (raw), ``bid``, ``ask``, ``high``, ``low``.
    """
    lf = pl.scan_parquet(list(files), schema=info.dataset_schema.polars_schema())
    lf = lf.select(source.columns()).filter(pl.col(source.instrument_column) == instrument)
    tz = info.timezone

    def local_ns(column: str) -> pl.Expr:
        return pl.col(column).dt.convert_time_zone(tz).dt.replace_time_zone(None).cast(pl.Int64)

    # One time-zone conversion per column: the day and the time of day both come from it.
    local = local_ns(source.start_time_column)
    if info.day_offset:
        day = trading_day_expr(source.start_time_column, info)
    else:
        day = (local // NS_PER_DAY).cast(pl.Int32).cast(pl.Date)
    start_sod = (local % NS_PER_DAY).alias("start_sod")
    sod = (
        start_sod.alias("sod")
        if source.start_time_column == source.time_column
        else (local_ns(source.time_column) % NS_PER_DAY).alias("sod")
    )

    def optional(column: str | None, name: str) -> pl.Expr:
        return (pl.col(column) if column else pl.lit(None)).cast(pl.Float64).alias(name)

    value = pl.col(source.value_column).cast(pl.Float64)
    frame = lf.select(
        day.alias("day"),
        sod,
        start_sod,
        pl.col(source.time_column).alias("ts"),
        pl.col(source.open_column).cast(pl.Float64).fill_null(value).alias("open_value"),
        value.alias("value"),
        optional(source.volume_column, "volume"),
        optional(source.bid_column, "bid"),
        optional(source.ask_column, "ask"),
        optional(source.high_column, "high"),
        optional(source.low_column, "low"),
    )
    if source.schema.startswith("option_snapshots"):
        # 0 is the vendor's "no trade yet": such rows have no price to measure.
        frame = frame.filter(pl.col("value") > 0)
    # Partitions are sorted by time and read in date order: no sort needed.
    return frame.filter(pl.col("value").is_not_null()).collect()


def volume_is_cumulative(points: pl.DataFrame) -> bool | None:
    """Whether the volume never falls within a day (None when there is no volume at all)."""
    volume = points.select(pl.col("volume").drop_nulls().len()).item()
    if volume == 0:
        return None
    falls = points.select((pl.col("volume").forward_fill().diff().over("day") < 0).any()).item()
    return not falls


def with_row_volume(points: pl.DataFrame, cumulative: bool) -> pl.DataFrame:
    """Add ``row_volume``: volume traded since the previous point of the day.

    For a cumulative volume it is the difference from the previous non-null value (null
    on the day's first point); for a per-tick volume it is the volume itself.
    """
    if cumulative:
        previous = pl.col("volume").forward_fill().shift(1).over("day")
        return points.with_columns((pl.col("volume") - previous).alias("row_volume"))
    return points.with_columns(pl.col("volume").alias("row_volume"))


def with_metrics(
    points: pl.DataFrame, metrics: Sequence[tuple[str, Metric, MetricParams]]
) -> pl.DataFrame:
    """Evaluate series metrics over each day's session points (the analytics grid columns)."""
    if not metrics:
        return points
    grid = points.select(
        "day",
        "sod",
        "ts",
        pl.col("value").alias("price"),
        pl.col("row_volume").alias("volume"),
        "bid",
        "ask",
        pl.col("day").alias("session_date"),
    )
    unique = {column: (metric, params) for column, metric, params in metrics}
    values = grid.select([m.series(p).alias(column) for column, (m, p) in unique.items()])
    return points.with_columns(values)


def session_points(points: pl.DataFrame, session: TimeWindow | None) -> pl.DataFrame:
    if session is None:
        return points
    start, end = time_ns(session.start), time_ns(session.end)
    return points.filter((pl.col("start_sod") >= start) & (pl.col("sod") <= end))


def daily_values(points: pl.DataFrame, opening_range_ns: int) -> pl.DataFrame:
    """Per day: open, close, realised volatility and first-minutes range of session points.

    ``realized_volatility_bps`` is ``10_000 * sqrt(sum(ln(p[i] / p[i-1])**2))`` over the
    day's consecutive points (1 s returns on a 1 s series), not annualised.
    ``opening_range_bps`` is ``(max - min) / open * 10_000`` over the points of
    ``[first start, first start + opening range]`` (high/low for bars).
    """
    log_return = pl.col("value").log().diff()
    first_start = pl.col("start_sod").first()
    in_range = pl.col("sod") <= first_start + opening_range_ns
    high = pl.coalesce("high", "value")
    low = pl.coalesce("low", "value")
    opening = pl.col("open_value").first()
    return points.group_by("day", maintain_order=True).agg(
        pl.len().alias("session_points"),
        opening.alias("open"),
        pl.col("value").last().alias("close"),
        ((log_return.pow(2).sum()).sqrt() * 10_000).alias("realized_volatility_bps"),
        ((high.filter(in_range).max() - low.filter(in_range).min()) / opening * 10_000).alias(
            "opening_range_bps"
        ),
    )


def window_values(
    points: pl.DataFrame,
    windows: Sequence[TimeWindow],
    tolerance_ns: int,
    metric_columns: Sequence[tuple[str, str]],
) -> pl.DataFrame:
    """Per (day, window): edge values and times, volume, spread, metrics and a fingerprint.

    The window's rows are the points with ``start <= start_sod`` and ``sod <= end``.
    First value: the last point at or before the start (as-of backward, looking back at
    most ``tolerance_ns``), else the window's first point. Last value: the last point at
    or before the end. ``metric_columns`` are ``(source column, reduce)`` pairs.
    """
    parts = []
    for window in windows:
        start, end = time_ns(window.start), time_ns(window.end)
        rows = points.filter(
            (pl.col("start_sod") >= start - tolerance_ns) & (pl.col("sod") <= end)
        ).with_columns(pl.lit(window.label).alias("window"), pl.lit(start).alias("window_start"))
        parts.append(rows)
    rows = pl.concat(parts, how="vertical") if parts else points.clear()
    keys = ["day", "window"]
    at_or_before = pl.col("start_sod") <= pl.col("window_start")
    edges = rows.group_by(keys, maintain_order=True).agg(
        pl.coalesce(
            pl.col("start_sod").filter(at_or_before).last(), pl.col("start_sod").first()
        ).alias("first_sod"),
        pl.coalesce(
            pl.col("open_value").filter(at_or_before).last(), pl.col("open_value").first()
        ).alias("first_value"),
        pl.col("sod").last().alias("last_sod"),
        pl.col("value").last().alias("last_value"),
    )
    rows = rows.join(edges.select(*keys, "first_sod", "last_sod"), on=keys, how="left")
    inside = pl.col("start_sod") >= pl.col("window_start")
    traded = (pl.col("sod") > pl.col("first_sod")) & (pl.col("sod") <= pl.col("last_sod"))
    valid_quote = (pl.col("bid") > 0) & (pl.col("ask") >= pl.col("bid"))
    spread = (pl.col("ask") - pl.col("bid")) / ((pl.col("ask") + pl.col("bid")) / 2) * 10_000
    metric_exprs = [
        (
            pl.col(column).filter(inside).mean()
            if reduce == "mean"
            else pl.col(column).filter(pl.col("sod") <= pl.col("last_sod")).last()
        ).alias(f"{column}_{reduce}")
        for column, reduce in metric_columns
    ]
    rest = rows.group_by(keys, maintain_order=True).agg(
        inside.sum().alias("window_points"),
        pl.col("row_volume").filter(traded).sum().alias("_volume_sum"),
        pl.col("row_volume").filter(traded).count().alias("_volume_count"),
        spread.filter(inside & valid_quote).mean().alias("spread_bps"),
        # Order-free fingerprint of the window's (time, value) points: an exact copy of
        # another day's window has the same one.
        pl.struct("sod", "value").filter(inside).hash(seed=7).sum().alias("fingerprint"),
        *metric_exprs,
    )
    out = edges.join(rest, on=keys, how="left")
    seconds = (pl.col("last_sod") - pl.col("first_sod")) / NS_PER_SECOND
    return out.with_columns(
        pl.when((pl.col("_volume_count") > 0) & (seconds > 0))
        .then(pl.col("_volume_sum") / seconds)
        .alias("volume_change_per_second")
    ).drop("_volume_sum", "_volume_count")


def chunked(items: Sequence[tuple[date, Path]], size: int) -> list[list[tuple[date, Path]]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
