"""The run page's live ETA (issue #16): shown from the job's model, counted down, then
replaced by the run's duration when it completes."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _e2e_fixtures import JOB_TIMEOUT_MS, LiveServer, straddle_spec_data

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - conftest explains; CI must have it
    if os.environ.get("CI"):
        raise
    pytest.skip("browser tests skipped: playwright is not installed", allow_module_level=True)

ETA = re.compile(r"^ETA (?:(\d+) m )?(\d+) s · elapsed (?:\d+ m )?\d+ s$")


def _eta_seconds(text: str) -> int:
    match = ETA.match(text)
    assert match, text
    return int(match.group(1) or 0) * 60 + int(match.group(2))


@pytest.fixture
def held_start(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Hold a backtest job named ``e2e_eta`` after its first progress (with its prior ETA)."""
    import ticklake.web.jobs as jobs

    release = threading.Event()
    original = jobs.RUNNERS["backtest"]

    def held(manager: Any, job: Any, progress: Any) -> Any:
        def gate(state: dict[str, Any]) -> None:
            progress(state)
            if job.params["spec"]["name"] == "e2e_eta" and state.get("days_done") == 0:
                assert release.wait(JOB_TIMEOUT_MS / 1000), "the test never released the job"

        return original(manager, job, gate)

    monkeypatch.setitem(jobs.RUNNERS, "backtest", held)
    yield release
    release.set()  # a failed test must not leave the server's job thread waiting


def test_run_page_shows_a_counting_eta_then_the_duration(
    page: Any, live_server: LiveServer, held_start: threading.Event
) -> None:
    manager = live_server.app.state.jobs
    job = manager.submit(
        "backtest", {"spec": straddle_spec_data(name="e2e_eta"), "use_cache": False}
    )
    page.goto(f"{live_server.url}/runs/{job.run_id}?job={job.job_id}")
    eta = page.get_by_test_id("progress-eta")
    expect(eta).to_have_text(ETA)
    first = _eta_seconds(eta.inner_text())
    assert first >= 1  # the prior's ETA: a start-up and three days still to run
    # The page counts the job's ETA down between two progress events.
    page.wait_for_function(
        """first => {
          const m = /^ETA (?:(\\d+) m )?(\\d+) s/.exec(
            document.querySelector('[data-testid="progress-eta"]').textContent);
          return m && Number(m[1] || 0) * 60 + Number(m[2]) < first;
        }""",
        arg=first,
    )
    assert manager.get(job.job_id).status == "running"  # still held: the countdown is live
    held_start.set()
    expect(page.get_by_test_id("run-status")).to_have_text("complete", timeout=JOB_TIMEOUT_MS)
    expect(eta).to_have_text(re.compile(r"^done in (\d+ m )?\d+ s$"))
    final = manager.get(job.job_id).progress
    assert final["eta_seconds"] == 0.0 and final["days_done"] == final["days_total"]
    assert page.js_errors == []
