from __future__ import annotations

import csv
import gzip
import hashlib
import math
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ticklake.generate import VENDOR_COLUMNS, GenerateSummary, generate_options
from ticklake.generate.pricing import RISK_FREE_RATE, black_scholes, norm_cdf
from ticklake.market.nse_symbols import parse_symbol

CHAIN_DAY = date(2024, 1, 10)

EXPECTED_COLUMNS = [
    "timestamp",
    "price",
    "qty",
    "avgPrice",
    "volume",
    "bQty",
    "sQty",
    "open",
    "high",
    "low",
    "close",
    "changeper",
    "lastTradeTime",
    "oi",
    "oiHigh",
    "oiLow",
    "bq0",
    "bp0",
    "bo0",
    "bq1",
    "bp1",
    "bo1",
    "bq2",
    "bp2",
    "bo2",
    "bq3",
    "bp3",
    "bo3",
    "bq4",
    "bp4",
    "bo4",
    "sq0",
    "sp0",
    "so0",
    "sq1",
    "sp1",
    "so1",
    "sq2",
    "sp2",
    "so2",
    "sq3",
    "sp3",
    "so3",
    "sq4",
    "sp4",
    "so4",
    "ts",
    "symbol",
    "opt_type",
    "strike",
    "year",
    "month",
]
PRICE_COLUMNS = ["price", "open", "high", "low", "close"] + [
    f"{s}p{i}" for s in "bs" for i in range(5)
]


def _read_spot(path: Path) -> dict[datetime, float]:
    with path.open(newline="") as fh:
        return {datetime.fromisoformat(t): float(v) for t, v in csv.reader(fh)}


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    kwargs = dict(start=date(2024, 1, 5), days=2, seed=3, strikes_each_side=2, seconds_step=30)
    first = generate_options("NIFTY", out=tmp_path / "a", **kwargs)  # type: ignore[arg-type]
    second = generate_options("NIFTY", out=tmp_path / "b", **kwargs)  # type: ignore[arg-type]
    assert _tree_hash(tmp_path / "a") == _tree_hash(tmp_path / "b")
    assert (first.files, first.rows) == (second.files, second.rows)
    generate_options("NIFTY", out=tmp_path / "c", **{**kwargs, "seed": 4})  # type: ignore[arg-type]
    assert _tree_hash(tmp_path / "c") != _tree_hash(tmp_path / "a")
    # Friday 2024-01-05, then the weekend is skipped.
    assert first.dates == (date(2024, 1, 5), date(2024, 1, 8))


def test_layout_columns_and_types(chain: tuple[GenerateSummary, Path]) -> None:
    summary, out = chain
    files = sorted((out / "options" / CHAIN_DAY.isoformat()).glob("*.parquet"))
    assert len(files) == summary.files > 50
    assert (out / "spot" / f"{CHAIN_DAY.isoformat()}.csv").is_file()
    rows = 0
    for path in files:
        table = pq.read_table(path)
        assert table.column_names == EXPECTED_COLUMNS == list(VENDOR_COLUMNS)
        contract = parse_symbol(path.name)
        assert contract.expiry == date(2024, 1, 10) and contract.weekly
        assert path.name == path.name.lower()
        symbols = set(table.column("symbol").to_pylist())
        assert symbols == {path.name.removesuffix(".parquet").upper()}
        assert set(table.column("year").to_pylist()) == {2024}
        assert set(table.column("month").to_pylist()) == {1}
        assert set(table.column("strike").to_pylist()) == {contract.strike}
        rows += table.num_rows
    assert rows == summary.rows
    schema = pq.read_schema(files[0])
    types = {f.name: str(f.type) for f in schema}
    assert types["ts"] == types["timestamp"] == types["lastTradeTime"] == "timestamp[ns]"
    assert types["bp0"] == types["price"] == "double"
    assert types["bq0"] == types["volume"] == types["oi"] == types["bo0"] == "int64"
    assert types["symbol"] == "string"


def test_session_times_are_ist_wall_clock(chain: tuple[GenerateSummary, Path]) -> None:
    _, out = chain
    opening = datetime(2024, 1, 10, 9, 15, 0)
    closing = datetime(2024, 1, 10, 15, 29, 59)
    spot = _read_spot(out / "spot" / "2024-01-10.csv")
    assert min(spot) == opening and max(spot) == closing and len(spot) == 22_500
    for path in sorted((out / "options" / "2024-01-10").glob("*.parquet"))[::9]:
        frame = pq.read_table(path).to_pandas()
        assert frame["ts"].min() >= opening and frame["ts"].max() <= closing
        assert (frame["ts"].dt.microsecond == 0).all()
        lag = (frame["timestamp"] - frame["ts"]).dt.total_seconds()
        assert lag.between(0, 1, inclusive="left").all() and lag.std() > 0.1
        traded = frame["lastTradeTime"].notna()
        assert (frame.loc[traded, "lastTradeTime"] <= frame.loc[traded, "ts"]).all()


