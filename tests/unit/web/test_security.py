"""Security: bind rules, token, Host header (DNS rebinding), CSRF, body limits, downloads
confined to the lake (traversal in every spelling, symlinks, NUL), YAML safe_load."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from _web_fixtures import BASE_RUN, TOKEN, make_client, straddle_spec_data
from fastapi.testclient import TestClient

from ticklake.web.app import create_app
from ticklake.web.security import ServeConfigError, check_bind


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.org"])
def test_non_loopback_bind_without_a_token_is_refused(host: str) -> None:
    with pytest.raises(ServeConfigError, match="TICKLAKE_TOKEN"):
        check_bind(host, None)
    check_bind(host, TOKEN)  # with a token it may start


def test_loopback_binds_need_no_token_and_short_tokens_are_refused() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind(host, None)
    with pytest.raises(ServeConfigError, match="too short"):
        check_bind("0.0.0.0", "short")


def test_serve_command_refuses_an_open_bind_without_a_token(
    finished_lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from ticklake.cli import app

    monkeypatch.delenv("TICKLAKE_TOKEN", raising=False)
    result = CliRunner().invoke(
        app, ["serve", "--host", "0.0.0.0", "--lake", str(finished_lake_root)]
    )
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.output


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8765", "127.0.0.1.nip.io", "localhost.evil.example"]
)
def test_foreign_host_header_is_refused(client: Any, host: str) -> None:
    response = client.get("/api/v1/lake/status", headers={"Host": host})
    assert response.status_code == 421
    assert "DNS rebinding" in response.json()["error"]["message"]


@pytest.mark.parametrize("host", ["localhost:8765", "127.0.0.1", "[::1]:8765", "LOCALHOST"])
def test_loopback_host_headers_are_served(client: Any, host: str) -> None:
    assert client.get("/api/v1/health", headers={"Host": host}).status_code == 200


def test_bound_host_is_accepted_only_when_bound(finished_lake_root: Path) -> None:
    app = create_app(finished_lake_root, TOKEN, bound_host="10.1.2.3")
    bound = TestClient(app, base_url="http://10.1.2.3:8765")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert bound.get("/api/v1/health", headers=auth).status_code == 200
    assert bound.get("/api/v1/health", headers={**auth, "Host": "10.9.9.9"}).status_code == 421
    app.state.jobs.shutdown()


def test_token_is_required_everywhere_and_compared_exactly(finished_lake_root: Path) -> None:
    app = create_app(finished_lake_root, TOKEN)
    client = TestClient(app, base_url="http://127.0.0.1")
    for path in ("/", "/api/v1/runs", "/static/app.css", "/openapi.json"):
        assert client.get(path).status_code == 401
    assert (
        client.get("/api/v1/runs", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 401
    )
    assert (
        client.get("/api/v1/runs", headers={"Authorization": f"Bearer {TOKEN[:-1]}"}).status_code
        == 401
    )
    assert (
        client.get("/api/v1/runs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    )
    # A browser logs in once with ?token=; the HttpOnly cookie then carries it.
    first = client.get(f"/?token={TOKEN}")
    assert first.status_code == 200
    assert "HttpOnly" in first.headers.get("set-cookie", "")
    assert client.get("/api/v1/runs").status_code == 200
    app.state.jobs.shutdown()


def test_token_env_variable_is_used_when_no_token_is_passed(
    finished_lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKLAKE_TOKEN", TOKEN)
    app = create_app(finished_lake_root)
    client = TestClient(app, base_url="http://127.0.0.1")
    assert client.get("/api/v1/runs").status_code == 401
    app.state.jobs.shutdown()


def test_state_changing_requests_need_the_csrf_header(finished_lake_root: Path) -> None:
    app = create_app(finished_lake_root)
    client = TestClient(app, base_url="http://127.0.0.1")
    query = {"query": "SELECT 1 AS x"}
    assert client.post("/api/v1/sql", json=query).status_code == 403  # no cookie at all
    client.get("/")
    cookie = client.cookies.get("ticklake_csrf")
    assert cookie
    assert client.post("/api/v1/sql", json=query).status_code == 403  # cookie, no header
    wrong = client.post("/api/v1/sql", json=query, headers={"X-Ticklake-CSRF": cookie + "x"})
    assert wrong.status_code == 403
    ok = client.post("/api/v1/sql", json=query, headers={"X-Ticklake-CSRF": cookie})
    assert ok.status_code == 200
    foreign = client.post(
        "/api/v1/sql",
        json=query,
        headers={"X-Ticklake-CSRF": cookie, "Origin": "http://evil.example"},
    )
    assert foreign.status_code == 403 and "cross-origin" in foreign.json()["error"]["message"]
    same = client.post(
        "/api/v1/sql",
        json=query,
        headers={"X-Ticklake-CSRF": cookie, "Origin": "http://127.0.0.1:8765"},
    )
    assert same.status_code == 200
    # An empty bearer is no way around CSRF when the server has no token.
    assert (
        client.post("/api/v1/sql", json=query, headers={"Authorization": "Bearer "}).status_code
        == 403
    )
    app.state.jobs.shutdown()


def test_bearer_token_clients_skip_csrf(finished_lake_root: Path) -> None:
    app = create_app(finished_lake_root, TOKEN)
    client = TestClient(app, base_url="http://127.0.0.1")
    response = client.post(
        "/api/v1/sql", json={"query": "SELECT 2 AS x"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200 and response.json()["rows"] == [{"x": 2}]
    app.state.jobs.shutdown()


def test_request_bodies_are_capped(finished_lake_root: Path) -> None:
    client = make_client(finished_lake_root, max_body_bytes=10_000)
    big = {"query": "SELECT 1 -- " + "x" * 20_000}
    response = client.post("/api/v1/sql", json=big)
    assert response.status_code == 413
    # A streamed body without Content-Length is counted as it arrives.
    chunks = (b'{"query": "SELECT 1 -- ' + b"x" * 4000 for _ in range(5))
    streamed = client.post(
        "/api/v1/sql", content=chunks, headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    client.app.state.jobs.shutdown()


def test_pages_send_protective_headers(client: Any) -> None:
    response = client.get("/builder")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in response.headers["content-security-policy"]


FILES = f"/api/v1/runs/{BASE_RUN}/files/"


def test_a_run_file_downloads(client: Any, finished_lake_root: Path) -> None:
    response = client.get(FILES + "days/2024-01-09/summary.json")
    assert response.status_code == 200
    expected = finished_lake_root / "runs" / BASE_RUN / "days" / "2024-01-09" / "summary.json"
    assert response.content == expected.read_bytes()
    csv_text = client.get(FILES + "samples.parquet", params={"format": "csv"}).text
    assert csv_text.splitlines()[0].startswith("date,fill_index,ts,leg")


@pytest.mark.parametrize(
    "path",
    [
        "../../ticklake.toml",
        "days/../../../ticklake.toml",
        "%2e%2e/%2e%2e/ticklake.toml",
        "%252e%252e/%252e%252e/ticklake.toml",
        "..%2f..%2fticklake.toml",
        "..%5c..%5cticklake.toml",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "run.json%00.parquet",
        "days/2024-01-09/%00",
    ],
)
def test_traversal_never_leaves_the_run(client: Any, path: str) -> None:
    response = client.get(FILES + path)
    assert response.status_code in (403, 404), (path, response.status_code)
    assert b"[lake]" not in response.content and b"root:" not in response.content


def test_symlink_out_of_the_run_is_refused(lake_copy: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    run_dir = lake_copy / "runs" / BASE_RUN
    os.symlink(secret, run_dir / "leak.txt")
    os.symlink(lake_copy / "ticklake.toml", run_dir / "settings.toml")
    os.symlink(run_dir / "run.json", run_dir / "alias.json")  # inside: allowed
    client = make_client(lake_copy)
    try:
        leak = client.get(f"/api/v1/runs/{BASE_RUN}/files/leak.txt")
        assert leak.status_code == 403 and b"top secret" not in leak.content
        assert client.get(f"/api/v1/runs/{BASE_RUN}/files/settings.toml").status_code == 403
        assert client.get(f"/api/v1/runs/{BASE_RUN}/files/alias.json").status_code == 200
    finally:
        client.app.state.jobs.shutdown()


def test_run_ids_are_names_not_paths(client: Any) -> None:
    for run_id in ("..", "%2e%2e", "..%2f..%2fetc", "straddle-base%00"):
        assert client.get(f"/api/v1/runs/{run_id}/files/run.json").status_code == 404


def test_yaml_is_read_with_safe_load_only(client: Any, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f'!!python/object/apply:os.system ["touch {marker}"]'
    response = client.post("/api/v1/strategies/parse-yaml", json={"text": payload})
    assert response.status_code == 422 and not marker.exists()
    import yaml

    good = yaml.safe_dump(straddle_spec_data())
    parsed = client.post("/api/v1/strategies/parse-yaml", json={"text": good})
    assert parsed.status_code == 200 and parsed.json()["spec"]["name"] == "web_straddle"
    pipeline = f'!!python/object/apply:os.system ["touch {marker}"]'
    job = client.post("/api/v1/jobs/pipeline", json={"pipeline_yaml": pipeline})
    assert job.status_code == 422 and not marker.exists()
