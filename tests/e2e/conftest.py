"""Browser tests: Playwright (sync API) driving Debian's Chromium against a real server.

The server is uvicorn in a thread on a free port, over a copy of the generated lake
(three BANKNIFTY days) with one finished straddle run. Chromium is never downloaded
(``playwright install`` fails here): ``/usr/bin/chromium`` is launched directly. Without
it the tests skip with the reason — except in CI (``$CI`` set), where they fail.
A failing test leaves a screenshot in ``tests/e2e/artifacts/``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "unit" / "backtest"))

from _e2e_fixtures import BASE_RUN, LiveServer, serve_app, straddle_spec_data  # noqa: E402
from _engine_fixtures import copy_lake, generated_lake_path  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ACTION_TIMEOUT_MS = 20_000  # one click, one answer: generous on a loaded machine
# A page load parses Plotly (3.5 MB) and runs while the other xdist worker saturates both
# cores (Ray clusters, Numba compiles): CI once saw /data miss a 20 s load. Navigation gets
# the patience of a starved machine; a page that never loads still fails.
NAVIGATION_TIMEOUT_MS = 60_000
SCREENSHOT_TIMEOUT_MS = 10_000
ARTIFACTS = HERE / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _require_browser() -> None:
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing (install it with `make system-deps`)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is missing (pip install -e '.[dev]')"
    if missing is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"browser tests need Chromium in CI: {missing}")
    pytest.skip(f"browser tests skipped: {missing}")


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    _require_browser()
    from ticklake.backtest.report import write_report
    from ticklake.backtest.runner import run_backtest
    from ticklake.backtest.spec import parse_spec
    from ticklake.web.app import create_app

    pristine = generated_lake_path(tmp_path_factory.getbasetemp().parent / "ticklake-engine")
    root = tmp_path_factory.mktemp("e2e") / "lake"
    lake = copy_lake(pristine, root)
    result = run_backtest(
        lake, parse_spec(straddle_spec_data()), run_id=BASE_RUN, executor="serial"
    )
    write_report(result.run_dir)
    app = create_app(root, bound_host="127.0.0.1", executor="serial")
    with serve_app(app, root) as server:
        yield server


@pytest.fixture(scope="session")
def chromium(live_server: LiveServer) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    # `expect` waits 5 s by default, the pages' actions 20 s (below): a busy CI machine needs
    # the same patience for an assertion on what a request fills as for the request itself.
    expect.set_options(timeout=ACTION_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=120_000
        )
        yield browser
        browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def page(chromium: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh browser context and page; a screenshot is saved when the test fails."""
    context = chromium.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(ACTION_TIMEOUT_MS)
    page.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.js_errors = errors  # tests assert no script errors happened
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = request.node.name.replace("/", "_").replace("[", "_").replace("]", "")
        try:  # evidence, best effort: a hung page must not add a teardown error to the failure
            page.screenshot(
                path=str(ARTIFACTS / f"{name}.png"), full_page=True, timeout=SCREENSHOT_TIMEOUT_MS
            )
        except Exception as exc:  # any screenshot failure is only reported
            print(f"no failure screenshot for {name}: {exc.__class__.__name__}: {exc}")
    context.close()
