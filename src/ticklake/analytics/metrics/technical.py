"""Technical indicators as series metrics over one instrument's time-sorted rows.

The rows are a backtest's 1-second grid (of a contract or of the underlying) or any
time-sorted frame with the grid columns: ``ts`` (UTC), ``price`` (last traded price or
index value), ``volume`` (traded volume of the row, already differenced), ``bid``,
``ask`` and ``session_date`` (exchange-local date).

Three rules hold for every metric here:

- **Windows are time, not rows.** ``minutes`` is always the first parameter, so
  ``ema(5)`` means five minutes; windows use ``rolling_*_by("ts", ...)`` and decays use
  elapsed time, so missing seconds are handled.
- **Sessions are independent.** Every value depends only on rows of the same
  ``session_date`` (``previous_close`` also on earlier ones), so a day evaluated alone
  gives the same numbers as that day inside a multi-day frame.
- **No look-ahead.** A value at ``t`` uses rows at or before ``t`` only.

A reference ``NAME_<N>m`` (``volume_1m``, ``ema_5m``) means the minute-window metric
``NAME`` with ``minutes=N``: see :func:`resolve_minute_window`.
"""

from __future__ import annotations

import math
import re
from typing import ClassVar, Literal

import polars as pl
from pydantic import Field

from ticklake.analytics.registry import (
    Metric,
    MetricParams,
    NoParams,
    all_metrics,
    metric,
)

#: Trading seconds in a year used to annualise: 252 days x 6 h 15 min (NSE 09:15-15:30).
NSE_TRADING_SECONDS_PER_YEAR = 252 * 22_500
SESSION = "session_date"

GridField = Literal["price", "mid", "bid", "ask", "spot", "volume"]


class MinuteWindowParams(MetricParams):
    """Parameters of a metric over a window of ``minutes`` (the first, positional field).

    ``short_name`` is the prefix of the ``NAME_<N>m`` reference form when it differs
    from the metric name (``volume_1m`` for ``volume_over_minutes``).
    """

    short_name: ClassVar[str | None] = None

    minutes: int = Field(default=5, ge=1, description="window length in minutes")


class FieldWindowParams(MinuteWindowParams):
    """A minute window over one grid column (``mid`` is ``(bid + ask) / 2``)."""

    field: GridField = Field(default="price", description="the grid column to average")


class RelativeStrengthParams(MinuteWindowParams):
    minutes: int = Field(default=14, ge=1, description="Wilder period in minutes")
    field: GridField = Field(default="price", description="the grid column whose moves count")


class VolumeWindowParams(MinuteWindowParams):
    short_name: ClassVar[str | None] = "volume"

    minutes: int = Field(default=1, ge=1, description="window length in minutes")


class RealizedVolatilityParams(MinuteWindowParams):
    trading_seconds_per_year: float = Field(
        default=NSE_TRADING_SECONDS_PER_YEAR,
        gt=0,
        description="seconds of trading per year used to annualise (NSE: 252 x 22,500)",
    )


class OpeningRangeParams(MinuteWindowParams):
    minutes: int = Field(default=15, ge=1, description="length of the opening range in minutes")


_MINUTE_REFERENCE = re.compile(r"^(?P<base>[a-z][a-z0-9_]*?)_(?P<minutes>[1-9][0-9]*)m$")


def resolve_minute_window(reference: str) -> tuple[Metric, MetricParams] | None:
    """Resolve ``NAME_<N>m`` to a minute-window series metric with ``minutes=N``.

    ``NAME`` is the metric's name, one of its aliases or its params' ``short_name``;
    only series metrics whose parameters derive from :class:`MinuteWindowParams`
    qualify, so adding such a metric makes its ``_<N>m`` form work with no other change.
    Returns ``None`` when ``reference`` is not of that form or names no such metric.

    Examples:
        >>> found = resolve_minute_window("volume_2m")
        >>> found[0].name, found[1].minutes
        ('volume_over_minutes', 2)
        >>> resolve_minute_window("spread_5m") is None
        True
    """
    match = _MINUTE_REFERENCE.match(reference)
    if match is None:
        return None
    base, minutes = match["base"], int(match["minutes"])
    for candidate in all_metrics():
        model = candidate.params_model
        if candidate.kind != "series" or not issubclass(model, MinuteWindowParams):
            continue
        if base in {candidate.name, *candidate.aliases, model.short_name}:
            return candidate, candidate.parse_params({"minutes": minutes})
    return None


def _field(name: str) -> pl.Expr:
    if name == "mid":
        return (pl.col("bid") + pl.col("ask")) / 2
    return pl.col(name)


def _window(minutes: int) -> str:
    return f"{minutes}m"


