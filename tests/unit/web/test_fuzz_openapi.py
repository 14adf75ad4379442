"""Property-based fuzz of the OpenAPI spec (schemathesis): no request makes the server fail.

Every operation gets a bounded number of generated requests (random names, dates, bodies,
filters, paths) against a private copy of the finished lake; the only check is that the
answer is never a 5xx. Requests carry the bearer token, so CSRF is not what answers them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from _web_fixtures import TOKEN
from hypothesis import HealthCheck, given, settings

from ticklake.web.app import create_app

MAX_EXAMPLES = 12


@pytest.fixture(scope="module")
def fuzz_app(finished_lake_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("fuzz") / "lake"
    shutil.copytree(finished_lake_root, root, ignore=shutil.ignore_patterns("cache", "jobs"))
    app = create_app(root, TOKEN, allowed_hosts=("testserver", "localhost"), executor="serial")
    yield app
    app.state.jobs.shutdown()


def test_no_request_is_a_server_error(fuzz_app: Any) -> None:
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", fuzz_app, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.query or ''} -> "
                    f"{response.status_code}: {response.text[:300]}"
                )

        check()
    assert operations >= 30  # every endpoint of /api/v1 was exercised
    assert not failures, "\n".join(failures[:20])
