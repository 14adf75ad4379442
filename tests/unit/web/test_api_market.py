"""The time-travel option chain and candles against pandas oracles on the raw files."""

from __future__ import annotations

import math
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import polars as pl
import pytest
from _engine_fixtures import GENERATED_DAYS, OPTIONS, SPOT
from _web_fixtures import make_client

DAY = GENERATED_DAYS[1]
IST = timedelta(hours=5, minutes=30)


def _raw(root: Path, dataset: str) -> pd.DataFrame:
    path = root / "bronze" / dataset / f"date={DAY.isoformat()}" / "data.parquet"
    return pd.read_parquet(path)


def _oracle_chain(root: Path, clock: str) -> tuple[pd.DataFrame, float, datetime]:
    """Last snapshot per contract at or before the second, nearest expiry, by pandas."""
    hour, minute, second = (int(x) for x in clock.split(":"))
    moment = datetime(DAY.year, DAY.month, DAY.day, hour, minute, second, tzinfo=UTC) - IST
    options = _raw(root, OPTIONS)
    seen = options[options["ts"] <= pd.Timestamp(moment)]
    expiry = min(e for e in seen["expiry"] if e >= DAY)
    latest = seen[seen["expiry"] == expiry].sort_values("ts").groupby("symbol").tail(1)
    spot_rows = _raw(root, SPOT)
    spot = float(
        spot_rows[spot_rows["ts"] <= pd.Timestamp(moment)].sort_values("ts")["price"].iloc[-1]
    )
    return latest.set_index(["strike", "opt_type"]), spot, moment


def _bsm_price(spot: float, strike: float, years: float, vol: float, call: bool) -> float:
    def cdf(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2))

    d1 = (math.log(spot / strike) + 0.5 * vol * vol * years) / (vol * math.sqrt(years))
    d2 = d1 - vol * math.sqrt(years)
    if call:
        return spot * cdf(d1) - strike * cdf(d2)
    return strike * cdf(-d2) - spot * cdf(-d1)


def test_chain_at_a_second_matches_the_last_quote_of_each_contract(
    client: Any, finished_lake_root: Path
) -> None:
    clock = "11:03:07"  # an odd second: the 2 s snapshots make every quote 1 s old
    expected, spot, moment = _oracle_chain(finished_lake_root, clock)
    chain = client.get(
        "/api/v1/chain",
        params={"dataset": OPTIONS, "date": DAY.isoformat(), "time": clock, "underlying": SPOT},
    ).json()
    assert chain["spot"] == pytest.approx(spot) and chain["spot_source"] == "spot"
    strikes = sorted({k for k, _ in expected.index})
    assert [row["strike"] for row in chain["rows"]] == strikes
    atm = min(strikes, key=lambda k: (abs(k - spot), k))
    assert [row["strike"] for row in chain["rows"] if row["atm"]] == [atm]
    for row in chain["rows"]:
        for side in ("CE", "PE"):
            quote, raw = row[side], expected.loc[(row["strike"], side)]
            assert quote["bid"] == raw["bid_price_0"] and quote["ask"] == raw["ask_price_0"]
            assert quote["last"] == (None if pd.isna(raw["last_price"]) else raw["last_price"])
            age = (pd.Timestamp(moment) - raw["ts"]).total_seconds()
            assert quote["quote_age_seconds"] == pytest.approx(age) and age == 1.0
    # IV: the BSM price at the reported volatility reproduces the mid (time to 15:30 IST).
    years = (datetime(2024, 1, 10, 10, 0, tzinfo=UTC) - moment).total_seconds() / (365 * 86_400)
    atm_row = next(r for r in chain["rows"] if r["atm"])
    for side, call in (("CE", True), ("PE", False)):
        quote = atm_row[side]
        mid = (quote["bid"] + quote["ask"]) / 2
        assert _bsm_price(spot, atm, years, quote["iv"], call) == pytest.approx(mid, abs=1e-6)
        assert (0 < quote["delta"] < 1) if call else (-1 < quote["delta"] < 0)


def test_chain_never_looks_ahead(client: Any, finished_lake_root: Path, tmp_path: Path) -> None:
    """Changing every row after t leaves the chain at t unchanged."""
    clock = "12:00:00"
    params = {"dataset": OPTIONS, "date": DAY.isoformat(), "time": clock, "underlying": SPOT}
    before = client.get("/api/v1/chain", params=params).json()
    root = tmp_path / "lake"
    shutil.copytree(finished_lake_root, root, ignore=shutil.ignore_patterns("runs", "cache"))
    from ticklake.lake import open_lake

    lake = open_lake(root)
    cut = datetime(DAY.year, DAY.month, DAY.day, 12, 0, tzinfo=UTC) - IST
    for dataset, column in ((OPTIONS, "bid_price_0"), (SPOT, "price")):
        frame = lake.read(dataset, start=DAY, end=DAY)
        changed = frame.with_columns(
            pl.when(pl.col("ts") > cut)
            .then(pl.col(column) * 3)
            .otherwise(pl.col(column))
            .alias(column)
        )
        day_dir = root / "bronze" / dataset / f"date={DAY.isoformat()}"
        shutil.rmtree(day_dir)
        lake.write(dataset, changed)
    changed_client = make_client(root)
    try:
        after = changed_client.get("/api/v1/chain", params=params).json()
        later = changed_client.get("/api/v1/chain", params={**params, "time": "12:00:02"}).json()
    finally:
        changed_client.app.state.jobs.shutdown()
    assert after["rows"] == before["rows"] and after["spot"] == before["spot"]
    assert later["rows"] != before["rows"]  # the change is visible one snapshot later


