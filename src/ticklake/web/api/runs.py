"""Run endpoints: list, ledger and statistics, paged tables, equity, day drill-down,
downloads (CSV, Parquet), comparing two runs and publishing a run into gold datasets."""

from __future__ import annotations

import json
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import polars as pl
from fastapi import APIRouter, BackgroundTasks, Body, Depends, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from ticklake.api import LakeSession
from ticklake.backtest.runner import RUNS_DIR
from ticklake.errors import ConfigError
from ticklake.lake import Lake
from ticklake.web.api.deps import get_lake, run_directory
from ticklake.web.errors import ResourceNotFoundError, json_safe
from ticklake.web.local_time import local_csv_frame, run_zone, with_local_columns
from ticklake.web.results import RUN_TABLES, Filter, page_of, read_table
from ticklake.web.security import resolve_inside

router = APIRouter(tags=["runs"])
LakeDep = Annotated[LakeSession, Depends(get_lake)]
TableName = Literal["trades", "daily", "attempts", "samples", "variants"]
# CSVs are made for people: instants in the run's exchange zone unless UTC is asked for.
CsvZone = Annotated[
    Literal["exchange", "UTC"],
    Query(description="instants in CSV: the run's exchange zone (ISO with offset) or UTC"),
]
# report.html is one self-contained file (plotly.js and the figures inlined).
REPORT_CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; frame-ancestors 'none'"
)


