"""Implied volatility and greeks against py_vollib (Black–Scholes–Merton, lets-be-rational)."""

from __future__ import annotations

import itertools
import warnings
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ticklake.analytics.registry import NoParams, get_metric
from ticklake.errors import ConfigError

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # py_vollib points at 'vollib'
    from py_vollib.black_scholes_merton import black_scholes_merton
    from py_vollib.black_scholes_merton.greeks import analytical
    from py_vollib.black_scholes_merton.implied_volatility import implied_volatility

SPOT = 22_000.0
MONEYNESS = (0.7, 0.85, 0.95, 1.0, 1.05, 1.2, 1.4)  # spot / strike
EXPIRY_DAYS = (1, 7, 30, 91, 365)
VOLATILITIES = (0.05, 0.15, 0.3, 0.6, 1.2)
RATES = ((0.0, 0.0), (0.065, 0.0), (0.05, 0.02))


def _reference_grid(informative_only: bool = True) -> pl.DataFrame:
    """Options priced by py_vollib, with py_vollib's own IV and greeks at that IV.

    ``informative_only`` drops the cases whose float price does not pin the volatility
    down (vega below 1e-6 per volatility point: py_vollib itself then returns another
    volatility than it priced with, or zero, for deep ITM/OTM one-day options).
    """
    rows = []
    for moneyness, days, vol, (rate, dividend), flag in itertools.product(
        MONEYNESS, EXPIRY_DAYS, VOLATILITIES, RATES, "cp"
    ):
        strike, years = SPOT / moneyness, days / 365
        price = black_scholes_merton(flag, SPOT, strike, years, rate, vol, dividend)
        vega = analytical.vega(flag, SPOT, strike, years, rate, vol, dividend)
        if informative_only and vega < 1e-6:
            continue
        iv = implied_volatility(price, SPOT, strike, years, rate, dividend, flag)
        args = (flag, SPOT, strike, years, rate, iv, dividend)
        rows.append(
            {
                "price": price,
                "spot": SPOT,
                "strike": strike,
                "years_to_expiry": years,
                "is_call": flag == "c",
                "rate": rate,
                "dividend_yield": dividend,
                "true_volatility": vol,
                "implied_volatility": iv,
                "delta": analytical.delta(*args),
                "gamma": analytical.gamma(*args),
                "vega_per_volatility_point": analytical.vega(*args),
                "theta_per_day": analytical.theta(*args),
            }
        )
    return pl.DataFrame(rows)


@pytest.fixture(scope="module")
def reference() -> pl.DataFrame:
    return _reference_grid()


def _evaluate(frame: pl.DataFrame, name: str, **params: object) -> pl.Series:
    m = get_metric(name)
    return frame.select(m.series(m.parse_params(params))).to_series()


GREEKS = ("implied_volatility", "delta", "gamma", "vega_per_volatility_point", "theta_per_day")


@pytest.mark.parametrize("name", GREEKS)
def test_matches_py_vollib_to_1e_6(reference: pl.DataFrame, name: str) -> None:
    assert reference.height >= 780  # most of the 1,050 cases are informative
    for (rate, dividend), group in reference.group_by(["rate", "dividend_yield"]):
        ours = _evaluate(group, name, price_source="last", rate=rate, dividend_yield=dividend)
        assert ours.null_count() == 0, name
        error = (ours - group[name]).abs() / np.maximum(1.0, group[name].abs())
        worst = int(error.arg_max())
        assert error.max() < 1e-6, (name, group.row(worst, named=True), ours[worst])


def test_implied_volatility_recovers_the_pricing_volatility(reference: pl.DataFrame) -> None:
    for (rate, dividend), group in reference.group_by(["rate", "dividend_yield"]):
        ours = _evaluate(group, "iv", price_source="last", rate=rate, dividend_yield=dividend)
        assert ((ours - group["true_volatility"]).abs() < 1e-6).all()


def test_never_a_wrong_number_on_the_whole_grid() -> None:
    """Deep ITM/OTM one-day options: either null or the pricing volatility to 1e-6."""
    whole = _reference_grid(informative_only=False)
    assert whole.height == 7 * 5 * 5 * 3 * 2
    for (rate, dividend), group in whole.group_by(["rate", "dividend_yield"]):
        ours = _evaluate(group, "iv", price_source="last", rate=rate, dividend_yield=dividend)
        answered = ours.is_not_null()
        assert ((ours - group["true_volatility"]).abs().filter(answered) < 1e-6).all()
        assert answered.sum() >= 0.7 * group.height


