"""``load_day`` alignment, strike pruning, and the kernel rules that read aligned quotes.

1. The one-pass loader gives the same ``DayData`` arrays as the previous implementation
   (kept below, verbatim in its logic, as ``_previous_load_day``: sort by (opt_type,
   strike, ts), one ``searchsorted`` per contract) and as a plain-pandas ``merge_asof``
   per contract, on generated days with irregular nanosecond timestamps, gaps longer
   than the tolerance, missing prices, volume resets and spot gaps filled by parity —
   from a lake in the schema's sort order and from one sorted by time (the re-sort path).
2. Strike pruning reaches every strike an ``otm``/``itm`` selector can ask for.
3. ``mid_slippage``'s 60-second-old quote counts only when it was tradeable then.
4. Combined ``points``/``pct`` thresholds: cycle P&L per unit of the position, legs
   closed by re-targeting included; ``pct`` of the entry's net premium.

Hand-built chains: 15-minute session 09:15-09:30 IST on 2024-01-08, BANKNIFTY lot 15,
strike step ₹100, tick ₹0.05 (see ``_engine_fixtures``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from _engine_fixtures import (
    HAND_DAY,
    HAND_EXPIRY,
    IST,
    OPTIONS,
    SPOT,
    HandChain,
    hand_spec,
    ist,
    write_hand_lake,
)

from ticklake.backtest import data as data_module
from ticklake.backtest.data import (
    DayData,
    DaySkip,
    choose_expiry,
    load_day,
    session_grid,
    strike_reach_steps,
)
from ticklake.backtest.engine import DayOutcome, outcome_from_kernel, run_day, simulate
from ticklake.backtest.spec import StrategySpec
from ticklake.lake import Lake, init_lake
from ticklake.market.rules import market_rules
from ticklake.schemas import get_schema

NS = 1_000_000_000


# ------------------------------------------------------------ the previous loader
def _previous_asof(row_ts: np.ndarray, grid: np.ndarray, tolerance_ns: int) -> Any:
    idx = np.searchsorted(row_ts, grid, side="right") - 1
    valid = idx >= 0
    age_ns = np.where(valid, grid - row_ts[np.clip(idx, 0, None)], -1)
    valid &= age_ns <= tolerance_ns
    age = np.where(valid, age_ns // NS, -1)
    return np.where(valid, idx, -1), age


def _previous_paise(values: np.ndarray) -> np.ndarray:
    out = np.rint(np.nan_to_num(values, nan=0.0) * 100.0).astype(np.int64)
    return np.where(out > 0, out, 0)


def _previous_parity(strikes: Any, is_call: Any, bid: Any, ask: Any, age: Any, max_age: int) -> Any:
    best = np.full(bid.shape[1], np.iinfo(np.int64).max, dtype=np.int64)
    spot = np.zeros(bid.shape[1], dtype=np.int64)
    ok = (bid > 0) & (ask > 0) & (age >= 0) & (age <= max_age)
    mid = (bid + ask) // 2
    calls = {int(k): i for i, k in enumerate(strikes) if is_call[i]}
    for j, strike in enumerate(strikes):
        if is_call[j] or int(strike) not in calls:
            continue
        i = calls[int(strike)]
        gap = np.abs(mid[i] - mid[j])
        better = ok[i] & ok[j] & (gap < best)
        best = np.where(better, gap, best)
        spot = np.where(better, strike + mid[i] - mid[j], spot)
    return spot


def _previous_load_day(
    lake: Lake, spec: StrategySpec, day: date, market_fields: bool, reach_steps: int
) -> dict[str, Any]:
    """The loader before the one-pass rewrite (its reach made a parameter)."""
    universe = spec.universe
    rules = market_rules(universe.underlying, day)
    grid = session_grid(day, spec)
    tolerance_ns = spec.fills.as_of_tolerance_seconds * NS
    spot_paise = np.zeros(grid.size, dtype=np.int64)
    source = "parity"
    if universe.underlying_dataset and any(
        p.date == day for p in lake.partitions(universe.underlying_dataset)
    ):
        spot = (
            lake.scan(universe.underlying_dataset, start=day, end=day, columns=["ts", "price"])
            .sort("ts")
            .collect()
        )
        idx, _ = _previous_asof(spot["ts"].dt.epoch("ns").to_numpy(), grid, tolerance_ns)
        prices = _previous_paise(spot["price"].to_numpy())
        spot_paise = np.where(idx >= 0, prices[np.clip(idx, 0, None)], 0)
        source = "spot"
    columns = ["ts", "strike", "opt_type", "expiry", "symbol", "bid_price_0", "ask_price_0"]
    columns += ["last_price", "volume"] if market_fields else []
    options = lake.scan(universe.options_dataset, start=day, end=day, columns=columns)
    expiries = options.select(pl.col("expiry").unique()).collect()["expiry"].to_list()
    expiry = choose_expiry(spec, day, expiries)
    assert expiry is not None
    lazy = options.filter(pl.col("expiry") == expiry)
    if source == "spot" and spot_paise.any():
        reach = reach_steps * rules.strike_step
        known = spot_paise[spot_paise > 0] / 100.0
        lazy = lazy.filter(
            pl.col("strike").is_between(float(known.min()) - reach, float(known.max()) + reach)
        )
    frame = lazy.sort(["opt_type", "strike", "ts"]).collect()
    contracts = frame.select("opt_type", "strike", "symbol").unique(
        subset=["opt_type", "strike"], keep="first", maintain_order=True
    )
    count = contracts.height
    bid = np.zeros((count, grid.size), dtype=np.int64)
    ask = np.zeros((count, grid.size), dtype=np.int64)
    age = np.full((count, grid.size), -1, dtype=np.int64)
    last = np.zeros((count, grid.size), dtype=np.int64)
    volume = np.full((count, grid.size), np.nan)
    ts_all = frame["ts"].dt.epoch("ns").to_numpy()
    bids_all = _previous_paise(frame["bid_price_0"].to_numpy())
    asks_all = _previous_paise(frame["ask_price_0"].to_numpy())
    if market_fields:
        lasts_all = _previous_paise(frame["last_price"].cast(pl.Float64).to_numpy())
        cumulative_all = frame["volume"].cast(pl.Float64).to_numpy()
    bounds = (
        frame.select("opt_type", "strike")
        .with_row_index()
        .group_by(["opt_type", "strike"], maintain_order=True)
        .agg(pl.col("index").min().alias("lo"), pl.col("index").max().alias("hi"))
    )
    for c, (lo, hi) in enumerate(zip(bounds["lo"], bounds["hi"], strict=True)):
        idx, a = _previous_asof(ts_all[lo : hi + 1], grid, tolerance_ns)
        ok = idx >= 0
        take = np.clip(idx, 0, None) + lo
        bid[c] = np.where(ok, bids_all[take], 0)
        ask[c] = np.where(ok, asks_all[take], 0)
        age[c] = a
        if market_fields:
            last[c] = np.where(ok, lasts_all[take], 0)
            cumulative = np.where(ok, cumulative_all[take], np.nan)
            before = np.concatenate([[0.0], cumulative[:-1]])
            before = np.where(np.isnan(before), 0.0, before)
            volume[c] = np.clip(cumulative - before, 0.0, None)
    strikes = np.rint(contracts["strike"].to_numpy() * 100).astype(np.int64)
    is_call = (contracts["opt_type"] == "CE").to_numpy()
    parity = _previous_parity(strikes, is_call, bid, ask, age, spec.fills.max_quote_age_seconds)
    if source == "spot":
        missing = spot_paise == 0
        if missing.any() and (parity[missing] > 0).any():
            spot_paise = np.where(missing, parity, spot_paise)
            source = "spot+parity"
    else:
        spot_paise = parity
    out = {
        "expiry": expiry,
        "spot_paise": spot_paise,
        "spot_source": source,
        "strikes_paise": strikes,
        "is_call": is_call,
        "symbols": contracts["symbol"].to_list(),
        "bid": bid,
        "ask": ask,
        "age": age,
    }
    if market_fields:
        out |= {"last_price": last, "volume": volume}
    return out


# ------------------------------------------------------------ generated days
STRIKES = range(47_500, 48_600, 100)
LATER_EXPIRY = date(2024, 1, 17)


def _random_day(seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Option rows (two expiries) and spot rows with irregular nanosecond timestamps.

    Each contract has 40-400 rows between 09:14:50 and 09:30:10 IST (some exactly on the
    second, some bursts, some gaps longer than the tolerance), ~8 % missing bid or ask,
    zero and negative prices, a cumulative volume with nulls and one reset, and one
    contract whose symbol changes at 09:22. The spot has a two-minute hole.
    """
    rng = np.random.default_rng(seed)
    base = int(ist("09:15:00").timestamp()) * NS
    rows: dict[str, list[Any]] = {k: [] for k in ("ts", "symbol", "expiry", "strike", "opt_type")}
    values: dict[str, list[np.ndarray]] = {
        k: [] for k in ("bid_price_0", "ask_price_0", "last_price", "volume")
    }
    for expiry in (HAND_EXPIRY, LATER_EXPIRY):
        for strike in STRIKES:
            for opt_type in ("CE", "PE"):
                n = int(rng.integers(40, 400))
                offsets = rng.integers(-10 * NS, 910 * NS, n)
                offsets[: n // 4] = offsets[: n // 4] // NS * NS  # on the second
                if rng.random() < 0.5:  # a gap longer than any tolerance
                    hole = int(rng.integers(0, 800)) * NS
                    offsets = offsets[(offsets < hole) | (offsets > hole + 40 * NS)]
                ts = np.unique(offsets) + base
                n = ts.size
                bid = np.round(rng.uniform(-1.0, 500.0, n) / 0.05) * 0.05
                ask = bid + np.round(rng.uniform(0.0, 2.0, n) / 0.05) * 0.05
                bid[rng.random(n) < 0.08] = np.nan
                ask[rng.random(n) < 0.08] = np.nan
                last = np.where(rng.random(n) < 0.1, np.nan, bid)
                volume = np.cumsum(rng.integers(0, 50, n)).astype(np.float64)
                volume[n // 2 :] -= volume[n // 2]  # a reset to zero mid-day
                volume[rng.random(n) < 0.1] = np.nan
                symbol = f"BANKNIFTY{expiry:%y%m%d}{strike}{opt_type}"
                names = [symbol] * n
                if (strike, opt_type, expiry) == (48_000, "CE", HAND_EXPIRY):
                    switch = base + 420 * NS
                    names = [symbol if t < switch else symbol + "X" for t in ts]
                rows["ts"] += ts.tolist()
                rows["symbol"] += names
                rows["expiry"] += [expiry] * n
                rows["strike"] += [float(strike)] * n
                rows["opt_type"] += [opt_type] * n
                for key, array in zip(values, (bid, ask, last, volume), strict=True):
                    values[key].append(array)
    options = pl.DataFrame(rows).with_columns(
        pl.col("ts").cast(pl.Datetime("ns", "UTC")),
        pl.lit("BANKNIFTY").alias("underlying"),
        *(pl.Series(k, np.concatenate(v)).fill_nan(None) for k, v in values.items()),
    )
    options = options.with_columns(pl.col("volume").cast(pl.Int64))
    spot_offsets = np.unique(rng.integers(-5 * NS, 905 * NS, 1500))
    spot_offsets = spot_offsets[(spot_offsets < 300 * NS) | (spot_offsets > 420 * NS)]
    spot = pl.DataFrame(
        {
            "ts": spot_offsets + base,
            "instrument": "BANKNIFTY",
            "price": 48_000 + np.cumsum(rng.normal(0, 8, spot_offsets.size)),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    return options, spot


def _random_lake(root: Path, seed: int, time_sorted: bool) -> Lake:
    options, spot = _random_day(seed)
    lake = init_lake(root)
    schema = get_schema("option_snapshots")
    if time_sorted:  # as a repack to time order would leave it: the loader must sort
        schema = schema.with_sort(("ts", "symbol"))
    # Shuffled rows: the lake sorts what it writes by the dataset's sort order.
    lake.write(OPTIONS, options.sample(fraction=1.0, shuffle=True, seed=seed), schema=schema)
    lake.write(SPOT, spot, schema="prices", timezone="Asia/Kolkata")
    return lake


def _random_spec(**overrides: Any) -> StrategySpec:
    base: dict[str, Any] = {
        "universe": {"strike_candidates": 2},
        "fills": {"as_of_tolerance_seconds": 7, "max_quote_age_seconds": 3},
    }
    return hand_spec(**(base | overrides))


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("time_sorted", [False, True], ids=["schema-order", "time-order"])
def test_load_day_arrays_equal_the_previous_loader(
    tmp_path: Path, seed: int, time_sorted: bool
) -> None:
    lake = _random_lake(tmp_path / "lake", seed, time_sorted)
    spec = _random_spec()
    for market_fields in (False, True):
        loaded = load_day(lake, spec, HAND_DAY, market_fields=market_fields, reach_steps=3)
        assert isinstance(loaded, DayData)
        expected = _previous_load_day(lake, spec, HAND_DAY, market_fields, 3)
        assert loaded.expiry == expected.pop("expiry") == HAND_EXPIRY
        assert loaded.spot_source == expected.pop("spot_source") == "spot+parity"
        assert loaded.symbols == expected.pop("symbols")
        for name, array in expected.items():
            got = getattr(loaded, name)
            assert got.dtype == array.dtype, name
            assert np.array_equal(got, array, equal_nan=got.dtype.kind == "f"), name
        if not market_fields:
            assert loaded.last_price is None and loaded.volume is None
    # The switch of symbol mid-day keeps the first one seen for the contract.
    assert "BANKNIFTY24011048000CE" in loaded.symbols
    assert not any(s.endswith("X") for s in loaded.symbols)


@pytest.mark.parametrize("seed", [4, 5])
def test_load_day_arrays_equal_a_pandas_merge_asof(tmp_path: Path, seed: int) -> None:
    """An independent oracle: pandas ``merge_asof`` per contract, tolerance inclusive."""
    lake = _random_lake(tmp_path / "lake", seed, time_sorted=True)
    spec = _random_spec()
    loaded = load_day(lake, spec, HAND_DAY, market_fields=True)
    assert isinstance(loaded, DayData)
    options, spot_rows = (frame.to_pandas() for frame in _random_day(seed))
    tolerance = pd.Timedelta(seconds=7)
    grid = pd.DataFrame({"ts": pd.to_datetime(session_grid(HAND_DAY, spec), utc=True)})
    spot = pd.merge_asof(grid, spot_rows.sort_values("ts"), on="ts", tolerance=tolerance)
    spot_paise = np.rint(spot["price"].fillna(0.0).to_numpy() * 100).astype(np.int64)
    # Where the spot series has no value the loader fills in parity: compare the rest.
    covered = spot_paise > 0
    assert 0 < covered.sum() < grid.shape[0]
    assert np.array_equal(loaded.spot_paise[covered], spot_paise[covered])
    reach = strike_reach_steps(spec) * 100
    lo, hi = spot_paise[covered].min() / 100 - reach, spot_paise[covered].max() / 100 + reach
    expiry = pd.to_datetime(options["expiry"]) == pd.Timestamp(HAND_EXPIRY)
    chain = options[expiry & options["strike"].between(lo, hi)]
    keys = sorted({(t, s) for t, s in zip(chain["opt_type"], chain["strike"], strict=True)})
    assert [
        (("CE" if c else "PE"), k / 100)
        for c, k in zip(loaded.is_call, loaded.strikes_paise, strict=True)
    ] == keys
    for c, (opt_type, strike) in enumerate(keys):
        rows = chain[(chain["opt_type"] == opt_type) & (chain["strike"] == strike)]
        rows = rows.assign(row_ts=rows["ts"]).sort_values("ts")
        joined = pd.merge_asof(grid, rows, on="ts", tolerance=tolerance)
        found = joined["row_ts"].notna().to_numpy()
        age_ns = (joined["ts"] - joined["row_ts"]).fillna(pd.Timedelta(0)).to_numpy()
        age = np.where(found, age_ns.astype("timedelta64[ns]").astype(np.int64) // NS, -1)
        bid = np.rint(joined["bid_price_0"].fillna(0.0).to_numpy() * 100).astype(np.int64)
        ask = np.rint(joined["ask_price_0"].fillna(0.0).to_numpy() * 100).astype(np.int64)
        last = np.rint(joined["last_price"].fillna(0.0).to_numpy() * 100).astype(np.int64)
        cumulative = joined["volume"].astype("float64").to_numpy()
        before = np.nan_to_num(np.concatenate([[np.nan], cumulative[:-1]]), nan=0.0)
        assert np.array_equal(loaded.age[c], age.astype(np.int64))
        assert np.array_equal(loaded.bid[c], np.maximum(bid, 0))
        assert np.array_equal(loaded.ask[c], np.maximum(ask, 0))
        assert loaded.last_price is not None and loaded.volume is not None
        assert np.array_equal(loaded.last_price[c], np.maximum(last, 0))
        volume = np.where(np.isnan(cumulative), np.nan, np.maximum(cumulative - before, 0.0))
        assert np.array_equal(loaded.volume[c], volume, equal_nan=True)


def test_alignment_kernels_give_the_same_arrays_without_numba_jit() -> None:
    """The pure-Python path of the alignment pass (what NUMBA_DISABLE_JIT runs) agrees."""
    rng = np.random.default_rng(7)
    grid = np.arange(50, dtype=np.int64) * NS
    row_ts = np.concatenate([np.sort(rng.integers(-3 * NS, 52 * NS, 30)) for _ in range(3)])
    starts = np.array([0, 30, 60, 90], dtype=np.int64)
    prices = rng.uniform(-1, 50, 90)
    prices[::7] = np.nan
    cumulative = np.cumsum(rng.integers(0, 5, 90)).astype(np.float64)
    results = []
    for align in (data_module._align_contracts, data_module._align_contracts.py_func):
        out = [np.zeros((3, 50), np.int64), np.zeros((3, 50), np.int64)]
        out += [np.full((3, 50), -1, np.int64), np.zeros((3, 50), np.int64)]
        out += [np.full((3, 50), np.nan)]
        align(starts, row_ts, prices, prices + 1, prices, cumulative, grid, 4 * NS, *out)
        results.append(out)
    for compiled, pure in zip(*results, strict=True):
        assert np.array_equal(compiled, pure, equal_nan=True)
    assert (results[0][2] >= 0).any() and (results[0][2] == -1).any()
    kinds = np.array([0, 0, 1], np.int64)
    for check in (data_module._contract_order, data_module._contract_order.py_func):
        assert check(kinds, np.array([1.0, 2.0, 1.0]), np.array([5, 1, 0]))
        assert not check(kinds, np.array([2.0, 1.0, 1.0]), np.array([0, 0, 0]))
        assert not check(kinds, np.array([1.0, 1.0, 1.0]), np.array([2, 1, 0]))


# ------------------------------------------------------------ hand-built chains
CE_BIDS = {
    47500: 560,
    47600: 470,
    47700: 390,
    47800: 320,
    47900: 260,
    48000: 200,
    48100: 150,
    48200: 120,
    48300: 90,
    48400: 60,
    48500: 40,
    48600: 25,
}
PE_BIDS = {
    47500: 30,
    47600: 45,
    47700: 70,
    47800: 100,
    47900: 140,
    48000: 180,
    48100: 230,
    48200: 300,
    48300: 380,
    48400: 470,
    48500: 560,
    48600: 660,
}


def _chain(spot: float = 48_020.0) -> HandChain:
    """Strikes 47,500-48,600, CE ask = bid + 0.50, PE ask = bid + 0.40; ATM 48,000."""
    chain = HandChain()
    chain.set_spot("09:15:00", spot)
    for strike, bid in CE_BIDS.items():
        chain.contract(strike, "CE", bid, bid + 0.50)
    for strike, bid in PE_BIDS.items():
        chain.contract(strike, "PE", bid, bid + 0.40)
    return chain


def _clock(ts: datetime) -> str:
    return (ts.replace(tzinfo=UTC) + IST).strftime("%H:%M:%S")


def _fills(outcome: DayOutcome) -> list[tuple[str, str, float, str, int, int, str]]:
    """(IST time, leg, strike, side, quantity, price in paise, reason) of every fill."""
    return [
        (
            _clock(r["ts"]),
            r["leg"],
            r["strike"],
            r["side"],
            r["quantity"],
            r["price_paise"],
            r["reason"],
        )
        for r in outcome.trades.iter_rows(named=True)
    ]


def _outcome_with_reach(lake: Lake, spec: StrategySpec, reach_steps: int) -> DayOutcome:
    loaded = load_day(lake, spec, HAND_DAY, reach_steps=reach_steps)
    assert isinstance(loaded, DayData)
    return outcome_from_kernel(spec, loaded, simulate(spec, loaded))


def test_otm_selector_beyond_strike_candidates_finds_its_strike(tmp_path: Path) -> None:
    """OTM 3 steps with strike_candidates 1: the pruning must reach 4 steps, not 2."""
    chain = _chain()
    chain.set_spot("09:17:30", 48_230.0)  # ATM 48,200 from here on
    lake = write_hand_lake(tmp_path / "lake", chain)
    otm3 = {"kind": "otm", "steps": 3}
    spec = hand_spec(
        universe={"strike_candidates": 1},
        legs=[
            {"name": "ce", "opt_type": "CE", "side": "sell", "selector": otm3},
            {"name": "pe", "opt_type": "PE", "side": "sell", "selector": otm3},
        ],
        rebalance={"kind": "every", "minutes": 2},
    )
    assert strike_reach_steps(spec) == 4
    outcome = run_day(lake, spec, HAND_DAY)
    # Entry at ATM 48,000: CE 48,300 and PE 47,700 (sold at the bid). At 09:18 ATM is
    # 48,200: CE rolls to 48,500, PE to 47,900 (close at the ask, open at the bid).
    assert _fills(outcome) == [
        ("09:16:00", "ce", 48300.0, "sell", 15, 9000, "entry"),
        ("09:16:00", "pe", 47700.0, "sell", 15, 7000, "entry"),
        ("09:18:00", "ce", 48300.0, "buy", 15, 9050, "rebalance_close"),
        ("09:18:00", "ce", 48500.0, "sell", 15, 4000, "rebalance_open"),
        ("09:18:00", "pe", 47700.0, "buy", 15, 7040, "rebalance_close"),
        ("09:18:00", "pe", 47900.0, "sell", 15, 14000, "rebalance_open"),
        ("09:25:00", "ce", 48500.0, "buy", 15, 4050, "exit_time"),
        ("09:25:00", "pe", 47900.0, "buy", 15, 14040, "exit_time"),
    ]
    assert outcome.attempts.height == 0
    # Loading every strike gives the same trades ...
    everything = _outcome_with_reach(lake, spec, reach_steps=1_000)
    assert everything.trades.equals(outcome.trades)
    # ... and the old reach (strike_candidates + 1 steps: spot 48,020-48,230 ± 200 keeps
    # 47,820-48,430) would have missed the PE 47,700 at entry: no trade at all.
    # From 09:17:30 (ATM 48,200) the CE 48,500 is missing instead.
    old_reach = _outcome_with_reach(lake, spec, reach_steps=2)
    assert old_reach.trades.height == 0
    assert [
        (_clock(r["ts"]), r["leg"], r["reason"]) for r in old_reach.attempts.rows(named=True)
    ] == [
        ("09:16:00", "pe", "no_contract"),
        ("09:17:30", "ce", "no_contract"),
    ]


@pytest.mark.parametrize(
    ("gap_from", "old_quote_age", "ce_entry_paise"),
    [
        # Last CE row before 09:16:00 at 09:15:55: 5 s old = tradeable, so the move term
        # counts: mid 200.25 - 0.1 × |200.25 - 150.25| = 195.25 (on the tick).
        ("09:15:56", 5, 19525),
        # Last row at 09:15:54: 6 s old > max_quote_age 5 = stale: no move term,
        # the mid 200.25 itself.
        ("09:15:55", 6, 20025),
    ],
)
def test_mid_slippage_move_term_ignores_a_stale_old_quote(
    tmp_path: Path, gap_from: str, old_quote_age: int, ce_entry_paise: int
) -> None:
    chain = _chain()
    chain.set_quote(48000, "CE", "09:15:00", 150.00, 150.50, "09:16:00")
    chain.drop_rows(48000, "CE", gap_from, "09:16:10")
    lake = write_hand_lake(tmp_path / "lake", chain)
    spec = hand_spec(
        time={"entry_windows": ["09:17-09:20"]},
        fills={
            "mode": "mid_slippage",
            "volatility_beta": 0.1,
            "as_of_tolerance_seconds": 30,
            "max_quote_age_seconds": 5,
        },
    )
    loaded = load_day(lake, spec, HAND_DAY)
    assert isinstance(loaded, DayData)
    ce = int(np.flatnonzero(loaded.is_call & (loaded.strikes_paise == 4_800_000))[0])
    assert loaded.age[ce, 60] == old_quote_age  # 09:16:00, 60 s before the entry
    assert loaded.bid[ce, 60] == 15000
    outcome = run_day(lake, spec, HAND_DAY)
    entries = _fills(outcome)[:2]
    # PE: its quote 60 s earlier is the same: no move; mid 180.225 → 180.20.
    assert entries == [
        ("09:17:00", "ce", 48000.0, "sell", 15, ce_entry_paise, "entry"),
        ("09:17:00", "pe", 48000.0, "sell", 15, 18020, "entry"),
    ]


def test_combined_points_stop_counts_legs_closed_by_retargeting(tmp_path: Path) -> None:
    """Cycle P&L per unit, not the open legs' premium change since their (re)entry."""
    chain = _chain()
    chain.set_spot("09:17:30", 48_130.0)  # ATM 48,100: both legs roll at 09:18
    # Per unit: entry costs 0.50 + 0.40 (marks at the ask); the roll realizes that and
    # the new legs start 0.50 + 0.40 down again: -1.80. CE 48,100 ask 151.65 → -2.95.
    chain.set_quote(48100, "CE", "09:18:30", 151.15, 151.65)
    chain.set_quote(48100, "CE", "09:19:00", 151.20, 151.70)  # -3.00: the stop
    outcome = run_day(
        write_hand_lake(tmp_path / "lake", chain),
        hand_spec(rebalance={"kind": "every", "minutes": 2}, exits={"stop_loss": {"points": 3}}),
        HAND_DAY,
    )
    # The open legs alone are only 1.70 + 0.40 = 2.10 down at 09:19: not a stop then.
    assert _fills(outcome) == [
        ("09:16:00", "ce", 48000.0, "sell", 15, 20000, "entry"),
        ("09:16:00", "pe", 48000.0, "sell", 15, 18000, "entry"),
        ("09:18:00", "ce", 48000.0, "buy", 15, 20050, "rebalance_close"),
        ("09:18:00", "ce", 48100.0, "sell", 15, 15000, "rebalance_open"),
        ("09:18:00", "pe", 48000.0, "buy", 15, 18040, "rebalance_close"),
        ("09:18:00", "pe", 48100.0, "sell", 15, 23000, "rebalance_open"),
        ("09:19:00", "ce", 48100.0, "buy", 15, 15170, "stop_loss"),
        ("09:19:00", "pe", 48100.0, "buy", 15, 23040, "stop_loss"),
    ]
    assert outcome.summary["gross_pnl_paise"] == -15 * 300


def test_combined_points_target_is_weighted_by_lots(tmp_path: Path) -> None:
    """Sell 1 lot CE 48,000, buy 2 lots CE 48,300: a unit is 1 + 2 lots' worth of 15."""
    chain = _chain()
    # Gain per unit = -(200.50 - 200.00) + 2 × (bid - 90.50): 95.70 → 9.90, 95.75 → 10.00.
    # (Unweighted, the old measure: -0.50 + 5.25 = 4.75 at 95.75: no target.)
    chain.set_quote(48300, "CE", "09:19:00", 95.70, 96.20)
    chain.set_quote(48300, "CE", "09:20:00", 95.75, 96.25)
    outcome = run_day(
        write_hand_lake(tmp_path / "lake", chain),
        hand_spec(
            legs=[
                {"name": "short", "opt_type": "CE", "side": "sell"},
                {
                    "name": "wing",
                    "opt_type": "CE",
                    "side": "buy",
                    "lots": 2,
                    "selector": {"kind": "otm", "steps": 3},
                },
            ],
            exits={"target": {"points": 10}},
        ),
        HAND_DAY,
    )
    assert _fills(outcome) == [
        ("09:16:00", "short", 48000.0, "sell", 15, 20000, "entry"),
        ("09:16:00", "wing", 48300.0, "buy", 30, 9050, "entry"),
        ("09:20:00", "short", 48000.0, "buy", 15, 20050, "target"),
        ("09:20:00", "wing", 48300.0, "sell", 30, 9575, "target"),
    ]
    assert outcome.summary["gross_pnl_paise"] == 15 * 1000


def test_combined_points_of_a_two_lot_straddle_are_per_straddle(tmp_path: Path) -> None:
    """2 lots on each leg: one unit is 2 lots (gcd), so 20 points is 20, not 40/2."""
    chain = _chain()
    chain.set_quote(48000, "CE", "09:20:30", 184.50, 185.00)
    chain.set_quote(48000, "PE", "09:20:30", 175.00, 175.05)  # gain 15.00 + 4.95 = 19.95
    chain.set_quote(48000, "PE", "09:21:00", 174.60, 175.00)  # 15.00 + 5.00 = 20.00
    legs = [
        {"name": "ce", "opt_type": "CE", "side": "sell", "lots": 2},
        {"name": "pe", "opt_type": "PE", "side": "sell", "lots": 2},
    ]
    outcome = run_day(
        write_hand_lake(tmp_path / "lake", chain),
        hand_spec(legs=legs, exits={"target": {"points": 20}}),
        HAND_DAY,
    )
    assert _fills(outcome)[2:] == [
        ("09:21:00", "ce", 48000.0, "buy", 30, 18500, "target"),
        ("09:21:00", "pe", 48000.0, "buy", 30, 17500, "target"),
    ]


def test_combined_pct_stop_is_a_share_of_the_net_credit(tmp_path: Path) -> None:
    """Credit spread: sell CE 48,000 at 200.00, buy CE 48,300 at 90.50: credit 109.50."""
    chain = _chain()
    # Loss per unit = (ask - 200.00) + (90.50 - 90.00): ask 254.20 → 54.70 = 49.95 % of
    # 109.50; ask 254.25 → 54.75 = 50 %. (Of the old base 200 + 90.50 it is 18.8 %.)
    chain.set_quote(48000, "CE", "09:19:00", 253.70, 254.20)
    chain.set_quote(48000, "CE", "09:20:00", 253.75, 254.25)
    outcome = run_day(
        write_hand_lake(tmp_path / "lake", chain),
        hand_spec(
            legs=[
                {"name": "short", "opt_type": "CE", "side": "sell"},
                {
                    "name": "wing",
                    "opt_type": "CE",
                    "side": "buy",
                    "selector": {"kind": "otm", "steps": 3},
                },
            ],
            exits={"stop_loss": {"pct": 50}},
        ),
        HAND_DAY,
    )
    assert _fills(outcome)[2:] == [
        ("09:20:00", "short", 48000.0, "buy", 15, 25425, "stop_loss"),
        ("09:20:00", "wing", 48300.0, "sell", 15, 9000, "stop_loss"),
    ]
    assert outcome.summary["gross_pnl_paise"] == -15 * 5475


def test_missing_day_is_skipped_and_input_hashes_name_the_partitions(tmp_path: Path) -> None:
    chain = _chain()
    lake = write_hand_lake(tmp_path / "lake", chain)
    spec = hand_spec()
    skipped = load_day(lake, spec, HAND_DAY + timedelta(days=1))
    assert isinstance(skipped, DaySkip)
    assert skipped.reason == "no option data for this day"
    loaded = load_day(lake, spec, HAND_DAY)
    assert isinstance(loaded, DayData)
    hashes = {}
    for part in (*lake.partitions(OPTIONS), *lake.partitions(SPOT)):
        assert part.manifest is not None
        hashes[f"{part.dataset}/{part.date}"] = part.manifest.file_sha256
    assert loaded.input_hashes == hashes
    assert len(hashes) == 2
