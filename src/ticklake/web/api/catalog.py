"""Catalogue endpoints: metrics (registry), strategy schema and templates, quality reports."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from ticklake.api import LakeSession
from ticklake.errors import ConfigError
from ticklake.lake import Lake
from ticklake.quality.report import QUALITY_REPORTS_DIR
from ticklake.web.api.deps import get_lake
from ticklake.web.errors import ResourceNotFoundError, json_safe
from ticklake.web.jobs import strategy_from_request, sweep_document, sweep_from_request
from ticklake.web.yaml_input import load_yaml

router = APIRouter()
LakeDep = Annotated[LakeSession, Depends(get_lake)]
REPORT_ID = re.compile(r"^[a-z]+\.[a-z][a-z0-9_]{0,62}-[0-9]{8}T[0-9]{6}-[0-9a-f]{8}$")


# ----------------------------------------------------------------------- metrics
def metric_entry(metric: Any) -> dict[str, Any]:
    entry = metric.to_dict()
    entry["condition_usable"] = metric.kind == "series"
    return entry


@router.get("/metrics", tags=["metrics"], summary="The metric catalogue (one registry)")
def metrics(
    family: Annotated[str | None, Query(max_length=40)] = None,
    kind: Annotated[str | None, Query(pattern="^(bucket|series|frame)$")] = None,
) -> dict[str, Any]:
    from ticklake.analytics.registry import BROKEN_PLUGINS, all_metrics, families

    chosen = [m for m in all_metrics(family) if kind is None or m.kind == kind]
    return {
        "families": families(),
        "metrics": [metric_entry(m) for m in chosen],
        "broken_plugins": dict(BROKEN_PLUGINS),
    }


@router.get("/metrics/{name}", tags=["metrics"], summary="Explain one metric")
def explain_metric(name: str) -> dict[str, Any]:
    from ticklake.analytics.registry import get_metric

    return metric_entry(get_metric(name))


@router.get(
    "/pipelines/examples/{name}",
    tags=["metrics"],
    summary="An example analytics pipeline (YAML text)",
    response_class=PlainTextResponse,
)
def pipeline_example(name: str) -> PlainTextResponse:
    from pathlib import Path

    directory = Path(__file__).resolve().parents[2] / "analytics" / "examples"
    if not re.fullmatch(r"[a-z0-9_]{1,64}\.yml", name) or not (directory / name).is_file():
        raise ResourceNotFoundError(f"no example pipeline {name!r}", name=name)
    return PlainTextResponse((directory / name).read_text(), media_type="text/plain")


# -------------------------------------------------------------------- strategies
class StrategyRequest(BaseModel):
    """A strategy as JSON (``spec``) or a template name, with dotted overrides."""

    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] | None = None
    template: str | None = Field(None, max_length=64, pattern=r"^[a-z0-9_]+$")
    overrides: dict[str, Any] = Field(default_factory=dict)


class YamlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=200_000)


@router.get("/strategies/schema", tags=["strategies"], summary="JSON Schema of a strategy")
def strategy_schema() -> dict[str, Any]:
    from ticklake.backtest.spec import json_schema

    return json_schema()


def _template_data(name: str) -> dict[str, Any]:
    from ticklake.strategies import template_path

    data = yaml.safe_load(template_path(name).read_text())
    return json_safe(data)


@router.get("/strategies/templates", tags=["strategies"], summary="Strategy templates")
def templates() -> list[dict[str, Any]]:
    from ticklake.strategies import template_names

    out = []
    for name in template_names():
        data = _template_data(name)
        out.append({"name": name, "description": str(data.get("description", "")).strip()})
    return out


@router.get("/strategies/templates/{name}", tags=["strategies"], summary="One template's spec")
def template(name: str) -> dict[str, Any]:
    if not re.fullmatch(r"[a-z0-9_]{1,64}", name):
        raise ResourceNotFoundError(f"no strategy template {name!r}", name=name)
    try:
        return _template_data(name)
    except ConfigError as exc:
        raise ResourceNotFoundError(str(exc), name=name) from None


def _conditions_text(spec: Any) -> dict[str, str | None]:
    from ticklake.backtest.conditions import condition_from_data, condition_text

    out: dict[str, str | None] = {}
    for key, value in (
        ("entry.when", spec.entry.when),
        ("exits.when", spec.exits.when),
        ("day_filter", spec.day_filter),
    ):
        if value is None:
            out[key] = None
        elif isinstance(value, str):
            out[key] = value
        else:
            out[key] = condition_text(condition_from_data(value))
    return out


def _has_sweep(request: dict[str, Any]) -> bool:
    if request.get("template"):
        from ticklake.strategies import template_info

        return bool(template_info(str(request["template"])).sweep_axes)
    spec = request.get("spec")
    return isinstance(spec, dict) and "sweep" in spec


@router.post("/strategies/validate", tags=["strategies"], summary="Validate a strategy")
def validate_strategy(body: StrategyRequest) -> dict[str, Any]:
    """Return the normalised spec, its conditions as text and the planned trading days.

    A strategy with ``sweep`` axes is validated as a sweep: ``spec`` is then the sweep as
    ``POST /jobs/sweep`` takes it (the template with its ``sweep`` axes and ``constraints``,
    overrides applied), ``first_variant`` the first variant's normalised spec (whose hash,
    conditions and planned days the answer gives), and ``sweep`` the axes and the grid
    size after constraints.
    """
    from ticklake.backtest.runner import plan_days
    from ticklake.backtest.spec import spec_hash
    from ticklake.backtest.sweep import expand

    request = body.model_dump()
    if _has_sweep(request):
        sweep = sweep_from_request(request)
        variants = expand(sweep)
        first = variants[0].spec
        return {
            "spec": json_safe(sweep_document(sweep)),
            "first_variant": first.model_dump(mode="json"),
            "spec_hash": spec_hash(first),
            "conditions": _conditions_text(first),
            "days_planned": len(plan_days(first)),
            "sweep": {"axes": sweep.axes, "grid_size": len(variants)},
        }
    spec = strategy_from_request(request)
    return {
        "spec": spec.model_dump(mode="json"),
        "spec_hash": spec_hash(spec),
        "conditions": _conditions_text(spec),
        "days_planned": len(plan_days(spec)),
    }


@router.post(
    "/strategies/yaml",
    tags=["strategies"],
    summary="A validated strategy as YAML (save as .yml)",
    response_class=PlainTextResponse,
)
def strategy_yaml(body: StrategyRequest) -> PlainTextResponse:
    spec = strategy_from_request(body.model_dump())
    text = yaml.safe_dump(spec.model_dump(mode="json", exclude_defaults=True), sort_keys=False)
    return PlainTextResponse(
        text,
        media_type="application/x-yaml",
        headers={"Content-Disposition": f'attachment; filename="{spec.name}.yml"'},
    )


@router.post("/strategies/parse-yaml", tags=["strategies"], summary="Read a strategy YAML")
def parse_strategy_yaml(body: YamlRequest) -> dict[str, Any]:
    # A plain `def`: FastAPI runs it in its thread pool, off the event loop. SafeLoader
    # semantics (YAML tags never build objects) with aliases bounded (no alias bombs).
    data = load_yaml(body.text, "the strategy")
    if not isinstance(data, dict):
        raise ConfigError("a strategy file must be a mapping")
    spec = strategy_from_request({"spec": json.loads(json.dumps(data, default=str))})
    return {"spec": spec.model_dump(mode="json")}


# ----------------------------------------------------------------------- quality
def _report_files(lake: Lake) -> list[tuple[str, Any]]:
    directory = lake.root / QUALITY_REPORTS_DIR
    if not directory.is_dir():
        return []
    return sorted(
        ((p.name[: -len(".json")], p) for p in directory.glob("*.json") if REPORT_ID.match(p.stem)),
        reverse=True,
    )


@router.get("/quality/reports", tags=["quality"], summary="Validation reports in the lake")
def quality_reports(lake: LakeDep) -> list[dict[str, Any]]:
    out = []
    for report_id, path in _report_files(lake):
        data = json.loads(path.read_text())
        run = data.get("run") or {}
        out.append(
            {
                "report_id": report_id,
                "dataset": run.get("dataset"),
                "verdict": data.get("verdict"),
                "verdict_reason": data.get("verdict_reason"),
                "days": run.get("days_validated"),
                "rows": run.get("rows"),
                "started_at": run.get("started_at"),
            }
        )
    return out


@router.get("/quality/reports/{report_id}", tags=["quality"], summary="One validation report")
def quality_report(lake: LakeDep, report_id: str) -> dict[str, Any]:
    if not REPORT_ID.match(report_id):
        raise ResourceNotFoundError(f"no quality report {report_id!r}", report_id=report_id)
    directory = lake.root / QUALITY_REPORTS_DIR
    json_path = directory / f"{report_id}.json"
    if not json_path.is_file():
        raise ResourceNotFoundError(f"no quality report {report_id!r}", report_id=report_id)
    markdown = directory / f"{report_id}.md"
    return {
        "report_id": report_id,
        "report": json.loads(json_path.read_text()),
        "markdown": markdown.read_text() if markdown.is_file() else None,
    }


@router.get("/quality/rules", tags=["quality"], summary="Registered quality rules")
def quality_rules() -> list[dict[str, Any]]:
    from ticklake.quality import rule_classes

    return [
        {
            "id": cls.id,
            "name": cls.name,
            "severity": str(cls.severity),
            "unit": cls.unit,
            "schemas": list(cls.schemas),
            "description": (cls.__doc__ or "").strip().split("\n\n")[0],
            "parameters": json_safe(cls.Parameters.model_json_schema()),
        }
        for cls in rule_classes()
    ]