def _per_second_decay_half_life(decay_per_second: float) -> str:
    """The half-life (as a Polars ns duration) of a weight that decays by a factor per second."""
    return f"{round(math.log(2.0) / -math.log(decay_per_second) * 1e9)}ns"


def _previous_valid(expr: pl.Expr) -> pl.Expr:
    """The last non-null value strictly before each row, within the session."""
    return expr.forward_fill().shift(1).over(SESSION)


def _session_elapsed_at_least(minutes: int) -> pl.Expr:
    return pl.col("ts") - pl.col("ts").first().over(SESSION) >= pl.duration(minutes=minutes)


@metric(
    name="sma",
    family="technical",
    title="Simple moving average over N minutes",
    unit="price",
    inputs=("grid.ts", "grid.price", "grid.bid", "grid.ask", "grid.session_date"),
    kind="series",
    params=FieldWindowParams,
    output="sma_{minutes}m_{field}",
    aliases=("simple_moving_average",),
)
def sma(params: FieldWindowParams) -> pl.Expr:
    """The mean of a grid column over the last N minutes of the session, nulls ignored.

    The window is ``(t - N minutes, t]`` and holds only rows of the current
    ``session_date``; early in the session it averages the rows that exist. On a
    gap-free 1 s grid ``sma(5)`` is the mean of the last 300 rows.

    Formula:
        mean(field[s] for rows s of the session with t - minutes < ts[s] <= t, field not null)

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime, date
        >>> times = [(9, 15, 0), (9, 15, 30), (9, 16, 0), (9, 16, 30)]
        >>> df = pl.DataFrame({"ts": [datetime(2024, 1, 1, *t) for t in times],
        ...     "price": [100.0, 102.0, 104.0, 106.0], "session_date": [date(2024, 1, 1)] * 4})
        >>> df.select(sma(FieldWindowParams(minutes=1)))["price"].to_list()
        [100.0, 101.0, 103.0, 105.0]
    """
    return _field(params.field).rolling_mean_by("ts", _window(params.minutes)).over(SESSION)


@metric(
    name="ema",
    family="technical",
    title="Exponential moving average with a span of N minutes",
    unit="price",
    inputs=("grid.ts", "grid.price", "grid.bid", "grid.ask", "grid.session_date"),
    kind="series",
    params=FieldWindowParams,
    output="ema_{minutes}m_{field}",
    aliases=("exponential_moving_average",),
)
def ema(params: FieldWindowParams) -> pl.Expr:
    """A time-decayed exponential moving average whose span is N minutes of 1 s rows.

    On a gap-free 1-second grid this is exactly the classic EMA with span ``60·N`` rows
    (``alpha = 2 / (60·N + 1)``, seeded with the session's first value, pandas
    ``ewm(span=60·N, adjust=False)``). Between rows the old value's weight decays with
    the elapsed time, so a gap of ``k`` seconds decays it like ``k`` rows. Rows where the
    field is null keep the last value. Restarts each ``session_date``.

    Formula:
        d = 1 - 2 / (60 * minutes + 1)             # decay per second
        ema[first] = field[first]
        ema[i] = d**dt * ema[i-1] + (1 - d**dt) * field[i],  dt = ts[i] - ts[i-1] in seconds

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime, date
        >>> df = pl.DataFrame({"ts": [datetime(2024, 1, 1, 9, 15, s) for s in (0, 1, 2)],
        ...     "price": [100.0, 101.0, 101.0], "session_date": [date(2024, 1, 1)] * 3})
        >>> [round(v, 4) for v in df.select(ema(FieldWindowParams(minutes=1)))["price"]]
        [100.0, 100.0328, 100.0645]
    """
    decay = 1.0 - 2.0 / (60.0 * params.minutes + 1.0)
    half_life = _per_second_decay_half_life(decay)
    return _field(params.field).ewm_mean_by("ts", half_life=half_life).forward_fill().over(SESSION)


