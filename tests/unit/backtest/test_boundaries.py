"""The documented boundaries of the engine, tested exactly at the bound and one step past.

- ``fills.max_quote_age_seconds`` (docs/backtest.md, "Tradeable quotes and staleness"): a
  quote is tradeable while its age ``floor((g − ts) / 1 s)`` is **≤** the limit — at
  exactly the limit it trades, one second older it is stale. The age is whole seconds
  (floored), so the resolution of this rule is one second.
- ``fills.as_of_tolerance_seconds`` ("The grid and as-of alignment"): the latest row with
  ``ts ≤ g`` is joined when ``g − ts ≤`` the tolerance, compared in nanoseconds — joined
  at exactly the tolerance, missing 1 ns later. Options (the compiled per-contract join)
  and the spot series (``_asof_indices``) are separate code paths: both are tested.
- ``crosses_above`` / ``crosses_below`` (docs/conditions.md, "Semantics"):
  ``a crosses_above b`` at ``t`` ⇔ ``a > b`` at ``t`` and ``a <= b`` at ``t − 1``. A
  previous value *equal* to the threshold counts as "not above", so 120 → 125 crosses
  120, and 110 → 120 does not. Entries (a Polars expression) and exits (the kernel's
  program) are separate code paths: both are tested.

Hand chains: 2024-01-08, BANKNIFTY, session 09:15-09:30 IST, entry window 09:16-09:20,
exit 09:25, short ATM straddle (``_engine_fixtures.HAND_SPEC``).
"""

from __future__ import annotations

from datetime import timedelta
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
    ist,
    second_of,
    write_hand_lake,
)

from ticklake.backtest.data import DayData, load_day
from ticklake.backtest.engine import DayOutcome, run_day
from ticklake.lake import init_lake


def _chain() -> HandChain:
    chain = HandChain()
    chain.set_spot("09:15:00", 48_020.0)
    chain.contract(48000, "CE", 200.0, 200.5)
    chain.contract(48000, "PE", 180.0, 180.4)
    return chain


def _shift_row(frame: pl.DataFrame, clock: str, strike: float, opt_type: str, ns: int) -> Any:
    """Move the contract's row stamped ``clock`` by ``ns`` nanoseconds."""
    at = ist(clock)
    hit = (pl.col("ts") == at) & (pl.col("strike") == strike) & (pl.col("opt_type") == opt_type)
    assert frame.filter(hit).height == 1
    return frame.with_columns(
        pl.when(hit)
        .then(pl.col("ts") + pl.duration(nanoseconds=ns))
        .otherwise(pl.col("ts"))
        .alias("ts")
    )


def _lake(root: Path, chain: HandChain, ce_shift_ns: int = 0, at: str = "") -> Any:
    if not ce_shift_ns:
        return write_hand_lake(root, chain)
    lake = init_lake(root)
    frame = _shift_row(chain.option_frame(), at, 48000.0, "CE", ce_shift_ns)
    lake.write(OPTIONS, frame, schema="option_snapshots", timezone="Asia/Kolkata")
    lake.write(SPOT, chain.spot_frame(), schema="prices", timezone="Asia/Kolkata")
    return lake


def _entry(outcome: DayOutcome) -> tuple[Any, int]:
    first = outcome.trades.filter(pl.col("leg") == "ce").row(0, named=True)
    return first["ts"], first["quote_age_seconds"]


def _attempts(outcome: DayOutcome) -> list[tuple[Any, str, str]]:
    return [(r["ts"], r["leg"], r["reason"]) for r in outcome.attempts.iter_rows(named=True)]


# ------------------------------------------------------------ max_quote_age_seconds
@pytest.mark.parametrize(
    ("last_row", "shift_ns", "entry_at", "age", "attempt"),
    [
        # The CE's last row before 09:16:00 at 09:15:55: exactly 5 s old, tradeable.
        ("09:15:55", 0, "09:16:00", 5, None),
        # 09:15:54: 6 s old at 09:16:00, stale; the next row comes at 09:16:10.
        ("09:15:54", 0, "09:16:10", 0, "stale_quote"),
        # 5.999999999 s old (the 09:15:55 row moved back to 09:15:54.000000001): the age
        # is whole seconds, floored, so 5: still tradeable (the rule's resolution is 1 s).
        ("09:15:55", -999_999_999, "09:16:00", 5, None),
    ],
)
def test_quote_exactly_max_quote_age_old_is_tradeable_one_second_more_is_stale(
    tmp_path: Path, last_row: str, shift_ns: int, entry_at: str, age: int, attempt: str | None
) -> None:
    chain = _chain()
    after = second_of(last_row) + 1  # no CE rows from the second after the last one
    chain.drop_rows(48000, "CE", f"09:15:{after:02d}", "09:16:10")  # to 09:16:10
    lake = _lake(tmp_path / "lake", chain, shift_ns, last_row)
    spec = hand_spec(fills={"as_of_tolerance_seconds": 30, "max_quote_age_seconds": 5})
    outcome = run_day(lake, spec, HAND_DAY)
    assert _entry(outcome) == (ist(entry_at), age)
    expected = [] if attempt is None else [(ist("09:16:00"), "ce", attempt)]
    assert _attempts(outcome) == expected


