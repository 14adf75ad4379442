"""Statistics of windows of the day: per-day window values, summaries, outliers, regimes.

The users' question: "On Mondays over five years, how often was the market up at 09:20
versus 09:15, and from 15:20 to 15:30? What was the per-second volume difference in
those windows? Where were the exceptional days, and where was the median close to the
mean versus far from it?" is::

    stats = window_statistics(lake, "nifty", windows=["09:15-09:20", "15:20-15:30"],
                              weekdays=["mon"], measures=["return", "volume_change_per_second"])
    stats.summary.filter(pl.col("regime") == "all")

Rules (``docs/window-statistics.md`` has the long form):

- A window ``HH:MM-HH:MM`` is in the dataset's exchange time zone and holds the points
  ``start <= t <= end``; only those are used (plus, when ``edge_tolerance_seconds`` > 0,
  a point at most that long before the start for the start value). The value at a time
  is the last value at or before it (as-of backward): the first value is the value at
  the start (else the window's first point), the last value the last point at or before
  the end.
- ``return``: ``return_bps = (last / first - 1) * 10_000`` and ``up = last > first``.
- ``volume_change_per_second``: volume traded per second over the window, the mean of the
  per-second volume differences: ``(V(last) - V(first)) / (t_last - t_first)`` for a
  cumulative volume, ``sum(volume of points in (t_first, t_last]) / (t_last - t_first)``
  for a per-tick volume (bars: every bar of the window). ``volume_kind="auto"`` calls a
  volume cumulative when it never falls within a day.
- ``spread``: mean over the window's points of ``(ask - bid) / mid * 10_000``.
- any registered series metric (``ema_5m``, ``rsi(minutes=14)``, ``realized_volatility``),
  evaluated over each day's session points: its value at the window's last point
  (``@end``) or its mean over the window's points (``@mean``).
- Weekdays are those of the partition (trading) date. A day whose every window holds
  exactly the points of the previous partition's windows is a suspected duplicate (the
  NIFTY 50 scraper's weekend and holiday files): it is kept in ``per_day`` with the
  reason and left out of the summary (``drop_duplicates=False`` keeps it in).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from ticklake.analytics.metrics.technical import resolve_minute_window
from ticklake.analytics.registry import Metric, MetricParams, get_metric
from ticklake.errors import ConfigError
from ticklake.lake import Lake
from ticklake.stats import extract
from ticklake.stats.spec import (
    WEEKDAY_NAMES,
    MeasureSpec,
    MetricReduce,
    OutlierRule,
    TimeWindow,
    VolumeKind,
    WindowStatisticsSpec,
    parse_weekdays,
)
from ticklake.stats.summary import (
    edge_bucket_order,
    edge_buckets,
    find_outliers,
    quantile_buckets,
    quantile_labels,
    summarize,
)

#: Regime columns of ``per_day`` and the value each buckets.
REGIMES = {
    "volatility_decile": "realized_volatility_bps",
    "gap_bucket": "gap_bps",
    "opening_range_bucket": "opening_range_bps",
}
NSE_TIMEZONE = "Asia/Kolkata"
ProgressFn = Callable[[int, int], None]


@dataclass
class WindowStats:
    """The result of :func:`window_statistics`.

    ``per_day``: one row per (selected day, window) with the measures, regime labels,
    ``suspected_duplicate_of``, ``excluded_reason`` (null when the row counts) and
    ``outliers``. ``summary``: one row per (window, measure, regime, bucket); regime
    ``all`` is every used day. ``outliers``: one row per (day, window, measure, rule).
    """

    spec: WindowStatisticsSpec
    timezone: str
    instrument: str
    per_day: pl.DataFrame
    summary: pl.DataFrame
    outliers: pl.DataFrame
    measures: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def days_selected(self) -> int:
        return self.per_day["date"].n_unique()

    def days_used(self, window: str) -> int:
        rows = self.per_day.filter(
            (pl.col("window") == window) & pl.col("excluded_reason").is_null()
        )
        return rows.height

    def write(self, out: Path, fmt: str = "parquet") -> list[Path]:
        """Write ``per_day``, ``summary`` and ``outliers`` as Parquet or CSV into ``out``."""
        if fmt not in ("parquet", "csv"):
            raise ConfigError(f"format must be parquet or csv, not {fmt!r}")
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, frame in (
            ("per_day", self.per_day),
            ("summary", self.summary),
            ("outliers", self.outliers),
        ):
            path = out / f"{name}.{fmt}"
            if fmt == "parquet":
                frame.write_parquet(path)
            else:
                frame.write_csv(path)
            written.append(path)
        return written


def window_statistics(
    lake: Lake,
    dataset: str,
    *,
    windows: Sequence[str | TimeWindow],
    weekdays: Sequence[int | str] = (1, 2, 3, 4, 5),
    measures: Sequence[str | MeasureSpec] = ("return",),
    start: date | str | None = None,
    end: date | str | None = None,
    instrument: str | None = None,
    session: str | TimeWindow | None = "auto",
    edge_tolerance_seconds: float = 0.0,
    max_edge_gap_seconds: float = 60.0,
    volume_kind: VolumeKind = "auto",
    metric_reduce: MetricReduce = "end",
    far_from_mean_k: float = 0.5,
    outlier_rule: OutlierRule = "both",
    mad_threshold: float = 3.5,
    iqr_multiplier: float = 1.5,
    volatility_buckets: int = 10,
    gap_edges_bps: Sequence[float] = (-50.0, -20.0, 20.0, 50.0),
    opening_range_minutes: int = 5,
    opening_range_buckets: int = 3,
    drop_duplicates: bool = True,
    layer: str | None = None,
    progress: ProgressFn | None = None,
) -> WindowStats:
    """Compute statistics of windows of the day over the selected days of a dataset.

    ``session`` bounds the points used for the regimes and metrics: ``"auto"`` is
    09:15-15:30 for an ``Asia/Kolkata`` dataset and the whole day otherwise, ``None`` the
    whole day, or ``"HH:MM-HH:MM"``. See the module docstring for every definition.
    """
    info = lake.dataset_info(dataset, layer)
    spec = WindowStatisticsSpec(
        dataset=info.name,
        instrument=instrument,
        windows=tuple(w if isinstance(w, TimeWindow) else TimeWindow.parse(w) for w in windows),
        weekdays=parse_weekdays([str(d) for d in weekdays]),
        measures=tuple(m if isinstance(m, MeasureSpec) else MeasureSpec.parse(m) for m in measures),
        start=None if start is None else str(_day(start)),
        end=None if end is None else str(_day(end)),
        session=_session(session, info.timezone),
        edge_tolerance_seconds=edge_tolerance_seconds,
        max_edge_gap_seconds=max_edge_gap_seconds,
        volume_kind=volume_kind,
        metric_reduce=metric_reduce,
        far_from_mean_k=far_from_mean_k,
        outlier_rule=outlier_rule,
        mad_threshold=mad_threshold,
        iqr_multiplier=iqr_multiplier,
        volatility_buckets=volatility_buckets,
        gap_edges_bps=tuple(gap_edges_bps),
        opening_range_minutes=opening_range_minutes,
        opening_range_buckets=opening_range_buckets,
        drop_duplicates=drop_duplicates,
    )
    return run_window_statistics(lake, spec, layer=info.layer, progress=progress)


def run_window_statistics(
    lake: Lake,
    spec: WindowStatisticsSpec,
    *,
    layer: str | None = None,
    progress: ProgressFn | None = None,
) -> WindowStats:
    """Run a :class:`WindowStatisticsSpec` (what :func:`window_statistics` builds)."""
    info = lake.dataset_info(spec.dataset, layer)
    source = extract.series_source(info)
    notes: list[str] = []
    listed = lake.partitions(info.name, info.layer)
    partitions = [(p.date, p.path) for p in listed]
    first = _day(spec.start)
    last = _day(spec.end)
    selected_index = [
        i
        for i, (day, _) in enumerate(partitions)
        if (first is None or day >= first)
        and (last is None or day <= last)
        and day.isoweekday() in spec.weekdays
    ]
    if not selected_index:
        names = ", ".join(WEEKDAY_NAMES[d - 1] for d in spec.weekdays)
        raise ConfigError(
            f"{info.layer}.{info.name} has no partition on {names} between "
            f"{spec.start or 'the first day'} and {spec.end or 'the last day'} "
            f"({len(partitions)} partitions in all)",
            dataset=info.name,
        )
    previous = {partitions[i][0]: partitions[i - 1][0] if i else None for i in selected_index}
    needed_index = sorted({*selected_index, *(i - 1 for i in selected_index if i)})
    needed = [partitions[i] for i in needed_index]
    lake.check_partitions([listed[i] for i in needed_index])  # read below by path
    instrument = spec.instrument or _only_instrument(needed[0][1], source, info.name)
    metrics = _resolve_metrics(spec)
    metric_columns = [(column, reduce) for column, reduce, _, _ in metrics]
    tolerance_ns = int(spec.edge_tolerance_seconds * extract.NS_PER_SECOND)
    range_ns = spec.opening_range_minutes * 60 * extract.NS_PER_SECOND

    cumulative: bool | None = {"cumulative": True, "per_tick": False}.get(spec.volume_kind)
    daily_parts, window_parts = [], []
    chunks = extract.chunked(needed, extract.DAYS_PER_CHUNK)
    has_volume = False
    for done, chunk in enumerate(chunks, start=1):
        points = extract.load_points([p for _, p in chunk], info, source, instrument)
        if cumulative is None:
            cumulative = (
                source.volume_is_cumulative
                if source.volume_is_cumulative is not None
                else extract.volume_is_cumulative(points)
            )
        has_volume = has_volume or points["volume"].null_count() < points.height
        points = extract.with_row_volume(points, bool(cumulative))
        in_session = extract.session_points(points, spec.session)
        if metrics:
            in_session = extract.with_metrics(
                in_session, [(column, m, params) for column, _, m, params in metrics]
            )
            outside = points.join(in_session.select("day", "sod"), on=["day", "sod"], how="anti")
            points = pl.concat([in_session, outside], how="diagonal").sort("day", "sod")
        daily_parts.append(extract.daily_values(in_session, range_ns))
        window_parts.append(
            extract.window_values(points, spec.windows, tolerance_ns, metric_columns)
        )
        if progress is not None:
            progress(done, len(chunks))
    daily = pl.concat(daily_parts)
    window_rows = pl.concat(window_parts, how="diagonal_relaxed")
    if not has_volume and any(m.name == "volume_change_per_second" for m in spec.measures):
        notes.append(
            f"{info.name} has no volume (instrument {instrument!r}): "
            "volume_change_per_second is empty"
        )
    elif has_volume:
        notes.append(f"volume read as {'cumulative' if cumulative else 'per-tick'}")

    per_day = _per_day(spec, info.timezone, previous, daily, window_rows, metric_columns)
    per_day, dup_notes = _mark_exclusions(spec, per_day)
    notes.extend(dup_notes)
    per_day = _add_regimes(spec, per_day)
    measure_columns = _measure_columns(spec, metric_columns)
    long = _long(per_day, measure_columns)
    regimes = {
        "volatility_decile": quantile_labels(spec.volatility_buckets, "D"),
        "gap_bucket": edge_bucket_order(spec.gap_edges_bps),
        "opening_range_bucket": quantile_labels(spec.opening_range_buckets, "Q"),
    }
    summary = summarize(long, regimes, spec.far_from_mean_k)
    outliers = find_outliers(long, spec.outlier_rule, spec.mad_threshold, spec.iqr_multiplier)
    per_day = _attach_outliers(per_day, outliers, measure_columns)
    used = per_day.filter(pl.col("excluded_reason").is_null())
    notes.insert(
        0,
        f"{per_day['date'].n_unique()} days selected, "
        + ", ".join(
            f"{w.label}: {used.filter(pl.col('window') == w.label).height} used"
            for w in spec.windows
        ),
    )
    return WindowStats(
        spec=spec,
        timezone=info.timezone,
        instrument=instrument,
        per_day=per_day,
        summary=summary,
        outliers=outliers,
        measures=measure_columns,
        notes=notes,
    )


# --------------------------------------------------------------------------- helpers
def _day(value: date | str | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"date {value!r} is not YYYY-MM-DD", date=value) from None


def _session(session: str | TimeWindow | None, timezone: str) -> TimeWindow | None:
    if isinstance(session, TimeWindow) or session is None:
        return session
    if session == "auto":
        if timezone == NSE_TIMEZONE:
            from ticklake.market.calendar import SESSION_CLOSE, SESSION_OPEN

            return TimeWindow(start=SESSION_OPEN, end=SESSION_CLOSE)
        return None
    if session in ("day", "none"):
        return None
    return TimeWindow.parse(session)


def _only_instrument(path: Path, source: extract.SeriesSource, dataset: str) -> str:
    names = (
        pl.scan_parquet(path)
        .select(pl.col(source.instrument_column).unique())
        .collect()
        .to_series()
        .sort()
        .to_list()
    )
    if len(names) != 1:
        shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        raise ConfigError(
            f"{dataset} holds {len(names)} instruments ({shown}); choose one with "
            f"instrument=... (--instrument)",
            dataset=dataset,
        )
    return str(names[0])


def _resolve_metrics(
    spec: WindowStatisticsSpec,
) -> list[tuple[str, MetricReduce, Metric, MetricParams]]:
    out: list[tuple[str, MetricReduce, Metric, MetricParams]] = []
    for measure in spec.measures:
        if measure.is_builtin:
            continue
        found = resolve_minute_window(measure.name) if not measure.args else None
        if found is None:
            metric = get_metric(measure.name)
            params = metric.parse_params(measure.args)
        else:
            metric, params = found
        if metric.kind != "series":
            raise ConfigError(
                f"measure {measure.name!r}: metric {metric.name!r} is a {metric.kind} metric; "
                "window statistics take series metrics (ema, sma, rsi, realized_volatility, ...)",
                measure=measure.name,
            )
        column = metric.output_name(params)
        reduce = measure.reduce or spec.metric_reduce
        if any(c == column and r == reduce for c, r, _, _ in out):
            continue
        out.append((column, reduce, metric, params))
    return out


def _measure_columns(
    spec: WindowStatisticsSpec, metric_columns: Sequence[tuple[str, str]]
) -> list[str]:
    names = {m.name for m in spec.measures}
    columns = []
    if "return" in names:
        columns.append("return_bps")
    if "volume_change_per_second" in names:
        columns.append("volume_change_per_second")
    if "spread" in names:
        columns.append("spread_bps")
    columns += [f"{column}_{reduce}" for column, reduce in metric_columns]
    return columns


def _per_day(
    spec: WindowStatisticsSpec,
    timezone: str,
    previous: dict[date, date | None],
    daily: pl.DataFrame,
    window_rows: pl.DataFrame,
    metric_columns: Sequence[tuple[str, str]],
) -> pl.DataFrame:
    days = pl.DataFrame(
        {"day": list(previous), "previous_day": list(previous.values())},
        schema={"day": pl.Date, "previous_day": pl.Date},
    )
    labels = pl.DataFrame({"window": [w.label for w in spec.windows]})
    grid = days.join(labels, how="cross")
    window_columns = [
        "first_sod", "first_value", "last_sod", "last_value", "window_points",
        "spread_bps", "fingerprint", "volume_change_per_second",
        *(f"{c}_{r}" for c, r in metric_columns),
    ]  # fmt: skip
    rows = grid.join(
        window_rows.select("day", "window", *window_columns), on=["day", "window"], how="left"
    )
    prior = window_rows.select(
        pl.col("day").alias("previous_day"),
        "window",
        pl.col("fingerprint").alias("_previous_fingerprint"),
        pl.col("window_points").alias("_previous_points"),
    )
    rows = rows.join(prior, on=["previous_day", "window"], how="left")
    rows = rows.join(daily, on="day", how="left").join(
        daily.select(pl.col("day").alias("previous_day"), pl.col("close").alias("previous_close")),
        on="previous_day",
        how="left",
    )
    start_ns = {w.label: extract.time_ns(w.start) for w in spec.windows}
    end_ns = {w.label: extract.time_ns(w.end) for w in spec.windows}
    window_start = pl.col("window").replace_strict(start_ns, return_dtype=pl.Int64)
    window_end = pl.col("window").replace_strict(end_ns, return_dtype=pl.Int64)
    return rows.with_columns(
        pl.col("day")
        .dt.weekday()
        .replace_strict({i + 1: n for i, n in enumerate(WEEKDAY_NAMES)}, return_dtype=pl.String)
        .alias("weekday"),
        ((pl.col("last_value") / pl.col("first_value") - 1) * 10_000).alias("return_bps"),
        (pl.col("last_value") > pl.col("first_value")).alias("up"),
        ((pl.col("open") / pl.col("previous_close") - 1) * 10_000).alias("gap_bps"),
        ((pl.col("first_sod") - window_start) / extract.NS_PER_SECOND).alias("_late_seconds"),
        ((window_end - pl.col("last_sod")) / extract.NS_PER_SECOND).alias("_early_seconds"),
        (
            (pl.col("window_points") > 0)
            & (pl.col("fingerprint") == pl.col("_previous_fingerprint"))
            & (pl.col("window_points") == pl.col("_previous_points"))
        )
        .fill_null(False)
        .alias("_same_as_previous"),
    ).sort("day", "window", maintain_order=True)


def _mark_exclusions(
    spec: WindowStatisticsSpec, per_day: pl.DataFrame
) -> tuple[pl.DataFrame, list[str]]:
    with_data = pl.col("window_points").fill_null(0) > 0
    duplicate_day = per_day.group_by("day").agg(
        (with_data.any() & (pl.col("_same_as_previous") | ~with_data).all()).alias("_duplicate")
    )
    per_day = per_day.join(duplicate_day, on="day", how="left").with_columns(
        pl.when(pl.col("_duplicate")).then(pl.col("previous_day")).alias("suspected_duplicate_of")
    )
    gap = spec.max_edge_gap_seconds
    reason = (
        pl.when(~with_data)
        .then(pl.lit("no data in window"))
        .when(pl.col("_duplicate") & pl.lit(spec.drop_duplicates))
        .then(pl.format("suspected duplicate of {}", pl.col("previous_day")))
        .when(pl.col("_late_seconds") > gap)
        .then(
            pl.format(
                "incomplete: first point {} s after the window start", pl.col("_late_seconds")
            )
        )
        .when(pl.col("_early_seconds") > gap)
        .then(
            pl.format("incomplete: last point {} s before the window end", pl.col("_early_seconds"))
        )
    )
    per_day = per_day.with_columns(reason.alias("excluded_reason"))
    notes = []
    duplicates = (
        per_day.filter(pl.col("suspected_duplicate_of").is_not_null())
        .select("day", "suspected_duplicate_of")
        .unique()
        .sort("day")
    )
    if duplicates.height:
        listed = ", ".join(f"{d} (= {p})" for d, p in duplicates.iter_rows())
        action = "left out of the summary" if spec.drop_duplicates else "kept (drop_duplicates off)"
        notes.append(f"{duplicates.height} suspected duplicate day(s), {action}: {listed}")
    for label, reason_text in (
        per_day.filter(
            pl.col("excluded_reason").is_not_null() & pl.col("suspected_duplicate_of").is_null()
        )
        .group_by("window", "excluded_reason", maintain_order=True)
        .agg(pl.col("day").sort())
        .select("window", pl.struct("excluded_reason", "day"))
        .iter_rows()
    ):
        days = ", ".join(str(d) for d in reason_text["day"])
        notes.append(f"{label}: {reason_text['excluded_reason']}: {days}")
    return per_day, notes


def _add_regimes(spec: WindowStatisticsSpec, per_day: pl.DataFrame) -> pl.DataFrame:
    days = (
        per_day.filter(pl.col("suspected_duplicate_of").is_null() | ~pl.lit(spec.drop_duplicates))
        .select("day", "realized_volatility_bps", "gap_bps", "opening_range_bps")
        .unique("day")
        .sort("day")
    )
    labels = days.select(
        "day",
        quantile_buckets(days["realized_volatility_bps"], spec.volatility_buckets, "D").alias(
            "volatility_decile"
        ),
        edge_buckets(days["gap_bps"], spec.gap_edges_bps).alias("gap_bucket"),
        quantile_buckets(days["opening_range_bps"], spec.opening_range_buckets, "Q").alias(
            "opening_range_bucket"
        ),
    )
    return per_day.join(labels, on="day", how="left")


def _long(per_day: pl.DataFrame, measure_columns: Sequence[str]) -> pl.DataFrame:
    used = per_day.filter(pl.col("excluded_reason").is_null())
    return used.unpivot(
        on=list(measure_columns),
        index=["day", "window", *REGIMES],
        variable_name="measure",
        value_name="value",
    ).with_columns(pl.col("value").cast(pl.Float64))


def _attach_outliers(
    per_day: pl.DataFrame, outliers: pl.DataFrame, measure_columns: Sequence[str]
) -> pl.DataFrame:
    labels = outliers.group_by("day", "window", maintain_order=True).agg(
        pl.format("{} ({})", "measure", "rule").str.join("; ").alias("outliers")
    )
    per_day = per_day.join(labels, on=["day", "window"], how="left")
    return per_day.select(
        pl.col("day").alias("date"),
        "weekday",
        "window",
        pl.col("first_sod").cast(pl.Time).alias("first_time"),
        "first_value",
        pl.col("last_sod").cast(pl.Time).alias("last_time"),
        "last_value",
        pl.col("window_points").fill_null(0).cast(pl.Int64),
        *(["up"] if "return_bps" in measure_columns else []),
        *measure_columns,
        "open",
        "previous_close",
        "gap_bps",
        "gap_bucket",
        "realized_volatility_bps",
        "volatility_decile",
        "opening_range_bps",
        "opening_range_bucket",
        "suspected_duplicate_of",
        "excluded_reason",
        "outliers",
    )


def describe(stats: WindowStats) -> dict[str, Any]:
    """A JSON-friendly header of a result (spec, instrument, time zone, notes)."""
    return {
        "spec": stats.spec.model_dump(mode="json"),
        "instrument": stats.instrument,
        "timezone": stats.timezone,
        "notes": stats.notes,
    }
