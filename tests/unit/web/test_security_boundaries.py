"""Boundaries of the documented security rules: the ?token= login is for GET only, and a
path with a '..' inside is refused even when it would resolve inside the run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from _web_fixtures import BASE_RUN, TOKEN

from ticklake.web.app import create_app
from ticklake.web.errors import UnsafePathError
from ticklake.web.security import TOKEN_COOKIE, resolve_inside


def _token_client(root: Path) -> Any:
    from fastapi.testclient import TestClient

    return TestClient(create_app(root, TOKEN), base_url="http://127.0.0.1")


def test_a_post_carrying_the_token_in_the_query_is_refused(finished_lake_root: Path) -> None:
    """docs/web.md: requests carry 'Authorization: Bearer' or the cookie that opening
    /?token= sets; the query token logs a browser in on a GET and nothing else."""
    client = _token_client(finished_lake_root)
    body = {"query": "select 1 as one"}
    posted = client.post(f"/api/v1/sql?token={TOKEN}", json=body)
    assert posted.status_code == 401
    assert posted.json()["error"]["type"] == "TokenRequired"
    assert TOKEN_COOKIE not in posted.headers.get("set-cookie", "")
    assert client.get("/api/v1/runs").status_code == 401  # and it did not log in
    # The same POST with the bearer header is served; a GET with ?token= logs in.
    bearer = client.post(
        f"/api/v1/sql?token={TOKEN}", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert bearer.status_code == 200 and bearer.json()["rows"] == [{"one": 1}]
    login = client.get(f"/api/v1/health?token={TOKEN}")
    assert login.status_code == 200 and f"{TOKEN_COOKIE}=" in login.headers["set-cookie"]
    assert client.get("/api/v1/runs").status_code == 200
    # Logged in by cookie, a POST is a state change: it still needs the CSRF header.
    assert client.post("/api/v1/sql", json=body).status_code == 403
    client.app.state.jobs.shutdown()


def test_a_wrong_query_token_on_a_get_is_refused(finished_lake_root: Path) -> None:
    client = _token_client(finished_lake_root)
    response = client.get(f"/api/v1/health?token={TOKEN}x")
    assert response.status_code == 401 and "set-cookie" not in response.headers
    client.app.state.jobs.shutdown()


@pytest.mark.parametrize(
    "path", ["days/../run.json", "./days/../run.json", "days/x/../../run.json"]
)
def test_an_inside_dotdot_is_refused_though_it_stays_inside(
    finished_lake_root: Path, path: str
) -> None:
    run_dir = finished_lake_root / "runs" / BASE_RUN
    assert (run_dir / "run.json").is_file()
    assert (run_dir / path).resolve().is_relative_to(run_dir.resolve())  # it stays inside
    with pytest.raises(UnsafePathError, match=re.escape("'..' is not allowed in a path")):
        resolve_inside(run_dir, path)
    assert resolve_inside(run_dir, "run.json") == (run_dir / "run.json").resolve()


def test_an_inside_dotdot_over_http_is_403(client: Any) -> None:
    # %2E%2E keeps the client from normalising the path; the server decodes it once.
    refused = client.get(f"/api/v1/runs/{BASE_RUN}/files/days/%2E%2E/run.json")
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["type"] == "UnsafePathError" and error["fields"]["path"] == "days/../run.json"
    assert client.get(f"/api/v1/runs/{BASE_RUN}/files/run.json").status_code == 200