@pytest.mark.parametrize(
    ("last_row", "entry_at", "age", "attempt"),
    [
        # Exactly 5 s old at 09:16:00: a candidate the premium selector may choose.
        ("09:15:55", "09:16:00", 5, None),
        # 6 s old: stale, so no candidate is left for the selector until 09:16:10.
        ("09:15:54", "09:16:10", 0, "no_candidate"),
    ],
)
def test_a_selector_takes_a_quote_exactly_max_quote_age_old_as_a_candidate(
    tmp_path: Path, last_row: str, entry_at: str, age: int, attempt: str | None
) -> None:
    """Selectors that compare mids (premium, delta) check both sides' age themselves
    (``_tradeable_reason``), a separate path from the orders' ``_side_reason``."""
    chain = _chain()
    after = second_of(last_row) + 1
    chain.drop_rows(48000, "CE", f"09:15:{after:02d}", "09:16:10")
    lake = _lake(tmp_path / "lake", chain)
    spec = hand_spec(
        fills={"as_of_tolerance_seconds": 30, "max_quote_age_seconds": 5},
        legs=[
            {
                "name": "ce",
                "opt_type": "CE",
                "side": "sell",
                "selector": {"kind": "premium", "target": 200},
            },
            {"name": "pe", "opt_type": "PE", "side": "sell"},
        ],
    )
    outcome = run_day(lake, spec, HAND_DAY)
    assert _entry(outcome) == (ist(entry_at), age)
    expected = [] if attempt is None else [(ist("09:16:00"), "ce", attempt)]
    assert _attempts(outcome) == expected


# ----------------------------------------------------------- as_of_tolerance_seconds
@pytest.mark.parametrize(
    ("shift_ns", "entry_at", "attempt"),
    [
        # The row at 09:15:55 is exactly 5 s (the tolerance) old at 09:16:00: joined.
        (0, "09:16:00", None),
        # 1 ns earlier it is 5 s + 1 ns old: not joined, no quote until 09:16:10.
        (-1, "09:16:10", "missing_quote"),
    ],
)
def test_option_row_exactly_as_of_tolerance_old_is_joined_one_ns_more_is_not(
    tmp_path: Path, shift_ns: int, entry_at: str, attempt: str | None
) -> None:
    chain = _chain()
    chain.drop_rows(48000, "CE", "09:15:56", "09:16:10")
    lake = _lake(tmp_path / "lake", chain, shift_ns, "09:15:55")
    # The quote-age limit is above the tolerance, so only the join decides.
    spec = hand_spec(fills={"as_of_tolerance_seconds": 5, "max_quote_age_seconds": 10})
    outcome = run_day(lake, spec, HAND_DAY)
    assert _entry(outcome)[0] == ist(entry_at)
    expected = [] if attempt is None else [(ist("09:16:00"), "ce", attempt)]
    assert _attempts(outcome) == expected
    loaded = load_day(lake, spec, HAND_DAY)
    assert isinstance(loaded, DayData)
    ce = int(np.flatnonzero(loaded.is_call)[0])
    g = second_of("09:16:00")
    if attempt is None:
        assert (loaded.age[ce, g], loaded.bid[ce, g]) == (5, 20_000)
    else:
        assert (loaded.age[ce, g], loaded.bid[ce, g]) == (-1, 0)
        assert loaded.age[ce, g - 1] == 4  # 09:15:59: 4.999999999 s old, joined


@pytest.mark.parametrize("shift_ns", [0, -1])
def test_spot_row_exactly_as_of_tolerance_old_is_joined_one_ns_more_is_not(
    tmp_path: Path, shift_ns: int
) -> None:
    chain = _chain()
    chain.spot[:] = np.nan
    chain.set_spot("09:15:00", 48_020.0, "09:16:00")  # last spot row 09:15:59
    chain.set_spot("09:16:30", 48_020.0)
    lake = init_lake(tmp_path / "lake")
    lake.write(OPTIONS, chain.option_frame(), schema="option_snapshots", timezone="Asia/Kolkata")
    spot = chain.spot_frame()
    at = ist("09:15:59")
    spot = spot.with_columns(
        pl.when(pl.col("ts") == at)
        .then(pl.col("ts") + pl.duration(nanoseconds=shift_ns))
        .otherwise(pl.col("ts"))
        .alias("ts")
    )
    lake.write(SPOT, spot, schema="prices", timezone="Asia/Kolkata")
    spec = hand_spec(fills={"as_of_tolerance_seconds": 5})
    loaded = load_day(lake, spec, HAND_DAY)
    assert isinstance(loaded, DayData)
    g = second_of("09:16:04")  # exactly 5 s after the last spot row
    # Joined: the spot itself. Not joined: the put-call parity value of that second,
    # 48,000 + 200.25 - 180.20 = 48,020.05 (so the two cases cannot be confused).
    parity = 4_800_000 + 20_025 - 18_020
    expected = 4_802_000 if shift_ns == 0 else parity
    assert loaded.spot_paise[g] == expected
    assert loaded.spot_paise[g + 1] == parity  # 6 s: never joined
    assert loaded.spot_source == "spot+parity"


