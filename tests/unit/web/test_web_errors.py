"""Every error answer is the documented envelope; ambiguous strategy requests are refused;
the page of a run that does not exist is a 404."""

from __future__ import annotations

from typing import Any

import pytest
from _web_fixtures import BASE_RUN, straddle_spec_data


def _envelope(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body  # never FastAPI's {"detail": [...]}
    assert set(body["error"]) == {"type", "message", "fields"}
    assert "\n" not in body["error"]["message"]
    return body["error"]


def test_malformed_json_is_a_422_in_the_envelope(client: Any) -> None:
    response = client.post(
        "/api/v1/sql", content=b'{"query": ', headers={"content-type": "application/json"}
    )
    error = _envelope(response, 422)
    assert error["type"] == "RequestValidationError"
    assert error["message"].startswith("body: malformed JSON at character 10")
    assert error["fields"]["errors"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    ("path", "body", "location", "kind"),
    [
        ("/api/v1/sql", {"query": 5}, "body.query", "string_type"),
        (
            "/api/v1/sql",
            {"query": "select 1", "max_rows": 0},
            "body.max_rows",
            "greater_than_equal",
        ),
        (
            "/api/v1/sql",
            {"query": "select 1", "max_rows": 100_001},
            "body.max_rows",
            "less_than_equal",
        ),
        ("/api/v1/sql", {"query": "select 1", "bogus": 1}, "body.bogus", "extra_forbidden"),
        ("/api/v1/sql", {}, "body.query", "missing"),
        ("/api/v1/jobs/backtest", {"spec": [1]}, "body.spec", "dict_type"),
    ],
)
def test_wrong_types_and_ranges_in_bodies(
    client: Any, path: str, body: dict[str, Any], location: str, kind: str
) -> None:
    error = _envelope(client.post(path, json=body), 422)
    assert error["type"] == "RequestValidationError"
    assert error["message"].startswith(f"{location}: ")
    assert error["fields"]["errors"][0] == {
        "location": location,
        "message": error["message"].removeprefix(f"{location}: ").split(" (and ")[0],
        "type": kind,
    }


def test_out_of_range_query_and_path_parameters(client: Any) -> None:
    error = _envelope(client.get("/api/v1/runs", params={"limit": 0}), 422)
    assert error["message"].startswith("query.limit: ")
    error = _envelope(client.get(f"/api/v1/runs/{BASE_RUN}/days/2024-13-45"), 422)
    assert error["message"].startswith("path.day: ")
    several = _envelope(client.post("/api/v1/sql", json={"query": 1, "max_rows": 0}), 422)
    assert several["message"].endswith("(and 1 more)") and len(several["fields"]["errors"]) == 2


@pytest.mark.parametrize(
    "path",
    ["/api/v1/strategies/validate", "/api/v1/strategies/yaml", "/api/v1/jobs/backtest"],
)
def test_spec_and_template_together_are_refused(writable_client: Any, path: str) -> None:
    body = {"spec": straddle_spec_data(), "template": "iron_fly"}
    error = _envelope(writable_client.post(path, json=body), 422)
    assert "not both" in error["message"] and "'overrides'" in error["message"]
    assert writable_client.app.state.jobs.list() == []  # nothing was queued


def test_a_sweep_with_spec_and_template_is_refused(writable_client: Any) -> None:
    spec = straddle_spec_data(sweep={"x": [1, 2]})
    body = {"spec": spec, "template": "otm_strangle_distance_sweep"}
    error = _envelope(writable_client.post("/api/v1/jobs/sweep", json=body), 422)
    assert "not both" in error["message"]


def test_page_of_a_run_that_does_not_exist_is_404(client: Any) -> None:
    for run_id in ("no-such-run", "20240101T000000-deadbeef", "a.b"):
        page = client.get(f"/runs/{run_id}")
        assert page.status_code == 404, run_id
        assert "text/html" in page.headers["content-type"]
        assert f"There is no run &#39;{run_id}&#39;" in page.text
        assert 'data-testid="run-status"' not in page.text  # no "queued" badge
    # A job that names an existing job but another run does not make this one exist.
    assert client.get("/runs/no-such-run", params={"job": "x"}).status_code == 404
    real = client.get(f"/runs/{BASE_RUN}")
    assert real.status_code == 200 and 'data-testid="run-status"' in real.text


def test_page_of_a_just_submitted_run_is_served(writable_client: Any) -> None:
    spec = straddle_spec_data(time={**straddle_spec_data()["time"], "end": "2024-01-08"})
    job = writable_client.post("/api/v1/jobs/backtest", json={"spec": spec}).json()
    page = writable_client.get(f"/runs/{job['run_id']}")
    assert page.status_code == 200
    assert f'data-job="{job["job_id"]}"' in page.text
    writable_client.app.state.jobs.wait(job["job_id"])


def test_the_openapi_document_describes_422_with_the_envelope(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    envelope = schema["components"]["schemas"]["HTTPValidationError"]
    assert envelope["required"] == ["error"]
    assert envelope["properties"]["error"]["required"] == ["type", "message", "fields"]
    assert "413" in schema["paths"]["/api/v1/sql"]["post"]["responses"]
