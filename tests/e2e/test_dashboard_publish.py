"""The run page's "Publish to lake" in a real browser: click it, see the gold datasets and
the example SQL, find the rows in the lake, publish again without duplicates."""

from __future__ import annotations

import os
from typing import Any

import polars as pl
import pytest
from _e2e_fixtures import BASE_RUN, LiveServer

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - conftest explains; CI must have it
    if os.environ.get("CI"):
        raise
    pytest.skip("browser tests skipped: playwright is not installed", allow_module_level=True)

PREFIX = "e2e_published"  # its own datasets: the other tests never see them
KINDS = ("fills", "positions", "pnl")  # the base run has no per-second P&L path


def test_publish_the_run_to_the_lake_from_its_page(page: Any, live_server: LiveServer) -> None:
    from ticklake.api import open_lake

    run_dir = live_server.lake_root / "runs" / BASE_RUN
    trades = pl.read_parquet(run_dir / "trades.parquet")
    page.goto(f"{live_server.url}/runs/{BASE_RUN}")
    box = page.locator("#publish-box")
    expect(box).to_be_visible()
    page.fill("#publish-name", PREFIX)
    page.click("#publish-run")
    expect(box).to_have_attribute("data-state", "published")
    items = page.locator("#published-datasets li")
    expect(items).to_have_count(len(KINDS))
    shown = [items.nth(i).get_attribute("data-dataset") for i in range(len(KINDS))]
    assert shown == [f"gold.{PREFIX}_{kind}" for kind in KINDS]
    expect(items.nth(0)).to_contain_text(f"{trades.height} rows of this run")

    # The rows are in the lake: the run's fills, to the paisa.
    lake = open_lake(live_server.lake_root)
    fills = lake.read(f"gold.{PREFIX}_fills").sort("date", "fill_index")
    assert fills["run_id"].unique().to_list() == [BASE_RUN]
    assert (
        fills["price_paise"].to_list() == trades.sort("date", "fill_index")["price_paise"].to_list()
    )
    daily = pl.read_parquet(run_dir / "daily.parquet")
    pnl = lake.read(f"gold.{PREFIX}_pnl")
    assert int(pnl["net_pnl_paise"].sum()) == int(daily["net_pnl_paise"].sum())

    # The example SQL on the page runs as shown and joins each fill with its quote.
    sql = page.inner_text("#publish-sql")
    assert f"FROM gold.{PREFIX}_fills f" in sql and "ASOF JOIN bronze.banknifty_options" in sql
    joined = lake.sql(sql)
    filled = trades.filter(pl.col("filled"))
    assert joined.height == filled.height
    quote_paise = (
        pl.when(joined["side"] == "buy")
        .then(joined["ask_price_0"])
        .otherwise(joined["bid_price_0"])
    )
    at_quote = joined.select((quote_paise * 100).round().cast(pl.Int64)).to_series()
    assert at_quote.to_list() == joined["price_paise"].to_list()  # cross fills

    # Copy puts exactly that SQL on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.click("#publish-sql-copy")
    expect(page.locator("#toast")).to_have_text("SQL copied")
    assert page.evaluate("navigator.clipboard.readText()") == sql

    # Publishing again changes nothing: same rows, the page says so.
    page.click("#publish-run")
    expect(items.nth(0)).to_contain_text("unchanged: already published")
    expect(box).to_have_attribute("data-state", "published")
    again = lake.read(f"gold.{PREFIX}_fills").sort("date", "fill_index")
    assert again.equals(fills)
    assert page.js_errors == []