def _stats_json(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "stats.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _ledger(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())


def run_summary(run_dir: Path) -> dict[str, Any]:
    ledger = _ledger(run_dir)
    days = ledger.get("days") or {}
    return {
        "run_id": ledger.get("run_id", run_dir.name),
        "name": ledger.get("name"),
        "kind": ledger.get("kind", "backtest"),
        "variants": ledger.get("variants"),
        "status": ledger.get("status"),
        "created_at": ledger.get("created_at"),
        "finished_at": ledger.get("finished_at"),
        "days_total": len(days),
        "days_done": sum(1 for d in days.values() if d.get("status") == "done"),
        "totals": ledger.get("totals"),
        "executor": ledger.get("executor"),
    }


def backtest_runs(lake: Lake) -> list[dict[str, Any]]:
    """Backtest and sweep runs, newest first (analytics runs share runs/ and are left out)."""
    out = []
    for run_json in (lake.root / RUNS_DIR).glob("*/run.json"):
        try:
            ledger = json.loads(run_json.read_text())
        except (OSError, ValueError):
            continue
        if ledger.get("kind", "backtest") not in ("backtest", "sweep"):
            continue
        out.append(run_summary(run_json.parent))
    out.sort(key=lambda r: (r.get("created_at") or "", r["run_id"]), reverse=True)
    return out


@router.get("/runs", summary="Backtest runs, newest first")
def list_runs(
    lake: LakeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[dict[str, Any]]:
    return backtest_runs(lake)[:limit]


@router.get("/runs/compare", summary="Compare two runs: statistics side by side, spec diff")
def compare(
    lake: LakeDep,
    a: Annotated[str, Query(max_length=128)],
    b: Annotated[str, Query(max_length=128)],
) -> dict[str, Any]:
    from ticklake.backtest.compare import ABSENT, compare_runs
    from ticklake.backtest.stats import format_statistic

    dir_a, dir_b = run_directory(lake, a), run_directory(lake, b)
    comparison = compare_runs(dir_a, dir_b)

    def show(value: Any) -> Any:
        return "(absent)" if value is ABSENT else json_safe(value)

    return {
        "run_a": comparison.run_id_a,
        "run_b": comparison.run_id_b,
        "name_a": comparison.name_a,
        "name_b": comparison.name_b,
        "statistics": [
            {
                "name": s.name,
                "label": s.label,
                "kind": s.kind,
                "a": json_safe(s.value_a),
                "b": json_safe(s.value_b),
                "difference": json_safe(s.difference),
                "a_text": format_statistic(s.kind, s.value_a),
                "b_text": format_statistic(s.kind, s.value_b),
                "difference_text": format_statistic(s.kind, s.difference),
            }
            for s in comparison.statistics
        ],
        "sample_a": _sample(dir_a, _stats_json(dir_a)),
        "sample_b": _sample(dir_b, _stats_json(dir_b)),
        "spec_differences": [
            {"path": d.path, "a": show(d.value_a), "b": show(d.value_b)}
            for d in comparison.spec_differences
        ],
    }


@router.get("/runs/{run_id}", summary="A run: ledger summary, statistics, spec, samples")
def run_detail(lake: LakeDep, run_id: str) -> dict[str, Any]:
    run_dir = run_directory(lake, run_id)
    ledger = _ledger(run_dir)
    stats_path = run_dir / "stats.json"
    spec_path = run_dir / "spec.json"
    statistics = json.loads(stats_path.read_text()) if stats_path.is_file() else None
    return {
        **run_summary(run_dir),
        **run_zone(run_dir),
        "statistics": statistics,
        "statistics_text": _statistics_text(statistics),
        "sample": _sample(run_dir, statistics),
        "breakdowns": _breakdowns(run_dir, statistics),
        "spec": json.loads(spec_path.read_text()) if spec_path.is_file() else None,
        "samples": ledger.get("samples"),
        "days": ledger.get("days"),
        "git_sha": ledger.get("git_sha"),
        "ticklake_version": ledger.get("ticklake_version"),
        "files": sorted(
            p.name for p in run_dir.iterdir() if p.is_file() and not p.name.startswith(".")
        ),
    }


def _statistics_text(statistics: dict[str, Any] | None) -> dict[str, str] | None:
    """Each statistic as the report shows it (``format_statistic``: one precision rule)."""
    from ticklake.backtest.stats import STATISTIC_FIELDS, format_statistic

    if statistics is None:
        return None
    out = {}
    for item in STATISTIC_FIELDS:
        value = statistics.get(item.name)
        if value in ("inf", "-inf"):  # stats.json spells an infinite ratio as text
            value = float(value)
        out[item.name] = format_statistic(item.kind, value)
    return out


def _sample(run_dir: Path, statistics: dict[str, Any] | None) -> dict[str, Any] | None:
    """The small-sample rule and bootstrap intervals (:mod:`ticklake.backtest.stats_sample`)
    of a finished single run; ``None`` for a sweep or an unfinished run."""
    from ticklake.backtest.stats_sample import sample_check

    daily_path = run_dir / "daily.parquet"
    if statistics is None or not daily_path.is_file():
        return None
    daily = read_table(daily_path)
    if "variant" in daily.columns:
        return None
    check = sample_check(
        daily,
        days_traded=int(statistics.get("days_traded") or 0),
        round_trips=int(statistics.get("round_trips") or 0),
    )
    return json_safe(check.to_dict())


def _breakdowns(run_dir: Path, statistics: dict[str, Any] | None) -> dict[str, Any] | None:
    """Round trips by weekday, entry window and month (:mod:`ticklake.backtest.stats_breakdown`)
    of a finished single run, as the HTML report shows them; ``None`` for a sweep."""
    from ticklake.backtest.stats import read_run_results

    if statistics is None or (run_dir / "variants.parquet").is_file():
        return None
    try:
        results = read_run_results(run_dir)
    except Exception:  # an unfinished or foreign run: the page shows what it has
        return None
    return {
        facet: [json_safe(row.as_dict()) for row in rows]
        for facet, rows in results.breakdowns().items()
    }


@router.get("/runs/{run_id}/tables/{table}", summary="A run's table, paged/sorted/filtered")
def run_table(
    lake: LakeDep,
    run_id: str,
    table: TableName,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    sort: Annotated[str | None, Query(max_length=64)] = None,
    descending: bool = False,
    filters: Annotated[
        list[str] | None,
        Query(alias="filter", max_length=20, description="column:op:value, e.g. leg:eq:ce"),
    ] = None,
    facets: bool = False,
) -> dict[str, Any]:
    run_dir = run_directory(lake, run_id)
    parsed = tuple(Filter.parse(f) for f in filters or [])
    return page_of(
        run_dir / RUN_TABLES[table],
        offset=offset,
        limit=limit,
        sort=sort,
        descending=descending,
        filters=parsed,
        with_facets=facets,
        zone=run_zone(run_dir),
    )


@router.get("/runs/{run_id}/equity", summary="Daily P&L, equity and drawdown (paise)")
def equity(
    lake: LakeDep,
    run_id: str,
    variant: Annotated[
        int | None, Query(ge=0, le=1_000_000, description="sweeps: default the top-ranked")
    ] = None,
) -> dict[str, Any]:
    from ticklake.backtest.stats import equity_curve_paise

    run_dir = run_directory(lake, run_id)
    daily = read_table(run_dir / "daily.parquet")
    if "variant" in daily.columns:
        if variant is None:
            variant = _top_variant(run_dir)
        daily = daily.filter(pl.col("variant") == variant).drop("variant")
    curve = equity_curve_paise(daily)
    return {
        "variant": variant,
        "date": [d.isoformat() for d in curve["date"].to_list()],
        "net_pnl_paise": curve["net_pnl_paise"].to_list(),
        "equity_paise": curve["equity_paise"].to_list(),
        "drawdown_paise": curve["drawdown_paise"].to_list(),
    }


def _top_variant(run_dir: Path) -> int:
    ranked = run_dir / "variants.parquet"
    return int(read_table(ranked)["variant"][0]) if ranked.is_file() else 0


@router.get(
    "/runs/{run_id}/days/{day}", summary="One day: summary, first N fills, attempts (per variant)"
)
def run_day(
    lake: LakeDep,
    run_id: str,
    day: date,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    variant: Annotated[
        int | None, Query(ge=0, le=1_000_000, description="sweeps: default the top-ranked")
    ] = None,
) -> dict[str, Any]:
    run_dir = run_directory(lake, run_id)
    day_dir = run_dir / "days" / day.isoformat()
    if (run_dir / "sweep.json").is_file():
        return _sweep_day(run_id, run_dir, day_dir, day, limit, variant)
    if variant is not None:
        raise ConfigError(f"run {run_id} is not a sweep: drop 'variant'", variant=variant)
    if not (day_dir / "summary.json").is_file():
        raise ResourceNotFoundError(f"run {run_id} has no finished day {day}", day=str(day))
    trades = pl.read_parquet(day_dir / "trades.parquet")
    attempts = pl.read_parquet(day_dir / "attempts.parquet")
    zone = run_zone(run_dir)
    summary = json.loads((day_dir / "summary.json").read_text())
    return {
        "date": day.isoformat(),
        **zone,
        "summary": summary,
        "summary_local": _local_summary(summary, zone["timezone"]),
        "fills_total": trades.height,
        "fills": _local_rows(trades.sort("fill_index").head(limit), zone["timezone"]),
        "attempts_total": attempts.height,
        "attempts": _local_rows(attempts.head(limit), zone["timezone"]),
        "pnl_path": _pnl_path(day_dir, zone["timezone"]),
    }


#: Seconds per point of the intraday P&L path the day view draws (its last value each).
PNL_STEP_SECONDS = 60


def _pnl_path(day_dir: Path, zone: str) -> dict[str, Any] | None:
    """The day's intraday P&L (runs with ``pnl_per_second``): the last value of each
    minute, with the drawdown from the running peak, in paise; None without the file."""
    path = day_dir / "pnl.parquet"
    if not path.is_file():
        return None
    frame = pl.read_parquet(path, columns=["ts", "pnl_paise"]).sort("ts")
    minutes = (
        frame.group_by_dynamic("ts", every=f"{PNL_STEP_SECONDS}s", label="right", closed="right")
        .agg(pl.col("pnl_paise").last())
        .with_columns((pl.col("pnl_paise").cum_max().clip(lower_bound=0) - pl.col("pnl_paise"))
                      .clip(lower_bound=0).alias("drawdown_paise"))
    )  # fmt: skip
    local = minutes["ts"].dt.convert_time_zone(zone).dt.strftime("%Y-%m-%dT%H:%M:%S")
    return {
        "step_seconds": PNL_STEP_SECONDS,
        "ts_local": local.to_list(),
        "pnl_paise": [int(v) for v in minutes["pnl_paise"]],
        "drawdown_paise": [int(v) for v in minutes["drawdown_paise"]],
    }


def _local_rows(frame: pl.DataFrame, zone: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json_safe(with_local_columns(frame, zone).to_dicts())
    return rows


def _local_summary(summary: dict[str, Any], zone: str) -> dict[str, Any]:
    """The summary's first entry and last exit in exchange time (``None`` without)."""
    out: dict[str, Any] = {}
    for key in ("first_entry_ts", "last_exit_ts"):
        value = json_safe(summary.get(key))
        moment = datetime.fromisoformat(value) if isinstance(value, str) and value else None
        out[key] = moment.astimezone(ZoneInfo(zone)).isoformat() if moment else None
    return out


def _sweep_day(
    run_id: str, run_dir: Path, day_dir: Path, day: date, limit: int, variant: int | None
) -> dict[str, Any]:
    """A sweep's day: its files hold every variant (a ``variant`` column); pick one."""
    if not (day_dir / "daily.parquet").is_file():
        raise ResourceNotFoundError(f"sweep {run_id} has no finished day {day}", day=str(day))
    chosen = _top_variant(run_dir) if variant is None else variant
    daily = pl.read_parquet(day_dir / "daily.parquet").filter(pl.col("variant") == chosen)
    if daily.is_empty():
        raise ResourceNotFoundError(
            f"sweep {run_id} has no variant {chosen} on {day}; its variants are listed in "
            f"GET /api/v1/runs/{run_id}/tables/variants",
            day=str(day),
            variant=chosen,
        )
    trades = pl.read_parquet(day_dir / "trades.parquet").filter(pl.col("variant") == chosen)
    attempts = pl.read_parquet(day_dir / "attempts.parquet").filter(pl.col("variant") == chosen)
    summary = daily.drop("variant").row(0, named=True)
    zone = run_zone(run_dir)
    return {
        "date": day.isoformat(),
        "variant": chosen,
        **zone,
        "summary": json_safe(summary),
        "summary_local": _local_summary(summary, zone["timezone"]),
        "fills_total": trades.height,
        "fills": _local_rows(
            trades.drop("variant").sort("fill_index").head(limit), zone["timezone"]
        ),
        "attempts_total": attempts.height,
        "attempts": _local_rows(attempts.drop("variant").head(limit), zone["timezone"]),
    }


class PublishRequest(BaseModel):
    """Optional: the dataset prefix (``gold.<as_name>_fills`` ...; default ``backtest``)."""

    model_config = ConfigDict(extra="forbid")

    as_name: str | None = Field(None, min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")


@router.post(
    "/runs/{run_id}/publish",
    summary="Publish a complete run into gold datasets (fills, positions, daily P&L)",
)
def publish(
    lake: LakeDep, run_id: str, body: Annotated[PublishRequest | None, Body()] = None
) -> dict[str, Any]:
    """Writes through the lake's atomic commit; publishing again replaces the run's rows.

    A state-changing request: the security middleware requires the CSRF header (or a
    bearer token) like every POST.
    """
    run_dir = run_directory(lake, run_id)
    result = lake.publish_run(str(run_dir), as_name=body.as_name if body else None)
    return result.to_dict()


@router.get(
    "/runs/{run_id}/download/{table}",
    summary="Download a run table as CSV or Parquet",
    response_class=FileResponse,
)
def download_table(
    lake: LakeDep,
    run_id: str,
    table: TableName,
    background: BackgroundTasks,
    fmt: Annotated[Literal["csv", "parquet"], Query(alias="format")] = "csv",
    tz: CsvZone = "exchange",
) -> FileResponse:
    run_dir = run_directory(lake, run_id)
    source = resolve_inside(run_dir, RUN_TABLES[table])
    filename = f"{run_id}-{table}.{fmt}"
    if fmt == "parquet":
        return FileResponse(source, media_type="application/octet-stream", filename=filename)
    return _csv_response(lake, source, filename, background, _csv_zone(run_dir, tz))


@router.get(
    "/runs/{run_id}/files/{path:path}",
    summary="Download a file of a run (only inside the run's directory)",
    response_class=FileResponse,
)
def run_file(
    lake: LakeDep,
    run_id: str,
    path: str,
    background: BackgroundTasks,
    fmt: Annotated[Literal["raw", "csv"], Query(alias="format")] = "raw",
    tz: CsvZone = "exchange",
) -> FileResponse:
    run_dir = run_directory(lake, run_id)
    source = resolve_inside(run_dir, path)
    if not source.is_relative_to(lake.root.resolve()):  # belt and braces: the lake only
        raise ResourceNotFoundError(f"no file {path!r} in run {run_id}", path=path)
    if fmt == "csv" and source.suffix == ".parquet":
        zone = _csv_zone(run_dir, tz)
        return _csv_response(lake, source, source.stem + ".csv", background, zone)
    media = {
        ".json": "application/json",
        ".html": "text/html; charset=utf-8",
        ".parquet": "application/octet-stream",
    }.get(source.suffix, "application/octet-stream")
    if source.suffix == ".html":
        # A report opens in the browser (inline), sandboxed: an opaque origin that may run
        # its own inline scripts (Plotly, inlined) but never reads the dashboard's cookies
        # or calls its API, and loads nothing from anywhere.
        return FileResponse(
            source,
            media_type=media,
            filename=source.name,
            content_disposition_type="inline",
            headers={"Content-Security-Policy": REPORT_CSP},
        )
    return FileResponse(source, media_type=media, filename=source.name)


def _csv_zone(run_dir: Path, tz: str) -> str | None:
    return None if tz == "UTC" else run_zone(run_dir)["timezone"]


def _csv_response(
    lake: Lake, source: Path, filename: str, background: BackgroundTasks, zone: str | None
) -> FileResponse:
    """``source`` as CSV; with ``zone``, instants as ISO text in it (``...09:20:00+05:30``)."""
    scratch = lake.root / "cache" / "web"
    scratch.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=scratch, suffix=".csv", delete=False)  # noqa: SIM115
    handle.close()
    target = Path(handle.name)
    frame = pl.scan_parquet(source)
    (frame if zone is None else local_csv_frame(frame, zone)).sink_csv(target)
    background.add_task(target.unlink, missing_ok=True)
    return FileResponse(target, media_type="text/csv", filename=filename)
