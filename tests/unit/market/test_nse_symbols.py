from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticklake.market.calendar import expiries
from ticklake.market.nse_symbols import (
    FutureContract,
    OptionContract,
    SymbolError,
    file_name,
    format_future_symbol,
    format_symbol,
    parse_future_symbol,
    parse_symbol,
)


def test_monthly_symbol() -> None:
    contract = parse_symbol("BANKNIFTY24JAN48000CE")
    assert contract == OptionContract("BANKNIFTY", date(2024, 1, 25), 48000.0, "CE", False)


def test_weekly_symbol() -> None:
    contract = parse_symbol("BANKNIFTY2411048000CE")
    assert contract == OptionContract("BANKNIFTY", date(2024, 1, 10), 48000.0, "CE", True)


def test_weekly_month_codes_o_n_d() -> None:
    assert parse_symbol("NIFTY23O1919500PE").expiry == date(2023, 10, 19)
    assert parse_symbol("NIFTY23N0919500PE").expiry == date(2023, 11, 9)
    assert parse_symbol("NIFTY23D2819500PE").expiry == date(2023, 12, 28)


def test_file_names() -> None:
    monthly = parse_symbol("banknifty25aug48000ce.parquet")
    assert monthly == OptionContract("BANKNIFTY", date(2025, 8, 28), 48000.0, "CE", False)
    weekly = parse_symbol("/data/2019-04-08/banknifty1941128500ce.parquet")
    assert weekly == OptionContract("BANKNIFTY", date(2019, 4, 11), 28500.0, "CE", True)
    assert file_name(weekly) == "banknifty1941128500ce.parquet"


def test_decimal_strike_round_trips() -> None:
    contract = OptionContract("NIFTY", date(2024, 1, 25), 21050.5, "PE", False)
    assert format_symbol(contract) == "NIFTY24JAN21050.5PE"
    assert parse_symbol("NIFTY24JAN21050.5PE") == contract


def test_future_symbol() -> None:
    contract = FutureContract("BANKNIFTY", date(2017, 1, 25))
    assert format_future_symbol(contract) == "BANKNIFTY17JANFUT"
    assert parse_future_symbol("BANKNIFTY17JANFUT") == contract


@pytest.mark.parametrize(
    ("symbol", "needle"),
    [
        ("BANKNIFTY24JAN48000XE", "option type must end the symbol as CE or PE"),
        ("BANKNIFTY24XYZ48000CE", "expected a month"),
        ("BANKNIFTY2413248000CE", "weekly expiry part '24132' is not a date"),
        ("BANKNIFTY24JANCE", "strike part"),
        ("12345", "no underlying name"),
        ("BANKNIFTY10JAN48000CE", "cannot date the monthly expiry JAN 2010"),
        ("", "non-empty"),
    ],
)
def test_bad_symbols_say_which_part_failed(symbol: str, needle: str) -> None:
    with pytest.raises(SymbolError) as info:
        parse_symbol(symbol)
    assert needle in str(info.value)


_ALL_EXPIRIES = {
    name: (
        expiries(name, date(2017, 1, 1), date(2026, 11, 30), "weekly"),
        expiries(name, date(2017, 1, 1), date(2026, 11, 30), "monthly"),
    )
    for name in ("BANKNIFTY", "NIFTY")
}


@st.composite
def contracts(draw: st.DrawFn) -> OptionContract:
    underlying = draw(st.sampled_from(sorted(_ALL_EXPIRIES)))
    weekly_dates, monthly_dates = _ALL_EXPIRIES[underlying]
    weekly = draw(st.booleans())
    pool = [d for d in weekly_dates if d not in set(monthly_dates)] if weekly else monthly_dates
    expiry = draw(st.sampled_from(pool))
    step = 100 if underlying == "BANKNIFTY" else 50
    strike = float(step * draw(st.integers(min_value=1, max_value=1500)))
    opt_type = draw(st.sampled_from(["CE", "PE"]))
    return OptionContract(underlying, expiry, strike, opt_type, weekly)


@settings(max_examples=300, deadline=None)
@given(contracts())
def test_format_then_parse_round_trips(contract: OptionContract) -> None:
    symbol = format_symbol(contract)
    assert parse_symbol(symbol) == contract
    assert parse_symbol(file_name(contract)) == contract
