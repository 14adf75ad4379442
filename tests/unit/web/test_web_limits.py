"""Limits of the web inputs and outputs: the SQL box's byte and row caps, YAML alias bombs,
and a /health that answers while another request is busy."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from _web_fixtures import make_client

from ticklake.web.api.lake import SQL_MAX_RESPONSE_BYTES
from ticklake.web.yaml_input import MAX_EXPANDED_SIZE, load_yaml


def _client(root: Path, **kwargs: Any) -> Any:
    return make_client(root, **kwargs)


# --------------------------------------------------------------------------- SQL box
def test_the_issues_query_is_refused_not_sent(finished_lake_root: Path) -> None:
    """`select repeat('x', 50000) from range(10000)` used to answer 500 MB of JSON."""
    client = _client(finished_lake_root)
    started = time.monotonic()
    response = client.post(
        "/api/v1/sql", json={"query": "select repeat('x', 50000) from range(10000)"}
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 413
    assert len(response.content) < 1000
    error = response.json()["error"]
    assert error["type"] == "ResultTooLargeError"
    assert error["message"].startswith("result too large")
    assert "narrow it" in error["message"] and "download it" in error["message"]
    assert f"{SQL_MAX_RESPONSE_BYTES:,} bytes" in error["message"]
    assert error["fields"]["max_bytes"] == SQL_MAX_RESPONSE_BYTES == 16 * 1024 * 1024
    assert elapsed < 30
    client.app.state.jobs.shutdown()


def test_the_byte_cap_is_exact_on_the_rows_array(finished_lake_root: Path) -> None:
    query = "select 'x' || i::varchar as s, i from range(10) t(i)"
    # Oracle: the rows as DuckDB returns them, encoded compactly by the json module.
    rows = [{"s": s, "i": i} for s, i in duckdb.sql(query).fetchall()]
    exact = len(json.dumps(rows, separators=(",", ":")).encode())
    assert exact == 2 + 10 * len('{"s":"x0","i":0}') + 9
    at_cap = _client(finished_lake_root, sql_max_response_bytes=exact)
    ok = at_cap.post("/api/v1/sql", json={"query": query})
    assert ok.status_code == 200, ok.text
    assert ok.json()["rows"] == rows and ok.json()["row_count"] == 10
    text = ok.text
    assert len(text[text.index('"rows":') + 7 : text.index(',"row_count"')].encode()) == exact
    below = _client(finished_lake_root, sql_max_response_bytes=exact - 1)
    refused = below.post("/api/v1/sql", json={"query": query})
    assert refused.status_code == 413
    assert "after 9 of 10 rows" in refused.json()["error"]["message"]
    for client in (at_cap, below):
        client.app.state.jobs.shutdown()


def test_text_wider_than_the_cap_is_refused_before_rows_are_built(
    finished_lake_root: Path,
) -> None:
    """The first chunk's text alone passes the cap: refused after 0 rows."""
    client = _client(finished_lake_root, sql_max_response_bytes=10_000)
    response = client.post("/api/v1/sql", json={"query": "select repeat('é', 6000) as s"})
    assert response.status_code == 413  # 12,000 UTF-8 bytes > 10,000
    assert "after 0 of 1 rows" in response.json()["error"]["message"]
    client.app.state.jobs.shutdown()


def test_max_rows_is_capped_at_the_lakes_query_max_rows(finished_lake_root: Path) -> None:
    client = _client(finished_lake_root)
    cap = client.app.state.lake.settings.query.max_rows
    assert cap == 10_000
    query = f"select i from range({cap + 5}) t(i)"
    body = client.post("/api/v1/sql", json={"query": query, "max_rows": 100_000}).json()
    assert (body["row_count"], body["max_rows"], body["truncated"]) == (cap, cap, True)
    exact = client.post("/api/v1/sql", json={"query": f"select i from range({cap}) t(i)"}).json()
    assert (exact["row_count"], exact["truncated"]) == (cap, False)
    small = client.post("/api/v1/sql", json={"query": query, "max_rows": 7}).json()
    assert (small["row_count"], small["max_rows"], small["truncated"]) == (7, 7, True)
    client.app.state.jobs.shutdown()


# ------------------------------------------------------------------------------ YAML
def _laughs(levels: int, width: int = 10) -> str:
    """The classic bomb: each level lists the previous one ``width`` times."""
    names = "abcdefghij"
    lines = ['a: &a "lol"']
    for level in range(1, levels + 1):
        name, previous = names[level], names[level - 1]
        lines.append(f"{name}: &{name} [{','.join([f'*{previous}'] * width)}]")
    return "\n".join(lines)


