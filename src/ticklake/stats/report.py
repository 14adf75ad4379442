"""Terminal table and self-contained HTML report of window statistics.

The HTML file inlines plotly.js once and embeds every figure as JSON in a
``<script type="application/json" id="figure-...">`` block (as the backtest tearsheet
does), so the data behind each chart can be read back out of the file.
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
from ticklake.stats.windows import REGIMES, WindowStats, describe

_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "height": 380,
    "margin": {"l": 60, "r": 20, "t": 50},
}
_TABLE_COLUMNS = (
    "count", "up_percent", "mean", "median", "std", "mad", "iqr", "skew", "median_far_from_mean",
)  # fmt: skip


def print_summary(stats: WindowStats, console: Console, regime: str = "all") -> None:
    """Print the summary rows of one regime (``all`` by default) and the notes."""
    rows = stats.summary.filter(pl.col("regime") == regime)
    title = (
        f"{stats.spec.dataset} · {stats.instrument} · "
        f"{', '.join(w.label for w in stats.spec.windows)} ({stats.timezone})"
    )
    table = Table("window", "measure", "bucket", *_TABLE_COLUMNS, title=title, title_justify="left")
    for row in rows.iter_rows(named=True):
        table.add_row(
            row["window"], row["measure"], row["bucket"],
            *(_text(row[c]) for c in _TABLE_COLUMNS),
        )  # fmt: skip
    console.print(table)
    for note in stats.notes:
        console.print(f"• {note}", highlight=False)
    if stats.outliers.height:
        listed = "; ".join(
            f"{d} {w} {m} ({r})"
            for d, w, m, r in stats.outliers.select("day", "window", "measure", "rule").iter_rows()
        )
        console.print(f"outliers: {listed}", highlight=False)


def distribution_figure(stats: WindowStats, measure: str) -> go.Figure:
    """One box per window of a measure's used per-day values, every day drawn as a point."""
    used = stats.per_day.filter(pl.col("excluded_reason").is_null())
    figure = go.Figure()
    for window in (w.label for w in stats.spec.windows):
        rows = used.filter((pl.col("window") == window) & pl.col(measure).is_not_null())
        figure.add_trace(
            go.Box(
                y=rows[measure].to_list(),
                name=window,
                boxpoints="all",
                jitter=0.4,
                boxmean=True,
                text=[str(d) for d in rows["date"]],
                hovertemplate="%{text}: %{y:.3f}<extra>" + window + "</extra>",
            )
        )
    figure.update_layout(
        title=f"{measure} per window (box: quartiles, dashed: mean)", yaxis_title=measure, **_LAYOUT
    )
    return figure


def up_percent_figure(stats: WindowStats) -> go.Figure:
    """Share of used days with a positive value, per window and measure."""
    rows = stats.summary.filter(pl.col("regime") == "all")
    figure = go.Figure()
    for measure in stats.measures:
        part = rows.filter(pl.col("measure") == measure)
        figure.add_trace(
            go.Bar(
                x=part["window"].to_list(),
                y=part["up_percent"].to_list(),
                name=measure,
                customdata=part["count"].to_list(),
                hovertemplate="%{x}: %{y:.1f}% of %{customdata} days<extra>" + measure + "</extra>",
            )
        )
    figure.update_layout(
        title="Up %: days with a value > 0", yaxis_title="%", yaxis_range=[0, 100],
        barmode="group", **_LAYOUT,
    )  # fmt: skip
    return figure


def regime_figure(stats: WindowStats, regime: str, measure: str) -> go.Figure:
    """Mean and median of a measure per bucket of a regime, one pair of bars per window."""
    rows = stats.summary.filter((pl.col("regime") == regime) & (pl.col("measure") == measure))
    figure = go.Figure()
    for window in (w.label for w in stats.spec.windows):
        part = rows.filter(pl.col("window") == window)
        for statistic in ("mean", "median"):
            figure.add_trace(
                go.Bar(
                    x=part["bucket"].to_list(),
                    y=part[statistic].to_list(),
                    name=f"{window} {statistic}",
                    customdata=part["count"].to_list(),
                    hovertemplate="%{x}: %{y:.3f} (%{customdata} days)<extra>"
                    + f"{window} {statistic}</extra>",
                )
            )
    figure.update_layout(
        title=f"{measure} by {regime} ({REGIMES[regime]})", yaxis_title=measure,
        xaxis_type="category", barmode="group", **_LAYOUT,
    )  # fmt: skip
    return figure


def render_html(stats: WindowStats) -> str:
    """Return the report's HTML text."""
    figures: list[tuple[str, go.Figure]] = [("up-percent", up_percent_figure(stats))]
    figures += [(f"distribution-{m}", distribution_figure(stats, m)) for m in stats.measures]
    first = stats.measures[0]
    figures += [(f"regime-{r}", regime_figure(stats, r, first)) for r in REGIMES]
    header = describe(stats)
    spec = stats.spec
    title = f"Window statistics — {spec.dataset} ({stats.instrument})"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in stats.notes)
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>Windows {html.escape(', '.join(w.label for w in spec.windows))} in "
        f"{html.escape(stats.timezone)}; weekdays {spec.weekdays}; "
        f"{html.escape(spec.start or 'first day')} → {html.escape(spec.end or 'last day')}.</p>",
        f"<ul class='notes'>{notes}</ul>",
        "<h2>Summary (all used days)</h2>",
        frame_table(stats.summary.filter(pl.col("regime") == "all"), "summary", _text),
        *(figure_block(key, figure) for key, figure in figures),
        "<h2>Summary per regime</h2>",
        frame_table(stats.summary.filter(pl.col("regime") != "all"), "summary", _text),
        "<h2>Outliers</h2>",
        frame_table(stats.outliers, "outliers", _text) if stats.outliers.height else "<p>none</p>",
        "<h2>Per day</h2>",
        frame_table(stats.per_day, "per-day", _text),
        "<h2>Spec</h2>",
        f"<pre class='spec'>{html.escape(json.dumps(header['spec'], indent=2))}</pre>",
    ]
    return page(title, "\n".join(sections), _CSS)


def write_html(stats: WindowStats, path: Path) -> Path:
    """Write the self-contained report to ``path`` atomically and return the path."""
    return write_page(path, render_html(stats))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4g}" if value and abs(value) < 1e-2 else f"{value:,.2f}"
    return str(value)


# After the shared page's rules (ticklake._html.BASE_CSS).
_CSS = """
table { font-size: .85em; }
th, td { padding: .25em .6em; }
td { font-variant-numeric: tabular-nums; }
.note, ul.notes { color: #555; font-size: .9em; }
"""