@metric(
    name="rsi",
    family="technical",
    title="Relative strength index (Wilder) over N minutes",
    unit="index 0-100",
    inputs=("grid.ts", "grid.price", "grid.session_date"),
    kind="series",
    params=RelativeStrengthParams,
    output="rsi_{minutes}m_{field}",
    aliases=("relative_strength_index",),
)
def rsi(params: RelativeStrengthParams) -> pl.Expr:
    """Wilder's relative strength index with a period of N minutes of 1 s rows.

    A change is the field minus its previous non-null value in the session. Gains and
    losses are Wilder-smoothed with weights decaying by ``1 - 1 / (60·N)`` per second
    since the session opened: on a gap-free 1 s grid this is pandas
    ``ewm(alpha=1/(60·N), adjust=True)`` of gains over that of gains plus losses (no
    first-change seed bias); a gap of ``k`` seconds decays old changes like ``k`` rows.
    Null during the first N minutes of the session (Wilder's seed period) and when
    there was no movement at all.

    Formula:
        change[i] = field[i] - field[previous non-null row]
        d = 1 - 1 / (60 * minutes)                 # decay per second
        gain = sum(d**(t - ts[s]) * max(change[s], 0) for rows s <= t of the session)
        loss = sum(d**(t - ts[s]) * max(-change[s], 0) for rows s <= t of the session)
        rsi = 100 * gain / (gain + loss), null while t - first ts of the session < minutes

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime, date, timedelta
        >>> start = datetime(2024, 1, 1, 9, 15)
        >>> df = pl.DataFrame({"ts": [start + timedelta(seconds=s) for s in range(62)],
        ...     "price": [100.0 + (s % 2) for s in range(62)],
        ...     "session_date": [date(2024, 1, 1)] * 62})
        >>> values = df.select(rsi(RelativeStrengthParams(minutes=1))).to_series()
        >>> values[59] is None, round(values[60], 1), round(values[61], 1)
        (True, 49.6, 50.9)
    """
    value = _field(params.field)
    change = pl.when(value.is_not_null()).then(value - _previous_valid(value))
    half_life = _per_second_decay_half_life(1.0 - 1.0 / (60.0 * params.minutes))
    # Decayed sums, not means: their ratio is Wilder's average without a first-change seed
    # bias (the normalisation of the weights cancels in gain / (gain + loss)).
    gain = change.clip(lower_bound=0).ewm_sum_by("ts", half_life=half_life)
    loss = (-change).clip(lower_bound=0).ewm_sum_by("ts", half_life=half_life)
    strength = (
        pl.when(gain + loss > 0).then(100.0 * gain / (gain + loss)).forward_fill().over(SESSION)
    )
    return pl.when(_session_elapsed_at_least(params.minutes)).then(strength)


@metric(
    name="volume_over_minutes",
    family="technical",
    title="Traded volume over the last N minutes",
    unit="contracts or shares",
    inputs=("grid.ts", "grid.volume", "grid.session_date"),
    kind="series",
    params=VolumeWindowParams,
    output="volume_{minutes}m",
)
def volume_over_minutes(params: VolumeWindowParams) -> pl.Expr:
    """The volume traded in the last N minutes of the session (null volumes count 0).

    ``volume`` is per row (already differenced from the cumulative day volume). The
    window is ``(t - N minutes, t]``: on a 1 s grid ``volume_1m`` at 09:16:00 sums the
    rows 09:15:01..09:16:00. Referenced as ``volume_<N>m`` (``volume_1m``, ``volume_2m``).

    Formula:
        sum(volume[s] for rows s of the session with t - minutes < ts[s] <= t)

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime, date
        >>> times = [(9, 15, 0), (9, 15, 40), (9, 16, 20)]
        >>> df = pl.DataFrame({"ts": [datetime(2024, 1, 1, *t) for t in times],
        ...     "volume": [10, 5, 7],
        ...     "session_date": [date(2024, 1, 1)] * 3})
        >>> df.select(volume_over_minutes(VolumeWindowParams(minutes=1)))["volume"].to_list()
        [10, 15, 12]
    """
    return pl.col("volume").fill_null(0).rolling_sum_by("ts", _window(params.minutes)).over(SESSION)


