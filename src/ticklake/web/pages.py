"""Server-rendered dashboard pages (Jinja2, autoescaped) over the same functions as the API."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ticklake.web.errors import json_safe

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
templates.env.filters["tojson_safe"] = lambda value: json.dumps(json_safe(value))

NAV = (
    ("/", "Overview"),
    ("/data", "Data"),
    ("/live", "Live"),
    ("/quality", "Quality"),
    ("/analytics", "Analytics"),
    ("/builder", "Strategy builder"),
    ("/runs", "Runs"),
    ("/sql", "SQL"),
)


def _rupees(paise: Any) -> str:
    if paise is None:
        return "-"
    value = int(paise)
    return f"{'−' if value < 0 else ''}₹{abs(value) / 100:,.2f}"


def _bytes(size: Any) -> str:
    value = float(size or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


templates.env.filters["rupees"] = _rupees
templates.env.filters["human_bytes"] = _bytes


_INSTANT = re.compile(r"^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d| UTC)$")


def local_rows(rows: list[dict[str, Any]], timezone: str | None) -> list[dict[str, Any]]:
    """Rows whose instants (ISO text with an offset) are shown in ``timezone``, the column
    named with the zone (``ts (IST)``); the fraction of a second is kept to the digit."""
    if not rows or not timezone:
        return rows
    from ticklake.web.local_time import zone_fields

    zone = ZoneInfo(timezone)
    abbreviation = zone_fields(timezone)["timezone_abbreviation"]
    out = []
    for row in rows:
        shown: dict[str, Any] = {}
        for key, value in row.items():
            match = _INSTANT.match(value) if isinstance(value, str) else None
            if match is None:
                shown[key] = value
                continue
            day, clock, fraction, offset = match.groups()
            offset = "+00:00" if offset in ("Z", " UTC") else offset
            moment = datetime.fromisoformat(f"{day}T{clock}{offset}").astimezone(zone)
            shown[f"{key} ({abbreviation})"] = moment.strftime("%Y-%m-%d %H:%M:%S") + (
                fraction or ""
            )
        out.append(shown)
    return out


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("title", name.removesuffix(".html").replace("_", " ").title())
    return templates.TemplateResponse(
        request, name, {"nav": NAV, "path": request.url.path, **context}, status_code=status_code
    )


def pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    def overview(request: Request) -> HTMLResponse:
        from ticklake.web.api.lake import lake_status
        from ticklake.web.api.runs import backtest_runs

        lake = request.app.state.lake
        return render(
            request,
            "overview.html",
            title="Overview",
            status=lake_status(lake),
            runs=backtest_runs(lake)[:10],
            jobs=request.app.state.jobs.list(limit=10),
        )

    @router.get("/live", response_class=HTMLResponse)
    def live(request: Request) -> HTMLResponse:
        from ticklake.web.api.lake import lake_status

        datasets = lake_status(request.app.state.lake)["datasets"]
        return render(
            request,
            "live.html",
            title="Live",
            trades=[d for d in datasets if d["schema"] == "trades"],
            quotes=[d for d in datasets if d["schema"] == "quotes"],
        )

    @router.get("/data", response_class=HTMLResponse)
    def data(request: Request) -> HTMLResponse:
        from ticklake.web.api.lake import lake_status

        status = lake_status(request.app.state.lake)
        return render(request, "data.html", title="Data", datasets=status["datasets"])

    @router.get("/quality", response_class=HTMLResponse)
    def quality(request: Request, report: str | None = None) -> HTMLResponse:
        from ticklake.web.api.catalog import quality_report, quality_reports
        from ticklake.web.api.lake import lake_status

        lake = request.app.state.lake
        reports = quality_reports(lake)
        chosen = report or (reports[0]["report_id"] if reports else None)
        detail = quality_report(lake, chosen) if chosen else None
        report_body = (detail or {}).get("report") or {}
        timezone = (report_body.get("run") or {}).get("timezone")
        for rule in (report_body.get("rules") or {}).values():
            rule["offending_rows"] = local_rows(rule.get("offending_rows") or [], timezone)
        return render(
            request,
            "quality.html",
            title="Quality",
            reports=reports,
            detail=detail,
            datasets=lake_status(lake)["datasets"],
        )

    @router.get("/analytics", response_class=HTMLResponse)
    def analytics(request: Request) -> HTMLResponse:
        from ticklake.web.api.catalog import metrics

        catalogue = metrics()
        examples = sorted(
            p.name
            for p in (Path(__file__).resolve().parents[1] / "analytics" / "examples").glob("*.yml")
        )
        return render(
            request, "analytics.html", title="Analytics", catalogue=catalogue, examples=examples
        )

    @router.get("/builder", response_class=HTMLResponse)
    def builder(request: Request, template: str | None = None) -> HTMLResponse:
        from ticklake.web.api.catalog import templates as template_list
        from ticklake.web.api.lake import lake_status

        status = lake_status(request.app.state.lake)
        return render(
            request,
            "builder.html",
            title="Strategy builder",
            templates=template_list(),
            datasets=status["datasets"],
            chosen_template=template or "",
        )

    @router.get("/runs", response_class=HTMLResponse)
    def runs(request: Request) -> HTMLResponse:
        from ticklake.web.api.runs import backtest_runs

        return render(
            request,
            "runs.html",
            title="Runs",
            runs=backtest_runs(request.app.state.lake),
            jobs=request.app.state.jobs.list(limit=50),
        )

    @router.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: str, job: str | None = None) -> HTMLResponse:
        from ticklake.web.api.deps import run_directory
        from ticklake.web.api.runs import run_summary

        lake = request.app.state.lake
        summary: dict[str, Any] | None = None
        try:
            summary = run_summary(run_directory(lake, run_id))
        except KeyError:  # a just-submitted job's run directory appears when it starts
            summary = None
        making = next(
            (
                entry["job_id"]
                for entry in request.app.state.jobs.list(limit=100_000)
                if entry.get("run_id") == run_id and job in (None, entry["job_id"])
            ),
            None,
        )
        job_id = job or making
        if summary is None and making is None:
            # Neither a run directory nor a job that will make one: a 404, not "queued".
            return render(
                request,
                "not_found.html",
                title="Run not found",
                message=f"There is no run {run_id!r} and no job making it.",
                back_href="/runs",
                back_label="All runs",
                status_code=404,
            )
        return render(
            request,
            "run.html",
            title=f"Run {run_id}",
            run_id=run_id,
            summary=summary,
            job_id=job_id or "",
        )

    @router.get("/sql", response_class=HTMLResponse)
    def sql_page(request: Request) -> HTMLResponse:
        from ticklake.web.api.sql import writes_allowed

        return render(request, "sql.html", title="SQL", writes_allowed=writes_allowed(request))

    @router.get("/compare", response_class=HTMLResponse)
    def compare_page(request: Request, a: str = "", b: str = "") -> HTMLResponse:
        from ticklake.web.api.runs import backtest_runs

        return render(
            request,
            "compare.html",
            title="Compare runs",
            run_a=a,
            run_b=b,
            runs=backtest_runs(request.app.state.lake),
        )

    return router
