"""The day engine on hand-built chains: every expected fill and paisa worked out by hand.

Each test writes a few contracts quoted every second of a 15-minute session
(09:15-09:30 IST, 2024-01-08, BANKNIFTY lot 15, strike step 100, tick 0.05) into a new
lake, runs ``run_day`` and compares the fills with numbers derived in the test.
Default spec: sell the CE and PE legs, entry window 09:16-09:20, exit 09:25, cross fills.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from _engine_fixtures import (
    HAND_DAY,
    IST,
    LOT,
    HandChain,
    hand_costs_paise,
    hand_spec,
    ist,
    write_hand_lake,
)

from ticklake.backtest.engine import DayOutcome, run_day


def _chain(spot: float = 48_020.0) -> HandChain:
    """Strikes 47,500-48,600; the 48,000 pair is the ATM of the default spot 48,020."""
    chain = HandChain()
    chain.set_spot("09:15:00", spot)
    ce = {
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
    for strike, bid in ce.items():
        chain.contract(strike, "CE", bid, bid + 0.50)
    pe = {
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
    for strike, bid in pe.items():
        chain.contract(strike, "PE", bid, bid + 0.40)
    return chain


def _run(tmp_path: Path, chain: HandChain, **overrides: Any) -> DayOutcome:
    lake = write_hand_lake(tmp_path / "lake", chain)
    return run_day(lake, hand_spec(**overrides), HAND_DAY)


def _clock(ts: Any) -> str:
    return (ts.replace(tzinfo=UTC) + IST).strftime("%H:%M:%S")


def _fills(outcome: DayOutcome) -> list[tuple[str, str, float, str, int, str]]:
    """(IST time, leg, strike, side, price in paise, reason) of every fill, in order."""
    return [
        (
            _clock(row["ts"]),
            row["leg"],
            row["strike"],
            row["side"],
            row["price_paise"],
            row["reason"],
        )
        for row in outcome.trades.iter_rows(named=True)
    ]


def _attempts(outcome: DayOutcome) -> list[tuple[str, str, str]]:
    return [
        (_clock(r["ts"]), r["leg"], r["reason"]) for r in outcome.attempts.iter_rows(named=True)
    ]


def _hand_day(fills: list[tuple[str, int]]) -> tuple[int, int]:
    """Gross and costs of ``(side, price_paise)`` fills of one lot each, by hand."""
    gross = costs = 0
    for side, price in fills:
        premium = LOT * price
        gross += premium if side == "sell" else -premium
        costs += hand_costs_paise(side == "buy", premium)
    return gross, costs


# ------------------------------------------------------------- entry, exit, costs
def test_entry_at_window_start_exit_at_exit_time_with_costs_and_net(tmp_path: Path) -> None:
    chain = _chain()
    chain.set_quote(48000, "CE", "09:22:00", 170.00, 170.35)
    chain.set_quote(48000, "PE", "09:22:00", 190.00, 190.45)
    outcome = _run(tmp_path, chain)

    assert _fills(outcome) == [
        ("09:16:00", "ce", 48000.0, "sell", 20000, "entry"),
        ("09:16:00", "pe", 48000.0, "sell", 18000, "entry"),
        ("09:25:00", "ce", 48000.0, "buy", 17035, "exit_time"),
        ("09:25:00", "pe", 48000.0, "buy", 19045, "exit_time"),
    ]
    trades = outcome.trades
    assert trades["quantity"].to_list() == [15, 15, 15, 15]
    assert trades["cash_flow_paise"].to_list() == [300_000, 270_000, -255_525, -285_675]
    # Round trips: CE 300,000 - 255,525 = 44,475; PE 270,000 - 285,675 = -15,675.
    assert trades["realized_pnl_paise"].to_list() == [0, 0, 44_475, -15_675]
    assert trades["position_id"].to_list() == [0, 1, 0, 1]
    assert trades["spot_paise"].to_list() == [4_802_000] * 4
    assert trades["symbol"].to_list()[:2] == ["BANKNIFTY2411048000CE", "BANKNIFTY2411048000PE"]

    # Sell 15 × ₹200 = ₹3,000 premium: brokerage 2000 + STT 0.0625 % 187.5→188 + exchange
    # 0.053 % 159 + SEBI 0.3→0 + GST 18 % of (2000 + 159 + 0) = 388.62→389 = 2736 paise.
    assert trades["costs_paise"][0] == 2000 + 188 + 159 + 0 + 389
    # Buy 15 × ₹170.35 = 255,525 paise: brokerage 2000 + exchange 135.43→135 + SEBI 0.26→0
    # + stamp 0.003 % 7.67→8 + GST 18 % of 2135 = 384.3→384 = 2527 paise.
    assert trades["costs_paise"][2] == 2000 + 135 + 0 + 8 + 384
    expected_costs = [
        hand_costs_paise(False, 300_000),
        hand_costs_paise(False, 270_000),
        hand_costs_paise(True, 255_525),
        hand_costs_paise(True, 285_675),
    ]
    assert trades["costs_paise"].to_list() == expected_costs

    summary = outcome.summary
    assert summary["status"] == "traded"
    assert summary["gross_pnl_paise"] == 28_800
    assert summary["costs_paise"] == sum(expected_costs)
    assert summary["net_pnl_paise"] == 28_800 - sum(expected_costs)
    assert summary["fills"] == 4 and summary["round_trips"] == 2
    # In position from 09:16:00 through 09:24:59.
    assert summary["exposure_seconds"] == 9 * 60
    # At entry the marks are the asks: 570,000 - 15 × (20,050 + 18,040) = -1,350.
    assert summary["max_drawdown_paise"] == 1_350
    assert summary["expiry"] == "2024-01-10"
    assert summary["underlying_source"] == "spot"
    assert outcome.attempts.height == 0


# ------------------------------------------------------------------- selectors
@pytest.mark.parametrize(
    ("spot", "atm"),
    [
        (48_050.00, 48100.0),  # exactly between two strikes: rounds half up
        (48_049.95, 48000.0),
        (47_950.00, 48000.0),  # half up again, from below
        (47_949.95, 47900.0),
    ],
)
def test_atm_rounds_half_up_between_strikes(tmp_path: Path, spot: float, atm: float) -> None:
    outcome = _run(tmp_path, _chain(spot))
    assert outcome.trades["strike"].to_list() == [atm] * 4


@pytest.mark.parametrize(
    ("kind", "steps", "ce_strike", "pe_strike"),
    [
        ("otm", 0, 48000.0, 48000.0),
        ("otm", 1, 48100.0, 47900.0),
        ("otm", 2, 48200.0, 47800.0),
        ("itm", 1, 47900.0, 48100.0),
        ("itm", 2, 47800.0, 48200.0),
    ],
)
def test_otm_itm_steps_for_calls_and_puts(
    tmp_path: Path, kind: str, steps: int, ce_strike: float, pe_strike: float
) -> None:
    selector = {"kind": kind, "steps": steps}
    outcome = _run(
        tmp_path,
        _chain(48_020.0),
        legs=[
            {"name": "ce", "opt_type": "CE", "side": "sell", "selector": selector},
            {"name": "pe", "opt_type": "PE", "side": "sell", "selector": selector},
        ],
    )
    entries = outcome.trades.filter(outcome.trades["reason"] == "entry")
    assert entries["strike"].to_list() == [ce_strike, pe_strike]
    assert entries["opt_type"].to_list() == ["CE", "PE"]


def test_premium_selector_picks_the_mid_closest_to_target(tmp_path: Path) -> None:
    # CE mids: 48,100 → 150.25, 48,200 → 120.25; PE mids: 47,900 → 140.20, 48,000 → 180.20.
    outcome = _run(
        tmp_path,
        _chain(),
        legs=[
            {
                "name": "ce",
                "opt_type": "CE",
                "side": "sell",
                "selector": {"kind": "premium", "target": 130},
            },
            {
                "name": "pe",
                "opt_type": "PE",
                "side": "buy",
                "selector": {"kind": "premium", "target": 165},
            },
        ],
    )
    # |120.25 - 130| = 9.75 < |150.25 - 130| = 20.25; |180.20 - 165| = 15.2 < 24.8.
    entries = outcome.trades.filter(outcome.trades["reason"] == "entry")
    assert entries["strike"].to_list() == [48200.0, 48000.0]
    assert entries["side"].to_list() == ["sell", "buy"]
    assert entries["price_paise"].to_list() == [12000, 18040]  # sell at bid, buy at ask


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _bs(spot: float, strike: float, years: float, vol: float, call: bool) -> float:
    d1 = (math.log(spot / strike) + 0.5 * vol * vol * years) / (vol * math.sqrt(years))
    d2 = d1 - vol * math.sqrt(years)
    if call:
        return spot * _norm_cdf(d1) - strike * _norm_cdf(d2)
    return strike * _norm_cdf(-d2) - spot * _norm_cdf(-d1)


def _hand_delta(spot: float, strike: float, years: float, price: float, call: bool) -> float:
    """Delta at the implied volatility of ``price`` (zero rates), by bisection."""
    lo, hi = 1e-4, 5.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _bs(spot, strike, years, mid, call) < price:
            lo = mid
        else:
            hi = mid
    vol = 0.5 * (lo + hi)
    d1 = (math.log(spot / strike) + 0.5 * vol * vol * years) / (vol * math.sqrt(years))
    return _norm_cdf(d1) if call else _norm_cdf(d1) - 1.0


@pytest.mark.parametrize(("target", "opt_type"), [(0.30, "CE"), (0.45, "CE"), (0.25, "PE")])
def test_delta_selector_matches_a_black_scholes_oracle(
    tmp_path: Path, target: float, opt_type: str
) -> None:
    spot = 48_020.0
    # Expiry 2024-01-10 15:30 IST; entry 2024-01-08 09:16:00 IST: 2 days 6 h 14 min.
    years = (2 * 86_400 + 6 * 3_600 + 14 * 60) / (365 * 86_400)
    chain = HandChain()
    chain.set_spot("09:15:00", spot)
    call = opt_type == "CE"
    mids = {}
    for strike in range(47_300, 48_800, 100):
        # A smile so the strike choice is not a plain distance rule.
        vol = 0.14 + 0.25 * ((strike - spot) / spot) ** 2 * 100
        value = _bs(spot, strike, years, vol, call)
        bid = math.floor(value * 20) / 20
        chain.contract(strike, opt_type, bid, bid + 0.10)
        mids[strike] = bid + 0.05
    deltas = {k: _hand_delta(spot, k, years, m, call) for k, m in mids.items()}
    try:  # cross-check the hand formula with (py_)vollib when it is installed
        from vollib.black_scholes.greeks.analytical import delta as vollib_delta
        from vollib.black_scholes.implied_volatility import implied_volatility
    except ImportError:
        pass
    else:
        flag = "c" if call else "p"
        for strike, mid in mids.items():
            sigma = implied_volatility(mid, spot, strike, years, 0.0, flag)
            assert vollib_delta(flag, spot, strike, years, 0.0, sigma) == pytest.approx(
                deltas[strike], abs=1e-6
            )
    expected = min(deltas, key=lambda k: abs(abs(deltas[k]) - target))
    outcome = _run(
        tmp_path,
        chain,
        legs=[
            {
                "name": "leg",
                "opt_type": opt_type,
                "side": "sell",
                "selector": {"kind": "delta", "target": target},
            }
        ],
    )
    assert outcome.trades["strike"][0] == float(expected)
    runner_up = sorted(deltas.values(), key=lambda d: abs(abs(d) - target))[1]
    assert abs(abs(runner_up) - target) > abs(abs(deltas[expected]) - target)


# ------------------------------------------------------------- quotes and attempts
def test_stale_quote_delays_entry_to_first_fresh_second(tmp_path: Path) -> None:
    chain = _chain()
    # Last CE row before the window at 09:15:52; the next one at 09:16:04.
    chain.drop_rows(48000, "CE", "09:15:53", "09:16:04")
    outcome = _run(
        tmp_path, chain, fills={"as_of_tolerance_seconds": 30, "max_quote_age_seconds": 5}
    )
    assert _attempts(outcome) == [("09:16:00", "ce", "stale_quote")]
    assert _fills(outcome)[:2] == [
        ("09:16:04", "ce", 48000.0, "sell", 20000, "entry"),
        ("09:16:04", "pe", 48000.0, "sell", 18000, "entry"),
    ]
    assert outcome.trades["quote_age_seconds"].to_list()[:2] == [0, 0]


def test_quote_older_than_tolerance_is_missing(tmp_path: Path) -> None:
    chain = _chain()
    chain.drop_rows(48000, "PE", "09:15:50", "09:16:09")
    outcome = _run(tmp_path, chain)  # tolerance 5 s: a 09:15:49 row is gone by 09:15:55
    assert _attempts(outcome) == [("09:16:00", "pe", "missing_quote")]
    assert _fills(outcome)[0][0] == "09:16:09"


def test_missing_contract_records_no_contract_and_no_trade(tmp_path: Path) -> None:
    outcome = _run(
        tmp_path,
        _chain(),
        legs=[
            {
                "name": "ce",
                "opt_type": "CE",
                "side": "sell",
                "selector": {"kind": "otm", "steps": 7},
            },  # 48,700 CE is not listed
            {"name": "pe", "opt_type": "PE", "side": "sell"},
        ],
    )
    assert outcome.trades.height == 0
    assert _attempts(outcome) == [("09:16:00", "ce", "no_contract")]
    assert outcome.summary["status"] == "no_trade"
    assert outcome.summary["skip_reason"] == "no entry: no_contract"
    assert outcome.summary["net_pnl_paise"] == 0


# ----------------------------------------------------------------------- exits
def test_leg_stop_loss_in_points_triggers_at_exactly_the_threshold(tmp_path: Path) -> None:
    chain = _chain()
    chain.set_quote(48000, "CE", "09:18:00", 229.40, 229.95)  # loss 29.95 points: holds
    chain.set_quote(48000, "CE", "09:18:30", 229.50, 230.00)  # loss 30.00 points: stop
    outcome = _run(tmp_path, chain, exits={"leg_stop_loss": {"points": 30}})
    assert _fills(outcome) == [
        ("09:16:00", "ce", 48000.0, "sell", 20000, "entry"),
        ("09:16:00", "pe", 48000.0, "sell", 18000, "entry"),
        ("09:18:30", "ce", 48000.0, "buy", 23000, "leg_stop"),
        ("09:25:00", "pe", 48000.0, "buy", 18040, "exit_time"),
    ]
    gross, costs = _hand_day([("sell", 20000), ("sell", 18000), ("buy", 23000), ("buy", 18040)])
    assert outcome.summary["gross_pnl_paise"] == gross == 15 * (20000 + 18000 - 23000 - 18040)
    assert outcome.summary["net_pnl_paise"] == gross - costs


def test_leg_stop_loss_in_percent_of_entry_premium(tmp_path: Path) -> None:
    chain = _chain()
    chain.set_quote(48000, "PE", "09:19:00", 269.50, 269.95)  # 49.97 % of 180: holds
    chain.set_quote(48000, "PE", "09:19:10", 269.55, 270.00)  # 50 %: stop
    outcome = _run(tmp_path, chain, exits={"leg_stop_loss": {"pct": 50}})
    stops = [f for f in _fills(outcome) if f[5] == "leg_stop"]
    assert stops == [("09:19:10", "pe", 48000.0, "buy", 27000, "leg_stop")]
    assert _fills(outcome)[-1] == ("09:25:00", "ce", 48000.0, "buy", 20050, "exit_time")


def test_leg_target_in_points(tmp_path: Path) -> None:
    chain = _chain()
    chain.set_quote(48000, "CE", "09:17:00", 149.50, 150.00)  # gain 50 points
    outcome = _run(tmp_path, chain, exits={"leg_target": {"points": 50}})
    assert ("09:17:00", "ce", 48000.0, "buy", 15000, "leg_target") in _fills(outcome)


def test_combined_stop_loss_in_money(tmp_path: Path) -> None:
    chain = _chain()
    # Sold 200 + 180; loss = 15 × (ask_ce + ask_pe - 380) rupees; stop at ₹600.
    chain.set_quote(48000, "CE", "09:20:00", 239.00, 239.55)  # 15 × 39.95 = ₹599.25
    chain.set_quote(48000, "CE", "09:20:05", 239.05, 239.60)  # 15 × 40.00 = ₹600.00
    outcome = _run(tmp_path, chain, exits={"stop_loss": {"money": 600}})
    assert _fills(outcome)[2:] == [
        ("09:20:05", "ce", 48000.0, "buy", 23960, "stop_loss"),
        ("09:20:05", "pe", 48000.0, "buy", 18040, "stop_loss"),
    ]
    assert outcome.summary["gross_pnl_paise"] == -60_000


def test_combined_target_in_points(tmp_path: Path) -> None:
    chain = _chain()
    chain.set_quote(48000, "CE", "09:21:00", 184.50, 185.00)  # gain 15.00
    chain.set_quote(48000, "PE", "09:21:00", 174.60, 175.00)  # gain 5.00: total 20.00
    chain.set_quote(48000, "PE", "09:20:30", 175.00, 175.05, "09:21:00")  # 4.95: total 19.95
    chain.set_quote(48000, "CE", "09:20:30", 184.50, 185.00, "09:21:00")
    outcome = _run(tmp_path, chain, exits={"target": {"points": 20}})
    assert _fills(outcome)[2:] == [
        ("09:21:00", "ce", 48000.0, "buy", 18500, "target"),
        ("09:21:00", "pe", 48000.0, "buy", 17500, "target"),
    ]
    assert outcome.summary["gross_pnl_paise"] == 15 * 2000


def test_trailing_stop_in_money_from_the_peak(tmp_path: Path) -> None:
    chain = _chain()
    chain.set_quote(48000, "CE", "09:17:00", 149.50, 150.00)  # P&L 15 × 49.60 = ₹744 peak
    chain.set_quote(48000, "CE", "09:18:00", 169.50, 169.95)  # ₹444.75: ₹299.25 off peak
    chain.set_quote(48000, "CE", "09:18:10", 169.55, 170.00)  # ₹444.00: ₹300 off peak
    outcome = _run(tmp_path, chain, exits={"trailing_stop": {"money": 300}})
    assert _fills(outcome)[2:] == [
        ("09:18:10", "ce", 48000.0, "buy", 17000, "trailing_stop"),
        ("09:18:10", "pe", 48000.0, "buy", 18040, "trailing_stop"),
    ]
    assert outcome.summary["gross_pnl_paise"] == 44_400
    assert outcome.summary["max_drawdown_paise"] == 74_400 - 44_400


# ------------------------------------------------------------------- re-targeting
def _ce_atm_pe_premium() -> list[dict[str, Any]]:
    # The PE leg picks by premium (180.20 stays the closest to 180): it never moves.
    return [
        {"name": "ce", "opt_type": "CE", "side": "sell"},
        {
            "name": "pe",
            "opt_type": "PE",
            "side": "sell",
            "selector": {"kind": "premium", "target": 180},
        },
    ]


def test_retarget_every_n_minutes_moves_only_the_changed_leg(tmp_path: Path) -> None:
    chain = _chain()
    chain.set_spot("09:17:30", 48_130.0)  # ATM 48,100 from here on
    outcome = _run(
        tmp_path, chain, legs=_ce_atm_pe_premium(), rebalance={"kind": "every", "minutes": 2}
    )
    assert _fills(outcome) == [
        ("09:16:00", "ce", 48000.0, "sell", 20000, "entry"),
        ("09:16:00", "pe", 48000.0, "sell", 18000, "entry"),
        ("09:18:00", "ce", 48000.0, "buy", 20050, "rebalance_close"),
        ("09:18:00", "ce", 48100.0, "sell", 15000, "rebalance_open"),
        ("09:25:00", "ce", 48100.0, "buy", 15050, "exit_time"),
        ("09:25:00", "pe", 48000.0, "buy", 18040, "exit_time"),
    ]
    assert outcome.trades["position_id"].to_list() == [0, 1, 0, 2, 2, 1]
    assert outcome.trades["realized_pnl_paise"].to_list() == [0, 0, -750, 0, -750, -600]
    gross, costs = _hand_day(
        [
            ("sell", 20000),
            ("sell", 18000),
            ("buy", 20050),
            ("sell", 15000),
            ("buy", 15050),
            ("buy", 18040),
        ]
    )
    assert outcome.summary["gross_pnl_paise"] == gross == -2_100
    assert outcome.summary["costs_paise"] == costs
    assert outcome.summary["round_trips"] == 3


def test_retarget_every_n_minutes_does_nothing_when_atm_is_unchanged(tmp_path: Path) -> None:
    chain = _chain()
    chain.set_spot("09:17:30", 48_045.0)  # moved, but the ATM is still 48,000
    outcome = _run(tmp_path, chain, rebalance={"kind": "every", "minutes": 2})
    assert [f[5] for f in _fills(outcome)] == ["entry", "entry", "exit_time", "exit_time"]


def test_retarget_on_underlying_move(tmp_path: Path) -> None:
    chain = _chain()
    chain.set_spot("09:17:10", 48_110.0)  # 90 points: ATM changed but no re-target yet
    chain.set_spot("09:17:20", 48_125.0)  # 105 points from the entry spot: re-target
    chain.set_spot("09:19:00", 48_200.0)  # 75 points from the new anchor 48,125: nothing
    outcome = _run(tmp_path, chain, rebalance={"kind": "underlying_move", "points": 100})
    assert _fills(outcome) == [
        ("09:16:00", "ce", 48000.0, "sell", 20000, "entry"),
        ("09:16:00", "pe", 48000.0, "sell", 18000, "entry"),
        ("09:17:20", "ce", 48000.0, "buy", 20050, "rebalance_close"),
        ("09:17:20", "ce", 48100.0, "sell", 15000, "rebalance_open"),
        ("09:17:20", "pe", 48000.0, "buy", 18040, "rebalance_close"),
        ("09:17:20", "pe", 48100.0, "sell", 23000, "rebalance_open"),
        ("09:25:00", "ce", 48100.0, "buy", 15050, "exit_time"),
        ("09:25:00", "pe", 48100.0, "buy", 23040, "exit_time"),
    ]


def test_retarget_waiting_for_one_leg_does_not_move_the_other_again(tmp_path: Path) -> None:
    """Regression: a leg already re-targeted in an event moved again every second the
    ATM changed while the other leg waited for a quote (128 fills on a generated day)."""
    chain = _chain()
    chain.set_spot("09:17:50", 48_130.0)  # ATM 48,100 at the 09:18:00 event
    chain.set_spot("09:18:10", 48_230.0)  # ATM 48,200
    chain.drop_rows(48100, "PE", "09:17:00")  # the PE leg cannot move to 48,100
    outcome = _run(tmp_path, chain, rebalance={"kind": "every", "minutes": 2})
    assert _attempts(outcome) == [("09:18:00", "pe", "missing_quote")]
    assert _fills(outcome) == [
        ("09:16:00", "ce", 48000.0, "sell", 20000, "entry"),
        ("09:16:00", "pe", 48000.0, "sell", 18000, "entry"),
        ("09:18:00", "ce", 48000.0, "buy", 20050, "rebalance_close"),
        ("09:18:00", "ce", 48100.0, "sell", 15000, "rebalance_open"),
        # The PE leg moves at the first second it can, to the ATM of that second; the CE
        # leg keeps 48,100 until the next event, 2 minutes after this one completed.
        ("09:18:10", "pe", 48000.0, "buy", 18040, "rebalance_close"),
        ("09:18:10", "pe", 48200.0, "sell", 30000, "rebalance_open"),
        ("09:20:10", "ce", 48100.0, "buy", 15050, "rebalance_close"),
        ("09:20:10", "ce", 48200.0, "sell", 12000, "rebalance_open"),
        ("09:25:00", "ce", 48200.0, "buy", 12050, "exit_time"),
        ("09:25:00", "pe", 48200.0, "buy", 30040, "exit_time"),
    ]


# ------------------------------------------------------------- exits when untradeable
def test_untradeable_leg_at_exit_time_exits_at_next_tradeable_second(tmp_path: Path) -> None:
    chain = _chain()
    chain.drop_rows(48000, "CE", "09:24:50", "09:25:07")
    outcome = _run(tmp_path, chain)
    assert _attempts(outcome) == [("09:25:00", "ce", "missing_quote")]
    assert _fills(outcome)[2:] == [
        ("09:25:00", "pe", 48000.0, "buy", 18040, "exit_time"),
        ("09:25:07", "ce", 48000.0, "buy", 20050, "exit_time"),
    ]


def test_leg_untradeable_to_the_end_is_closed_at_its_last_mark_without_a_fill(
    tmp_path: Path,
) -> None:
    # Issue #13: this close was a "forced_end_of_day" fill at ₹210.00, a price last on the
    # book at 09:23:59, six minutes before: now a marked close, not a fill (no costs).
    chain = _chain()
    chain.set_quote(48000, "CE", "09:23:00", 209.50, 210.00)
    chain.drop_rows(48000, "CE", "09:24:00")  # last row 09:23:59, tradeable to 09:24:04
    outcome = _run(tmp_path, chain)
    assert _attempts(outcome) == [("09:25:00", "ce", "missing_quote")]
    last = outcome.trades.row(-1, named=True)
    assert (_clock(last["ts"]), last["leg"], last["price_paise"], last["reason"]) == (
        "09:29:59",
        "ce",
        21000,
        "marked_end_of_day",
    )
    assert last["filled"] is False and last["costs_paise"] == 0
    assert last["bid_paise"] == 0 and last["quote_age_seconds"] == -1
    assert outcome.summary["gross_pnl_paise"] == 15 * (20000 + 18000 - 21000 - 18040)
    assert outcome.summary["fills"] == 3 and outcome.summary["marked_closes"] == 1
    assert outcome.summary["marked_pnl_paise"] == 15 * (20000 - 21000) == last["realized_pnl_paise"]


def test_exit_time_at_session_end_closes_at_the_last_second(tmp_path: Path) -> None:
    """Regression: an exit time at the session end left positions open (engine error)."""
    outcome = _run(tmp_path, _chain(), time={"exit_time": "09:30"})
    assert _fills(outcome)[2:] == [
        ("09:29:59", "ce", 48000.0, "buy", 20050, "forced_end_of_day"),
        ("09:29:59", "pe", 48000.0, "buy", 18040, "forced_end_of_day"),
    ]


# ------------------------------------------------------------------- fill models
@pytest.mark.parametrize(
    ("fills", "prices"),
    [
        # Entry CE 200.00/200.35, PE 180.00/180.45; exit CE 170.00/170.35, PE 190.00/190.45.
        ({"mode": "cross"}, [20000, 18000, 17035, 19045]),
        # Mid 200.175 sells at 200.15 (down to the tick); 170.175 buys at 170.20 (up).
        ({"mode": "mid"}, [20015, 18020, 17020, 19025]),
        # Slippage 2 ticks + 0.5 × spread: CE 10 + 17.5, PE 10 + 22.5 paise against us.
        (
            {"mode": "mid_slippage", "base_ticks": 2, "spread_alpha": 0.5},
            [19990, 17990, 17045, 19055],
        ),
        # 1 tick + 0.2 × spread: CE 20017.5 - 12 = 20005.5 → 20005; PE 18022.5 - 14 → 18005.
        (
            {"mode": "mid_slippage", "base_ticks": 1, "spread_alpha": 0.2},
            [20005, 18005, 17030, 19040],
        ),
    ],
)
def test_fill_models_and_costs(tmp_path: Path, fills: dict[str, Any], prices: list[int]) -> None:
    chain = _chain()
    chain.set_quote(48000, "CE", "09:15:00", 200.00, 200.35)
    chain.set_quote(48000, "PE", "09:15:00", 180.00, 180.45)
    chain.set_quote(48000, "CE", "09:22:00", 170.00, 170.35)
    chain.set_quote(48000, "PE", "09:22:00", 190.00, 190.45)
    outcome = _run(tmp_path, chain, fills=fills)
    assert outcome.trades["price_paise"].to_list() == prices
    sides = ["sell", "sell", "buy", "buy"]
    gross, costs = _hand_day(list(zip(sides, prices, strict=True)))
    assert outcome.trades["costs_paise"].sum() == costs
    assert outcome.summary["gross_pnl_paise"] == gross
    assert outcome.summary["net_pnl_paise"] == gross - costs


def test_two_lots_scale_quantity_and_costs(tmp_path: Path) -> None:
    outcome = _run(
        tmp_path,
        _chain(),
        legs=[{"name": "ce", "opt_type": "CE", "side": "buy", "lots": 2}],
        costs={"per_lot": 1.5},
    )
    first = outcome.trades.row(0, named=True)
    assert (first["lots"], first["quantity"], first["price_paise"]) == (2, 30, 20050)
    premium = 30 * 20050
    # Per-lot extra ₹1.50 × 2 lots = 300 paise, outside the GST base.
    assert first["costs_paise"] == hand_costs_paise(True, premium) + 300
    assert first["cash_flow_paise"] == -premium


def test_no_underlying_data_falls_back_to_put_call_parity(tmp_path: Path) -> None:
    chain = _chain()
    chain.spot[:] = np.nan  # no spot dataset at all
    # Parity at the strike with the smallest |C - P| (48,000: 200.25 vs 180.20):
    # S = 48,000 + 200.25 - 180.20 = 48,020.05, stored in paise from the integer mids.
    outcome = _run(tmp_path, chain)
    assert outcome.summary["underlying_source"] == "parity"
    assert outcome.trades["spot_paise"][0] == 4_800_000 + 20_025 - 18_020
    assert outcome.trades["strike"].to_list() == [48000.0] * 4


def test_session_times_are_exchange_local(tmp_path: Path) -> None:
    outcome = _run(tmp_path, _chain())
    first = outcome.trades["ts"][0]
    assert first == ist("09:16:00")
    assert first - timedelta(minutes=1) == ist("09:15:00")


_PURE_PYTHON_RUN = """
import sys
from ticklake.backtest.engine import run_day
from ticklake.lake import open_lake
sys.path.insert(0, sys.argv[2])
from _engine_fixtures import HAND_DAY, hand_spec