def test_mid_is_the_default_price_and_bad_quotes_give_null() -> None:
    call_price = black_scholes_merton("c", 100.0, 100.0, 0.5, 0.0, 0.25, 0.0)
    frame = pl.DataFrame(
        {
            "bid": [call_price - 0.05, 0.0, 5.0, None],
            "ask": [call_price + 0.05, call_price, 4.0, 8.0],
            "price": [1.0, call_price, call_price, call_price],
            "spot": [100.0] * 4,
            "strike": [100.0] * 4,
            "years_to_expiry": [0.5] * 4,
            "is_call": [True] * 4,
        }
    )
    mid = _evaluate(frame, "implied_volatility").to_list()
    assert mid[0] == pytest.approx(0.25, abs=1e-9)
    assert mid[1:] == [None, None, None]  # zero bid, crossed quote, missing bid
    last = _evaluate(frame, "implied_volatility", price_source="last").to_list()
    assert last[1:] == pytest.approx([0.25] * 3, abs=1e-9)


def test_prices_outside_no_arbitrage_bounds_give_null_never_a_number() -> None:
    spot, strike, years, rate = 100.0, 90.0, 0.25, 0.065
    discounted_strike = strike * np.exp(-rate * years)
    call_floor = spot - discounted_strike
    put_floor = 120.0 * np.exp(-rate * years) - spot  # a put struck at 120
    rows = [
        (call_floor - 0.01, strike, True),  # below intrinsic
        (call_floor, strike, True),  # at the floor: volatility zero, not identifiable
        (spot - strike - 0.5, strike, True),  # below spot intrinsic too
        (spot, strike, True),  # at the call's upper bound
        (put_floor - 0.01, 120.0, False),
        (120.0, 120.0, False),  # above the discounted strike
        (-1.0, strike, True),
        (0.0, strike, True),
        (float("nan"), strike, True),
    ]
    frame = pl.DataFrame(
        {
            "price": [r[0] for r in rows],
            "spot": spot,
            "strike": [r[1] for r in rows],
            "years_to_expiry": years,
            "is_call": [r[2] for r in rows],
        }
    )
    for name in GREEKS:
        values = _evaluate(frame, name, price_source="last", rate=rate)
        assert values.null_count() == len(rows), (name, values.to_list())
    # just above the floor there is an answer again, and py_vollib agrees
    tiny = pl.DataFrame(
        {
            "price": [call_floor + 0.5],
            "spot": [spot],
            "strike": [strike],
            "years_to_expiry": [years],
            "is_call": [True],
        }
    )
    ours = _evaluate(tiny, "iv", price_source="last", rate=rate).item()
    theirs = implied_volatility(call_floor + 0.5, spot, strike, years, rate, 0.0, "c")
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_missing_inputs_and_expired_contracts_give_null() -> None:
    frame = pl.DataFrame(
        {
            "price": [5.0, 5.0, 5.0, 5.0, None],
            "spot": [100.0, None, 100.0, 100.0, 100.0],
            "strike": [100.0, 100.0, 100.0, 100.0, 100.0],
            "years_to_expiry": [0.0, 0.1, -0.01, 0.1, 0.1],
            "is_call": [True, True, True, None, True],
        },
        schema_overrides={"is_call": pl.Boolean},
    )
    assert _evaluate(frame, "delta", price_source="last").to_list() == [None] * 5


def test_vectorised_over_instruments_and_integer_columns() -> None:
    strikes = [21_800, 22_000, 22_200]
    rows = []
    for strike in strikes:
        for second, spot in enumerate((22_010.0, 22_020.0, 21_990.0)):
            price = black_scholes_merton("p", spot, strike, 3 / 365, 0.0, 0.14, 0.0)
            rows.append(
                {
                    "symbol": f"NIFTY{strike}PE",
                    "second": second,
                    "price": price,
                    "spot": spot,
                    "strike": strike,
                    "years_to_expiry": 3 / 365,
                    "is_call": False,
                }
            )
    frame = pl.DataFrame(rows)
    m = get_metric("delta")
    out = frame.with_columns(m.series(m.parse_params({"price_source": "last"})).over("symbol"))
    expected = [
        analytical.delta("p", r["spot"], r["strike"], 3 / 365, 0.0, 0.14, 0.0) for r in rows
    ]
    assert out["delta_last"].to_list() == pytest.approx(expected, abs=1e-6)
    assert get_metric("theta").name == "theta_per_day" and get_metric("vega").name.startswith(
        "vega"
    )


