"""Jobs: a backtest submitted over HTTP equals the library's run; progress arrives as
server-sent events; cancel, restart (interrupted) and resume finish the same run."""

from __future__ import annotations

import html
import json
import threading
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from _engine_fixtures import GENERATED_DAYS, OPTIONS, SPOT
from _web_fixtures import BASE_RUN, straddle_spec_data

from ticklake.web.jobs import JobManager


def _frame(root: Path, run_id: str, name: str) -> pl.DataFrame:
    return pl.read_parquet(root / "runs" / run_id / name)


def test_backtest_job_equals_the_library_run_and_streams_progress(
    writable_client: Any, lake_copy: Path
) -> None:
    response = writable_client.post(
        "/api/v1/jobs/backtest", json={"spec": straddle_spec_data(), "use_cache": False}
    )
    assert response.status_code == 202
    job = response.json()
    assert job["status"] in ("queued", "running") and job["run_id"].startswith("web_straddle-")
    events = []
    with writable_client.stream("GET", f"/api/v1/jobs/{job['job_id']}/events") as stream:
        name = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    assert events[-1][0] == "end" and events[-1][1]["status"] == "done"
    done = [e["progress"].get("days_done", 0) for _, e in events if e["progress"]]
    assert done == sorted(done) and done[-1] == len(GENERATED_DAYS)
    assert events[-1][1]["progress"]["days_total"] == len(GENERATED_DAYS)
    # Same trades and daily results as the run the library made for the same spec.
    for name in ("trades.parquet", "daily.parquet"):
        assert _frame(lake_copy, job["run_id"], name).equals(_frame(lake_copy, BASE_RUN, name))
    final = writable_client.get(f"/api/v1/jobs/{job['job_id']}").json()
    daily = _frame(lake_copy, BASE_RUN, "daily.parquet")
    assert final["result"]["totals"]["net_pnl_paise"] == daily["net_pnl_paise"].sum()
    assert final["progress"]["net_pnl_paise"] == daily["net_pnl_paise"].sum()
    assert (lake_copy / "jobs" / f"{job['job_id']}.json").is_file()


def test_template_with_overrides_and_bad_specs(writable_client: Any) -> None:
    ok = writable_client.post(
        "/api/v1/jobs/backtest",
        json={
            "template": "atm_straddle_hourly",
            "overrides": {"time.start": "2024-01-08", "time.end": "2024-01-08"},
        },
    )
    assert ok.status_code == 202
    assert ok.json()["params"]["spec"]["time"]["end"] == "2024-01-08"
    missing = writable_client.post("/api/v1/jobs/backtest", json={"template": "no_such"})
    assert (
        missing.status_code == 422 and "no strategy template" in missing.json()["error"]["message"]
    )
    typo = writable_client.post("/api/v1/jobs/backtest", json={"spec": straddle_spec_data(legz=[])})
    assert typo.status_code == 422 and "legz: unknown key" in typo.json()["error"]["message"]
    no_data = straddle_spec_data()
    no_data["universe"] = {**no_data["universe"], "options_dataset": "nifty_options"}
    absent = writable_client.post("/api/v1/jobs/backtest", json={"spec": no_data})
    assert absent.status_code == 404
    bad_rule = straddle_spec_data(entry={"when": "volume_1m > volum_2m"})
    rule = writable_client.post("/api/v1/jobs/backtest", json={"spec": bad_rule})
    assert rule.status_code == 422 and "volum_2m" in rule.json()["error"]["message"]
    writable_client.app.state.jobs.wait(ok.json()["job_id"])