@metric(
    name="realized_volatility",
    family="technical",
    title="Annualised realised volatility over N minutes",
    unit="annualised volatility (fraction)",
    inputs=("grid.ts", "grid.price", "grid.session_date"),
    kind="series",
    params=RealizedVolatilityParams,
    output="realized_volatility_{minutes}m",
    aliases=("realised_volatility",),
)
def realized_volatility(params: RealizedVolatilityParams) -> pl.Expr:
    """Annualised realised volatility of log returns ending in the last N minutes.

    A return is ``ln(price / previous non-null price)`` within the session; its duration
    is the seconds between the two rows. The variance rate is the sum of squared returns
    over the sum of their durations (so gaps and the partial window at the open are
    handled), annualised with ``trading_seconds_per_year`` (default 252 x 22,500 s, the
    NSE 09:15-15:30 session). Null before the session's first return.

    Formula:
        r[i] = ln(price[i] / price[previous non-null row]),  dt[i] = ts[i] - ts[that row] (s)
        sqrt(sum(r**2) / sum(dt) * trading_seconds_per_year),  sums over t - minutes < ts[i] <= t

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime, date
        >>> df = pl.DataFrame({"ts": [datetime(2024, 1, 1, 9, 15, s) for s in (0, 1, 3)],
        ...     "price": [100.0, 101.0, 100.0], "session_date": [date(2024, 1, 1)] * 3})
        >>> params = RealizedVolatilityParams(trading_seconds_per_year=1)
        >>> out = df.select(realized_volatility(params))
        >>> [None if v is None else round(v, 5) for v in out["price"]]
        [None, 0.00995, 0.00812]
    """
    price = pl.col("price")
    log_return = (price / _previous_valid(price)).log()
    valid_ts = pl.when(price.is_not_null()).then(pl.col("ts"))
    seconds = (
        pl.when(log_return.is_not_null())
        .then((pl.col("ts") - _previous_valid(valid_ts)).dt.total_nanoseconds() / 1e9)
        .otherwise(0.0)
    )
    window = _window(params.minutes)
    squared_sum = (log_return**2).fill_null(0.0).rolling_sum_by("ts", window).over(SESSION)
    seconds_sum = seconds.rolling_sum_by("ts", window).over(SESSION)
    return (
        pl.when(seconds_sum > 0)
        .then(squared_sum / seconds_sum * params.trading_seconds_per_year)
        .sqrt()
    )


def _opening_range(params: OpeningRangeParams, high: bool) -> pl.Expr:
    range_end = pl.col("ts").first().over(SESSION) + pl.duration(minutes=params.minutes)
    in_range = pl.col("price").filter(pl.col("ts") < range_end)
    extreme = (in_range.max() if high else in_range.min()).over(SESSION)
    return pl.when(pl.col("ts") >= range_end).then(extreme)


@metric(
    name="opening_range_high",
    family="technical",
    title="Opening-range high over the first N minutes",
    unit="price",
    inputs=("grid.ts", "grid.price", "grid.session_date"),
    kind="series",
    params=OpeningRangeParams,
    output="opening_range_high_{minutes}m",
)
def opening_range_high(params: OpeningRangeParams) -> pl.Expr:
    """The highest price of the session's first N minutes, known once they are over.

    The range is ``[first ts of the session, first ts + N minutes)``; rows inside it get
    null (the range is not complete, no look-ahead), rows from ``first ts + N minutes``
    on get the range's maximum. On a grid starting 09:15:00, ``opening_range_high(15)``
    covers 09:15:00..09:29:59 and appears at 09:30:00.

    Formula:
        max(price[s] for s in session, ts[s] < start + minutes) if ts >= start + minutes
        where start = first ts of the session

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime, date
        >>> df = pl.DataFrame({"ts": [datetime(2024, 1, 1, 9, 15), datetime(2024, 1, 1, 9, 16),
        ...     datetime(2024, 1, 1, 9, 17)], "price": [100.0, 103.0, 99.0],
        ...     "session_date": [date(2024, 1, 1)] * 3})
        >>> df.select(opening_range_high(OpeningRangeParams(minutes=2)))["price"].to_list()
        [None, None, 103.0]
    """
    return _opening_range(params, high=True)


@metric(
    name="opening_range_low",
    family="technical",
    title="Opening-range low over the first N minutes",
    unit="price",
    inputs=("grid.ts", "grid.price", "grid.session_date"),
    kind="series",
    params=OpeningRangeParams,
    output="opening_range_low_{minutes}m",
)
def opening_range_low(params: OpeningRangeParams) -> pl.Expr:
    """The lowest price of the session's first N minutes, known once they are over.

    Same range and null rule as ``opening_range_high``.

    Formula:
        min(price[s] for s in session, ts[s] < start + minutes) if ts >= start + minutes
        where start = first ts of the session

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime, date
        >>> df = pl.DataFrame({"ts": [datetime(2024, 1, 1, 9, 15), datetime(2024, 1, 1, 9, 16),
        ...     datetime(2024, 1, 1, 9, 17)], "price": [100.0, 98.0, 97.0],
        ...     "session_date": [date(2024, 1, 1)] * 3})
        >>> df.select(opening_range_low(OpeningRangeParams(minutes=2)))["price"].to_list()
        [None, None, 98.0]
    """
    return _opening_range(params, high=False)


