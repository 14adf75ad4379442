"""One-sided quotes on an expiry day (issue #13): a buy needs the ask, a sell the bid.

The chain is a BANKNIFTY weekly expiry day, 2024-01-10 (a Wednesday), over the whole
NSE session 09:15:00-15:29:59, one snapshot a second. The spot stays at 47,720 (ATM
47,700); a short strangle sells the 48,000 CE and the 47,400 PE (3 strikes out of the
money). As on a real expiry afternoon, the far call is worth nothing from 15:00: its
book has **no bid** and an ask of ₹0.05 (NSE files write the empty side as 0).

Before the fix an order needed both sides: the call could not be bought back after
15:00, the engine retried every second and at 15:29:59 "filled" it (`forced_end_of_day`)
at its last two-sided mark, ₹0.10, a price that was not on the book. Every expected
number below is worked out by hand (lot 15; cost formula in ``_engine_fixtures``).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from _engine_fixtures import OPTIONS, SPOT, hand_costs_paise, merge

from ticklake.backtest.engine import DayOutcome, run_day
from ticklake.backtest.spec import parse_spec
from ticklake.lake import init_lake

DAY = date(2024, 1, 10)  # the weekly expiry itself
IST = timedelta(hours=5, minutes=30)
SECONDS = 22_500  # 09:15:00-15:29:59
LOT = 15
SPOT_PRICE = 47_720.0


def second(clock: str) -> int:
    h, m, s = (int(x) for x in clock.split(":"))
    return h * 3600 + m * 60 + s - (9 * 3600 + 15 * 60)


def utc(clock: str) -> datetime:
    h, m, s = (int(x) for x in clock.split(":"))
    return (datetime.combine(DAY, time(h, m, s)) - IST).replace(tzinfo=UTC)


class ExpiryChain:
    """Per-second (bid, ask) in rupees of a few contracts; NaN = no snapshot that second."""

    def __init__(self) -> None:
        self.quotes: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}

    def contract(self, strike: int, opt_type: str, steps: list[tuple[str, float, float]]) -> None:
        """Quote ``(from HH:MM:SS, bid, ask)`` piecewise to the session end."""
        bid, ask = np.full(SECONDS, np.nan), np.full(SECONDS, np.nan)
        self.quotes[(strike, opt_type)] = (bid, ask)
        for clock, b, a in steps:
            self.set(strike, opt_type, clock, b, a)

    def set(
        self, strike: int, opt_type: str, start: str, bid: float, ask: float, end: str | None = None
    ) -> None:
        b, a = self.quotes[(strike, opt_type)]
        hi = second(end) if end else SECONDS
        b[second(start) : hi] = bid
        a[second(start) : hi] = ask

    def frame(self) -> pl.DataFrame:
        base = utc("09:15:00")
        parts = []
        for (strike, opt_type), (bid, ask) in sorted(self.quotes.items()):
            rows = np.flatnonzero(~np.isnan(bid))
            parts.append(
                pl.DataFrame(
                    {
                        "ts": [base + timedelta(seconds=int(s)) for s in rows],
                        "symbol": f"BANKNIFTY24110{strike}{opt_type}",
                        "underlying": "BANKNIFTY",
                        "expiry": DAY,
                        "strike": float(strike),
                        "opt_type": opt_type,
                        "bid_price_0": bid[rows],
                        "ask_price_0": ask[rows],
                    }
                )
            )
        return pl.concat(parts).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))


def expiry_chain() -> ExpiryChain:
    chain = ExpiryChain()
    # The far call decays to one tick and loses its bid at 15:00.
    chain.contract(
        48000,
        "CE",
        [
            ("09:15:00", 12.40, 12.55),
            ("12:00:00", 3.10, 3.20),
            ("14:00:00", 0.35, 0.40),
            ("14:45:00", 0.05, 0.10),
            ("15:00:00", 0.00, 0.05),  # no bid: one-sided
        ],
    )
    chain.contract(
        47400,
        "PE",
        [
            ("09:15:00", 10.20, 10.35),
            ("12:00:00", 2.60, 2.70),
            ("14:00:00", 0.80, 0.85),
            ("15:00:00", 0.45, 0.50),
        ],
    )
    # Nearer strikes, two-sided all day (not traded: they make the chain a chain).
    chain.contract(47700, "CE", [("09:15:00", 95.00, 95.30), ("15:00:00", 20.00, 20.10)])
    chain.contract(47700, "PE", [("09:15:00", 75.00, 75.30), ("15:00:00", 1.00, 1.05)])
    return chain


def write_lake(root: Path, chain: ExpiryChain) -> Any:
    lake = init_lake(root)
    lake.write(OPTIONS, chain.frame(), schema="option_snapshots", timezone="Asia/Kolkata")
    spot = pl.DataFrame(
        {
            "ts": [utc("09:15:00") + timedelta(seconds=s) for s in range(0, SECONDS, 60)],
            "instrument": "BANKNIFTY",
            "price": SPOT_PRICE,
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    # One spot print a minute; a 60 s as-of tolerance covers every second.
    lake.write(SPOT, spot, schema="prices", timezone="Asia/Kolkata")
    return lake


STRANGLE: dict[str, Any] = {
    "name": "expiry_strangle",
    "universe": {"underlying": "BANKNIFTY", "options_dataset": OPTIONS, "underlying_dataset": SPOT},
    "time": {
        "start": DAY.isoformat(),
        "end": DAY.isoformat(),
        "entry_windows": ["09:20-09:25"],
        "exit_time": "15:20",
    },
    "legs": [
        {"name": "ce", "opt_type": "CE", "side": "sell", "selector": {"kind": "otm", "steps": 3}},
        {"name": "pe", "opt_type": "PE", "side": "sell", "selector": {"kind": "otm", "steps": 3}},
    ],
    "fills": {"as_of_tolerance_seconds": 60, "max_quote_age_seconds": 5},
}


def spec(**overrides: Any) -> Any:
    return parse_spec(merge(STRANGLE, overrides))


def fills(outcome: DayOutcome) -> list[tuple[str, str, str, int, str, bool]]:
    return [
        (
            (r["ts"].replace(tzinfo=UTC) + IST).strftime("%H:%M:%S"),
            r["leg"],
            r["side"],
            r["price_paise"],
            r["reason"],
            r["filled"],
        )
        for r in outcome.trades.iter_rows(named=True)
    ]


def attempts(outcome: DayOutcome) -> list[tuple[str, str, str]]:
    return [
        ((r["ts"].replace(tzinfo=UTC) + IST).strftime("%H:%M:%S"), r["leg"], r["reason"])
        for r in outcome.attempts.iter_rows(named=True)
    ]


# Entry at 09:20:00: the CE sells at its bid ₹12.40, the PE at ₹10.20.
ENTRIES = [
    ("09:20:00", "ce", "sell", 1240, "entry", True),
    ("09:20:00", "pe", "sell", 1020, "entry", True),
]


def test_short_strangle_buys_back_the_bidless_call_at_its_ask_at_exit_time(
    tmp_path: Path,
) -> None:
    outcome = run_day(write_lake(tmp_path / "lake", expiry_chain()), spec(), DAY)
    # Before the fix: the CE retried from 15:20:00 and was "filled" at 15:29:59 at
    # ₹0.10 (its last two-sided ask, 14:59:59) as forced_end_of_day.
    assert fills(outcome) == [
        *ENTRIES,
        ("15:20:00", "ce", "buy", 5, "exit_time", True),  # the ask; there is no bid
        ("15:20:00", "pe", "buy", 50, "exit_time", True),
    ]
    assert attempts(outcome) == []
    trades = outcome.trades
    assert trades["bid_paise"].to_list() == [1240, 1020, 0, 45]
    assert trades["ask_paise"].to_list() == [1255, 1035, 5, 50]
    assert trades["quote_age_seconds"].to_list() == [0, 0, 0, 0]
    # Cash: +15 × 1,240 + 15 × 1,020 - 15 × 5 - 15 × 50 = 18,600 + 15,300 - 75 - 750.
    assert trades["cash_flow_paise"].to_list() == [18_600, 15_300, -75, -750]
    assert trades["realized_pnl_paise"].to_list() == [0, 0, 18_525, 14_550]
    gross = 18_600 + 15_300 - 75 - 750
    # Sell 18,600 paise: brokerage 2,000 + STT 0.0625 % 11.625→12 + exchange 0.053 %
    # 9.858→10 + SEBI 0.0186→0 + GST 18 % of 2,010 = 361.8→362: 2,384. Buy 75 paise:
    # brokerage 2,000 + exchange 0.04→0 + stamp 0.0023→0 + GST 18 % of 2,000 = 360: 2,360.
    assert trades["costs_paise"][0] == 2_384 == hand_costs_paise(False, 18_600)
    assert trades["costs_paise"][2] == 2_360 == hand_costs_paise(True, 75)
    costs = sum(
        hand_costs_paise(buy, premium)
        for buy, premium in [(False, 18_600), (False, 15_300), (True, 75), (True, 750)]
    )
    summary = outcome.summary
    assert (summary["gross_pnl_paise"], summary["costs_paise"]) == (gross, costs)
    assert summary["net_pnl_paise"] == gross - costs
    assert (summary["fills"], summary["marked_closes"], summary["marked_pnl_paise"]) == (4, 0, 0)


def test_the_short_calls_mark_follows_its_ask_when_the_bid_is_gone(tmp_path: Path) -> None:
    """The P&L path marks the short call at the ask it can be bought back at (₹0.05 from
    15:00:00), not at the last two-sided ask (₹0.10) any more."""
    lake = write_lake(tmp_path / "lake", expiry_chain())
    outcome = run_day(lake, spec(), DAY, keep_pnl_path=True)
    assert outcome.pnl_path is not None
    # 15:00:00: cash 33,900 - 15 × (5 + 50) (CE ask ₹0.05, PE ask ₹0.50) = 33,075.
    assert outcome.pnl_path[second("15:00:00")] == 33_900 - 15 * (5 + 50)
    # 14:59:59: both two-sided, the CE ask ₹0.10, the PE ask ₹0.85.
    assert outcome.pnl_path[second("14:59:59")] == 33_900 - 15 * (10 + 85)


def test_mid_fills_of_a_one_sided_quote_trade_at_the_side_there_is(tmp_path: Path) -> None:
    outcome = run_day(
        write_lake(tmp_path / "lake", expiry_chain()), spec(fills={"mode": "mid"}), DAY
    )
    # Entry mids 12.475 and 10.275 sell down to the tick: ₹12.45, ₹10.25. At 15:20 the CE
    # has no mid (no bid): it buys at the ask ₹0.05; the PE mid 0.475 buys up at ₹0.50.
    assert [f[:5] for f in fills(outcome)] == [
        ("09:20:00", "ce", "sell", 1245, "entry"),
        ("09:20:00", "pe", "sell", 1025, "entry"),
        ("15:20:00", "ce", "buy", 5, "exit_time"),
        ("15:20:00", "pe", "buy", 50, "exit_time"),
    ]


def test_a_sell_needs_the_bid_and_a_buy_needs_only_the_ask(tmp_path: Path) -> None:
    lake = write_lake(tmp_path / "lake", expiry_chain())
    window = {"entry_windows": ["15:05-15:10"], "exit_time": "15:20"}
    # Selling the bidless call cannot fill: the whole entry waits, then the window ends.
    sold = run_day(lake, spec(time=window), DAY)
    assert sold.trades.height == 0
    assert attempts(sold) == [("15:05:00", "ce", "missing_quote")]
    assert sold.summary["skip_reason"] == "no entry: missing_quote"
    # Buying it needs only the ask: it fills at ₹0.05. Its close is a sell, which needs a
    # bid: none to the end of the day, so at 15:29:59 it is closed at its mark (the entry
    # price, the only price it had), with no fill and no costs.
    buy_call = [
        {"name": "ce", "opt_type": "CE", "side": "buy", "selector": {"kind": "otm", "steps": 3}}
    ]
    bought = run_day(lake, spec(time=window, legs=buy_call), DAY)
    assert fills(bought) == [
        ("15:05:00", "ce", "buy", 5, "entry", True),
        ("15:29:59", "ce", "sell", 5, "marked_end_of_day", False),
    ]
    assert attempts(bought) == [("15:20:00", "ce", "missing_quote")]
    assert bought.trades["costs_paise"].to_list() == [hand_costs_paise(True, 75), 0]
    assert bought.summary["gross_pnl_paise"] == 0
    assert (bought.summary["fills"], bought.summary["marked_closes"]) == (1, 1)


# ------------------------------------------------------------- the last second
def test_forced_close_at_the_session_end_fills_at_the_ask_on_the_book(tmp_path: Path) -> None:
    # Exit time at the session end: everything closes at 15:29:59. The CE ask ₹0.05 is on
    # the book then (before the fix: "forced" at its last two-sided ask, ₹0.10).
    outcome = run_day(
        write_lake(tmp_path / "lake", expiry_chain()), spec(time={"exit_time": "15:30"}), DAY
    )
    assert fills(outcome)[2:] == [
        ("15:29:59", "ce", "buy", 5, "forced_end_of_day", True),
        ("15:29:59", "pe", "buy", 50, "forced_end_of_day", True),
    ]
    assert outcome.summary["gross_pnl_paise"] == 18_600 + 15_300 - 75 - 750


@pytest.mark.parametrize(
    ("last_ask", "expected"),
    [
        # The last ask at 15:29:54 is exactly max_quote_age (5 s) old at 15:29:59: on the
        # book, the forced close fills at it, the quote 5 s old.
        ("15:29:54", ("forced_end_of_day", True, 5, 5)),
        # At 15:29:53 it is 6 s old: no price on the book; a marked close at the mark,
        # which is that same ₹0.05 (the last price the close could have had).
        ("15:29:53", ("marked_end_of_day", False, 5, -1)),
    ],
)
def test_forced_close_uses_the_latest_ask_within_max_quote_age_or_marks(
    tmp_path: Path, last_ask: str, expected: tuple[str, bool, int, int]
) -> None:
    chain = expiry_chain()
    # After its last ask the call's book is empty: snapshots with neither side.
    after = (datetime.combine(DAY, time.fromisoformat(last_ask)) + timedelta(seconds=1)).time()
    chain.set(48000, "CE", after.isoformat(), 0.0, 0.0)
    outcome = run_day(write_lake(tmp_path / "lake", chain), spec(time={"exit_time": "15:30"}), DAY)
    close = outcome.trades.filter(pl.col("leg") == "ce", pl.col("side") == "buy").row(0, named=True)
    reason, filled, price, age = expected
    assert (close["reason"], close["filled"], close["price_paise"]) == (reason, filled, price)
    assert close["ts"] == utc("15:29:59")
    assert close["quote_age_seconds"] == (age if filled else 0)  # a mark: the empty book
    assert close["ask_paise"] == (5 if filled else 0)
    assert close["costs_paise"] == (hand_costs_paise(True, 75) if filled else 0)
    # Either way the P&L is exact and the same: 15 × (1,240 - 5) on the call.
    assert close["realized_pnl_paise"] == 15 * (1240 - 5)
    marked = outcome.summary["marked_closes"], outcome.summary["marked_pnl_paise"]
    assert marked == ((0, 0) if filled else (1, 15 * (1240 - 5)))
    if not filled:
        assert ("15:29:59", "ce", "missing_quote") in attempts(outcome)


def test_a_call_without_any_quote_at_the_end_is_a_marked_close(tmp_path: Path) -> None:
    chain = expiry_chain()
    chain.set(48000, "CE", "15:25:00", np.nan, np.nan)  # the vendor stops sending it
    lake = write_lake(tmp_path / "lake", chain)
    outcome = run_day(lake, spec(time={"exit_time": "15:30"}), DAY)
    close = outcome.trades.filter(pl.col("leg") == "ce", pl.col("side") == "buy")
    # The last snapshot (15:24:59) is joined up to 60 s later and tradeable to 15:25:04:
    # the mark is its ask ₹0.05. At 15:29:59 no quote: closed at the mark, not filled.
    assert close.select("price_paise", "reason", "filled", "costs_paise").row(0) == (
        5,
        "marked_end_of_day",
        False,
        0,
    )
    assert close["quote_age_seconds"].item() == -1
    assert attempts(outcome) == [("15:29:59", "ce", "missing_quote")]


def test_run_ledger_daily_and_stats_say_how_much_pnl_is_marked(tmp_path: Path) -> None:
    from rich.console import Console

    from ticklake.backtest.report import print_summary, render_report
    from ticklake.backtest.runner import run_backtest
    from ticklake.backtest.stats import read_run_results

    chain = expiry_chain()
    chain.set(48000, "CE", "15:25:00", np.nan, np.nan)
    lake = write_lake(tmp_path / "lake", chain)
    result = run_backtest(lake, spec(time={"exit_time": "15:30"}), executor="serial")
    assert result.status == "complete"
    call = 15 * (1240 - 5)  # the call's round trip, closed at a mark
    put = 15 * (1020 - 50)
    trades = result.trades()
    assert trades["filled"].to_list() == [True, True, False, True]
    daily = result.daily().row(0, named=True)
    assert (daily["fills"], daily["marked_closes"], daily["marked_pnl_paise"]) == (3, 1, call)
    assert daily["gross_pnl_paise"] == call + put == int(trades["cash_flow_paise"].sum())
    day_entry = result.ledger["days"][DAY.isoformat()]
    assert (day_entry["fills"], day_entry["marked_closes"], day_entry["marked_pnl_paise"]) == (
        3,
        1,
        call,
    )
    totals = result.ledger["totals"]
    assert (totals["fills"], totals["marked_closes"], totals["marked_pnl_paise"]) == (3, 1, call)
    stats = json.loads((result.run_dir / "stats.json").read_text())
    assert (stats["marked_closes"], stats["total_marked_pnl_paise"]) == (1, call)
    assert stats["fills"] == 3
    console = Console(record=True, width=200)
    print_summary(result.run_dir, console)
    text = console.export_text()
    assert "1 close(s) at a mark, not a fill" in text
    assert f"₹{call / 100:,.2f} of the gross P&L ₹{(call + put) / 100:,.2f} is marked" in text
    assert "is marked, not filled" in render_report(read_run_results(result.run_dir))