@pytest.fixture
def gated_day_task(monkeypatch: pytest.MonkeyPatch) -> dict[str, threading.Event]:
    """Hold the second day of a serial run until the test releases it."""
    import ticklake.backtest.runner as runner

    original = runner.day_task
    gates = {"first_done": threading.Event(), "release": threading.Event()}
    calls = {"n": 0}

    def gated(job: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            gates["first_done"].set()
            assert gates["release"].wait(60)
        return original(job)

    monkeypatch.setattr(runner, "day_task", gated)
    return gates


def test_cancel_then_resume_finishes_the_same_run(
    writable_client: Any, lake_copy: Path, gated_day_task: dict[str, threading.Event]
) -> None:
    jobs: JobManager = writable_client.app.state.jobs
    job = writable_client.post(
        "/api/v1/jobs/backtest", json={"spec": straddle_spec_data(), "use_cache": False}
    ).json()
    assert gated_day_task["first_done"].wait(60)
    cancelled = writable_client.post(f"/api/v1/jobs/{job['job_id']}/cancel")
    assert cancelled.status_code == 200
    gated_day_task["release"].set()
    state = jobs.wait(job["job_id"])
    assert state.status == "cancelled"
    ledger = json.loads((lake_copy / "runs" / job["run_id"] / "run.json").read_text())
    assert ledger["status"] == "interrupted"
    done_days = sorted(d for d, e in ledger["days"].items() if e["status"] == "done")
    assert done_days == [d.isoformat() for d in GENERATED_DAYS[:2]]
    # Cancelling a finished job is a conflict, not a silent success.
    assert writable_client.post(f"/api/v1/jobs/{job['job_id']}/cancel").status_code == 409
    resumed = writable_client.post(f"/api/v1/jobs/{job['job_id']}/resume").json()
    assert resumed["kind"] == "resume" and resumed["run_id"] == job["run_id"]
    assert jobs.wait(resumed["job_id"]).status == "done"
    ledger = json.loads((lake_copy / "runs" / job["run_id"] / "run.json").read_text())
    assert ledger["status"] == "complete" and len(ledger["resumed_at"]) == 1
    for name in ("trades.parquet", "daily.parquet"):
        assert _frame(lake_copy, job["run_id"], name).equals(_frame(lake_copy, BASE_RUN, name))


def test_restart_marks_running_jobs_interrupted_and_they_resume(
    lake_copy: Path, gated_day_task: dict[str, threading.Event]
) -> None:
    from ticklake import open_lake

    lake = open_lake(lake_copy)
    first = JobManager(lake, executor="serial")
    job = first.submit("backtest", {"spec": straddle_spec_data(), "use_cache": False})
    queued = first.submit("validate", {"dataset": SPOT})
    assert gated_day_task["first_done"].wait(60)
    # A second server over the same lake sees the first one's jobs as if it had crashed.
    second = JobManager(lake, executor="serial")
    restored = {j["job_id"]: j for j in second.list()}
    assert restored[job.job_id]["status"] == "interrupted"
    assert restored[queued.job_id]["status"] == "interrupted"
    assert "running" in restored[job.job_id]["error"]["message"]
    assert "queued" in restored[queued.job_id]["error"]["message"]
    gated_day_task["release"].set()
    first.cancel(queued.job_id)
    first.shutdown(wait=True)
    resumed = second.resume(job.job_id)
    assert second.wait(resumed.job_id).status == "done"
    run_dir = lake_copy / "runs" / job.run_id
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    assert pl.read_parquet(run_dir / "trades.parquet").equals(
        _frame(lake_copy, BASE_RUN, "trades.parquet")
    )
    revalidate = second.resume(queued.job_id)
    assert revalidate.kind == "validate" and second.wait(revalidate.job_id).status == "done"
    second.shutdown()


def test_cancel_a_queued_job_never_runs_it(
    writable_client: Any, lake_copy: Path, gated_day_task: dict[str, threading.Event]
) -> None:
    jobs: JobManager = writable_client.app.state.jobs
    running = jobs.submit("backtest", {"spec": straddle_spec_data(), "use_cache": False})
    waiting = jobs.submit(
        "backtest", {"spec": straddle_spec_data(name="second"), "use_cache": False}
    )
    assert gated_day_task["first_done"].wait(60)
    assert jobs.cancel(waiting.job_id).status == "cancelled"
    gated_day_task["release"].set()
    assert jobs.wait(running.job_id).status == "done"
    assert not (lake_copy / "runs" / waiting.run_id).exists()


def test_validation_job_writes_a_report_the_quality_api_serves(
    writable_client: Any, lake_copy: Path
) -> None:
    job = writable_client.post(
        "/api/v1/jobs/validate", json={"dataset": OPTIONS, "rules": ["R1", "R2"]}
    ).json()
    state = writable_client.app.state.jobs.wait(job["job_id"])
    assert state.status == "done", state.error
    report_id = state.result["report_id"]
    listed = {r["report_id"]: r for r in writable_client.get("/api/v1/quality/reports").json()}
    assert listed[report_id]["dataset"] == f"bronze.{OPTIONS}"
    body = writable_client.get(f"/api/v1/quality/reports/{report_id}").json()
    written = json.loads((lake_copy / "reports" / "quality" / f"{report_id}.json").read_text())
    assert body["report"] == written and body["markdown"].startswith("#")
    assert {r["rule"] for r in written["summary"]} == {"R1", "R2"}
    page = writable_client.get("/quality", params={"report": report_id})
    assert page.status_code == 200 and written["verdict"] in page.text


def test_sweep_job_runs_every_variant(writable_client: Any, lake_copy: Path) -> None:
    spec = straddle_spec_data(
        time={**straddle_spec_data()["time"], "end": GENERATED_DAYS[0].isoformat()},
        rebalance={"kind": "every", "minutes": "${minutes}"},
        sweep={"minutes": [30, 60, 90]},
        constraints=["minutes < 90"],
    )
    job = writable_client.post("/api/v1/jobs/sweep", json={"spec": spec})
    assert job.status_code == 202, job.text
    state = writable_client.app.state.jobs.wait(job.json()["job_id"], timeout_seconds=120)
    assert state.status == "done", state.error
    variants = pl.read_parquet(lake_copy / "runs" / state.run_id / "variants.parquet")
    assert variants.height == 2
    page = writable_client.get(
        f"/api/v1/runs/{state.run_id}/tables/trades", params={"facets": True, "limit": 1}
    ).json()
    trades = pl.read_parquet(lake_copy / "runs" / state.run_id / "trades.parquet")
    facet = {f["value"]: f["count"] for f in page["facets"]["variant"]}
    assert facet == dict(trades.group_by("variant").len().iter_rows())
    listed = {r["run_id"]: r for r in writable_client.get("/api/v1/runs").json()}
    assert listed[state.run_id]["kind"] == "sweep" and listed[state.run_id]["variants"] == 2
    # The overview and the runs page list the sweep with its best variant's net P&L.
    best = int(variants.filter(pl.col("rank") == 1)["total_net_pnl_paise"].item())
    shown = f"{'−' if best < 0 else ''}₹{abs(best) / 100:,.2f}"
    for path in ("/", "/runs"):
        response = writable_client.get(path)
        assert response.status_code == 200, path
        assert f'{shown} <span class="muted">(best of 2)</span>' in response.text, path


def test_pipeline_from_the_web_may_not_import_code_or_write_outside(writable_client: Any) -> None:
    pipeline = {
        "name": "p",
        "metric_modules": ["os"],
        "passes": [{"name": "spread", "input": OPTIONS, "modules": [{"metric": "spread"}]}],
    }
    response = writable_client.post("/api/v1/jobs/pipeline", json={"pipeline": pipeline})
    assert response.status_code == 422 and "metric_modules" in response.json()["error"]["message"]
    pipeline.pop("metric_modules")
    pipeline["targets"] = [{"type": "delta", "path": "/tmp/outside"}]
    response = writable_client.post("/api/v1/jobs/pipeline", json={"pipeline": pipeline})
    assert response.status_code == 422
    assert "only lake targets" in response.json()["error"]["message"]


def test_pipeline_job_writes_its_gold_dataset(writable_client: Any, lake_copy: Path) -> None:
    yaml_text = f"""
name: spot_spread
bucket: {{width: 30m}}
passes:
  - name: last
    input: {SPOT}
    modules: [{{metric: last_price}}]
"""
    job = writable_client.post(
        "/api/v1/jobs/pipeline",
        json={"pipeline_yaml": yaml_text, "start": "2024-01-08", "end": "2024-01-08"},
    )
    assert job.status_code == 202, job.text
    state = writable_client.app.state.jobs.wait(job.json()["job_id"], timeout_seconds=120)
    assert state.status == "done", state.error
    assert state.progress == {"done": 1, "total": 1, "days": ["2024-01-08"]}
    gold = pl.read_parquet(
        lake_copy / "gold" / "spot_spread_last" / "date=2024-01-08" / "data.parquet"
    )
    spot = pl.read_parquet(lake_copy / "bronze" / SPOT / "date=2024-01-08" / "data.parquet")
    assert gold.height == 13  # 09:15-15:30 in 30-minute buckets, end-labelled
    assert gold.sort("ts")["last_price"][-1] == spot.sort("ts")["price"][-1]


def test_unknown_job_is_404(client: Any) -> None:
    assert client.get("/api/v1/jobs/20240101T000000-deadbeef").status_code == 404
    assert client.get("/api/v1/jobs/../../etc").status_code == 404


def test_sweep_templates_validate_with_their_grid_and_are_refused_as_backtests(
    client: Any, writable_client: Any
) -> None:
    from ticklake.strategies import template_info

    info = template_info("otm_strangle_distance_sweep")
    answer = client.post(
        "/api/v1/strategies/validate", json={"template": "otm_strangle_distance_sweep"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["sweep"]["grid_size"] == info.grid_size == 4
    assert body["sweep"]["axes"] == {"distance": [1, 2, 3, 4]}
    plain = client.post("/api/v1/strategies/validate", json={"template": "iron_fly"}).json()
    assert "sweep" not in plain
    refused = writable_client.post(
        "/api/v1/jobs/backtest", json={"template": "otm_strangle_distance_sweep"}
    )
    assert refused.status_code == 422
    assert "submit it as a sweep job" in refused.text


def test_quality_page_names_each_rules_whole_unit(writable_client: Any, lake_copy: Path) -> None:
    """The checked count carries its whole unit ("912,098 strike pairs", not "strike")."""
    job = writable_client.post(
        "/api/v1/jobs/validate", json={"dataset": OPTIONS, "rules": ["R2", "O2"]}
    ).json()
    state = writable_client.app.state.jobs.wait(job["job_id"])
    assert state.status == "done", state.error
    report_id = state.result["report_id"]
    written = json.loads((lake_copy / "reports" / "quality" / f"{report_id}.json").read_text())
    units = {r["rule"]: (r["checked"], r["unit"]) for r in written["summary"]}
    assert units["O2"][1] == "strike pairs"
    page = writable_client.get("/quality", params={"report": report_id}).text
    for checked, unit in units.values():
        assert f'<td class="num unit">{checked:,} {html.escape(unit)}</td>' in page, unit
