"""A backtest or sweep job's progress carries the ETA of ``ticklake.backtest.eta``."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from _engine_fixtures import GENERATED_DAYS
from _web_fixtures import BASE_RUN, straddle_spec_data

from ticklake.backtest.estimate import TAIL_SECONDS
from ticklake.web.jobs import JobManager


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every progress dict a job records (the event stream sends only the latest one)."""
    seen: list[dict[str, Any]] = []
    update = JobManager._update

    def recording(self: JobManager, job: Any, **changes: Any) -> None:
        if "progress" in changes:
            seen.append(dict(changes["progress"]))
        update(self, job, **changes)

    monkeypatch.setattr(JobManager, "_update", recording)
    return seen


def _events(client: Any, job_id: str) -> list[dict[str, Any]]:
    """Every state the job's event stream sends, until its end."""
    states = []
    with client.stream("GET", f"/api/v1/jobs/{job_id}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                states.append(json.loads(line[6:]))
    return states


def test_backtest_job_progress_has_a_sane_eta(
    writable_client: Any, recorded: list[dict[str, Any]]
) -> None:
    job = writable_client.post(
        "/api/v1/jobs/backtest", json={"spec": straddle_spec_data(), "use_cache": False}
    ).json()
    states = _events(writable_client, job["job_id"])
    assert states[-1]["status"] == "done"
    assert states[-1]["progress"]["eta_seconds"] == 0.0  # what the page finally reads
    progress = [p for p in recorded if "eta_seconds" in p]
    by_days: dict[int, dict[str, Any]] = {}
    for p in progress:
        by_days.setdefault(p["days_done"], p)
    assert sorted(by_days) == list(range(len(GENERATED_DAYS) + 1))  # the start and every day
    first = by_days[0]
    # Before any day: the prior is the lake's last run of this strategy (the finished one).
    assert first["eta_model"]["source"] == f"prior (run {BASE_RUN})"
    assert first["eta_seconds"] > 0
    for p in progress:
        assert math.isfinite(p["eta_seconds"]) and p["eta_seconds"] >= 0
    elapsed = [p["elapsed_seconds"] for p in progress]
    assert elapsed == sorted(elapsed)
    last = by_days[len(GENERATED_DAYS)]
    # After the last day only the run's tail is left (closing, final files).
    assert 0.0 <= last["eta_seconds"] <= TAIL_SECONDS["serial"] + 0.05
    assert last["eta_model"]["source"].startswith("fit on ")
    # After the first day, the ETA of the other days is near what they then took.
    after_first = by_days[1]
    actual = last["elapsed_seconds"] - after_first["elapsed_seconds"]
    assert actual / 4 - 0.5 <= after_first["eta_seconds"] <= 4 * actual + 0.5


def test_sweep_job_progress_has_an_eta(
    writable_client: Any, recorded: list[dict[str, Any]]
) -> None:
    spec = straddle_spec_data(
        rebalance={"kind": "every", "minutes": "${minutes}"}, sweep={"minutes": [30, 60]}
    )
    job = writable_client.post("/api/v1/jobs/sweep", json={"spec": spec}).json()
    states = _events(writable_client, job["job_id"])
    assert states[-1]["status"] == "done", states[-1]["error"]
    first = recorded[0]
    assert first["days_done"] == 0 and first["eta_seconds"] > 0
    assert first["eta_model"]["source"] == "prior (default)"  # no sweep ran on this lake yet
    final = states[-1]["progress"]
    assert final["days_done"] == final["days_total"] == len(GENERATED_DAYS)
    assert final["eta_seconds"] == 0.0
