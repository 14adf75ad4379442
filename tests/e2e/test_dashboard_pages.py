"""The pages the other browser tests do not drive: every page loads in Chromium without a
script error or a failed request; the candlestick chart (price, volume, spread) of the
index and of an option contract; a validation started from the Quality page; two runs
compared side by side."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _e2e_fixtures import (
    BASE_RUN,
    GENERATED_DAYS,
    JOB_TIMEOUT_MS,
    OPTIONS,
    SPOT,
    STALE_ANSWERS_HANDLED,
    LiveServer,
    stale_answers_last,
)

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - conftest explains; CI must have it
    if os.environ.get("CI"):
        raise
    pytest.skip("browser tests skipped: playwright is not installed", allow_module_level=True)

# Each page with an element its scripts fill from the API (not present in the HTML).
PAGES = [
    ("/", "[data-testid=dataset-count]"),
    ("/data", "#dataset-table tbody tr"),
    ("/quality", "#validate-form select option"),
    ("/analytics", "details.metric"),
    ("/builder", '#builder[data-ready="true"]'),
    ("/runs", "#runs-table tbody tr"),
    (f"/runs/{BASE_RUN}", "#results-table tbody tr"),
    (f"/compare?a={BASE_RUN}&b={BASE_RUN}", "#compare-stats tbody tr"),
]


def _raw(root: Path, dataset: str) -> pd.DataFrame:
    day = GENERATED_DAYS[0].isoformat()
    return pd.read_parquet(root / "bronze" / dataset / f"date={day}" / "data.parquet")


def _failed_requests(page: Any) -> list[tuple[int, str]]:
    failed: list[tuple[int, str]] = []
    page.on("response", lambda r: failed.append((r.status, r.url)) if r.status >= 400 else None)
    page.on("requestfailed", lambda r: failed.append((0, r.url)))
    return failed


@pytest.mark.parametrize(("path", "ready"), PAGES, ids=[p for p, _ in PAGES])
def test_every_page_loads_without_script_errors(
    page: Any, live_server: LiveServer, path: str, ready: str
) -> None:
    failed = _failed_requests(page)
    page.goto(live_server.url + path)
    page.wait_for_selector(ready, state="attached")
    page.wait_for_load_state("networkidle")
    assert [f for f in failed if "favicon" not in f[1]] == []
    assert page.js_errors == []


def test_candle_chart_of_the_index_and_of_an_option_contract(
    page: Any, live_server: LiveServer
) -> None:
    day = GENERATED_DAYS[0].isoformat()
    page.goto(live_server.url + "/data")
    page.click('[data-tab="chart"]')
    page.select_option("#chart-dataset", f"bronze.{SPOT}")
    page.wait_for_selector('#chart-instrument option[value="BANKNIFTY"]', state="attached")
    page.fill("#chart-start", day)
    page.fill("#chart-end", day)
    page.select_option("#chart-interval", "5m")
    page.click("#chart-form [type=submit], #chart-form button")
    expect(page.locator("#chart-source")).to_contain_text("5m")
    page.wait_for_selector("#candles .main-svg", state="attached")
    traces = page.evaluate("document.getElementById('candles').data")
    # Oracle: pandas' 5-minute OHLC of the raw prices in exchange time.
    raw = _raw(live_server.lake_root, SPOT)
    local = raw.assign(ts=raw["ts"].dt.tz_convert("Asia/Kolkata")).set_index("ts")["price"]
    bars = local.resample("5min", label="left", closed="left").ohlc().dropna()
    assert [t["type"] for t in traces] == ["candlestick", "bar"]  # an index has no spread
    candles = traces[0]
    assert candles["x"] == [t.strftime("%Y-%m-%d %H:%M:%S") for t in bars.index]
    for key in ("open", "high", "low", "close"):
        assert candles[key] == pytest.approx(bars[key].tolist()), key

    # An option contract: volume bars and the spread line under the candles.
    page.select_option("#chart-dataset", f"bronze.{OPTIONS}")
    page.fill("#chart-start", day)
    page.fill("#chart-end", day)
    options = _raw(live_server.lake_root, OPTIONS)
    symbol = sorted(options["symbol"].unique())[len(options["symbol"].unique()) // 2]
    page.wait_for_selector(f'#chart-instrument option[value="{symbol}"]', state="attached")
    page.select_option("#chart-instrument", symbol)
    page.select_option("#chart-interval", "15m")
    page.click("#chart-form [type=submit], #chart-form button")
    expect(page.locator("#chart-source")).to_contain_text(f"{symbol} · 15m")
    traces = page.evaluate("document.getElementById('candles').data")
    assert [t["type"] for t in traces] == ["candlestick", "bar", "scatter"]
    contract = options[options["symbol"] == symbol].sort_values("ts")
    contract = contract.assign(ts=contract["ts"].dt.tz_convert("Asia/Kolkata")).set_index("ts")
    last_quote = contract[["bid_price_0", "ask_price_0"]].resample("15min").last().dropna()
    spread = (last_quote["ask_price_0"] - last_quote["bid_price_0"]).tolist()
    assert traces[2]["y"] == pytest.approx(spread)
    assert len(traces[1]["y"]) == len(traces[0]["x"]) == len(spread)
    assert page.js_errors == []


def test_instrument_list_follows_the_last_asked_day_when_answers_cross(
    page: Any, live_server: LiveServer
) -> None:
    day = GENERATED_DAYS[0].isoformat()
    page.add_init_script(stale_answers_last("/instruments?", f"date={day}"))
    page.goto(live_server.url + "/data")
    page.click('[data-tab="chart"]')
    page.select_option("#chart-dataset", f"bronze.{OPTIONS}")  # asks for the last day (held)
    page.fill("#chart-start", day)  # asks for the first day (let through)
    page.wait_for_function(STALE_ANSWERS_HANDLED)  # the last day's answer came after it
    listed = page.eval_on_selector_all("#chart-instrument option", "os => os.map(o => o.value)")
    # Oracle: the contracts in the first day's file; the weekly expiring on the first
    # day's week is there and not on the last day, so a stale answer would show.
    assert sorted(listed) == sorted(_raw(live_server.lake_root, OPTIONS)["symbol"].unique())
    assert page.js_errors == []


def test_run_table_follows_the_last_chosen_tab_when_answers_cross(
    page: Any, live_server: LiveServer
) -> None:
    # The first table (trades) is asked for as the page opens; its answer is held back
    # until the daily table, chosen next, has been drawn.
    page.add_init_script(stale_answers_last("/tables/", "/tables/daily?"))
    page.goto(f"{live_server.url}/runs/{BASE_RUN}")
    page.click('#table-tabs [data-table="daily"]')
    page.wait_for_function(STALE_ANSWERS_HANDLED)  # the trades answer came after it
    # Oracle: the run's daily.parquet, one row a day, with its own columns.
    daily = pd.read_parquet(live_server.lake_root / "runs" / BASE_RUN / "daily.parquet")
    assert page.get_attribute("#results-table", "data-table") == "daily"
    headers = page.eval_on_selector_all(
        "#results-table th", "ths => ths.map(th => th.dataset.column)"
    )
    assert headers == list(daily.columns)
    dates = page.locator("#results-table tbody tr td:first-child").all_inner_texts()
    assert dates == pd.to_datetime(daily["date"]).dt.strftime("%Y-%m-%d").tolist()
    assert page.inner_text("#page-info") == f"1–{len(daily)} of {len(daily)}"
    assert page.js_errors == []


def test_quality_page_validates_and_shows_verdicts_and_offending_rows(
    page: Any, live_server: LiveServer
) -> None:
    page.goto(live_server.url + "/quality")
    page.select_option("#validate-form select[name=dataset]", f"bronze.{SPOT}")
    page.click("#validate-form [type=submit], #validate-form button")
    page.wait_for_url("**/quality?report=*", timeout=JOB_TIMEOUT_MS)
    report_id = page.url.split("report=")[1]
    report = json.loads(
        (live_server.lake_root / "reports" / "quality" / f"{report_id}.json").read_text()
    )
    assert page.inner_text("[data-testid=verdict]") == report["verdict"]
    # Oracle for one rule, by pandas: the spot prices are all positive (R2 passes).
    raw = pd.concat(
        pd.read_parquet(p)
        for p in sorted((live_server.lake_root / "bronze" / SPOT).glob("date=*/data.parquet"))
    )
    assert (raw["price"] > 0).all()
    body = page.inner_text("body")
    for rule in report["rules"].values():
        assert rule["name"] in body
    positive = page.locator('tr:has(td:text-is("R2"))').first.inner_text()
    assert "positive_prices" in positive and "pass" in positive
    assert f"{len(raw):,} rows" in positive
    # Every rule that failed on a day shows its offending rows under its own heading.
    for rule_id, rule in report["rules"].items():
        if rule["offending_rows"]:
            assert f"{rule_id} {rule['name']}: offending rows" in body
    assert page.js_errors == []


def test_compare_page_shows_both_runs_and_the_spec_difference(
    page: Any, live_server: LiveServer
) -> None:
    from _e2e_fixtures import straddle_spec_data

    from ticklake.backtest.runner import run_backtest
    from ticklake.backtest.spec import parse_spec
    from ticklake.lake import open_lake

    lake = open_lake(live_server.lake_root)
    day = GENERATED_DAYS[0].isoformat()
    other = straddle_spec_data(
        time={
            "start": day,
            "end": day,
            "entry_windows": ["09:20-09:25"],
            "exit_time": "14:00",
        }
    )
    run_backtest(lake, parse_spec(other), run_id="straddle-compare", executor="serial")
    page.goto(f"{live_server.url}/compare?a={BASE_RUN}&b=straddle-compare")
    page.wait_for_selector("#compare-spec tbody tr")
    spec_rows = page.locator("#compare-spec tbody tr").all_inner_texts()
    assert any(r.startswith("time.exit_time") and "15:20" in r and "14:00" in r for r in spec_rows)
    assert any(r.startswith("time.end") for r in spec_rows)
    runs = live_server.lake_root / "runs"
    # The net P&L row: each run's total from its daily table, and B - A.
    net = [
        int(pd.read_parquet(runs / run / "daily.parquet")["net_pnl_paise"].sum())
        for run in (BASE_RUN, "straddle-compare")
    ]
    headers = page.locator("#compare-stats th").all_inner_texts()
    assert headers[1:3] == [BASE_RUN, "straddle-compare"]
    texts = page.locator("#compare-stats tbody tr").all_inner_texts()
    cells = next(t for t in texts if t.startswith("Total net P&L")).split("\t")

    def rupees(text: str) -> float:  # the page shows rupees with Indian digit grouping
        return float(text.replace(",", "").replace("−", "-").strip())

    shown = [rupees(c) for c in cells[1:4]]
    assert shown == pytest.approx([net[0] / 100, net[1] / 100, (net[1] - net[0]) / 100])
    assert page.js_errors == []


def test_builder_not_group_saves_as_yaml_and_opens_again(
    page: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    import yaml

    from ticklake.backtest.conditions import compile_spec_conditions
    from ticklake.backtest.spec import parse_spec

    def operand(leaf: Any, side: str, metric: str, minutes: int) -> None:
        box = leaf.locator(f'[data-side="{side}"]')
        if box.locator('[data-role="kind"]').input_value() != "metric":
            box.locator('[data-role="kind"]').select_option("metric")
        box.locator('[data-role="metric"]').select_option(metric)
        box.locator('[data-param="minutes"]').fill(str(minutes))

    page.goto(live_server.url + "/builder")
    page.wait_for_selector('#builder[data-ready="true"]')
    page.fill("#f-name", "not_group")
    entry = page.locator('[data-rule="entry"]')
    entry.locator('[data-role="add-condition"]').first.click()
    first = entry.locator('[data-role="leaf"]').nth(0)
    operand(first, "left", "ema", 1)
    first.locator('[data-role="op"]').select_option(">")
    operand(first, "right", "ema", 5)
    entry.locator('[data-role="add-group"]').first.click()
    inner = entry.locator(".rule-group .rule-group").first
    inner.locator('[data-role="add-condition"]').first.click()
    inner.locator('[data-role="add-condition"]').first.click()
    a, b = inner.locator('[data-role="leaf"]').nth(0), inner.locator('[data-role="leaf"]').nth(1)
    operand(a, "left", "ema", 2)
    a.locator('[data-role="op"]').select_option("crosses_above")
    operand(a, "right", "ema", 10)
    operand(b, "left", "rsi", 14)
    b.locator('[data-role="op"]').select_option(">")
    b.locator('[data-side="right"] [data-role="kind"]').select_option("number")
    b.locator('[data-side="right"] [data-role="number"]').fill("70")
    inner.locator('.rule-head [data-role="not"]').click()
    expected = {
        "all": [
            {
                "left": {"metric": "ema", "args": {"minutes": 1}},
                "op": ">",
                "right": {"metric": "ema", "args": {"minutes": 5}},
            },
            {
                "not": {
                    "any": [
                        {
                            "left": {"metric": "ema", "args": {"minutes": 2}},
                            "op": "crosses_above",
                            "right": {"metric": "ema", "args": {"minutes": 10}},
                        },
                        {
                            "left": {"metric": "rsi", "args": {"minutes": 14}},
                            "op": ">",
                            "right": 70,
                        },
                    ]
                }
            },
        ]
    }
    shown = json.loads(page.inner_text("#spec-json"))
    assert shown["entry"]["when"] == expected
    with page.expect_download() as download:
        page.click("#save-yaml")
    saved = Path(download.value.path()).read_text()
    data = yaml.safe_load(saved)
    assert data["entry"]["when"] == expected
    # The library accepts the saved file and compiles its condition: four EMAs and the
    # RSI of the underlying, one atom each.
    plans = compile_spec_conditions(parse_spec(data))
    assert plans.entry is not None
    assert len(plans.entry.atoms) == 5, plans.entry.atoms
    # Open the file in a fresh builder: the same spec comes back.
    path = tmp_path / "not_group.yml"
    path.write_text(saved)
    page.goto(live_server.url + "/builder")
    page.wait_for_selector('#builder[data-ready="true"]')
    page.set_input_files("#yaml-file", str(path))
    expect(page.locator("#f-name")).to_have_value("not_group")
    reopened = json.loads(page.inner_text("#spec-json"))
    assert reopened["entry"]["when"] == expected
    assert page.js_errors == []


def test_builder_instrument_leg_builds_a_spec_the_library_accepts(
    page: Any, live_server: LiveServer
) -> None:
    from ticklake.backtest.spec import InstrumentSpec, parse_spec

    page.goto(live_server.url + "/builder")
    page.wait_for_selector('#builder[data-ready="true"]')
    page.click("#leg-add")
    row = page.locator("#legs tbody tr").last
    row.locator("select[data-field=type]").select_option("INSTRUMENT")
    # An instrument has no strike selector: the cell shows a dash instead.
    expect(row.locator("td").nth(4)).to_have_text("—")
    shown = json.loads(page.inner_text("#spec-json"))
    added = shown["legs"][-1]
    assert added == {"name": added["name"], "instrument": "underlying", "side": "sell", "lots": 1}
    # Oracle: the library's own parser reads the builder's spec as an instrument leg.
    spec = parse_spec(shown)
    assert spec.legs[-1].instrument == InstrumentSpec()
    assert [leg.is_option for leg in spec.legs] == [True] * (len(spec.legs) - 1) + [False]
    page.click("#validate")
    expect(page.locator("#builder-message")).to_contain_text("valid ·")
    assert page.js_errors == []