def test_book_is_never_crossed_and_on_the_tick_grid(chain: tuple[GenerateSummary, Path]) -> None:
    _, out = chain
    for path in sorted((out / "options" / "2024-01-10").glob("*.parquet")):
        t = pq.read_table(path).to_pandas()
        for column in PRICE_COLUMNS:
            ticks = t[column].to_numpy() * 20
            assert np.abs(ticks - np.rint(ticks)).max() < 1e-6, (path.name, column)
        paise = t["avgPrice"].to_numpy() * 100  # a VWAP: two decimals, not on the grid
        assert np.abs(paise - np.rint(paise)).max() < 1e-6
        both = (t["bp0"] > 0) & (t["sp0"] > 0)
        assert (t.loc[both, "bp0"] < t.loc[both, "sp0"]).all()
        assert (t["sp0"] >= 0.05).all()
        assert ((t["bp0"] == 0) | (t["bp0"] >= 0.05)).all()
        for i in range(1, 5):
            live = t[f"bp{i}"] > 0
            assert (t.loc[live, f"bp{i}"] < t.loc[live, f"bp{i - 1}"]).all()
            assert (t[f"sp{i}"] > t[f"sp{i - 1}"]).all()
        for side in "bs":
            for i in range(5):
                live = t[f"{side}p{i}"] > 0
                qty, orders = t.loc[live, f"{side}q{i}"], t.loc[live, f"{side}o{i}"]
                assert (qty % 15 == 0).all() and (qty > 0).all()  # lot 15 in Jan 2024
                assert ((orders >= 1) & (orders <= qty // 15)).all()
        traded = t["price"] > 0
        assert (t.loc[traded, "price"] >= t.loc[traded, "low"]).all()
        assert (t.loc[traded, "price"] <= t.loc[traded, "high"]).all()
        assert (np.diff(t["volume"].to_numpy()) >= 0).all()


def test_put_call_parity_on_mids_against_the_spot_file(
    chain: tuple[GenerateSummary, Path],
) -> None:
    _, out = chain
    spot = _read_spot(out / "spot" / "2024-01-10.csv")
    expiry_close = datetime(2024, 1, 10, 15, 30)
    errors = []
    for call_path in sorted((out / "options" / "2024-01-10").glob("*ce.parquet")):
        put_path = call_path.with_name(call_path.name.replace("ce.parquet", "pe.parquet"))
        strike = parse_symbol(call_path.name).strike
        calls = pq.read_table(call_path).to_pandas().set_index("ts")
        puts = pq.read_table(put_path).to_pandas().set_index("ts")
        joined = calls.add_suffix("_c").join(puts.add_suffix("_p"), how="inner").iloc[::97]
        for ts, row in joined.iterrows():
            if min(row["bp0_c"], row["bp0_p"]) <= 0:
                continue
            years = (expiry_close - ts).total_seconds() / (365 * 86400)
            mid_call = (row["bp0_c"] + row["sp0_c"]) / 2
            mid_put = (row["bp0_p"] + row["sp0_p"]) / 2
            parity = spot[ts] - strike * math.exp(-RISK_FREE_RATE * years)
            allowed = (row["sp0_c"] - row["bp0_c"] + row["sp0_p"] - row["bp0_p"]) / 2 + 0.1
            errors.append(abs(mid_call - mid_put - parity) / allowed)
    assert len(errors) > 500
    assert max(errors) <= 1.0


def test_spreads_widen_away_from_the_money(chain: tuple[GenerateSummary, Path]) -> None:
    _, out = chain
    spot = _read_spot(out / "spot" / "2024-01-10.csv")
    noon = datetime(2024, 1, 10, 12, 0)
    near_relative, near_ticks, far_otm_relative, far_itm_ticks = [], [], [], []
    for path in sorted((out / "options" / "2024-01-10").glob("*.parquet")):
        contract = parse_symbol(path.name)
        t = pq.read_table(path).to_pandas()
        t = t[(t["bp0"] > 0) & (t["ts"] <= noon)]
        if t.empty:
            continue
        level = np.array([spot[ts] for ts in t["ts"]])
        # Positive when out of the money.
        otm = (contract.strike - level) * (1 if contract.opt_type == "CE" else -1)
        spread = (t["sp0"] - t["bp0"]).to_numpy()
        relative = spread / ((t["sp0"] + t["bp0"]) / 2).to_numpy()
        atm = np.abs(otm) <= 100
        near_relative.extend(relative[atm])
        near_ticks.extend(spread[atm] * 20)
        far_otm_relative.extend(relative[otm >= 900])
        far_itm_ticks.extend(spread[otm <= -900] * 20)
    assert min(len(near_ticks), len(far_otm_relative), len(far_itm_ticks)) > 1000
    # Cheap far out-of-the-money options: much wider relative spreads.
    assert np.median(far_otm_relative) > 3 * np.median(near_relative)
    # Deep in-the-money options: wider in ticks than at the money.
    assert np.median(far_itm_ticks) > 1.5 * np.median(near_ticks)


def test_far_strikes_go_stale_and_near_ones_do_not(chain: tuple[GenerateSummary, Path]) -> None:
    _, out = chain
    spot = _read_spot(out / "spot" / "2024-01-10.csv")
    low, high = min(spot.values()), max(spot.values())
    stale_far = 0
    for path in sorted((out / "options" / "2024-01-10").glob("*.parquet")):
        strike = parse_symbol(path.name).strike
        ts = pq.read_table(path, columns=["ts"]).column("ts").to_numpy()
        longest_gap = np.diff(ts).max() / np.timedelta64(1, "s") if ts.size > 1 else 22_500
        if low - 100 <= strike <= high + 100:
            assert ts.size == 22_500 and longest_gap == 1
        elif strike < low - 1100 or strike > high + 1100:
            stale_far += longest_gap >= 60 and ts.size < 22_500
    assert stale_far >= 8


def test_real_spot_series_is_rescaled_and_forward_filled(tmp_path: Path, shared_data: Path) -> None:
    source = shared_data / "nse-nifty50-index-1s" / "2022-08-12.csv.gz"
    with gzip.open(source, "rt") as fh:
        real = {datetime.fromisoformat(t): float(v) for t, v in csv.reader(fh)}
    summary = generate_options(
        "NIFTY",
        start=date(2024, 1, 8),
        days=1,
        out=tmp_path,
        strikes_each_side=1,
        spot_path=source,
        seconds_step=60,
        start_price=22_000.0,
    )
    assert summary.days == 1
    spot = _read_spot(tmp_path / "spot" / "2024-01-08.csv")
    assert len(spot) == 375
    first_real = max(v for t, v in real.items() if t <= datetime(2022, 8, 12, 9, 15))
    first_real = real.get(datetime(2022, 8, 12, 9, 15), first_real)
    scale = 22_000.0 / first_real
    for ts, value in spot.items():
        wall = datetime(2022, 8, 12, ts.hour, ts.minute, ts.second)
        previous = max(t for t in real if t <= wall)  # forward fill
        assert value == pytest.approx(real[previous] * scale, abs=0.03)


def test_black_scholes_matches_a_pure_python_oracle() -> None:
    def phi(x: float) -> float:
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))

    spot, strike, years, vol, rate = 48_000.0, 48_500.0, 7 / 365, 0.18, RISK_FREE_RATE
    d1 = (math.log(spot / strike) + (rate + vol * vol / 2) * years) / (vol * math.sqrt(years))
    d2 = d1 - vol * math.sqrt(years)
    call = spot * phi(d1) - strike * math.exp(-rate * years) * phi(d2)
    put = strike * math.exp(-rate * years) * phi(-d2) - spot * phi(-d1)
    args = (np.array([spot]), strike, np.array([years]), np.array([vol]), rate)
    assert black_scholes(*args, "CE")[0] == pytest.approx(call, rel=1e-12)
    assert black_scholes(*args, "PE")[0] == pytest.approx(put, rel=1e-12)
    grid = np.linspace(-6, 6, 25)
    assert norm_cdf(grid) == pytest.approx([phi(x) for x in grid], abs=1e-15)


def test_progress_is_reported_per_day(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    generate_options(
        "BANKNIFTY",
        start=date(2024, 1, 8),
        days=2,
        out=tmp_path,
        strikes_each_side=0,
        seconds_step=900,
        expiries=("monthly",),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(1, 2), (2, 2)]
    names = {p.name for p in (tmp_path / "options" / "2024-01-08").glob("*.parquet")}
    assert names and all("24jan" in n for n in names)  # monthly only
    assert (tmp_path / "options" / (date(2024, 1, 8) + timedelta(days=1)).isoformat()).is_dir()


def test_normal_cdf_kernel_runs_without_jit() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import math, numpy as np\n"
        "from ticklake.generate.pricing import norm_cdf\n"
        "x = np.array([-2.0, 0.0, 1.5])\n"
        "want = [0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x]\n"
        "assert np.allclose(norm_cdf(x), want, atol=1e-15), norm_cdf(x)\n"
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
