"""The live page in Chromium (issue 14): candles of a trades dataset that refresh on their
own, volume coloured by bar direction, the missing-seconds strip, the CSV of what is
shown, and the heartbeat. Its own server over its own lake (the real BTCUSDT trades
sample), so the shared lake of the other browser tests is not touched. Oracle: pandas."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import polars as pl
import pytest
from _e2e_fixtures import serve_app, wait_for_plot

import ticklake
from ticklake.collect.health import Health

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - conftest explains; CI must have it
    if os.environ.get("CI"):
        raise
    pytest.skip("browser tests skipped: playwright is not installed", allow_module_level=True)

BINANCE = Path(__file__).resolve().parents[1] / "data" / "binance"


def trades_frame(shift: pd.Timedelta = pd.Timedelta(0)) -> pl.DataFrame:
    raw = pd.read_parquet(BINANCE / "btcusdt-trades.parquet")
    ts = raw["timestamp"].astype("datetime64[ns, UTC]") + shift
    return pl.DataFrame(
        {
            "ts": ts,
            "instrument": "BTCUSDT",
            "trade_id": (raw["trade_id"] + (10_000 if shift else 0)).astype(str),
            "price": raw["price"],
            "size": raw["quantity"],
            "side": raw["buyer_maker"].map({"True": "sell", "False": "buy"}),
        }
    )


def minute_bars(frame: pl.DataFrame) -> pd.DataFrame:
    by = frame.to_pandas().set_index("ts").sort_index(kind="stable")
    grouped = by.groupby(by.index.floor("1min"))
    return pd.DataFrame({"open": grouped["price"].first(), "close": grouped["price"].last()})


@pytest.fixture
def live_lake_server(tmp_path: Path, chromium: Any) -> Iterator[tuple[str, Any]]:
    from ticklake.web.app import create_app

    lake = ticklake.init_lake(tmp_path / "lake")
    lake.write("binance_agg_trades", trades_frame(), schema="trades")
    app = create_app(lake.root, bound_host="127.0.0.1", executor="serial")
    with serve_app(app, lake.root) as server:
        yield server.url, lake


def chart(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => { const c = document.getElementById("live-chart");
        return { bars: c.data[0].x.length, colours: c.data[1].marker.color,
                 missing: c.data[2].y, x: c.data[0].x }; }"""
    )


def test_live_page_draws_refreshes_downloads_and_shows_health(
    page: Any, live_lake_server: tuple[str, Any], tmp_path: Path
) -> None:
    url, lake = live_lake_server
    page.goto(f"{url}/live")
    expect(page.locator("#live-health")).to_have_text("MISSING")
    wait_for_plot(page, "live-chart")
    first = trades_frame()
    expected = minute_bars(first)
    drawn = chart(page)
    assert drawn["bars"] == len(expected)
    directions = ["#2a9d5c" if c >= o else "#d1495b" for o, c in expected.itertuples(index=False)]
    assert drawn["colours"] == directions
    assert all(0 <= m < 60 for m in drawn["missing"])
    # the refresh: one more minute of trades arrives; the chart picks it up by itself
    page.select_option("#live-refresh", "1")
    lake.write("binance_agg_trades", trades_frame(pd.Timedelta(minutes=2)), schema="trades")
    page.wait_for_function(
        "n => document.getElementById('live-chart').data[0].x.length > n", arg=drawn["bars"]
    )
    # the heartbeat appears without a reload too
    collector = SimpleNamespace(
        stats=SimpleNamespace(
            market="spot", snapshot=lambda now: {"market": "spot", "streams": {}}
        ),
        gaps=SimpleNamespace(read=lambda: [], path=tmp_path / "gaps.jsonl"),
    )
    Health(lake.root).write([collector])
    expect(page.locator("#live-health")).to_have_text("HEALTHY")
    with page.expect_download() as download_info:
        page.click("#live-csv")
    rows = Path(download_info.value.path()).read_text().strip().splitlines()
    assert rows[0].startswith("ts (UTC),ts (UTC),open")
    assert len(rows) - 1 == chart(page)["bars"]
    assert page.js_errors == []
