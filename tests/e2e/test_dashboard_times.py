"""Times in the browser are the exchange's (issue #13): a run's tables, its CSV and its
day chart, and the intraday candle chart, against the Parquet files' UTC instants
converted with zoneinfo in the test."""

from __future__ import annotations

import csv
import itertools
import os
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from _e2e_fixtures import BASE_RUN, GENERATED_DAYS, SPOT, LiveServer, wait_for_plot

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - conftest explains; CI must have it
    if os.environ.get("CI"):
        raise
    pytest.skip("browser tests skipped: playwright is not installed", allow_module_level=True)

KOLKATA = ZoneInfo("Asia/Kolkata")
CLOCK = re.compile(r"^\d{2}:\d{2}$")

# The x tick labels as drawn: their text and boxes (a label cut off or overlapping its
# neighbour shows here, not in the layout object).
_TICKS = """id => [...document.querySelectorAll(`#${id} .xaxislayer-above .xtick text`)]
.map((t) => {
  const box = t.getBoundingClientRect();
  const lines = [...t.querySelectorAll("tspan.line")].map((s) => s.textContent);
  return { text: lines.length ? lines : [t.textContent], left: box.left, right: box.right };
})"""


def _ticks_fit(page: Any, element_id: str) -> list[list[str]]:
    ticks = page.evaluate(_TICKS, element_id)
    chart = page.evaluate(
        "id => { const b = document.getElementById(id).getBoundingClientRect();"
        " return [b.left, b.right]; }",
        element_id,
    )
    assert ticks, f"no x tick labels drawn in #{element_id}"
    for tick in ticks:
        assert chart[0] <= tick["left"] and tick["right"] <= chart[1], tick
        assert not any("…" in line for line in tick["text"]), tick
    for before, after in itertools.pairwise(ticks):
        assert before["right"] <= after["left"], (before, after)
    return [tick["text"] for tick in ticks]


def _local_text(moment: pd.Timestamp) -> str:
    return moment.to_pydatetime().astimezone(KOLKATA).strftime("%Y-%m-%d %H:%M:%S")


def test_run_tables_csv_and_day_chart_are_in_exchange_time(
    page: Any, live_server: LiveServer
) -> None:
    run_dir = live_server.lake_root / "runs" / BASE_RUN
    trades = pd.read_parquet(run_dir / "trades.parquet")
    page.goto(f"{live_server.url}/runs/{BASE_RUN}")
    page.wait_for_selector('#results-table[data-table="trades"] tbody tr')
    header = page.locator('#results-table th[data-column="ts"]')
    assert header.inner_text() == "ts (IST)"
    assert "Asia/Kolkata" in (header.get_attribute("title") or "")
    column = list(trades.columns).index("ts")
    cell = page.locator("#results-table tbody tr").nth(0).locator("td").nth(column)
    assert cell.inner_text() == _local_text(trades["ts"].iloc[0])
    assert cell.inner_text() == f"{GENERATED_DAYS[0].isoformat()} 09:20:00"  # 03:50 UTC

    # A time typed in the filter box is read in exchange time, as the table shows it.
    day = GENERATED_DAYS[1]
    page.select_option("#filter-column", "ts")
    page.select_option("#filter-op", "ge")
    page.fill("#filter-value", f"{day.isoformat()} 09:20")
    page.click("#filter-form button[type=submit]")
    since = pd.Timestamp(f"{day.isoformat()} 09:20", tz=KOLKATA)
    expected = int((trades["ts"] >= since).sum())
    expect(page.locator("#page-info")).to_contain_text(f"of {expected} ")

    with page.expect_download() as download:
        page.click('[data-download="trades-csv"]')
    with Path(download.value.path()).open(newline="") as handle:
        first = next(csv.DictReader(handle))
    assert first["ts"] == f"{GENERATED_DAYS[0].isoformat()}T09:20:00+05:30"

    # The day drill-down: its fills in exchange time and its intraday chart ticked by clock.
    page.click('#table-tabs [data-table="daily"]')
    page.click(f'#results-table[data-table="daily"] td.link:has-text("{day.isoformat()}")')
    page.wait_for_selector("#day-fills tbody tr")
    assert page.locator('#day-fills th[data-column="ts"]').inner_text() == "ts (IST)"
    day_trades = trades[trades["date"].astype(str) == day.isoformat()]
    fills_ts = page.locator("#day-fills tbody tr").nth(0).locator("td").nth(column)
    assert fills_ts.inner_text() == _local_text(day_trades.sort_values("fill_index")["ts"].iloc[0])
    expect(page.locator("#day-summary")).to_contain_text("first entry 09:20")
    expect(page.locator("#day-summary")).to_contain_text("IST (Asia/Kolkata)")
    wait_for_plot(page, "day-chart")
    labels = _ticks_fit(page, "day-chart")
    assert all(len(text) == 1 and CLOCK.match(text[0]) for text in labels), labels
    title = page.evaluate("document.getElementById('day-chart').layout.title.text")
    assert day.isoformat() in title and "Asia/Kolkata" in title
    assert page.js_errors == []


def test_intraday_candle_axis_reads_times_of_day(page: Any, live_server: LiveServer) -> None:
    first, last = GENERATED_DAYS[0].isoformat(), GENERATED_DAYS[-1].isoformat()
    page.goto(live_server.url + "/data")
    page.click('[data-tab="chart"]')
    page.select_option("#chart-dataset", f"bronze.{SPOT}")
    page.wait_for_selector('#chart-instrument option[value="BANKNIFTY"]', state="attached")
    page.fill("#chart-start", first)
    page.fill("#chart-end", first)
    page.select_option("#chart-interval", "1m")
    page.click("#chart-form button")
    expect(page.locator("#chart-source")).to_contain_text("times in IST (Asia/Kolkata)")
    wait_for_plot(page, "candles")
    axis = page.evaluate("document.getElementById('candles').layout.xaxis")
    assert axis["ticktext"][0] == f"09:15<br>{first}"  # the date only on the first tick
    assert all(CLOCK.match(text) for text in axis["ticktext"][1:]), axis["ticktext"]
    labels = _ticks_fit(page, "candles")
    assert labels[0] == ["09:15", first]
    assert all(text == [axis["ticktext"][i]] for i, text in enumerate(labels) if i), labels

    # Three days: still times of day, each day's first tick with its date.
    page.fill("#chart-end", last)
    page.select_option("#chart-interval", "15m")
    page.click("#chart-form button")
    expect(page.locator("#chart-source")).to_contain_text("· 15m ·")
    page.wait_for_function(
        "day => document.getElementById('candles').layout.xaxis.ticktext.some("
        "(t) => t.endsWith(day))",
        arg=last,
    )
    wait_for_plot(page, "candles")
    labels = _ticks_fit(page, "candles")
    dated = [text[1] for text in labels if len(text) == 2]
    assert dated == [d.isoformat() for d in GENERATED_DAYS]
    assert all(CLOCK.match(text[0]) for text in labels), labels
    assert page.js_errors == []