# ----------------------------------------------------------------------- days to expiry
#: NSE's published trading holidays of 2024 that fall on weekdays (NSE circular
#: NSE/CMTR/59722; 22 January was added as a special holiday).
NSE_HOLIDAYS_2024 = [
    "2024-01-22", "2024-01-26", "2024-03-08", "2024-03-25", "2024-03-29", "2024-04-11",
    "2024-04-17", "2024-05-01", "2024-05-20", "2024-06-17", "2024-07-17", "2024-08-15",
    "2024-10-02", "2024-11-01", "2024-11-15", "2024-11-20", "2024-12-25",
]  # fmt: skip


def _days_to_expiry(session_dates: list[date | None], expiry_dates: list[date]) -> pl.DataFrame:
    frame = pl.DataFrame(
        {"session_date": session_dates, "expiry": expiry_dates},
        schema={"session_date": pl.Date, "expiry": pl.Date},
    )
    return frame.select(
        get_metric("days_to_expiry").series(NoParams()),
        get_metric("trading_days_to_expiry").series(NoParams()),
    )


@pytest.mark.parametrize(
    ("session", "expiry", "calendar_days", "trading_days"),
    [
        (date(2024, 1, 10), date(2024, 1, 10), 0, 0),  # expiry day
        (date(2024, 1, 9), date(2024, 1, 10), 1, 1),
        (date(2024, 1, 5), date(2024, 1, 10), 5, 3),  # Fri -> Wed: Mon, Tue, Wed
        (date(2024, 3, 22), date(2024, 3, 27), 5, 2),  # Mon 25th Holi
        (date(2024, 3, 26), date(2024, 4, 3), 8, 5),  # Fri 29th Good Friday
        (date(2024, 1, 20), date(2024, 1, 24), 4, 2),  # a Saturday; Mon 22nd closed
        (date(2024, 1, 25), date(2024, 1, 24), -1, -1),  # expired yesterday
        (date(2024, 1, 29), date(2024, 1, 25), -4, -1),  # (25th, 29th]: Fri 26th closed
    ],
)
def test_days_to_expiry_by_hand(
    session: date, expiry: date, calendar_days: int, trading_days: int
) -> None:
    got = _days_to_expiry([session], [expiry]).row(0)
    assert got == (calendar_days, trading_days)


def test_trading_days_to_expiry_matches_the_published_holiday_list() -> None:
    sessions = [date(2024, 1, 1) + timedelta(days=i) for i in range(0, 350, 3)]
    pairs = [(s, s + timedelta(days=gap)) for s in sessions for gap in (0, 1, 2, 4, 6, 9, 13)]
    got = _days_to_expiry([s for s, _ in pairs], [e for _, e in pairs])
    start = np.array([s for s, _ in pairs], dtype="datetime64[D]")
    end = np.array([e for _, e in pairs], dtype="datetime64[D]")
    # Business days in (session, expiry]: numpy counts [begin, end), so shift both by one.
    want = np.busday_count(start + 1, end + 1, holidays=NSE_HOLIDAYS_2024)
    assert got["trading_days_to_expiry"].to_list() == want.tolist()
    assert got["days_to_expiry"].to_list() == [(e - s).days for s, e in pairs]


def test_days_to_expiry_nulls_and_errors() -> None:
    got = _days_to_expiry([None, date(2024, 1, 9)], [date(2024, 1, 10)] * 2)
    assert got.rows() == [(None, None), (1, 1)]
    with pytest.raises(ConfigError) as info:
        _days_to_expiry([date(2024, 1, 9)], [date(2090, 1, 10)])
    message = str(info.value)
    assert "trading_days_to_expiry: 2090-01-10 is outside the XBOM calendar" in message
    assert "upgrade exchange-calendars" in message and "use days_to_expiry" in message