def test_chain_without_a_spot_dataset_uses_put_call_parity(
    client: Any, finished_lake_root: Path
) -> None:
    expected, _, _ = _oracle_chain(finished_lake_root, "10:00:01")
    mids = ((expected["bid_price_0"] + expected["ask_price_0"]) / 2).unstack("opt_type")
    diff = (mids["CE"] - mids["PE"]).abs()
    best = diff[diff == diff.min()].index.min()
    parity = best + mids.loc[best, "CE"] - mids.loc[best, "PE"]
    chain = client.get(
        "/api/v1/chain", params={"dataset": OPTIONS, "date": DAY.isoformat(), "time": "10:00:01"}
    ).json()
    assert chain["spot_source"] == "parity" and chain["spot"] == pytest.approx(parity)


def test_chain_before_the_open_is_empty_and_bad_time_is_422(client: Any) -> None:
    early = client.get(
        "/api/v1/chain", params={"dataset": OPTIONS, "date": DAY.isoformat(), "time": "08:00"}
    ).json()
    assert early["rows"] == [] and early["expiry"] is None
    bad = client.get(
        "/api/v1/chain", params={"dataset": OPTIONS, "date": DAY.isoformat(), "time": "25:99"}
    )
    assert bad.status_code == 422 and "HH:MM" in bad.json()["error"]["message"]
    wrong = client.get(
        "/api/v1/chain", params={"dataset": SPOT, "date": DAY.isoformat(), "time": "10:00"}
    )
    assert wrong.status_code == 422 and "not option snapshots" in wrong.json()["error"]["message"]


def test_candles_from_prices_match_a_pandas_resample(client: Any, finished_lake_root: Path) -> None:
    body = client.get(
        "/api/v1/candles",
        params={
            "dataset": SPOT,
            "instrument": "BANKNIFTY",
            "start": DAY.isoformat(),
            "interval": "5m",
        },
    ).json()
    raw = _raw(finished_lake_root, SPOT)
    local = raw.assign(ts=raw["ts"].dt.tz_convert("Asia/Kolkata")).set_index("ts")["price"]
    bars = local.resample("5min", label="left", closed="left").ohlc().dropna()
    assert body["source"] == "computed from prices"
    assert body["ts"] == [t.strftime("%Y-%m-%d %H:%M:%S") for t in bars.index]
    for key in ("open", "high", "low", "close"):
        assert body[key] == pytest.approx(bars[key].tolist())


def test_candles_of_an_option_contract_carry_volume_and_spread(
    client: Any, finished_lake_root: Path
) -> None:
    symbols = client.get(
        "/api/v1/instruments", params={"dataset": OPTIONS, "date": DAY.isoformat()}
    ).json()
    symbol = symbols[len(symbols) // 2]
    body = client.get(
        "/api/v1/candles",
        params={
            "dataset": OPTIONS,
            "instrument": symbol,
            "start": DAY.isoformat(),
            "interval": "15m",
        },
    ).json()
    raw = _raw(finished_lake_root, OPTIONS)
    contract = raw[raw["symbol"] == symbol].sort_values("ts")
    contract = contract.assign(ts=contract["ts"].dt.tz_convert("Asia/Kolkata")).set_index("ts")
    last_quote = contract[["bid_price_0", "ask_price_0"]].resample("15min").last().dropna()
    spread = (last_quote["ask_price_0"] - last_quote["bid_price_0"]).tolist()
    assert body["spread"] == pytest.approx(spread)
    assert len(body["volume"]) == len(body["ts"]) == len(spread)


def test_candles_and_chain_name_the_exchange_zone(client: Any) -> None:
    candles = client.get(
        "/api/v1/candles",
        params={"dataset": SPOT, "instrument": "BANKNIFTY", "start": DAY.isoformat()},
    ).json()
    assert (candles["timezone"], candles["timezone_label"]) == (
        "Asia/Kolkata",
        "IST (Asia/Kolkata)",
    )
    assert candles["ts"][0] == f"{DAY.isoformat()} 09:15:00"  # the open, in exchange time
    chain = client.get(
        "/api/v1/chain",
        params={"dataset": OPTIONS, "date": DAY.isoformat(), "time": "10:30", "underlying": SPOT},
    ).json()
    assert chain["timezone_label"] == "IST (Asia/Kolkata)"
    assert chain["as_of_local"] == f"{DAY.isoformat()}T10:30:00+05:30"
    assert chain["as_of_utc"] == f"{DAY.isoformat()}T05:00:00+00:00"
    spot_utc = datetime.fromisoformat(chain["spot_ts"])
    local = spot_utc.astimezone(ZoneInfo("Asia/Kolkata"))
    assert chain["spot_ts_local"] == local.isoformat() and local <= datetime.fromisoformat(
        chain["as_of_local"]
    )
