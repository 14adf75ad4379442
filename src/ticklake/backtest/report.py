"""The HTML tearsheet of a run and its console summary.

``write_report(run_dir)`` writes ``report.html``: one self-contained file (plotly.js is
inlined once; no request leaves the machine when it is opened). Each chart's figure is
embedded as JSON in a ``<script type="application/json" id="figure-...">`` block and
drawn by a few lines of script, so the data behind every chart can be read back out of
the file. The figure builders (``equity_figure`` and friends) are public so they can be
checked on their own.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl
from rich.console import Console
from rich.table import Table

from ticklake._html import figure_block, frame_table, page, write_page
from ticklake.backtest.stats import (
    STATISTIC_FIELDS,
    SUMMARY_FIELDS,
    RunResults,
    Statistics,
    equity_curve_paise,
    format_statistic,
    read_run_results,
)
from ticklake.backtest.stats_sample import (
    BOOTSTRAP_RESAMPLES,
    CONFIDENCE,
    MIN_DAYS,
    MIN_ROUND_TRIPS,
    SampleCheck,
    sample_check,
)

EQUITY_TITLE = "Equity curve: cumulative net P&L (₹)"
DRAWDOWN_TITLE = "Drawdown from the running peak (₹)"
HISTOGRAM_TITLE = "Daily net P&L distribution, traded days (₹)"
WEEKDAY_TITLE = "Net P&L by weekday, traded days (₹)"
ENTRY_TIME_TITLE = "Net P&L by time of first entry (₹)"
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LAYOUT = {"template": "plotly_white", "height": 360, "margin": {"l": 60, "r": 20, "t": 50}}


def equity_figure(daily: pl.DataFrame) -> go.Figure:
    """Cumulative net P&L in ₹ by date over traded and no-trade days (skipped excluded)."""
    curve = equity_curve_paise(daily)
    figure = go.Figure(
        go.Scatter(
            x=[d.isoformat() for d in curve["date"]],
            y=[v / 100 for v in curve["equity_paise"]],
            mode="lines+markers",
            name="equity",
            hovertemplate="%{x}<br>₹%{y:,.2f}<extra></extra>",
        )
    )
    figure.update_layout(title=EQUITY_TITLE, yaxis_title="₹", **_LAYOUT)
    return figure


def drawdown_figure(daily: pl.DataFrame) -> go.Figure:
    """Underwater chart: equity minus its running peak (from 0), in ₹ (≤ 0)."""
    curve = equity_curve_paise(daily)
    figure = go.Figure(
        go.Scatter(
            x=[d.isoformat() for d in curve["date"]],
            y=[-v / 100 for v in curve["drawdown_paise"]],
            fill="tozeroy",
            mode="lines",
            name="drawdown",
            line={"color": "#c0392b"},
            hovertemplate="%{x}<br>₹%{y:,.2f}<extra></extra>",
        )
    )
    figure.update_layout(title=DRAWDOWN_TITLE, yaxis_title="₹", **_LAYOUT)
    return figure


def daily_pnl_histogram_figure(daily: pl.DataFrame) -> go.Figure:
    """Histogram of traded days' net P&L in ₹."""
    traded = daily.filter(pl.col("status") == "traded").sort("date")
    figure = go.Figure(
        go.Histogram(
            x=[v / 100 for v in traded["net_pnl_paise"]],
            name="days",
            hovertemplate="₹%{x}<br>%{y} days<extra></extra>",
        )
    )
    figure.update_layout(
        title=HISTOGRAM_TITLE, xaxis_title="net P&L (₹)", yaxis_title="days", **_LAYOUT
    )
    return figure


def weekday_figure(daily: pl.DataFrame) -> go.Figure:
    """Total net P&L of traded days per weekday (Mon..Sun, only weekdays that traded)."""
    traded = daily.filter(pl.col("status") == "traded")
    grouped = (
        traded.group_by(pl.col("date").dt.weekday().alias("weekday"))
        .agg(
            pl.col("net_pnl_paise").sum().alias("total"),
            pl.len().alias("days"),
        )
        .sort("weekday")
    )
    figure = go.Figure(
        go.Bar(
            x=[WEEKDAY_NAMES[w - 1] for w in grouped["weekday"]],
            y=[v / 100 for v in grouped["total"]],
            customdata=[
                [int(n), t / 100 / n]
                for n, t in zip(grouped["days"], grouped["total"], strict=True)
            ],
            name="net P&L",
            hovertemplate=(
                "%{x}: ₹%{y:,.2f}<br>%{customdata[0]} days, "
                "₹%{customdata[1]:,.2f} per day<extra></extra>"
            ),
        )
    )
    figure.update_layout(title=WEEKDAY_TITLE, yaxis_title="₹", **_LAYOUT)
    return figure