# ------------------------------------------------------------------- crossings
def _market_lake(root: Path, ce_last: list[tuple[str, float]]) -> Any:
    """The chain with a last price on the 48,000 CE, piecewise from HH:MM:SS."""
    chain = _chain()
    frame = chain.option_frame()
    clock = frame["ts"].dt.convert_time_zone("Asia/Kolkata").dt.strftime("%H:%M:%S")
    values = []
    for local, strike, opt_type in zip(clock, frame["strike"], frame["opt_type"], strict=True):
        value = None
        if (strike, opt_type) == (48000.0, "CE"):
            for start, price in ce_last:
                if local >= start:
                    value = price
        values.append(value)
    frame = frame.with_columns(
        pl.Series("last_price", values, dtype=pl.Float64),
        pl.int_range(pl.len()).over("symbol").cast(pl.Int64).alias("volume"),
    )
    lake = init_lake(root)
    lake.write(OPTIONS, frame, schema="option_snapshots", timezone="Asia/Kolkata")
    lake.write(SPOT, chain.spot_frame(), schema="prices", timezone="Asia/Kolkata")
    return lake


def _entries(outcome: DayOutcome) -> list[Any]:
    return outcome.trades.filter(pl.col("reason") == "entry")["ts"].unique().sort().to_list()


def _exits(outcome: DayOutcome) -> list[tuple[Any, str]]:
    closes = outcome.trades.filter(pl.col("side") == "buy")
    return sorted({(r["ts"], r["reason"]) for r in closes.iter_rows(named=True)})


# Up: 110 → 120 (now equal: not above, no crossing) → 125 (the previous second equals
# the threshold, "<=": a crossing). Down: 130 → 120 (not below) → 115 (crosses).
UP, DOWN = (110.0, 120.0, 125.0), (130.0, 120.0, 115.0)


def _path(values: tuple[float, ...], clocks: tuple[str, ...]) -> list[tuple[str, float]]:
    return list(zip(clocks, values, strict=True))


@pytest.mark.parametrize(("op", "values"), [("crosses_above", UP), ("crosses_below", DOWN)])
def test_entry_crossing_from_exactly_the_threshold(
    tmp_path: Path, op: str, values: tuple[float, ...]
) -> None:
    path = _path(values, ("09:15:00", "09:16:30", "09:17:10"))
    lake = _market_lake(tmp_path / "lake", path)
    outcome = run_day(lake, hand_spec(entry={"when": f"ce.ltp {op} 120"}), HAND_DAY)
    assert _entries(outcome) == [ist("09:17:10")]


@pytest.mark.parametrize(("op", "values"), [("crosses_above", UP), ("crosses_below", DOWN)])
def test_exit_crossing_from_exactly_the_threshold(
    tmp_path: Path, op: str, values: tuple[float, ...]
) -> None:
    path = _path(values, ("09:15:00", "09:18:00", "09:19:00"))
    lake = _market_lake(tmp_path / "lake", path)
    outcome = run_day(lake, hand_spec(exits={"when": f"ce.ltp {op} 120"}), HAND_DAY)
    assert _entries(outcome) == [ist("09:16:00")]
    assert _exits(outcome) == [(ist("09:19:00"), "exit_condition")]


def test_a_crossing_never_fires_on_reaching_the_threshold_only(tmp_path: Path) -> None:
    # 110 → 120 and it stays there: never above, so neither entry nor exit fires.
    path = [("09:15:00", 110.0), ("09:16:30", 120.0)]
    lake = _market_lake(tmp_path / "lake", path)
    entry = run_day(lake, hand_spec(entry={"when": "ce.ltp crosses_above 120"}), HAND_DAY)
    assert entry.summary["status"] == "no_trade"
    exit_ = run_day(lake, hand_spec(exits={"when": "ce.ltp crosses_above 120"}), HAND_DAY)
    assert _exits(exit_) == [(ist("09:25:00"), "exit_time")]
    assert ist("09:25:00") - ist("09:16:00") == timedelta(minutes=9)
