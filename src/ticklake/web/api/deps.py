"""What every router needs from the app: the lake and the job manager."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import Request

from ticklake.api import LakeSession
from ticklake.backtest.runner import RUNS_DIR
from ticklake.web.errors import ResourceNotFoundError
from ticklake.web.jobs import JobManager

RUN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def get_lake(request: Request) -> LakeSession:
    return request.app.state.lake


def get_jobs(request: Request) -> JobManager:
    return request.app.state.jobs


def run_directory(lake: LakeSession, run_id: str) -> Path:
    """The directory of a backtest run named by id (never a path from the request)."""
    if not RUN_ID.match(run_id) or run_id in (".", ".."):
        raise ResourceNotFoundError(f"no run {run_id!r}", run_id=run_id)
    path = lake.root / RUNS_DIR / run_id
    if not (path / "run.json").is_file():
        raise ResourceNotFoundError(
            f"no run {run_id!r}; list runs with GET /api/v1/runs", run_id=run_id
        )
    return path