def entry_time_buckets(
    daily: pl.DataFrame, timezone: str, bucket_minutes: int = 15
) -> pl.DataFrame:
    """Traded days grouped by the local time of their first entry, floored to a bucket.

    Returns ``bucket`` ("HH:MM", the bucket's start in ``timezone``), ``days`` and
    ``net_pnl_paise`` (the bucket's total), sorted by bucket.
    """
    if bucket_minutes <= 0:
        raise ValueError(f"bucket_minutes must be positive, got {bucket_minutes}")
    local = pl.col("first_entry_ts").dt.convert_time_zone(timezone)
    minute_of_day = local.dt.hour().cast(pl.Int64) * 60 + local.dt.minute().cast(pl.Int64)
    start = (minute_of_day // bucket_minutes) * bucket_minutes
    return (
        daily.filter((pl.col("status") == "traded") & pl.col("first_entry_ts").is_not_null())
        .with_columns(start.alias("bucket_minute"))
        .group_by("bucket_minute")
        .agg(pl.len().alias("days"), pl.col("net_pnl_paise").sum().alias("net_pnl_paise"))
        .sort("bucket_minute")
        .select(
            pl.format(
                "{}:{}",
                (pl.col("bucket_minute") // 60).cast(pl.String).str.zfill(2),
                (pl.col("bucket_minute") % 60).cast(pl.String).str.zfill(2),
            ).alias("bucket"),
            pl.col("days").cast(pl.Int64),
            pl.col("net_pnl_paise").cast(pl.Int64),
        )
    )


def entry_time_figure(daily: pl.DataFrame, timezone: str, bucket_minutes: int = 15) -> go.Figure:
    """Total net P&L of traded days per bucket of first-entry time of day, in ₹."""
    buckets = entry_time_buckets(daily, timezone, bucket_minutes)
    figure = go.Figure(
        go.Bar(
            x=buckets["bucket"].to_list(),
            y=[v / 100 for v in buckets["net_pnl_paise"]],
            customdata=[[int(n)] for n in buckets["days"]],
            name="net P&L",
            hovertemplate="%{x}: ₹%{y:,.2f}<br>%{customdata[0]} days<extra></extra>",
        )
    )
    figure.update_layout(
        title=f"{ENTRY_TIME_TITLE}, {bucket_minutes}-minute buckets, {timezone}",
        xaxis_title=f"first entry ({timezone})",
        xaxis_type="category",
        yaxis_title="₹",
        **_LAYOUT,
    )
    return figure


def write_report(run_dir: Path, *, bucket_minutes: int = 15) -> Path:
    """Write ``<run_dir>/report.html`` (self-contained) and return its path."""
    results = read_run_results(Path(run_dir))
    document = render_report(results, bucket_minutes=bucket_minutes)
    return write_page(results.run_dir / "report.html", document)


def render_report(results: RunResults, *, bucket_minutes: int = 15) -> str:
    """Return the report's HTML text."""
    statistics = results.statistics()
    daily = results.daily.sort("date")
    figures = [
        ("equity", EQUITY_TITLE, equity_figure(daily)),
        ("drawdown", DRAWDOWN_TITLE, drawdown_figure(daily)),
        ("histogram", HISTOGRAM_TITLE, daily_pnl_histogram_figure(daily)),
        ("weekday", WEEKDAY_TITLE, weekday_figure(daily)),
        (
            "entry-time",
            ENTRY_TIME_TITLE,
            entry_time_figure(daily, results.timezone, bucket_minutes),
        ),
    ]
    charts = "\n".join(figure_block(key, fig, title) for key, title, fig in figures)
    name = str(results.run.get("name") or results.spec.get("name") or "(unnamed strategy)")
    marked = (
        f"<p class='note marked'>{html.escape(marked_note(statistics))}</p>"
        if statistics.marked_closes
        else ""
    )
    sections = [
        _header(results, statistics, name),
        marked,
        "<h2>Statistics</h2>",
        _statistics_table(
            statistics,
            sample_check(
                daily, days_traded=statistics.days_traded, round_trips=statistics.round_trips
            ),
        ),
        charts,
        _breakdown_section(results),
        _samples_section(results, statistics),
        _skipped_section(daily, statistics),
        "<h2>Strategy spec</h2>",
        f"<pre class='spec'>{html.escape(json.dumps(results.spec, indent=2))}</pre>",
    ]
    return page(f"{name} — {results.run_id}", "\n".join(sections), _CSS)


def print_summary(run_dir: Path, console: Console) -> Statistics:
    """Print a Rich table of a run's main statistics and return them."""
    results = read_run_results(Path(run_dir))
    statistics = results.statistics()
    name = results.run.get("name") or results.spec.get("name") or ""
    table = Table(
        "statistic", "value", title=f"{name} {results.run_id}".strip(), title_justify="left"
    )
    by_name = {item.name: item for item in STATISTIC_FIELDS}
    for field_name in SUMMARY_FIELDS:
        item = by_name[field_name]
        table.add_row(item.label, format_statistic(item.kind, getattr(statistics, field_name)))
    console.print(table)
    if statistics.skip_reasons:
        reasons = ", ".join(f"{r} ×{n}" for r, n in statistics.skip_reasons.items())
        console.print(f"skipped: {reasons}", highlight=False)
    if statistics.marked_closes:
        console.print(marked_note(statistics), highlight=False)
    return statistics


def marked_note(statistics: Statistics) -> str:
    """One line saying how much of the P&L rests on marks rather than fills."""
    return (
        f"{statistics.marked_closes:,} close(s) at a mark, not a fill (no price on the book "
        "on the side needed at the session end): "
        f"{format_statistic('paise', statistics.total_marked_pnl_paise)} of the gross P&L "
        f"{format_statistic('paise', statistics.total_gross_pnl_paise)} is marked, not filled"
    )


def _header(results: RunResults, statistics: Statistics, name: str) -> str:
    run, timing = results.run, results.spec.get("time") or {}
    dates = results.daily["date"].sort()
    planned = f"{dates[0]} → {dates[-1]}" if len(dates) else "no planned days"
    executor = str(run.get("executor") or "—")
    if run.get("workers"):
        executor += f" ({run['workers']} workers)"
    rows = [
        ("Run id", results.run_id),
        ("Status", str(run.get("status") or "—")),
        ("Spec window", f"{timing.get('start', '—')} → {timing.get('end', '—')}"),
        ("Planned days", f"{planned} ({statistics.days_planned} days)"),
        ("Spec hash", str(run.get("spec_hash") or "—")),
        ("Executor", executor),
        ("Created", str(run.get("created_at") or "—")),
        ("Finished", str(run.get("finished_at") or "—")),
        ("ticklake", f"{run.get('ticklake_version') or '—'} (git {run.get('git_sha') or '—'})"),
    ]
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    description = results.spec.get("description") or ""
    return (
        f"<h1>{html.escape(name)}</h1>"
        + (f"<p>{html.escape(str(description))}</p>" if description else "")
        + f"<table class='header'>{cells}</table>"
    )


def _statistics_table(statistics: Statistics, check: SampleCheck) -> str:
    intervals = {
        "sharpe_ratio": ("ratio", check.sharpe_interval),
        "average_daily_net_pnl_rupees": ("rupees", check.mean_daily_interval_rupees),
    }
    rows = []
    for item in STATISTIC_FIELDS:
        value = getattr(statistics, item.name)
        if item.kind == "date" and value is None and statistics.max_drawdown_paise:
            # A missing peak is the 0 before the first day; a missing recovery is real.
            text = "start of run" if item.name.endswith("peak_date") else "not recovered"
        else:
            text = format_statistic(item.kind, value)
        extra = ""
        if item.name in intervals:
            kind, interval = intervals[item.name]
            extra = (
                f"{CONFIDENCE:.0%} CI {format_statistic(kind, interval[0])} … "
                f"{format_statistic(kind, interval[1])}"
                if interval
                else ""
            )
        why = check.small.get(item.name)
        attrs = f"class='small-sample' title='{html.escape(why, quote=True)}' " if why else ""
        extra = f"⚠ {why}" + (f"; {extra}" if extra else "") if why else extra
        rows.append(
            f"<tr {attrs}data-statistic='{item.name}'><th>{html.escape(item.label)}</th>"
            f"<td>{html.escape(text)}</td><td class='aside'>{html.escape(extra)}</td></tr>"
        )
    note = (
        "Daily statistics use traded and no-trade days (no-trade = ₹0); skipped days are "
        "excluded. Sharpe: sample std (ddof 1); Sortino: downside deviation over all days; "
        f"both × √252. Exposure over {statistics.session_seconds:,} session seconds per "
        f"traded day. Greyed (⚠): fewer than {MIN_DAYS} days or {MIN_ROUND_TRIPS} round "
        f"trips behind the number, too few to mean anything. CI: {CONFIDENCE:.0%} bootstrap "
        f"interval over {BOOTSTRAP_RESAMPLES:,} seeded resamples of the daily P&L."
    )
    return f"<table class='stats'>{''.join(rows)}</table><p class='note'>{html.escape(note)}</p>"


_FACET_TITLES = {
    "weekday": "Round trips by weekday",
    "entry_window": "Round trips by entry window",
    "month": "Round trips by month",
}


def _breakdown_section(results: RunResults) -> str:
    """Tables of round trips by weekday, entry window and month (``stats_breakdown``)."""
    breakdowns = results.breakdowns()
    head = (
        "<tr><th>key</th><th>round trips</th><th>win rate</th><th>expectancy (₹)</th>"
        "<th>median (₹)</th><th>profit factor</th><th>hold p50</th><th>net (₹)</th></tr>"
    )
    parts = ["<h2>Round trips</h2>"]
    for facet, title in _FACET_TITLES.items():
        rows = []
        for r in breakdowns[facet]:
            rows.append(
                f"<tr><td>{html.escape(r.key)}</td><td>{r.round_trips}</td>"
                f"<td>{format_statistic('percent', r.win_rate)}</td>"
                f"<td>{format_statistic('rupees', r.expectancy_rupees)}</td>"
                f"<td>{format_statistic('rupees', r.median_rupees)}</td>"
                f"<td>{format_statistic('ratio', r.profit_factor)}</td>"
                f"<td>{_hold(r.hold_p50_seconds)}</td>"
                f"<td>{format_statistic('paise', r.total_net_paise)}</td></tr>"
            )
        body = "".join(rows) or "<tr><td colspan='8'>no round trips</td></tr>"
        parts.append(f"<h3>{title}</h3><table class='facets'>{head}{body}</table>")
    return "\n".join(parts)


def _hold(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m {rest:02d}s"


def _samples_section(results: RunResults, statistics: Statistics) -> str:
    samples = results.samples
    shown = 0 if samples is None else samples.height
    total = max(statistics.fills, results.trades.height)
    title = f"<h2>Sample fills</h2><p class='note'>first {shown:,} of {total:,} fills</p>"
    if samples is None or samples.height == 0:
        return title
    return title + frame_table(_display_frame(samples, results.timezone), "samples", _cell)


def _skipped_section(daily: pl.DataFrame, statistics: Statistics) -> str:
    frame = daily.filter(pl.col("status") != "traded").select(
        pl.col("date").cast(pl.String),
        pl.col("date").dt.weekday().alias("weekday"),
        "status",
        pl.col("skip_reason").fill_null("(no reason given)").alias("reason"),
    )
    frame = frame.with_columns(
        pl.col("weekday").map_elements(lambda w: WEEKDAY_NAMES[w - 1], return_dtype=pl.String)
    )
    counts = "; ".join(
        [f"skipped — {r}: {n}" for r, n in statistics.skip_reasons.items()]
        + [f"no trade — {r}: {n}" for r, n in statistics.no_trade_reasons.items()]
    )
    title = (
        f"<h2>Skipped and no-trade days</h2><p class='note'>{statistics.days_skipped} skipped, "
        f"{statistics.days_no_trade} without a trade. {html.escape(counts)}</p>"
    )
    if frame.height == 0:
        return title
    return title + frame_table(frame, "skipped", _cell)


def _display_frame(frame: pl.DataFrame, timezone: str) -> pl.DataFrame:
    """Money columns as rupee text, timestamps in the exchange time zone."""
    columns: list[pl.Expr] = []
    for name, dtype in frame.schema.items():
        column = pl.col(name)
        if name.endswith("_paise") and dtype.is_integer():
            label = name.removesuffix("_paise") + " (₹)"
            columns.append(
                (column.cast(pl.Float64) / 100)
                .map_elements(lambda v: f"{v:,.2f}", return_dtype=pl.String)
                .alias(label)
            )
        elif isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            columns.append(
                column.dt.convert_time_zone(timezone).dt.strftime("%Y-%m-%d %H:%M:%S").alias(name)
            )
        else:
            columns.append(column)
    return frame.select(columns)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e-3 and value else f"{value:,.2f}"
    return str(value)


# After the shared page's rules (ticklake._html.BASE_CSS).
_CSS = """
table { font-size: .9em; }
table.stats td, table.samples td { text-align: right; font-variant-numeric: tabular-nums; }
table.stats td.aside { text-align: left; color: #6b7280; font-size: .9em; }
table.stats tr.small-sample th, table.stats tr.small-sample td { color: #9ca3af; }
"""


# ---------------------------------------------------------------------- sweeps
SWEEP_HEATMAP_TITLE = "Sweep: {statistic} by {y} × {x} (best over the other axes)"


def sweep_heatmap_figure(
    variants: pl.DataFrame, x_axis: str, y_axis: str, statistic: str = "total_net_pnl_paise"
) -> go.Figure:
    """Heatmap of a statistic over two sweep axes; other axes take their best variant.

    Money statistics (``*_paise``) are shown in ₹. A cell without a variant (pruned by a
    constraint) is empty.
    """
    for name in (x_axis, y_axis, statistic):
        if name not in variants.columns:
            raise ValueError(f"{name!r} is not a column of the variant table: {variants.columns}")
    descending = statistic not in ("max_drawdown_paise", "total_costs_paise")
    value = pl.col(statistic).cast(pl.Float64)
    best = variants.group_by(x_axis, y_axis).agg(
        (value.max() if descending else value.min()).alias("value")
    )
    xs = sorted(best[x_axis].unique().to_list())
    ys = sorted(best[y_axis].unique().to_list())
    scale = 0.01 if statistic.endswith("_paise") else 1.0
    lookup = {(r[x_axis], r[y_axis]): r["value"] for r in best.iter_rows(named=True)}
    z = [[None if lookup.get((x, y)) is None else lookup[(x, y)] * scale for x in xs] for y in ys]
    label = statistic.replace("_paise", " (₹)").replace("_", " ")
    title = SWEEP_HEATMAP_TITLE.format(statistic=label, x=x_axis, y=y_axis)
    figure = go.Figure(
        go.Heatmap(
            x=[str(x) for x in xs],
            y=[str(y) for y in ys],
            z=z,
            colorscale="RdYlGn" if descending else "RdYlGn_r",
            hovertemplate=f"{x_axis}=%{{x}}<br>{y_axis}=%{{y}}<br>%{{z:,.2f}}<extra></extra>",
        )
    )
    figure.update_layout(
        title=title,
        xaxis_title=x_axis,
        yaxis_title=y_axis,
        xaxis_type="category",
        yaxis_type="category",
        **_LAYOUT,
    )
    return figure


def write_sweep_report(
    run_dir: Path,
    *,
    x_axis: str | None = None,
    y_axis: str | None = None,
    statistic: str | None = None,
) -> Path:
    """Write ``<run_dir>/report.html`` for a sweep: heatmap and the ranked variant table."""
    run_dir = Path(run_dir)
    info = json.loads((run_dir / "sweep.json").read_text())
    run = json.loads((run_dir / "run.json").read_text())
    variants = pl.read_parquet(run_dir / "variants.parquet")
    axes = list(info["axes"])
    statistic = statistic or str(info.get("rank_by") or "total_net_pnl_paise")
    blocks = []
    if len(axes) >= 2 or (x_axis and y_axis):
        x_axis = x_axis or axes[0]
        y_axis = y_axis or next(a for a in axes if a != x_axis)
        figure = sweep_heatmap_figure(variants, x_axis, y_axis, statistic)
        blocks.append(figure_block("sweep-heatmap", figure, figure.layout.title.text))
    shown = variants.with_columns(
        (pl.col(c) / 100).round(2).alias(c.replace("_paise", "_rupees"))
        for c in variants.columns
        if c.endswith("_paise")
    ).drop([c for c in variants.columns if c.endswith("_paise")])
    name = str(run.get("name") or "sweep")
    header = (
        f"<h1>{html.escape(name)} — sweep</h1><table class='header'>"
        f"<tr><th>Run id</th><td>{html.escape(str(run.get('run_id')))}</td></tr>"
        f"<tr><th>Grid</th><td>{info['grid_size']} combinations, {len(info['variants'])} "
        f"variants after constraints {html.escape(json.dumps(info['constraints']))}</td></tr>"
        f"<tr><th>Ranked by</th><td>{html.escape(statistic)}</td></tr></table>"
    )
    body = "\n".join([header, *blocks, "<h2>Variants</h2>", frame_table(shown, "variants", _cell)])
    return write_page(run_dir / "report.html", page(f"{name} sweep", body, _CSS))
