"""Pruning from the spec: the trades are identical with ``prune`` on and off.

On a small generated lake (two days, weekly + monthly expiries, 8 strikes beyond the
day's range each side, the spot crossing several strikes intraday) every selector kind
and a leg condition run with pruning on and off; every fill, price in paise and P&L
must be equal, and pruning must actually have dropped contracts. Then the band's edges:
a pure case on :func:`candidate_contracts`, and a hand chain whose spot moves late in
the day to a rounding tie at its intraday high, re-targeting to a strike outside a
naive (unwidened) band.
"""

from __future__ import annotations

import fcntl
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from _engine_fixtures import (
    HAND_DAY,
    OPTIONS,
    SPOT,
    HandChain,
    hand_spec,
    merge,
    write_hand_lake,
)

from ticklake.backtest.data import DayData, load_day
from ticklake.backtest.engine import DayOutcome, run_day
from ticklake.backtest.pruning import ChainIndex, SpotPathSummary, candidate_contracts
from ticklake.backtest.spec import StrategySpec, parse_spec
from ticklake.lake import Lake, open_lake

DAYS = (date(2024, 1, 8), date(2024, 1, 9))
STRIKES_EACH_SIDE = 8

BASE: dict[str, Any] = {
    "name": "pruning",
    "universe": {"underlying": "BANKNIFTY", "options_dataset": OPTIONS, "underlying_dataset": SPOT},
    "time": {
        "start": DAYS[0].isoformat(),
        "end": DAYS[-1].isoformat(),
        "entry_windows": ["09:20-09:25"],
        "exit_time": "15:20",
    },
    "legs": [
        {"name": "ce", "opt_type": "CE", "side": "sell"},
        {"name": "pe", "opt_type": "PE", "side": "sell"},
    ],
    "rebalance": {"kind": "every", "minutes": 30},
}


