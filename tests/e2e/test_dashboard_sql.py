"""The SQL page in Chromium: the schema tree lists the lake's datasets, a click inserts a
name, a query runs with Ctrl+Enter and pages through its rows, a chart is drawn, the CSV
download holds what ``lake.sql`` returns, a write is refused on a read-only server with
its one-line message; on a server started with writes allowed, CREATE VIEW works and
the view then appears in the tree."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from _e2e_fixtures import SPOT, LiveServer, serve_app, wait_for_plot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "_scripts"))

from lakegen import make_trades

import ticklake

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - conftest explains; CI must have it
    if os.environ.get("CI"):
        raise
    pytest.skip("browser tests skipped: playwright is not installed", allow_module_level=True)

QUERY_TAIL = " ORDER BY ts LIMIT 250"


def _open(page: Any, url: str) -> None:
    page.goto(url + "/sql")
    page.wait_for_selector('#schema-tree[data-ready="true"]')


def _run(page: Any, query: str) -> None:
    page.fill("#sql-editor", query)
    page.press("#sql-editor", "Control+Enter")


def test_tree_query_paging_chart_and_csv(page: Any, live_server: LiveServer) -> None:
    _open(page, live_server.url)
    dataset = f"bronze.{SPOT}"
    node = page.locator(f'[data-object="{dataset}"]')
    expect(node).to_have_attribute("data-generated", "true")
    expect(page.locator("#sql-mode")).to_have_attribute("data-mode", "read-only")
    assert page.locator("#sql-write").count() == 0
    # Click the dataset's name: it goes in at the cursor.
    page.fill("#sql-editor", "SELECT ts, price FROM ")
    page.locator("#sql-editor").press("End")
    node.locator("summary a.tree-name").click()
    page.locator("#sql-editor").press("End")
    page.keyboard.type(QUERY_TAIL)
    query = f"SELECT ts, price FROM {dataset}{QUERY_TAIL}"
    expect(page.locator("#sql-editor")).to_have_value(query)
    page.press("#sql-editor", "Control+Enter")
    info = page.locator("#page-info")
    expect(info).to_contain_text("rows 1–100 of 250")
    expect(page.locator("#sql-table tbody tr")).to_have_count(100)
    expect(page.locator("#sql-table th").first).to_have_text("ts (UTC)")
    expect(page.locator("#sql-table tbody tr").first.locator("td.num")).to_have_count(1)
    page.click("#page-next")
    expect(info).to_contain_text("rows 101–200 of 250")
    page.click("#page-next")
    expect(info).to_contain_text("rows 201–250 of 250")
    expect(page.locator("#sql-table tbody tr")).to_have_count(50)
    expect(page.locator("#page-next")).to_be_disabled()
    page.click("#page-prev")
    expect(info).to_contain_text("rows 101–200 of 250")

    # A chart of the whole result: price over ts, as bars.
    expect(page.locator("#chart-x")).to_have_value("ts")
    expect(page.locator('#chart-y input[value="price"]')).to_be_checked()
    page.select_option("#chart-kind", "bar")
    page.click("#chart-draw")
    wait_for_plot(page, "sql-chart")
    traces = page.evaluate(
        "() => document.getElementById('sql-chart').data.map(t => [t.type, t.y.length])"
    )
    assert traces == [["bar", 250]]

    # The CSV download against the trusted path (an independent oracle).
    with page.expect_download() as caught:
        page.click("#download-csv")
    download = caught.value
    assert download.suggested_filename.startswith("ticklake-query-")
    assert download.suggested_filename.endswith(".csv")
    got = pl.read_csv(download.path())
    oracle = ticklake.open_lake(live_server.lake_root).sql(query)
    assert got["price"].to_list() == oracle["price"].to_list()
    stamps = [datetime.fromisoformat(text) for text in got["ts"].to_list()]
    assert stamps == oracle["ts"].to_list()
    assert page.js_errors == []


def test_a_write_is_refused_on_a_read_only_server(page: Any, live_server: LiveServer) -> None:
    _open(page, live_server.url)
    _run(page, "CREATE VIEW e2e_nope AS SELECT 1")
    expect(page.locator("#sql-error")).to_have_text(
        "only SELECT queries are allowed here, got CREATE"
    )
    expect(page.locator("#sql-results")).to_be_hidden()
    expect(page.locator('[data-object="e2e_nope"]')).to_have_count(0)
    assert page.js_errors == []


@pytest.fixture(scope="module")
def writable_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A second server, over a small lake of its own, started with writes allowed."""
    from ticklake.web.app import create_app

    root = tmp_path_factory.mktemp("e2e-sql-writes") / "lake"
    lake = ticklake.init_lake(root)
    lake.write("nifty", make_trades(days=2, rows_per_day=200, seed=9), schema="trades")
    app = create_app(root, bound_host="127.0.0.1", executor="serial", allow_sql_writes=True)
    with serve_app(app, root) as server:
        yield server


def test_with_writes_allowed_a_view_is_made_and_listed(
    page: Any, chromium: Any, writable_server: LiveServer
) -> None:
    _open(page, writable_server.url)
    expect(page.locator('[data-object="e2e_view"]')).to_have_count(0)
    page.check("#sql-write")
    expect(page.locator("#sql-mode")).to_have_attribute("data-mode", "write")
    _run(page, "CREATE VIEW e2e_view AS SELECT price, size FROM bronze.nifty WHERE size > 100")
    view = page.locator('[data-object="e2e_view"]')
    expect(view).to_have_attribute("data-generated", "false")
    expect(view.locator(".badge.user")).to_have_text("user view")
    expect(page.locator("#sql-info")).to_contain_text("ran on the warehouse")
    # Read back through the read-only box, against the trusted path.
    page.uncheck("#sql-write")
    expect(page.locator("#sql-mode")).to_have_attribute("data-mode", "read-only")
    _run(page, "SELECT count(*) AS n FROM e2e_view")
    oracle = ticklake.open_lake(writable_server.lake_root).sql(
        "SELECT count(*) AS n FROM bronze.nifty WHERE size > 100"
    )
    expect(page.locator("#sql-table tbody td")).to_have_text(str(oracle["n"][0]))
    assert page.js_errors == []