@metric(
    name="open_of_day",
    family="technical",
    title="Open of the day",
    unit="price",
    inputs=("grid.price", "grid.session_date"),
    kind="series",
    aliases=("day_open",),
)
def open_of_day(params: NoParams) -> pl.Expr:
    """The session's first non-null price, from that row on (null before it).

    Formula:
        price[first row of the session with a price], for rows at or after it

    Examples:
        >>> import polars as pl
        >>> from datetime import date
        >>> df = pl.DataFrame({"price": [None, 100.0, 101.0, 90.0],
        ...     "session_date": [date(2024, 1, 1)] * 3 + [date(2024, 1, 2)]})
        >>> df.select(open_of_day(NoParams()))["price"].to_list()
        [None, 100.0, 100.0, 90.0]
    """
    price = pl.col("price")
    seen = price.is_not_null().cum_sum().over(SESSION) > 0
    return pl.when(seen).then(price.drop_nulls().first().over(SESSION))


@metric(
    name="previous_close",
    family="technical",
    title="Previous session's close",
    unit="price",
    inputs=("grid.price", "grid.session_date"),
    kind="series",
    aliases=("prev_close",),
)
def previous_close(params: NoParams) -> pl.Expr:
    """The last non-null price of the previous ``session_date`` in the frame.

    Every row of a session gets the last price seen before the session's first row (the
    most recent earlier session that traded); null on the frame's first session, so a
    backtest must load the previous day for it.

    Formula:
        last non-null price with session_date < current session_date

    Examples:
        >>> import polars as pl
        >>> from datetime import date
        >>> df = pl.DataFrame({"price": [100.0, 101.0, None, 95.0, 96.0],
        ...     "session_date": [date(2024, 1, 1)] * 3 + [date(2024, 1, 2)] * 2})
        >>> df.select(previous_close(NoParams()))["price"].to_list()
        [None, None, None, 101.0, 101.0]
    """
    # Not windowed by session on purpose: the value crosses the session boundary.
    session = pl.col(SESSION)
    first_of_session = session != session.shift(1)
    carried = pl.when(first_of_session).then(pl.col("price").forward_fill().shift(1))
    return carried.forward_fill()


@metric(
    name="vwap_distance_bps",
    family="technical",
    title="Distance of the price from the session VWAP so far",
    unit="bps",
    inputs=("grid.price", "grid.volume", "grid.session_date"),
    kind="series",
)
def vwap_distance_bps(params: NoParams) -> pl.Expr:
    """The price's distance from the session's volume-weighted average price so far, in bps.

    The VWAP weights each row's price by the row's volume (on a 1 s grid the row's
    volume traded near its last price). Null while the session has no volume (e.g. an
    index) and on rows without a price.

    Formula:
        vwap = cumsum(price * volume) / cumsum(volume)   over the session so far
        (price - vwap) / vwap * 10_000

    Examples:
        >>> import polars as pl
        >>> from datetime import date
        >>> df = pl.DataFrame({"price": [100.0, 102.0], "volume": [1, 1],
        ...     "session_date": [date(2024, 1, 1)] * 2})
        >>> df.select(vwap_distance_bps(NoParams()))["price"].to_list()
        [0.0, 99.00990099009901]
    """
    price = pl.col("price")
    volume = pl.when(price.is_not_null()).then(pl.col("volume")).fill_null(0)
    cumulative_volume = volume.cum_sum().over(SESSION)
    cumulative_value = (price * volume).fill_null(0.0).cum_sum().over(SESSION)
    vwap = pl.when(cumulative_volume > 0).then(cumulative_value / cumulative_volume)
    return (price - vwap) / vwap * 10_000


def _identity(column: str) -> pl.Expr:
    return pl.col(column)


@metric(
    name="last_price",
    family="technical",
    title="Last traded price",
    unit="price",
    inputs=("grid.price",),
    kind="series",
    aliases=("ltp",),
)
def last_price(params: NoParams) -> pl.Expr:
    """The row's last traded price (the index value for an index): the grid's ``price``.

    Formula:
        price

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"price": [100.5]}).select(last_price(NoParams())).item()
        100.5
    """
    return _identity("price")


@metric(
    name="bid_price",
    family="technical",
    title="Best bid",
    unit="price",
    inputs=("grid.bid",),
    kind="series",
    aliases=("bid",),
)
def bid_price(params: NoParams) -> pl.Expr:
    """The row's best bid price: the grid's ``bid`` (null when there is no bid).

    Formula:
        bid

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"bid": [99.5]}).select(bid_price(NoParams())).item()
        99.5
    """
    return _identity("bid")


@metric(
    name="ask_price",
    family="technical",
    title="Best ask",
    unit="price",
    inputs=("grid.ask",),
    kind="series",
    aliases=("ask",),
)
def ask_price(params: NoParams) -> pl.Expr:
    """The row's best ask price: the grid's ``ask`` (null when there is no ask).

    Formula:
        ask

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"ask": [100.5]}).select(ask_price(NoParams())).item()
        100.5
    """
    return _identity("ask")
