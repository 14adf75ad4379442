"""The template -> validate -> sweep path over HTTP, and a sweep's day drill-down per variant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
from _engine_fixtures import GENERATED_DAYS
from _web_fixtures import BASE_RUN

TEMPLATE = "otm_strangle_distance_sweep"
DAY = GENERATED_DAYS[0].isoformat()
ONE_DAY = {"time.start": DAY, "time.end": DAY}


def test_validated_sweep_template_can_be_submitted_and_drilled_per_variant(
    writable_client: Any, lake_copy: Path
) -> None:
    from ticklake.strategies import template_info

    validated = writable_client.post(
        "/api/v1/strategies/validate", json={"template": TEMPLATE, "overrides": ONE_DAY}
    )
    assert validated.status_code == 200, validated.text
    answer = validated.json()
    # The answer's spec keeps its sweep axes (and the overrides): it is what /jobs/sweep takes.
    assert (
        answer["spec"]["sweep"] == {"distance": [1, 2, 3, 4]} == template_info(TEMPLATE).sweep_axes
    )
    assert answer["spec"]["time"]["end"] == DAY and answer["sweep"]["grid_size"] == 4
    assert answer["first_variant"]["legs"][0]["selector"]["steps"] == 1
    by_template = writable_client.post(
        "/api/v1/jobs/sweep", json={"template": TEMPLATE, "overrides": ONE_DAY, "use_cache": False}
    )
    assert by_template.status_code == 202, by_template.text
    by_spec = writable_client.post("/api/v1/jobs/sweep", json={"spec": answer["spec"]})
    assert by_spec.status_code == 202, by_spec.text
    assert by_spec.json()["params"]["spec"] == by_template.json()["params"]["spec"]
    writable_client.post(f"/api/v1/jobs/{by_spec.json()['job_id']}/cancel")
    state = writable_client.app.state.jobs.wait(by_template.json()["job_id"], timeout_seconds=300)
    assert state.status == "done", state.error
    run_dir = lake_copy / "runs" / state.run_id
    # Oracle: the sweep's own files, read with Polars.
    daily = pl.read_parquet(run_dir / "daily.parquet")
    trades = pl.read_parquet(run_dir / "trades.parquet")
    attempts = pl.read_parquet(run_dir / "attempts.parquet")
    ranked = pl.read_parquet(run_dir / "variants.parquet")
    assert sorted(daily["variant"].to_list()) == [0, 1, 2, 3]
    for variant in range(4):
        got = writable_client.get(
            f"/api/v1/runs/{state.run_id}/days/{DAY}", params={"variant": variant, "limit": 1000}
        )
        assert got.status_code == 200, got.text
        body = got.json()
        row = daily.filter(pl.col("variant") == variant).drop("variant").row(0, named=True)
        assert body["variant"] == variant
        assert body["summary"]["net_pnl_paise"] == row["net_pnl_paise"]
        assert (
            body["summary"]["fills"] == row["fills"] and body["summary"]["status"] == row["status"]
        )
        mine = trades.filter(pl.col("variant") == variant)
        assert body["fills_total"] == mine.height
        assert [f["fill_index"] for f in body["fills"]] == sorted(mine["fill_index"].to_list())
        assert "variant" not in (body["fills"][0] if body["fills"] else {})
        assert body["attempts_total"] == attempts.filter(pl.col("variant") == variant).height
    default = writable_client.get(f"/api/v1/runs/{state.run_id}/days/{DAY}").json()
    assert default["variant"] == int(ranked["variant"][0])  # the top-ranked, like /equity
    missing = writable_client.get(f"/api/v1/runs/{state.run_id}/days/{DAY}", params={"variant": 9})
    assert missing.status_code == 404 and "no variant 9" in missing.json()["error"]["message"]
    no_day = writable_client.get(f"/api/v1/runs/{state.run_id}/days/{GENERATED_DAYS[1]}")
    assert no_day.status_code == 404 and "no finished day" in no_day.json()["error"]["message"]


def test_a_plain_runs_day_refuses_a_variant(client: Any, finished_lake_root: Path) -> None:
    day = client.get(f"/api/v1/runs/{BASE_RUN}/days/{DAY}")
    assert day.status_code == 200 and "variant" not in day.json()
    summary = json.loads(
        (finished_lake_root / "runs" / BASE_RUN / "days" / DAY / "summary.json").read_text()
    )
    assert day.json()["summary"] == summary
    refused = client.get(f"/api/v1/runs/{BASE_RUN}/days/{DAY}", params={"variant": 0})
    assert refused.status_code == 422 and "not a sweep" in refused.json()["error"]["message"]
