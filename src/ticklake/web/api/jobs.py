"""Job endpoints: submit backtests, sweeps, pipelines and validations; status, live
progress (server-sent events), cancel and resume."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ticklake.web.api.deps import get_jobs
from ticklake.web.jobs import ACTIVE, JobManager

router = APIRouter(tags=["jobs"])
JobsDep = Annotated[JobManager, Depends(get_jobs)]
Executor = Literal["serial", "process", "ray"]
HEARTBEAT_SECONDS = 15.0
POLL_SECONDS = 0.2


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    executor: Executor | None = None
    workers: int | None = Field(None, ge=1, le=64)


class BacktestRequest(_Body):
    """A strategy as JSON (``spec``) or a template name, with dotted ``overrides``."""

    spec: dict[str, Any] | None = None
    template: str | None = Field(None, max_length=64, pattern=r"^[a-z0-9_]+$")
    overrides: dict[str, Any] = Field(default_factory=dict)
    use_cache: bool = True


class SweepRequest(_Body):
    """A strategy with ``sweep`` axes (and optional ``constraints``), as in a sweep file:
    its JSON (``spec``) or a sweep template's name (``template``), with dotted ``overrides``."""

    spec: dict[str, Any] | None = None
    template: str | None = Field(None, max_length=64, pattern=r"^[a-z0-9_]+$")
    overrides: dict[str, Any] = Field(default_factory=dict)
    rank_by: str | None = Field(None, max_length=64)
    use_cache: bool = True


class PipelineRequest(_Body):
    """A pipeline as JSON (``pipeline``) or as YAML text (``pipeline_yaml``)."""

    pipeline: dict[str, Any] | None = None
    pipeline_yaml: str | None = Field(None, max_length=200_000)
    start: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    end: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")


class ValidateRequest(_Body):
    dataset: str = Field(min_length=1, max_length=140)
    start: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    end: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    rules: list[Annotated[str, Field(max_length=40)]] | None = Field(None, max_length=100)
    parameters: dict[str, dict[str, Any]] = Field(default_factory=dict)


def _submitted(jobs: JobManager, kind: str, body: BaseModel) -> dict[str, Any]:
    job = jobs.submit(kind, body.model_dump())
    return job.to_dict()


@router.post("/jobs/backtest", status_code=202, summary="Queue a backtest")
def submit_backtest(jobs: JobsDep, body: BacktestRequest) -> dict[str, Any]:
    return _submitted(jobs, "backtest", body)


@router.post("/jobs/sweep", status_code=202, summary="Queue a parameter sweep")
def submit_sweep(jobs: JobsDep, body: SweepRequest) -> dict[str, Any]:
    return _submitted(jobs, "sweep", body)


EMPTY_PIPELINE = (
    "Nothing to run: paste a pipeline YAML with at least one pass under 'passes:' "
    "(or click an example), then press Run pipeline."
)


def _check_not_empty(body: PipelineRequest) -> None:
    """An empty box, an empty document or no passes: say what to do, in one line."""
    from ticklake.errors import ConfigError
    from ticklake.web.yaml_input import load_yaml

    data: Any = body.pipeline
    if data is None and body.pipeline_yaml is not None and body.pipeline_yaml.strip():
        data = load_yaml(body.pipeline_yaml, "the pipeline")
    if data is None or (isinstance(data, dict) and not data.get("passes")):
        raise ConfigError(EMPTY_PIPELINE)


@router.post("/jobs/pipeline", status_code=202, summary="Queue an analytics pipeline")
def submit_pipeline(jobs: JobsDep, body: PipelineRequest) -> dict[str, Any]:
    _check_not_empty(body)
    return _submitted(jobs, "pipeline", body)


@router.post("/jobs/validate", status_code=202, summary="Queue a dataset validation")
def submit_validation(jobs: JobsDep, body: ValidateRequest) -> dict[str, Any]:
    return _submitted(jobs, "validate", body)


@router.get("/jobs", summary="Jobs, newest first (past ones survive a restart)")
def list_jobs(
    jobs: JobsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    kind: Annotated[
        str | None, Query(pattern="^(backtest|sweep|pipeline|validate|resume)$")
    ] = None,
) -> list[dict[str, Any]]:
    return jobs.list(limit=limit, kind=kind)


@router.get("/jobs/{job_id}", summary="One job's state and progress")
def job_status(jobs: JobsDep, job_id: str) -> dict[str, Any]:
    return jobs.get(job_id).to_dict()


@router.post("/jobs/{job_id}/cancel", summary="Cancel a queued or running job")
def cancel_job(jobs: JobsDep, job_id: str) -> dict[str, Any]:
    return jobs.cancel(job_id).to_dict()


@router.post("/jobs/{job_id}/resume", status_code=202, summary="Resume an interrupted job")
def resume_job(jobs: JobsDep, job_id: str) -> dict[str, Any]:
    return jobs.resume(job_id).to_dict()


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.get(
    "/jobs/{job_id}/events",
    summary="Live progress as server-sent events ('progress' events, then 'end')",
    response_class=StreamingResponse,
)
async def job_events(jobs: JobsDep, job_id: str, request: Request) -> StreamingResponse:
    jobs.get(job_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        seen = -1
        quiet = 0.0
        yield "retry: 1000\n\n"
        while True:
            version, state = jobs.snapshot(job_id)
            if version != seen:
                seen = version
                quiet = 0.0
                yield _event("progress", state)
            if state["status"] not in ACTIVE:
                yield _event("end", state)
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS
            if quiet >= HEARTBEAT_SECONDS:
                quiet = 0.0
                yield ": keep-alive\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