spec = hand_spec(rebalance={"kind": "every", "minutes": 2}, exits={"trailing_stop": {"money": 300}})
outcome = run_day(open_lake(sys.argv[1]), spec, HAND_DAY)
outcome.trades.write_parquet(sys.argv[3])
"""


def test_kernel_gives_the_same_fills_without_numba_jit(tmp_path: Path) -> None:
    """The kernel's pure-Python path (NUMBA_DISABLE_JIT=1) trades exactly like the compiled one."""
    chain = _chain()
    chain.set_spot("09:17:30", 48_130.0)
    chain.set_quote(48000, "PE", "09:17:00", 150.00, 150.40)
    chain.set_quote(48100, "CE", "09:19:00", 179.50, 180.00)
    lake = write_hand_lake(tmp_path / "lake", chain)
    spec = hand_spec(
        rebalance={"kind": "every", "minutes": 2}, exits={"trailing_stop": {"money": 300}}
    )
    compiled = run_day(lake, spec, HAND_DAY).trades
    out = tmp_path / "pure.parquet"
    subprocess.run(
        [
            sys.executable,
            "-c",
            _PURE_PYTHON_RUN,
            str(lake.root),
            str(Path(__file__).parent),
            str(out),
        ],
        check=True,
        env={**os.environ, "NUMBA_DISABLE_JIT": "1"},
        timeout=300,
    )
    assert compiled.height >= 6
    assert pl.read_parquet(out).equals(compiled)