def _build(target: Path) -> None:
    from ticklake.generate import generate_options
    from ticklake.ingest.pipeline import ingest_files
    from ticklake.ingest.readers.base import ReaderOptions
    from ticklake.lake import init_lake

    work = target.with_name(target.name + ".building")
    shutil.rmtree(work, ignore_errors=True)
    out = work / "out"
    generate_options(
        "BANKNIFTY",
        start=DAYS[0],
        days=len(DAYS),
        out=out,
        seed=11,
        strikes_each_side=STRIKES_EACH_SIDE,
        expiries=("weekly", "monthly"),
        seconds_step=3,
    )
    lake = init_lake(work / "lake")
    ingest_files(lake, "nse_options", [out / "options"], OPTIONS)
    ingest_files(
        lake, "nse_index", [out / "spot"], SPOT, options=ReaderOptions(instrument="BANKNIFTY")
    )
    (work / "lake").rename(target)
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    base = tmp_path_factory.getbasetemp().parent / "ticklake-pruning"
    base.mkdir(parents=True, exist_ok=True)
    target = base / "lake"
    with open(base / "lake.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "ticklake.toml").is_file():
            _build(target)
    return open_lake(target)


def _spec(**overrides: Any) -> StrategySpec:
    return parse_spec(merge(BASE, overrides))


STRATEGIES: dict[str, dict[str, Any]] = {
    "atm_straddle": {},
    "otm_strangle_retargeted_on_move": {
        "legs": [
            {
                "name": "ce",
                "opt_type": "CE",
                "side": "sell",
                "selector": {"kind": "otm", "steps": 2},
            },
            {
                "name": "pe",
                "opt_type": "PE",
                "side": "sell",
                "selector": {"kind": "otm", "steps": 2},
            },
        ],
        "rebalance": {"kind": "underlying_move", "points": 100},
    },
    "iron_fly_next_weekly": {
        "universe": {"expiry": "next"},
        "legs": [
            {"name": "ce", "opt_type": "CE", "side": "sell"},
            {"name": "pe", "opt_type": "PE", "side": "sell"},
            {
                "name": "wce",
                "opt_type": "CE",
                "side": "buy",
                "selector": {"kind": "otm", "steps": 4},
            },
            {
                "name": "wpe",
                "opt_type": "PE",
                "side": "buy",
                "selector": {"kind": "otm", "steps": 4},
            },
        ],
    },
    "itm_monthly": {
        "universe": {"expiry": "nearest_monthly"},
        "legs": [
            {
                "name": "ce",
                "opt_type": "CE",
                "side": "buy",
                "selector": {"kind": "itm", "steps": 1},
            },
        ],
    },
    "delta_leg_narrow_scan": {
        "universe": {"strike_candidates": 3},
        "legs": [
            {
                "name": "ce",
                "opt_type": "CE",
                "side": "sell",
                "selector": {"kind": "delta", "target": 0.3},
            },
            {
                "name": "pe",
                "opt_type": "PE",
                "side": "sell",
                "selector": {"kind": "delta", "target": 0.3},
            },
        ],
    },
    "delta_leg_default_scan": {
        "legs": [
            {
                "name": "ce",
                "opt_type": "CE",
                "side": "sell",
                "selector": {"kind": "delta", "target": 0.2},
            },
        ],
    },
    "premium_leg": {
        "universe": {"strike_candidates": 4},
        "legs": [
            {
                "name": "pe",
                "opt_type": "PE",
                "side": "sell",
                "selector": {"kind": "premium", "target": 150},
            },
        ],
    },
    "condition_on_a_leg": {
        "entry": {"when": "ce.ltp > 0"},
        "exits": {"when": "position.pnl < -1500 or ce.ltp > 1.2 * ce.open_of_day"},
    },
    "stop_and_underlying_condition": {
        "entry": {"when": "ema(1) > ema(5)"},
        "exits": {"stop_loss": {"points": 40}},
    },
}


def _assert_same(pruned: DayOutcome, whole: DayOutcome) -> None:
    assert pruned.summary == whole.summary
    assert pruned.trades.equals(whole.trades, null_equal=True)
    assert pruned.attempts.equals(whole.attempts, null_equal=True)
    assert pruned.pnl_path is not None and whole.pnl_path is not None
    assert np.array_equal(pruned.pnl_path, whole.pnl_path)
    assert np.array_equal(pruned.in_position, whole.in_position)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_trades_are_identical_with_and_without_pruning(lake: Lake, name: str) -> None:
    spec = _spec(**STRATEGIES[name])
    traded = 0
    for day in DAYS:
        pruned = run_day(lake, spec, day, keep_pnl_path=True, prune=True)
        whole = run_day(lake, spec, day, keep_pnl_path=True, prune=False)
        _assert_same(pruned, whole)
        traded += pruned.trades.height
    assert traded > 0, f"{name}: no trades on the generated days, the comparison is empty"


def _contracts(lake: Lake, spec: StrategySpec, day: date, prune: bool | None) -> DayData:
    loaded = load_day(lake, spec, day, prune=prune)
    assert isinstance(loaded, DayData)
    return loaded


def test_pruning_reads_fewer_contracts_and_the_band_covers_the_day(lake: Lake) -> None:
    spec = _spec()
    for day in DAYS:
        pruned = _contracts(lake, spec, day, True)
        whole = _contracts(lake, spec, day, False)
        assert pruned.strikes_paise.size < whole.strikes_paise.size
        step = round(pruned.rules.strike_step * 100)
        # The spot crosses several strikes: the test exercises re-targeting.
        assert whole.spot_paise.max() - whole.spot_paise.min() > 2 * step
        atm = (whole.spot_paise + step // 2) // step * step
        assert set(np.unique(atm)) <= set(pruned.strikes_paise.tolist())
        # The arrays of a kept contract are those of the whole chain, bit for bit.
        for c, (strike, call) in enumerate(zip(pruned.strikes_paise, pruned.is_call, strict=True)):
            w = np.flatnonzero((whole.strikes_paise == strike) & (whole.is_call == call))[0]
            assert np.array_equal(pruned.bid[c], whole.bid[w])
            assert np.array_equal(pruned.ask[c], whole.ask[w])
            assert np.array_equal(pruned.age[c], whole.age[w])


def test_the_setting_switches_pruning_off(lake: Lake) -> None:
    off = open_lake(lake.root, backtest={"prune": False})
    assert off.settings.backtest.prune is False
    spec = _spec()
    by_setting = _contracts(off, spec, DAYS[0], None)
    whole = _contracts(lake, spec, DAYS[0], False)
    assert by_setting.strikes_paise.size == whole.strikes_paise.size


# --------------------------------------------------------------------- band edges
SUMMARY = SpotPathSummary(
    low_paise=4_700_000, high_paise=4_725_000, missing_seconds=0, source="spot"
)
CHAIN = ChainIndex((date(2024, 1, 10), date(2024, 1, 25)), strike_step_paise=10_000)


def test_the_band_is_the_spot_range_plus_the_reach_and_one_step() -> None:
    atm = candidate_contracts(hand_spec(), HAND_DAY, SUMMARY, CHAIN)
    assert not atm.whole_chain and atm.expiry == date(2024, 1, 10)
    # 47,000 (exactly a strike) .. 47,250 (a tie: ATM rounds up to 47,300), ± 1 step.
    assert (atm.strike_low_paise, atm.strike_high_paise) == (4_690_000, 4_735_000)
    assert atm.strike_low_paise <= 4_700_000 and atm.strike_high_paise >= 4_730_000
    assert "bid_price_0" in atm.columns and "last_price" not in atm.columns
    otm = hand_spec(
        legs=[
            {
                "name": "ce",
                "opt_type": "CE",
                "side": "sell",
                "selector": {"kind": "otm", "steps": 3},
            }
        ]
    )
    band = candidate_contracts(otm, HAND_DAY, SUMMARY, CHAIN, market_fields=True)
    assert (band.strike_low_paise, band.strike_high_paise) == (4_660_000, 4_765_000)
    assert "last_price" in band.columns


@pytest.mark.parametrize(
    ("summary", "reason"),
    [
        (SpotPathSummary(0, 0, 900, "parity"), "no underlying dataset"),
        (SpotPathSummary(0, 0, 900, "spot"), "no price"),
    ],
)
def test_the_whole_chain_when_the_spot_is_not_known_first(
    summary: SpotPathSummary, reason: str
) -> None:
    band = candidate_contracts(hand_spec(), HAND_DAY, summary, CHAIN)
    assert band.whole_chain and reason in band.reason and band.strike_range_rupees() is None
    off = candidate_contracts(hand_spec(), HAND_DAY, SUMMARY, CHAIN, prune=False)
    assert off.whole_chain and "backtest.prune = false" in off.reason


def test_spot_gaps_keep_the_band_of_the_known_seconds_and_say_so() -> None:
    gaps = SpotPathSummary(4_700_000, 4_725_000, 3, "spot")
    band = candidate_contracts(hand_spec(), HAND_DAY, gaps, CHAIN)
    assert not band.whole_chain and "3 grid seconds without spot" in band.reason


def _edge_chain() -> HandChain:
    chain = HandChain()
    for strike in range(46_500, 48_100, 100):
        for opt_type in ("CE", "PE"):
            distance = abs(strike - 47_000)
            chain.contract(strike, opt_type, 100.0 + distance / 10, 101.0 + distance / 10)
    chain.set_spot("09:15:00", 47_000.0)
    # Late, at the intraday extreme, a rounding tie: ATM becomes 47,300 (half up).
    chain.set_spot("09:24:00", 47_250.0)
    return chain


def test_a_late_retarget_at_the_extreme_tie_picks_the_edge_strike(tmp_path: Path) -> None:
    lake = write_hand_lake(tmp_path / "lake", _edge_chain())
    spec = hand_spec(rebalance={"kind": "underlying_move", "points": 100})
    pruned = run_day(lake, spec, HAND_DAY, keep_pnl_path=True, prune=True)
    whole = run_day(lake, spec, HAND_DAY, keep_pnl_path=True, prune=False)
    _assert_same(pruned, whole)
    strikes = set(pruned.trades["strike"].to_list()) if "strike" in pruned.trades.columns else set()
    symbols = "".join(pruned.trades["symbol"].to_list())
    assert 47_300.0 in strikes or "47300" in symbols, pruned.trades
    loaded = load_day(lake, spec, HAND_DAY, prune=True)
    assert isinstance(loaded, DayData)
    # The band 46,900-47,350 (spot 47,000-47,250 ± 1 step) holds the 47,300 that a naive
    # band (the spot range itself, or rounded to the nearest strikes) would miss.
    assert sorted(set((loaded.strikes_paise // 100).tolist())) == [
        46_900,
        47_000,
        47_100,
        47_200,
        47_300,
    ]
    assert pl.Series(loaded.symbols).str.contains("47300").any()