@pytest.mark.parametrize("levels", [7, 9])
def test_billion_laughs_is_refused_at_once(client: Any, levels: int) -> None:
    text = _laughs(levels)
    assert len(text) <= 440  # the issue's body: 440 bytes for 10^9 nodes
    for path, body in (
        ("/api/v1/strategies/parse-yaml", {"text": text}),
        ("/api/v1/jobs/pipeline", {"pipeline_yaml": text}),
    ):
        started = time.monotonic()
        response = client.post(path, json=body)
        assert time.monotonic() - started < 2.0, path
        assert response.status_code == 422, path
        message = response.json()["error"]["message"]
        assert f"expand this document past {MAX_EXPANDED_SIZE:,}" in message


def test_aliases_are_allowed_up_to_the_bound_exactly() -> None:
    """Expanded size = nodes + scalar characters, an alias counted each time it is used."""
    anchor, uses, pad = "y" * 9998, 99, 91
    text = f"a: &s {anchor}\nb: [{', '.join(['*s'] * uses)}]\nc: {'z' * pad}"
    # mapping 1; keys a, b, c: 2 each; the anchored scalar 1 + 9998, used 1 + 99 times;
    # the sequence 1; the padding scalar 1 + 91.
    size = 1 + 3 * 2 + (1 + uses) * (1 + len(anchor)) + 1 + (1 + pad)
    assert size == MAX_EXPANDED_SIZE
    data = load_yaml(text)
    assert data["b"] == [anchor] * uses and data["c"] == "z" * pad
    with pytest.raises(Exception, match="expand this document past 1,000,000"):
        load_yaml(text + "z")


def test_a_recursive_alias_is_refused(client: Any) -> None:
    response = client.post("/api/v1/strategies/parse-yaml", json={"text": "a: &a [*a]"})
    assert response.status_code == 422
    assert "refers to its own anchor" in response.json()["error"]["message"]


def test_plain_yaml_with_ordinary_anchors_still_parses(client: Any) -> None:
    from _web_fixtures import straddle_spec_data

    spec = straddle_spec_data()
    legs = "\n".join(
        f"  - {{name: {leg['name']}, opt_type: {leg['opt_type']}, side: {leg['side']}}}"
        for leg in spec["legs"]
    )
    text = (
        f"name: {spec['name']}\n"
        f"universe: &u {json.dumps(spec['universe'])}\n"
        f"time: {json.dumps(spec['time'])}\n"
        f"legs:\n{legs}\n"
        f"rebalance: {json.dumps(spec['rebalance'])}\n"
        "x-note: *u\n"
    )
    response = client.post("/api/v1/strategies/parse-yaml", json={"text": text})
    # The alias is read (the spec then refuses the unknown key it sits under).
    assert response.status_code == 422
    assert "x-note" in response.json()["error"]["message"]
    response = client.post(
        "/api/v1/strategies/parse-yaml", json={"text": text.replace("x-note: *u\n", "")}
    )
    assert response.status_code == 200, response.text
    assert (
        response.json()["spec"]["universe"]["options_dataset"]
        == spec["universe"]["options_dataset"]
    )


# --------------------------------------------------------------------- responsiveness
def _slow_yaml() -> str:
    """~195,000 characters of YAML: the largest body parse-yaml takes, ~3 s of parsing."""
    items = "\n".join(f"  - {{k: v{i}, n: {i}}}" for i in range(8200))
    text = "name: slow\nlegs:\n" + items
    assert len(text) <= 200_000
    return text


@pytest.mark.parametrize("body", ["slow", "bomb"])
def test_health_answers_while_another_request_runs(finished_lake_root: Path, body: str) -> None:
    from fastapi.testclient import TestClient

    from ticklake.web.app import create_app

    text = _slow_yaml() if body == "slow" else _laughs(9)
    app = create_app(finished_lake_root)
    with TestClient(app, base_url="http://127.0.0.1") as client:  # one event loop for all
        client.get("/api/v1/health")
        client.headers["X-Ticklake-CSRF"] = client.cookies.get("ticklake_csrf") or ""
        outcome: dict[str, Any] = {}

        def slow_request() -> None:
            started = time.monotonic()
            response = client.post("/api/v1/strategies/parse-yaml", json={"text": text})
            outcome["status"] = response.status_code
            outcome["seconds"] = time.monotonic() - started

        worker = threading.Thread(target=slow_request)
        worker.start()
        time.sleep(0.05)
        health_times = []
        while worker.is_alive() and len(health_times) < 20:
            started = time.monotonic()
            assert client.get("/api/v1/health").status_code == 200
            health_times.append(time.monotonic() - started)
            time.sleep(0.05)
        worker.join(timeout=60)
        assert not worker.is_alive()
    assert outcome["status"] == 422  # the slow body is no strategy; the bomb is refused
    if body == "slow":
        assert outcome["seconds"] > 0.5 and len(health_times) >= 3  # they really overlapped
    # Not blocked: a health check waiting on the slow body would take about its whole
    # time (it starts 0.05 s after it); a loaded machine stretches both alike.
    limit = max(1.0, 0.5 * outcome.get("seconds", 0.0))
    assert max(health_times, default=0.0) < limit, (health_times, outcome)
    if health_times:
        assert sorted(health_times)[len(health_times) // 2] < 0.25, health_times
