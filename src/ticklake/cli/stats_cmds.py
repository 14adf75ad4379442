"""``ticklake stats windows``: statistics of windows of the day, per regime, with a chart."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ticklake.cli._common import LakeOption, console, get_lake, handle_errors

stats_app = typer.Typer(help="Statistical questions about the lake's data.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(stats_app, name="stats")


@stats_app.command("windows")
@handle_errors
def windows_cmd(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="A prices, bars or option_snapshots dataset.")
    ],
    window: Annotated[
        list[str],
        typer.Option("--window", "-w", help="HH:MM-HH:MM in the exchange time zone; repeat."),
    ],
    weekdays: Annotated[
        str, typer.Option(help="Weekdays of the partition date: mon,tue,... or 1..7.")
    ] = "mon,tue,wed,thu,fri",
    measure: Annotated[
        list[str] | None,
        typer.Option(
            "--measure",
            "-m",
            help="return | volume_change_per_second | spread | a series metric "
            "(ema_5m, rsi(minutes=14)@mean); repeat. Default: return.",
        ),
    ] = None,
    instrument: Annotated[
        str | None, typer.Option(help="Instrument (option contract symbol for options).")
    ] = None,
    start: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option(help="Last day, YYYY-MM-DD.")] = None,
    session: Annotated[
        str, typer.Option(help="auto | day | HH:MM-HH:MM: points used for regimes and metrics.")
    ] = "auto",
    edge_tolerance_seconds: Annotated[
        float, typer.Option(help="Look back this far before a window start for its value.")
    ] = 0.0,
    max_edge_gap_seconds: Annotated[
        float, typer.Option(help="Exclude a window whose first/last point is further off.")
    ] = 60.0,
    volume_kind: Annotated[str, typer.Option(help="auto | cumulative | per_tick.")] = "auto",
    metric_reduce: Annotated[
        str, typer.Option(help="end | mean: a metric's value at the window end or its mean.")
    ] = "end",
    far_from_mean_k: Annotated[float, typer.Option(help="Flag |mean - median| > k x MAD.")] = 0.5,
    outlier_rule: Annotated[str, typer.Option(help="mad | iqr | both.")] = "both",
    mad_threshold: Annotated[
        float, typer.Option(help="MAD rule: |x - median| > t x 1.4826 MAD.")
    ] = 3.5,
    iqr_multiplier: Annotated[float, typer.Option(help="IQR rule: outside Q1/Q3 -/+ m IQR.")] = 1.5,
    volatility_buckets: Annotated[
        int, typer.Option(help="Realised-volatility quantile buckets.")
    ] = 10,
    gap_edges_bps: Annotated[
        str, typer.Option(help="Overnight gap bucket edges in bps, comma-separated.")
    ] = "-50,-20,20,50",
    keep_duplicates: Annotated[
        bool, typer.Option(help="Count suspected duplicate days in the summary.")
    ] = False,
    regime: Annotated[
        str,
        typer.Option(
            help="Summary rows to print: all | volatility_decile | gap_bucket | "
            "opening_range_bucket."
        ),
    ] = "all",
    out: Annotated[
        Path | None, typer.Option(help="Directory for per_day / summary / outliers files.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="parquet | csv (with --out).")] = "parquet",
    html: Annotated[Path | None, typer.Option(help="Write the HTML report here.")] = None,
    lake_path: LakeOption = None,
) -> None:
    """Per-day window values and their statistics (count, up %, mean, median, std, MAD, IQR,
    skew), outliers and regimes; e.g. ``--weekdays mon -w 09:15-09:20 -w 15:20-15:30``."""
    from ticklake.errors import ConfigError
    from ticklake.stats import parse_weekdays
    from ticklake.stats.report import print_summary, write_html

    try:
        edges = [float(e) for e in gap_edges_bps.split(",") if e.strip()]
    except ValueError:
        raise ConfigError(f"--gap-edges-bps {gap_edges_bps!r} is not a list of numbers") from None
    if volume_kind not in ("auto", "cumulative", "per_tick"):
        raise ConfigError(
            f"--volume-kind must be auto, cumulative or per_tick, not {volume_kind!r}"
        )
    if metric_reduce not in ("end", "mean"):
        raise ConfigError(f"--metric-reduce must be end or mean, not {metric_reduce!r}")
    if outlier_rule not in ("mad", "iqr", "both"):
        raise ConfigError(f"--outlier-rule must be mad, iqr or both, not {outlier_rule!r}")
    stats = get_lake(lake_path).window_statistics(
        dataset, windows=window, weekdays=parse_weekdays(weekdays),
        measures=measure or ["return"], start=start, end=end, instrument=instrument,
        session=session, edge_tolerance_seconds=edge_tolerance_seconds,
        max_edge_gap_seconds=max_edge_gap_seconds, volume_kind=volume_kind,
        metric_reduce=metric_reduce, far_from_mean_k=far_from_mean_k,
        outlier_rule=outlier_rule, mad_threshold=mad_threshold,
        iqr_multiplier=iqr_multiplier, volatility_buckets=volatility_buckets,
        gap_edges_bps=edges, drop_duplicates=not keep_duplicates,
    )  # fmt: skip
    print_summary(stats, console, regime=regime)
    if out is not None:
        for path in stats.write(out, fmt):
            console.print(f"wrote {path}", highlight=False)
    if html is not None:
        console.print(f"wrote {write_html(stats, html)}", highlight=False)
