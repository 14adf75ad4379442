from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ticklake.errors import ConfigError
from ticklake.market.rules import DEFAULT_RULES_PATH, market_rules


@pytest.mark.parametrize(
    ("underlying", "day", "lot_size"),
    [
        ("BANKNIFTY", date(2017, 1, 2), 40),
        ("BANKNIFTY", date(2018, 10, 26), 20),
        ("BANKNIFTY", date(2020, 7, 23), 20),
        ("BANKNIFTY", date(2020, 7, 24), 25),
        ("BANKNIFTY", date(2023, 8, 1), 15),
        ("BANKNIFTY", date(2025, 3, 3), 30),
        ("BANKNIFTY", date(2025, 7, 15), 35),
        ("BANKNIFTY", date(2026, 2, 2), 30),
        ("NIFTY", date(2018, 5, 2), 75),
        ("NIFTY", date(2022, 6, 1), 50),
        ("NIFTY", date(2024, 6, 3), 25),
        ("NIFTY", date(2025, 3, 3), 75),
        ("NIFTY", date(2026, 2, 2), 65),
    ],
)
def test_lot_sizes_follow_the_circulars(underlying: str, day: date, lot_size: int) -> None:
    assert market_rules(underlying, day).lot_size == lot_size


def test_expiry_weekdays_change_on_the_documented_dates() -> None:
    thursday, wednesday, tuesday = 3, 2, 1
    assert market_rules("BANKNIFTY", date(2023, 9, 1)).weekly_expiry_weekday == thursday
    assert market_rules("BANKNIFTY", date(2023, 9, 4)).weekly_expiry_weekday == wednesday
    assert market_rules("BANKNIFTY", date(2024, 2, 29)).monthly_expiry_weekday == thursday
    assert market_rules("BANKNIFTY", date(2024, 3, 1)).monthly_expiry_weekday == wednesday
    assert market_rules("BANKNIFTY", date(2024, 11, 13)).weekly_expiry_weekday == wednesday
    assert market_rules("BANKNIFTY", date(2024, 11, 14)).weekly_expiry_weekday is None
    assert market_rules("NIFTY", date(2025, 8, 29)).weekly_expiry_weekday == tuesday
    assert market_rules("NIFTY", date(2018, 1, 1)).weekly_expiry_weekday is None


def test_rules_are_frozen_and_carry_steps_and_ticks() -> None:
    rules = market_rules("banknifty", date(2024, 1, 10))
    assert (rules.strike_step, rules.tick_size) == (100.0, 0.05)
    assert market_rules("NIFTY", date(2024, 1, 10)).strike_step == 50.0
    with pytest.raises(AttributeError):
        rules.lot_size = 1  # type: ignore[misc]


def test_unknown_underlying_names_it_and_the_file() -> None:
    with pytest.raises(ConfigError) as info:
        market_rules("FINNIFTY", date(2024, 1, 10))
    message = str(info.value)
    assert "'FINNIFTY'" in message and str(DEFAULT_RULES_PATH) in message
    assert "BANKNIFTY" in message  # lists the known ones


def test_date_before_the_rules_names_date_and_file() -> None:
    with pytest.raises(ConfigError) as info:
        market_rules("NIFTY", date(2015, 3, 2))
    assert "NIFTY on 2015-03-02" in str(info.value)
    assert "market_rules.csv" in str(info.value)


def test_user_rules_file_is_used(tmp_path: Path) -> None:
    path = tmp_path / "rules.csv"
    path.write_text(
        "underlying,valid_from,valid_to,lot_size,strike_step,tick_size,"
        "weekly_expiry_weekday,monthly_expiry_weekday,source\n"
        "FINNIFTY,2023-01-01,,40,50,0.05,TUE,TUE,test\n"
    )
    rules = market_rules("FINNIFTY", date(2023, 5, 5), rules_path=path)
    assert (rules.lot_size, rules.weekly_expiry_weekday, rules.source) == (40, 1, "test")


def test_bad_cell_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "rules.csv"
    path.write_text(
        "underlying,valid_from,valid_to,lot_size,strike_step,tick_size,"
        "weekly_expiry_weekday,monthly_expiry_weekday,source\n"
        "X,2023-01-01,,40,50,0.05,TUE,TUE,\n"
        "Y,2023-01-01,,40,50,0.05,FUNDAY,TUE,\n"
    )
    with pytest.raises(ConfigError, match=r"line 3, column 'weekly_expiry_weekday'"):
        market_rules("X", date(2023, 5, 5), rules_path=path)


def test_overlapping_rows_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "rules.csv"
    path.write_text(
        "underlying,valid_from,valid_to,lot_size,strike_step,tick_size,"
        "weekly_expiry_weekday,monthly_expiry_weekday,source\n"
        "X,2023-01-01,2023-06-30,40,50,0.05,TUE,TUE,\n"
        "X,2023-06-01,,25,50,0.05,TUE,TUE,\n"
    )
    with pytest.raises(ConfigError, match="overlap"):
        market_rules("X", date(2023, 5, 5), rules_path=path)


def test_shipped_file_has_a_source_for_every_row() -> None:
    import csv

    with DEFAULT_RULES_PATH.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["underlying"] for r in rows} == {"BANKNIFTY", "NIFTY"}
    assert all(r["source"].strip() for r in rows)
    assert min(r["valid_from"] for r in rows) <= "2017-01-01"
