from __future__ import annotations

from datetime import date, timedelta

import polars as pl
from _quality_helpers import Validate, at

from ticklake.lake import Lake
from ticklake.quality import validate_dataset

EXPIRY = date(2024, 1, 25)


def _snapshots(rows: list[tuple[float, float, str, float, float]]) -> pl.DataFrame:
    """rows: (second, strike, CE/PE, bid, ask)."""
    return pl.DataFrame(
        {
            "ts": [at(r[0]) for r in rows],
            "symbol": [f"NIFTY24JAN{int(r[1])}{r[2]}" for r in rows],
            "underlying": ["NIFTY"] * len(rows),
            "expiry": [EXPIRY] * len(rows),
            "strike": [r[1] for r in rows],
            "opt_type": [r[2] for r in rows],
            "bid_price_0": [r[3] for r in rows],
            "ask_price_0": [r[4] for r in rows],
        }
    )


def _chain(second: float, forward: float, strikes: list[float], put_mid: float = 15.0) -> list:
    rows = []
    for strike in strikes:
        call_mid = forward - strike + put_mid  # C - P + K = forward
        rows.append((second, strike, "CE", call_mid - 0.05, call_mid + 0.05))
        rows.append((second, strike, "PE", put_mid - 0.05, put_mid + 0.05))
    return rows


def test_o1_negative_time_value_against_the_underlying(lake: Lake) -> None:
    spot = pl.DataFrame(
        {"ts": [at(s) for s in range(11)], "instrument": ["NIFTY"] * 11, "price": [100.0] * 11}
    )
    lake.write("spot", spot, schema="prices")
    rows = [
        (5, 90.0, "CE", 8.95, 9.05),  # mid 9 < intrinsic 10 by 100 bps of S: violation
        (5, 110.0, "CE", 0.95, 1.05),  # OTM, intrinsic 0
        (5, 110.0, "PE", 9.97, 10.07),  # mid 10.02 >= intrinsic 10
        (5, 105.0, "PE", 4.91, 5.01),  # mid 4.96: 4 bps short, inside the 5 bps tolerance
        (20, 90.0, "CE", 1.0, 1.1),  # underlying 10 s old: not checked
    ]
    lake.write("chain", _snapshots(rows), schema="option_snapshots")
    skipped = validate_dataset(lake, "chain", rules=["O1"])
    assert skipped.rule("O1").status == "skipped"
    report = validate_dataset(
        lake, "chain", rules=["O1"], parameters={"O1": {"underlying_dataset": "spot"}}
    )
    summary = report.rule("O1")
    assert (summary.checked, summary.violations) == (4, 1)
    assert summary.offending["strike"].to_list() == [90.0]
    assert round(summary.offending["shortfall_bps"][0], 9) == 100.0


def test_o2_parity_break_beyond_spreads_and_tolerance(validate: Validate) -> None:
    strikes = [90.0, 95.0, 100.0, 105.0, 110.0]
    rows = _chain(0, 100.0, strikes)
    # move the 105 call up by 1.0: its forward is 101, 1.0 away from the median 100,
    # beyond half the two spreads (0.1) plus 20 bps of 100 (0.2)
    rows = [
        (s, k, t, b + 1.0, a + 1.0) if (k, t) == (105.0, "CE") else (s, k, t, b, a)
        for s, k, t, b, a in rows
    ]
    report = validate(_snapshots(rows), "option_snapshots", ["O2"])
    summary = report.rule("O2")
    assert (summary.checked, summary.violations) == (5, 1)
    assert summary.offending["strike"].to_list() == [105.0]
    assert round(summary.offending["excess_bps"][0], 9) == round((1.0 - 0.1 - 0.2) / 100 * 1e4, 9)
    clean = validate(_snapshots(_chain(0, 100.0, strikes)), "option_snapshots", ["O2"], dataset="c")
    assert clean.rule("O2").violations == 0


def test_o3_strikes_missing_around_the_money(validate: Validate) -> None:
    strikes = [90.0, 95.0, 100.0, 105.0, 110.0]
    rows = [r for r in _chain(0, 101.0, strikes) if (r[1], r[2]) != (95.0, "PE")]
    frame = _snapshots(rows)
    two = validate(frame, "option_snapshots", ["O3"], {"O3": {"strikes_each_side": 2}})
    assert (two.rule("O3").checked, two.rule("O3").violations) == (10, 1)
    assert two.rule("O3").offending.select("strike", "opt_type").rows() == [(95.0, "PE")]
    three = validate(
        frame, "option_snapshots", ["O3"], {"O3": {"strikes_each_side": 3}}, dataset="three"
    )
    # 85 and 115 are not listed at all: 4 more missing contracts
    assert (three.rule("O3").checked, three.rule("O3").violations) == (14, 5)


def test_q1_missing_seconds_per_contract(validate: Validate) -> None:
    rows = [(s, 100.0, "CE", 1.0, 1.1) for s in range(10)]
    rows += [(s, 100.0, "PE", 1.0, 1.1) for s in range(10) if s not in (3, 4)]
    report = validate(_snapshots(rows), "option_snapshots", ["Q1"])
    summary = report.rule("Q1")
    assert (summary.checked, summary.violations) == (20, 2)
    assert summary.offending.select("symbol", "stale_seconds", "longest_hole_seconds").rows() == [
        ("NIFTY24JAN100PE", 2, 2)
    ]


def test_q1_quote_age_and_receive_delay(validate: Validate) -> None:
    seconds = [0.0, 1.0, 100.0, 101.0, 102.0]
    frame = pl.DataFrame(
        {
            "ts": [at(s) for s in seconds],
            "instrument": ["X"] * 5,
            "seq": list(range(5)),
            "bid_price": [1.0] * 5,
            "ask_price": [1.1] * 5,
            # row 2 is both 99 s after the last quote and received 10 s late: counts once
            "recv_ts": [
                at(s) + timedelta(seconds=10 if i in (2, 4) else 0.01)
                for i, s in enumerate(seconds)
            ],
        }
    )
    report = validate(frame, "quotes", ["Q1"])
    summary = report.rule("Q1")
    assert (summary.checked, summary.violations) == (5, 2)
    assert summary.statistics["stale_book_rows"] == 1 and summary.statistics["late_rows"] == 2


def test_cli_table_names_each_rules_unit(lake: Lake) -> None:
    """The validate table prints what was counted: "strike pairs" for O2, not "strike"."""
    from typer.testing import CliRunner

    from ticklake.cli import app

    lake.write(
        "chain", _snapshots(_chain(0, 100.0, [95.0, 100.0, 105.0])), schema="option_snapshots"
    )
    result = CliRunner().invoke(
        app,
        ["validate", "chain", "--lake", str(lake.root), "--rules", "O2,Q1"],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    o2 = next(line for line in result.output.splitlines() if " O2 " in line)
    q1 = next(line for line in result.output.splitlines() if " Q1 " in line)
    assert "3 strike pairs" in o2
    assert "6 rows" in q1 and "(option" not in q1