def test_days_to_expiry_in_the_option_pipeline(tmp_path: Path) -> None:
    """Over option snapshots (``option_grid``), against each contract's NSE symbol."""
    from ticklake.analytics.pipeline import parse_pipeline
    from ticklake.analytics.run import run_pipeline
    from ticklake.generate import generate_options
    from ticklake.ingest.pipeline import ingest_files
    from ticklake.ingest.readers.base import ReaderOptions
    from ticklake.lake import init_lake
    from ticklake.market.nse_symbols import parse_symbol

    raw = tmp_path / "vendor"
    # Thursday 2024-03-07 and Monday 2024-03-11 (Fri 8th was a holiday); weekly and
    # monthly contracts.
    generate_options(
        "BANKNIFTY",
        start=date(2024, 3, 7),
        days=2,
        out=raw,
        seed=3,
        strikes_each_side=1,
        expiries=("weekly", "monthly"),
        seconds_step=60,
    )
    lake = init_lake(tmp_path / "lake")
    ingest_files(lake, "nse_options", [raw / "options"], "banknifty_options")
    spot = ReaderOptions(instrument="BANKNIFTY")
    ingest_files(lake, "nse_index", [raw / "spot"], "banknifty_spot", options=spot)
    spec = parse_pipeline(
        {
            "name": "expiry_days",
            "universe": ["BANKNIFTY"],
            "timezone": "Asia/Kolkata",
            "bucket": {"width": "1h"},
            "passes": [
                {
                    "name": "days",
                    "input": "banknifty_options",
                    "preprocess": [
                        {
                            "kind": "option_grid",
                            "underlying": "banknifty_spot",
                            "expiry_time": "15:30",
                        }
                    ],
                    "modules": [{"metric": "days_to_expiry"}, {"metric": "trading_days_to_expiry"}],
                }
            ],
        }
    )
    run_pipeline(lake, spec, executor="serial")
    out = lake.read("gold.expiry_days_days")
    session = out["ts"].dt.convert_time_zone("Asia/Kolkata").dt.date()
    expiry = [parse_symbol(symbol).expiry for symbol in out["instrument"]]
    assert {day.isoformat() for day in session} == {"2024-03-07", "2024-03-11"}
    assert len(set(expiry)) == 2  # weekly and monthly contracts
    want_days = [(e - s).days for s, e in zip(session, expiry, strict=True)]
    start = np.array(session.to_list(), dtype="datetime64[D]")
    end = np.array(expiry, dtype="datetime64[D]")
    want_sessions = np.busday_count(start + 1, end + 1, holidays=NSE_HOLIDAYS_2024)
    assert out["days_to_expiry"].to_list() == want_days
    assert out["trading_days_to_expiry"].to_list() == want_sessions.tolist()
    # By hand: Thu 7th -> Wed 13th weekly is 6 calendar days but 3 sessions (11-13th).
    columns = (session, expiry, out["days_to_expiry"], out["trading_days_to_expiry"])
    got = set(zip(*columns, strict=True))
    assert (date(2024, 3, 7), date(2024, 3, 13), 6, 3) in got


# (spot, strike, years, flag, pricing volatility, the volatility the solver lands on
# exactly). In the money, the solver inverts the OTM twin (price - intrinsic); these
# iterates reproduce the twin's float price exactly.
EXACT_HITS = [
    (100.0, 80.25, 0.1, "c", 0.1, 0.10000362121041495),  # vega 3.5e-12 per point
    (100.0, 121.25, 0.02, "p", 0.2, 0.19999788779772776),
    (100.0, 61.25, 0.5, "c", 0.2, 0.20000000000005178),  # well pinned down
]


@pytest.mark.parametrize(("spot", "strike", "years", "flag", "vol", "hit"), EXACT_HITS)
def test_an_exact_hit_passes_the_resolution_guard(
    spot: float, strike: float, years: float, flag: str, vol: float, hit: float
) -> None:
    """Prices from py_vollib at ``vol``: the answer is ``vol`` to 1e-6 or null, never 1e-6 off."""
    from ticklake.analytics.metrics.options import VOLATILITY_RESOLUTION, _price

    price = black_scholes_merton(flag, spot, strike, years, 0.0, vol, 0.0)
    twin = "p" if flag == "c" else "c"
    intrinsic = abs(spot - strike)
    assert _price(spot, strike, years, 0.0, 0.0, hit, twin == "c") == price - intrinsic
    frame = pl.DataFrame(
        {
            "price": [price],
            "spot": [spot],
            "strike": [strike],
            "years_to_expiry": [years],
            "is_call": [flag == "c"],
        }
    )
    ours = _evaluate(frame, "iv", price_source="last").item()
    theirs = implied_volatility(price, spot, strike, years, 0.0, 0.0, flag)
    if abs(hit - vol) > VOLATILITY_RESOLUTION:
        # py_vollib lands within a hair of the same wrong volatility: the float price
        # does not pin it down, so ours refuses rather than answer 2-4e-6 off.
        assert abs(theirs - vol) > VOLATILITY_RESOLUTION
        assert ours is None
    else:
        assert ours == pytest.approx(vol, abs=1e-9)
        assert ours == pytest.approx(theirs, abs=1e-6)
