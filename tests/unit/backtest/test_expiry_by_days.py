"""``universe.expiry: by_days_to_expiry``: the expiry closest to a target number of days.

Hand cases on ``choose_expiry`` (the floor of ``min_days_to_expiry`` still applies; a tie
goes to the nearer expiry), then end to end on a generated day holding the weekly
(2024-01-10) and the monthly (2024-01-25) BANKNIFTY expiries.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from ticklake.backtest.data import choose_expiry
from ticklake.backtest.runner import run_backtest
from ticklake.backtest.spec import parse_spec
from ticklake.errors import ConfigError
from ticklake.strategies import template_path

MONDAY = date(2024, 1, 8)
WEEKLY, NEXT_WEEKLY, MONTHLY, FAR = (
    date(2024, 1, 10),
    date(2024, 1, 17),
    date(2024, 1, 25),
    date(2024, 2, 29),
)


def _spec(**universe: Any) -> Any:
    data = yaml.safe_load(template_path("atm_straddle_hourly").read_text())
    data["universe"] = {**data["universe"], **universe}
    data["time"] = {**data["time"], "start": MONDAY.isoformat(), "end": MONDAY.isoformat()}
    return parse_spec(data)


@pytest.mark.parametrize(
    ("target", "floor", "expected"),
    [
        (0, 0, WEEKLY),  # 2 days away is the closest to 0
        (7, 0, NEXT_WEEKLY),  # 9 days: |9-7| = 2 beats |2-7| = 5
        (13, 0, NEXT_WEEKLY),  # 9 and 17 days are both 4 away: the nearer one wins
        (14, 0, MONTHLY),  # 17 days: 3 away
        (30, 0, MONTHLY),  # 17 days (13 away) beats 52 days (22 away)
        (60, 0, FAR),
        (0, 3, NEXT_WEEKLY),  # the floor removes the 2-day weekly first
    ],
)
def test_the_closest_expiry_wins(target: int, floor: int, expected: date) -> None:
    spec = _spec(expiry="by_days_to_expiry", target_days_to_expiry=target, min_days_to_expiry=floor)
    assert choose_expiry(spec, MONDAY, [FAR, MONTHLY, WEEKLY, NEXT_WEEKLY]) == expected


def test_the_target_and_the_choice_go_together() -> None:
    with pytest.raises(ConfigError, match="needs target_days_to_expiry"):
        _spec(expiry="by_days_to_expiry")
    with pytest.raises(ConfigError, match="applies only to expiry: by_days_to_expiry"):
        _spec(expiry="nearest", target_days_to_expiry=30)


@pytest.fixture(scope="module")
def two_expiry_lake(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from ticklake import init_lake
    from ticklake.generate import generate_options
    from ticklake.ingest.pipeline import ingest_files
    from ticklake.ingest.readers.base import ReaderOptions

    root: Path = tmp_path_factory.mktemp("expiries")
    generate_options(
        "BANKNIFTY", start=MONDAY, days=1, out=root / "raw", strikes_each_side=3, seed=3
    )
    lake = init_lake(root / "lake")
    ingest_files(lake, "nse_options", [root / "raw" / "options"], "banknifty_options")
    ingest_files(
        lake,
        "nse_index",
        [root / "raw" / "spot"],
        "banknifty_spot",
        options=ReaderOptions(instrument="BANKNIFTY"),
    )
    return lake


@pytest.mark.parametrize(("target", "expected"), [(1, WEEKLY), (20, MONTHLY)])
def test_a_run_trades_the_expiry_closest_to_its_target(
    two_expiry_lake: Any, target: int, expected: date
) -> None:
    lake = two_expiry_lake
    held = lake.sql("SELECT DISTINCT expiry FROM banknifty_options ORDER BY 1")["expiry"]
    assert held.to_list() == [WEEKLY, MONTHLY]
    spec = _spec(expiry="by_days_to_expiry", target_days_to_expiry=target)
    run = run_backtest(lake, spec, executor="serial", run_id=f"by-days-{target}")
    trades = run.trades()
    assert trades.height > 0
    assert set(trades["expiry"].to_list()) == {expected}
    assert run.daily()["expiry"].to_list() == [expected]
