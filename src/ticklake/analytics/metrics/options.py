"""Option implied volatility and Black–Scholes–Merton greeks, vectorised over frames.

Series metrics over an option's rows (a backtest's 1 s grid of a contract, or option
snapshots joined to the underlying) with the columns ``bid``, ``ask``, ``price`` (last
traded), ``spot`` (underlying), ``strike``, ``years_to_expiry`` and ``is_call``. Every
row is independent (no look-ahead by construction). The option is priced European
with continuous rate ``rate`` and dividend yield ``dividend_yield`` (both default 0).

The implied volatility is solved per row by a Numba kernel: safeguarded Newton steps
inside a bisection bracket, to 1e-12 in volatility. Every exit (converged, bracket
closed, or an exact hit of the price) returns a volatility only when the price's float
rounding pins it down to ``VOLATILITY_RESOLUTION`` (1e-6), else null. A price outside
the no-arbitrage bounds (at or below the discounted intrinsic value, at or above the
spot for a call or the discounted strike for a put) has no implied volatility: the row
is null, and so are its greeks — never a wrong number. Greek conventions follow ``py_vollib``:
vega per volatility point (0.01), theta per calendar day (annual / 365).

The time left to expiry in days reads the row's ``session_date`` and the contract's
``expiry`` date: ``days_to_expiry`` counts calendar days, ``trading_days_to_expiry``
NSE sessions (the XBOM calendar of :mod:`ticklake.market.calendar`); both are 0 on the
expiry day itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, timedelta
from typing import Literal

import numba
import numpy as np
import polars as pl
from pydantic import Field

from ticklake.analytics.registry import MetricParams, NoParams, metric
from ticklake.errors import ConfigError

IMPLIED_VOLATILITY, DELTA, GAMMA, VEGA, THETA = range(5)
MAX_IMPLIED_VOLATILITY = 20.0
#: An implied volatility is returned only when the price's rounding pins it down this well.
VOLATILITY_RESOLUTION = 1e-6
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

OPTION_INPUTS = (
    "grid.bid",
    "grid.ask",
    "grid.price",
    "grid.spot",
    "grid.strike",
    "grid.years_to_expiry",
    "grid.is_call",
)


class OptionParams(MetricParams):
    """Which option price to invert and the rates of the Black–Scholes–Merton model."""

    price_source: Literal["mid", "last"] = Field(
        default="mid",
        description="'mid': (bid + ask) / 2 when both sides are positive; 'last': price",
    )
    rate: float = Field(default=0.0, description="continuously compounded risk-free rate")
    dividend_yield: float = Field(default=0.0, description="continuous dividend yield")


@numba.njit(cache=True)
def _norm_cdf(x: float) -> float:
    # erfc keeps relative precision in the left tail, where deep OTM prices live.
    return 0.5 * math.erfc(-x / _SQRT2)


@numba.njit(cache=True)
def _price(
    spot: float, strike: float, years: float, rate: float, dividend: float, vol: float, call: bool
) -> float:
    root = vol * math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate - dividend + 0.5 * vol * vol) * years) / root
    d2 = d1 - root
    discounted_spot = spot * math.exp(-dividend * years)
    discounted_strike = strike * math.exp(-rate * years)
    if call:
        return discounted_spot * _norm_cdf(d1) - discounted_strike * _norm_cdf(d2)
    return discounted_strike * _norm_cdf(-d2) - discounted_spot * _norm_cdf(-d1)


@numba.njit(cache=True)
def _implied_volatility(
    price: float, spot: float, strike: float, years: float, rate: float, dividend: float, call: bool
) -> float:
    """Solve price(vol) = price; NaN when no volatility in (0, MAX] reproduces it."""
    if not (price > 0.0 and spot > 0.0 and strike > 0.0 and years > 0.0):
        return math.nan  # also catches NaN inputs
    discounted_spot = spot * math.exp(-dividend * years)
    discounted_strike = strike * math.exp(-rate * years)
    if call:
        lower, upper = max(discounted_spot - discounted_strike, 0.0), discounted_spot
    else:
        lower, upper = max(discounted_strike - discounted_spot, 0.0), discounted_strike
    if price <= lower or price >= upper:
        return math.nan
    # The rounding noise of a float price: relative to an OTM price, absolute (of the
    # parity terms) to the time value of an ITM one.
    noise = 16.0 * 2.220446049250313e-16 * price
    if lower > 0.0:
        # In the money: solve the out-of-the-money twin (put-call parity) instead, whose
        # price is the time value. Pricing the ITM option directly subtracts two numbers
        # near the strike and drowns the time value in rounding.
        price, call = price - lower, not call
        noise = 16.0 * 2.220446049250313e-16 * max(discounted_spot, discounted_strike)
        if price <= noise:
            return math.nan  # the time value is rounding noise: no volatility is identified
    low, high = 0.0, MAX_IMPLIED_VOLATILITY
    if _price(spot, strike, years, rate, dividend, high, call) < price:
        return math.nan
    # Brenner-Subrahmanyam start, clamped into the bracket.
    vol = min(max(math.sqrt(2.0 * math.pi / years) * price / spot, 0.05), 2.0)
    root_years = math.sqrt(years)
    for _ in range(200):
        difference = _price(spot, strike, years, rate, dividend, vol, call) - price
        d1 = (math.log(spot / strike) + (rate - dividend + 0.5 * vol * vol) * years) / (
            vol * root_years
        )
        vega = discounted_spot * _INV_SQRT_2PI * math.exp(-0.5 * d1 * d1) * root_years
        if difference == 0.0:
            # An exact hit is no better pinned down than a converged one: same guard.
            return vol if noise < VOLATILITY_RESOLUTION * vega else math.nan
        if difference > 0.0:
            high = vol
        else:
            low = vol
        newton = vol - difference / vega if vega > 0.0 else -1.0
        tolerance = 1e-12 * max(1.0, vol)
        if abs(newton - vol) <= tolerance and low <= newton <= high:
            # Refuse a volatility the price does not pin down to 1e-6 (tiny vega).
            return newton if noise < VOLATILITY_RESOLUTION * vega else math.nan
        if high - low <= tolerance:
            return 0.5 * (low + high) if noise < VOLATILITY_RESOLUTION * vega else math.nan
        # Newton left the bracket (tiny vega far from the root): bisect instead.
        vol = newton if low < newton < high else 0.5 * (low + high)
    return math.nan


@numba.njit(cache=True)
def _greek_kernel(
    price: np.ndarray,
    spot: np.ndarray,
    strike: np.ndarray,
    years: np.ndarray,
    call: np.ndarray,
    rate: float,
    dividend: float,
    which: int,
) -> np.ndarray:
    out = np.empty(price.size)
    for i in range(price.size):
        vol = _implied_volatility(price[i], spot[i], strike[i], years[i], rate, dividend, call[i])
        if which == IMPLIED_VOLATILITY or math.isnan(vol):
            out[i] = vol
            continue
        s, k, t = spot[i], strike[i], years[i]
        root = vol * math.sqrt(t)
        d1 = (math.log(s / k) + (rate - dividend + 0.5 * vol * vol) * t) / root
        d2 = d1 - root
        spot_discount = math.exp(-dividend * t)
        strike_discount = math.exp(-rate * t)
        density = _INV_SQRT_2PI * math.exp(-0.5 * d1 * d1)
        if which == DELTA:
            out[i] = spot_discount * (_norm_cdf(d1) if call[i] else _norm_cdf(d1) - 1.0)
        elif which == GAMMA:
            out[i] = spot_discount * density / (s * root)
        elif which == VEGA:
            out[i] = s * spot_discount * density * math.sqrt(t) * 0.01
        else:
            decay = -s * spot_discount * density * vol / (2.0 * math.sqrt(t))
            sign = 1.0 if call[i] else -1.0
            carry = sign * dividend * s * spot_discount * _norm_cdf(sign * d1)
            interest = -sign * rate * k * strike_discount * _norm_cdf(sign * d2)
            out[i] = (decay + carry + interest) / 365.0
    return out


def option_greek(
    price: np.ndarray,
    spot: np.ndarray,
    strike: np.ndarray,
    years_to_expiry: np.ndarray,
    is_call: np.ndarray,
    *,
    rate: float = 0.0,
    dividend_yield: float = 0.0,
    which: int = IMPLIED_VOLATILITY,
) -> np.ndarray:
    """Return the implied volatility (or a greek at it) of every option; NaN where none.

    Examples:
        >>> import numpy as np
        >>> one = lambda v: np.array([v])
        >>> iv = option_greek(one(7.965567455405804), one(100.0), one(100.0), one(1.0), one(True))
        >>> round(float(iv[0]), 10)
        0.2
    """

    def floats(values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(values, dtype=np.float64)

    return _greek_kernel(
        floats(price),
        floats(spot),
        floats(strike),
        floats(years_to_expiry),
        np.ascontiguousarray(is_call, dtype=np.bool_),
        float(rate),
        float(dividend_yield),
        which,
    )


def _option_price(source: str) -> pl.Expr:
    if source == "last":
        return pl.col("price")
    bid, ask = pl.col("bid"), pl.col("ask")
    # A zero or crossed quote is no quote: its mid would invert to a wrong volatility.
    return pl.when((bid > 0) & (ask > 0) & (ask >= bid)).then((bid + ask) / 2)


def _greek_expression(params: OptionParams, which: int) -> pl.Expr:
    columns = pl.struct(
        _option_price(params.price_source).cast(pl.Float64).alias("option_price"),
        pl.col("spot").cast(pl.Float64),
        pl.col("strike").cast(pl.Float64),
        pl.col("years_to_expiry").cast(pl.Float64),
        pl.col("is_call"),
    )

    def compute(batch: pl.Series) -> pl.Series:
        frame = batch.struct.unnest()
        call = frame["is_call"]
        price = frame["option_price"].to_numpy().copy()
        price[call.is_null().to_numpy()] = np.nan  # unknown type: no answer
        values = option_greek(
            price,
            frame["spot"].to_numpy(),
            frame["strike"].to_numpy(),
            frame["years_to_expiry"].to_numpy(),
            call.fill_null(False).to_numpy(),
            rate=params.rate,
            dividend_yield=params.dividend_yield,
            which=which,
        )
        return pl.Series(values, dtype=pl.Float64).fill_nan(None)

    return columns.map_batches(compute, return_dtype=pl.Float64, is_elementwise=True)


def _greek_metric(which: int) -> Callable[[OptionParams], pl.Expr]:
    def build(params: OptionParams) -> pl.Expr:
        return _greek_expression(params, which)

    return build


@metric(
    name="implied_volatility",
    family="options",
    title="Black–Scholes–Merton implied volatility",
    unit="annualised volatility (fraction)",
    inputs=OPTION_INPUTS,
    kind="series",
    params=OptionParams,
    output="implied_volatility_{price_source}",
    aliases=("iv",),
)
def implied_volatility(params: OptionParams) -> pl.Expr:
    """The volatility at which the Black–Scholes–Merton price equals the option's price.

    The price is the mid of a positive, uncrossed quote (``price_source='mid'``) or the
    last traded price. Null when the price is outside the no-arbitrage bounds (below
    the discounted intrinsic value included), any input is missing or the expiry has
    passed (``years_to_expiry <= 0``).

    Formula:
        sigma such that BSM(spot, strike, years_to_expiry, rate, dividend_yield, sigma) = price
        BSM call = S e^(-qT) N(d1) - K e^(-rT) N(d2); put = K e^(-rT) N(-d2) - S e^(-qT) N(-d1)
        d1 = (ln(S/K) + (r - q + sigma^2/2) T) / (sigma sqrt(T)),  d2 = d1 - sigma sqrt(T)

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"bid": [7.9, 0.5], "ask": [8.031134910811608, 0.6],
        ...     "price": [8.0, 0.55], "spot": [100.0, 100.0], "strike": [100.0, 80.0],
        ...     "years_to_expiry": [1.0, 0.1], "is_call": [True, True]})
        >>> [None if v is None else round(v, 6)
        ...  for v in df.select(implied_volatility(OptionParams())).to_series()]
        [0.2, None]
    """
    return _greek_expression(params, IMPLIED_VOLATILITY)


@metric(
    name="delta",
    family="options",
    title="Delta at the implied volatility",
    unit="option price per unit of spot",
    inputs=OPTION_INPUTS,
    kind="series",
    params=OptionParams,
    output="delta_{price_source}",
    aliases=("option_delta",),
)
def delta(params: OptionParams) -> pl.Expr:
    """The option's Black–Scholes–Merton delta at its implied volatility (null without one).

    Formula:
        call: e^(-qT) N(d1);  put: -e^(-qT) N(-d1)   (d1 at the implied volatility)

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"bid": [7.9], "ask": [8.031134910811608], "price": [8.0],
        ...     "spot": [100.0], "strike": [100.0], "years_to_expiry": [1.0], "is_call": [False]})
        >>> round(df.select(delta(OptionParams())).item(), 4)
        -0.4602
    """
    return _greek_expression(params, DELTA)


@metric(
    name="gamma",
    family="options",
    title="Gamma at the implied volatility",
    unit="delta per unit of spot",
    inputs=OPTION_INPUTS,
    kind="series",
    params=OptionParams,
    output="gamma_{price_source}",
    aliases=("option_gamma",),
)
def gamma(params: OptionParams) -> pl.Expr:
    """The option's Black–Scholes–Merton gamma at its implied volatility (null without one).

    Formula:
        e^(-qT) n(d1) / (S sigma sqrt(T))

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"bid": [7.9], "ask": [8.031134910811608], "price": [8.0],
        ...     "spot": [100.0], "strike": [100.0], "years_to_expiry": [1.0], "is_call": [True]})
        >>> round(df.select(gamma(OptionParams())).item(), 6)
        0.019848
    """
    return _greek_expression(params, GAMMA)


@metric(
    name="vega_per_volatility_point",
    family="options",
    title="Vega per volatility point at the implied volatility",
    unit="option price per 0.01 of volatility",
    inputs=OPTION_INPUTS,
    kind="series",
    params=OptionParams,
    output="vega_per_volatility_point_{price_source}",
    aliases=("vega",),
)
def vega_per_volatility_point(params: OptionParams) -> pl.Expr:
    """The price change for one volatility point (0.01) at the implied volatility.

    Formula:
        S e^(-qT) n(d1) sqrt(T) * 0.01

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"bid": [7.9], "ask": [8.031134910811608], "price": [8.0],
        ...     "spot": [100.0], "strike": [100.0], "years_to_expiry": [1.0], "is_call": [True]})
        >>> round(df.select(vega_per_volatility_point(OptionParams())).item(), 6)
        0.396953
    """
    return _greek_expression(params, VEGA)


@metric(
    name="theta_per_day",
    family="options",
    title="Theta per calendar day at the implied volatility",
    unit="option price per calendar day",
    inputs=OPTION_INPUTS,
    kind="series",
    params=OptionParams,
    output="theta_per_day_{price_source}",
    aliases=("theta",),
)
def theta_per_day(params: OptionParams) -> pl.Expr:
    """The option's price change per calendar day of time decay (annual theta / 365).

    Formula:
        call: (-S e^(-qT) n(d1) sigma / (2 sqrt(T)) + q S e^(-qT) N(d1) - r K e^(-rT) N(d2)) / 365
        put:  (-S e^(-qT) n(d1) sigma / (2 sqrt(T)) - q S e^(-qT) N(-d1) + r K e^(-rT) N(-d2)) / 365

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"bid": [7.9], "ask": [8.031134910811608], "price": [8.0],
        ...     "spot": [100.0], "strike": [100.0], "years_to_expiry": [1.0], "is_call": [True]})
        >>> round(df.select(theta_per_day(OptionParams())).item(), 6)
        -0.010875
    """
    return _greek_expression(params, THETA)


@metric(
    name="spot_price",
    family="options",
    title="Underlying (spot) price",
    unit="price",
    inputs=("grid.spot",),
    kind="series",
    aliases=("spot",),
)
def spot_price(params: NoParams) -> pl.Expr:
    """The underlying's price on the option's row: the grid's ``spot``.

    Formula:
        spot

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"spot": [22150.5]}).select(spot_price(NoParams())).item()
        22150.5
    """
    return pl.col("spot")


EXPIRY_INPUTS = ("grid.session_date", "grid.expiry")


@metric(
    name="days_to_expiry",
    family="options",
    title="Calendar days to the contract's expiry",
    unit="calendar days",
    inputs=EXPIRY_INPUTS,
    kind="series",
)
def days_to_expiry(params: NoParams) -> pl.Expr:
    """Calendar days from the row's session date to the contract's expiry date.

    0 on the expiry day, 1 the calendar day before (a Monday expiry is 3 days away on
    the Friday before it); negative for a contract that has already expired. It reads
    dates, not the clock, so it is constant through a session.

    Formula:
        expiry - session_date   (in days)

    Examples:
        >>> import polars as pl
        >>> from datetime import date
        >>> df = pl.DataFrame({"session_date": [date(2024, 1, 5), date(2024, 1, 10)],
        ...     "expiry": [date(2024, 1, 10), date(2024, 1, 10)]})
        >>> df.select(days_to_expiry(NoParams())).to_series().to_list()
        [5, 0]
    """
    return (pl.col("expiry").cast(pl.Date) - pl.col("session_date").cast(pl.Date)).dt.total_days()


def trading_sessions_between(session_date: date, expiry: date) -> int:
    """NSE sessions in (session_date, expiry]; minus those in (expiry, session_date].

    Examples:
        >>> trading_sessions_between(date(2024, 1, 19), date(2024, 1, 24))  # 22nd: holiday
        2
        >>> trading_sessions_between(date(2024, 1, 24), date(2024, 1, 23))
        -1
    """
    from ticklake.market.calendar import trading_days

    one = timedelta(days=1)
    if expiry >= session_date:
        return len(trading_days(session_date + one, expiry))
    return -len(trading_days(expiry + one, session_date))


@metric(
    name="trading_days_to_expiry",
    family="options",
    title="NSE trading sessions to the contract's expiry",
    unit="trading days",
    inputs=EXPIRY_INPUTS,
    kind="series",
)
def trading_days_to_expiry(params: NoParams) -> pl.Expr:
    """NSE trading sessions after the row's session date up to the contract's expiry date.

    0 on the expiry day, 1 on the trading day before it; weekends and exchange holidays
    (the XBOM calendar, see ``ticklake.market.calendar``) are not counted, so a Tuesday
    expiry after a Monday holiday is 1 trading day away on the Friday before. Negative
    for a contract that has already expired. A date outside the years of the calendar
    is an error (upgrade exchange-calendars), never a guess.

    Formula:
        number of trading days d with session_date < d <= expiry

    Examples:
        >>> import polars as pl
        >>> from datetime import date
        >>> df = pl.DataFrame({"session_date": [date(2024, 1, 19), date(2024, 1, 24)],
        ...     "expiry": [date(2024, 1, 24), date(2024, 1, 24)]})
        >>> df.select(trading_days_to_expiry(NoParams())).to_series().to_list()  # 22nd: holiday
        [2, 0]
    """
    columns = pl.struct(
        pl.col("session_date").cast(pl.Date).alias("session_date"),
        pl.col("expiry").cast(pl.Date).alias("expiry"),
    )

    def compute(batch: pl.Series) -> pl.Series:
        # A series holds a handful of (session, expiry) pairs: count each pair once.
        pairs = batch.struct.unnest()
        distinct = pairs.unique().drop_nulls()
        try:
            sessions = [trading_sessions_between(s, e) for s, e in distinct.iter_rows()]
        except ConfigError as exc:
            raise ConfigError(
                f"trading_days_to_expiry: {exc.message} Or use days_to_expiry (calendar days).",
                **exc.fields,
            ) from None
        counts = distinct.with_columns(pl.Series("sessions", sessions, dtype=pl.Int64))
        keys = ["session_date", "expiry"]
        return pairs.join(counts, on=keys, how="left", maintain_order="left")["sessions"]

    return columns.map_batches(compute, return_dtype=pl.Int64, is_elementwise=True)
