"""The live endpoints (issue 14) against pandas: 1 m bars of the real BTCUSDT trades
sample, volume direction, missing seconds, the CSV, and the heartbeat with its gaps."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import polars as pl
import pytest
from _web_fixtures import make_client

import ticklake
from ticklake.collect.health import Health
from ticklake.collect.rawfile import GapLog

BINANCE = Path(__file__).resolve().parents[2] / "data" / "binance"


def sample() -> pd.DataFrame:
    frame = pd.read_parquet(BINANCE / "btcusdt-trades.parquet")
    frame["ts"] = frame["timestamp"].astype("datetime64[ns, UTC]")
    frame["side"] = frame["buyer_maker"].map(
        {"True": "sell", "False": "buy", True: "sell", False: "buy"}
    )
    return frame


@pytest.fixture
def client(tmp_path: Path) -> Any:
    lake = ticklake.init_lake(tmp_path / "lake")
    trades = sample()
    lake.write(
        "binance_agg_trades",
        pl.DataFrame(
            {
                "ts": trades["ts"],
                "instrument": "BTCUSDT",
                "trade_id": trades["trade_id"].astype(str),
                "price": trades["price"],
                "size": trades["quantity"],
                "side": trades["side"],
            }
        ),
        schema="trades",
    )
    web = make_client(lake.root)
    yield web
    web.app.state.jobs.shutdown()


def pandas_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """1 m bars by pandas: OHLC in file order within the minute, volume, seconds used."""
    by = frame.set_index("ts").sort_index(kind="stable")
    grouped = by.groupby(by.index.floor("1min"))
    return pd.DataFrame(
        {
            "open": grouped["price"].first(),
            "high": grouped["price"].max(),
            "low": grouped["price"].min(),
            "close": grouped["price"].last(),
            "volume": grouped["quantity"].sum(),
            "seconds": grouped.apply(lambda g: g.index.floor("1s").nunique()),
        }
    )


def test_live_candles_equal_pandas_bars_of_the_last_minutes(client: Any) -> None:
    body = client.get(
        "/api/v1/live/candles",
        params={"dataset": "binance_agg_trades", "instrument": "BTCUSDT", "minutes": 60},
    ).json()
    expected = pandas_bars(sample())
    bars = body["bars"]
    assert len(bars) == len(expected) >= 1
    for bar, (ts, row) in zip(bars, expected.iterrows(), strict=True):
        assert pd.Timestamp(bar["ts"]) == ts
        assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (
            row["open"],
            row["high"],
            row["low"],
            row["close"],
        )
        assert bar["volume"] == pytest.approx(row["volume"], rel=1e-12)
        assert bar["missing_seconds"] == 60 - row["seconds"]
        assert bar["direction"] == ("up" if row["close"] >= row["open"] else "down")
    assert body["timezone"] == "UTC" and body["newest"].startswith("2021-01-08")


def test_the_csv_is_the_bars_shown(client: Any) -> None:
    params = {
        "dataset": "binance_agg_trades",
        "instrument": "BTCUSDT",
        "interval": "1s",
        "minutes": 2,
    }
    shown = client.get("/api/v1/live/candles", params=params).json()["bars"]
    response = client.get("/api/v1/live/candles.csv", params=params)
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:3] == ["ts (UTC)", "ts (UTC)", "open"]
    assert [float(r[5]) for r in rows[1:]] == [b["close"] for b in shown]
    assert all(int(r[9]) == 0 for r in rows[1:])  # a 1 s bar exists only where a trade was


def test_status_reads_the_heartbeat_and_todays_gaps(client: Any, tmp_path: Path) -> None:
    lake_root = tmp_path / "lake"
    assert client.get("/api/v1/live/status").json()["status"] == "MISSING"
    gaps = GapLog(tmp_path / "raw", "spot")
    gaps.record(
        stream="btcusdt@bookTicker",
        symbol="BTCUSDT",
        reason="no history",
        recovered=False,
        from_ns=1,
        to_ns=2,
    )
    stats = SimpleNamespace(market="spot", snapshot=lambda now: {"market": "spot", "streams": {}})
    collector = SimpleNamespace(stats=stats, gaps=gaps)
    health = Health(lake_root)
    health.write([collector])
    body = client.get("/api/v1/live/status").json()
    assert body["status"] == "DEGRADED"  # an unrecoverable gap today
    assert [g["reason"] for g in body["gaps"]] == ["no history"]
    assert json.loads((lake_root / "health" / "heartbeat.json").read_text())["collectors"][0][
        "gaps_file"
    ] == str(gaps.path)


def test_a_dataset_that_is_not_trades_is_refused(client: Any, tmp_path: Path) -> None:
    response = client.get("/api/v1/live/candles", params={"dataset": "nope", "instrument": "X"})
    assert response.status_code == 404
    page = client.get("/live")
    assert page.status_code == 200 and "binance_agg_trades" in page.text
