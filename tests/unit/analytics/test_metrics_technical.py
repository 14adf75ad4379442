"""Technical series metrics against pandas and plain-Python loops on a 1 s grid with gaps."""

from __future__ import annotations

import bisect
import math
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import polars as pl
import pytest

from ticklake.analytics.metrics.technical import resolve_minute_window
from ticklake.analytics.registry import all_metrics, get_metric

IST = timezone(timedelta(hours=5, minutes=30))
SESSIONS = (date(2024, 3, 7), date(2024, 3, 8))
SECONDS_PER_SESSION = 45 * 60


def _grid(seed: int = 7, gaps: bool = True) -> pl.DataFrame:
    """Two 45-minute sessions from 09:15 IST of a random-walk price on a 1 s grid.

    With ``gaps``: ~4 % of seconds missing, a 3-minute hole in session one, a few null
    prices and null volumes, and session two opening a little after 09:15:00.
    """
    rng = np.random.default_rng(seed)
    rows = []
    price = 22_000.0
    for day in SESSIONS:
        start = datetime(day.year, day.month, day.day, 9, 15, tzinfo=IST)
        for second in range(SECONDS_PER_SESSION):
            if gaps and (rng.random() < 0.04 or (day == SESSIONS[0] and 600 <= second < 780)):
                continue
            if gaps and day == SESSIONS[1] and second < 3:
                continue
            price = round(price + rng.normal(0, 2.0), 2)
            rows.append(
                {
                    "ts": (start + timedelta(seconds=second)).astimezone(UTC),
                    "price": None if gaps and rng.random() < 0.01 else price,
                    "volume": None if gaps and rng.random() < 0.02 else int(rng.integers(0, 50)),
                    "bid": price - 0.5,
                    "ask": price + 0.5 + float(rng.integers(0, 3)),
                    "session_date": day,
                }
            )
        price += 40.0  # an overnight gap
    return pl.DataFrame(rows).with_columns(pl.col("ts").dt.cast_time_unit("ns"))


@pytest.fixture(scope="module")
def grid() -> pl.DataFrame:
    return _grid()


def _compute(frame: pl.DataFrame, name: str, **params: object) -> list[float | None]:
    m = get_metric(name)
    return frame.select(m.series(m.parse_params(params))).to_series().to_list()


def _rows(frame: pl.DataFrame) -> list[dict]:
    return frame.to_dicts()


def _assert_close(actual: list, expected: list, rel: float = 1e-9, absolute: float = 1e-9) -> None:
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if e is None or (isinstance(e, float) and math.isnan(e)):
            assert a is None, f"row {i}: expected null, got {a}"
        else:
            assert a is not None, f"row {i}: expected {e}, got null"
            assert a == pytest.approx(e, rel=rel, abs=absolute), f"row {i}"


def _sessions(rows: list[dict]) -> list[list[dict]]:
    """Split time-sorted rows into consecutive sessions."""
    out: list[list[dict]] = []
    for row in rows:
        if not out or out[-1][0]["session_date"] != row["session_date"]:
            out.append([])
        out[-1].append(row)
    return out


def _pandas(frame: pl.DataFrame) -> pd.DataFrame:
    out = frame.to_pandas()
    out["ts"] = out["ts"].dt.tz_convert("UTC")
    return out.set_index("ts")


@pytest.mark.parametrize("minutes", [1, 5])
def test_sma_matches_pandas_time_rolling(grid: pl.DataFrame, minutes: int) -> None:
    frame = _pandas(grid)
    expected = frame.groupby("session_date")["price"].transform(
        lambda s: s.rolling(f"{minutes}min", closed="right").mean()
    )
    _assert_close(_compute(grid, "sma", minutes=minutes), expected.tolist())
    mid = ((frame["bid"] + frame["ask"]) / 2).groupby(frame["session_date"])
    expected_mid = mid.transform(lambda s: s.rolling(f"{minutes}min").mean())
    _assert_close(_compute(grid, "sma", minutes=minutes, field="mid"), expected_mid.tolist())


@pytest.mark.parametrize("minutes", [1, 2])
def test_volume_over_minutes_matches_a_loop(grid: pl.DataFrame, minutes: int) -> None:
    expected = []
    for session_rows in _sessions(_rows(grid)):
        times = [r["ts"] for r in session_rows]
        for end, row in enumerate(session_rows, start=1):
            start = bisect.bisect_right(times, row["ts"] - timedelta(minutes=minutes))
            expected.append(sum(r["volume"] or 0 for r in session_rows[start:end]))
    assert _compute(grid, "volume_over_minutes", minutes=minutes) == expected


def _ema_loop(rows: list[dict], decay_per_second: float, field: str = "price") -> list:
    out, state, last_ts, session = [], None, None, None
    for row in rows:
        if row["session_date"] != session:
            state, last_ts, session = None, None, row["session_date"]
        value = row[field]
        if value is not None:
            if state is None:
                state = value
            else:
                weight = decay_per_second ** ((row["ts"] - last_ts).total_seconds())
                state = weight * state + (1 - weight) * value
            last_ts = row["ts"]
        out.append(state)
    return out


@pytest.mark.parametrize("minutes", [1, 5])
def test_ema_matches_a_time_decay_loop(grid: pl.DataFrame, minutes: int) -> None:
    expected = _ema_loop(_rows(grid), 1 - 2 / (60 * minutes + 1))
    _assert_close(_compute(grid, "ema", minutes=minutes), expected)


def test_ema_on_a_gap_free_grid_is_the_classic_span_ema() -> None:
    grid = _grid(seed=3, gaps=False)
    frame = grid.to_pandas()
    expected = frame.groupby("session_date")["price"].transform(
        lambda s: s.ewm(span=300, adjust=False).mean()
    )
    _assert_close(_compute(grid, "ema", minutes=5), expected.tolist())


def _rsi_loop(rows: list[dict], minutes: int) -> list:
    decay = 1 - 1 / (60 * minutes)
    out, session = [], None
    for row in rows:
        if row["session_date"] != session:
            session, first_ts, previous, changes = row["session_date"], row["ts"], None, []
        if row["price"] is not None:
            if previous is not None:
                changes.append((row["ts"], row["price"] - previous))
            previous = row["price"]
        gain = sum(decay ** (row["ts"] - t).total_seconds() * max(c, 0) for t, c in changes)
        loss = sum(decay ** (row["ts"] - t).total_seconds() * max(-c, 0) for t, c in changes)
        warm = row["ts"] - first_ts >= timedelta(minutes=minutes)
        out.append(100 * gain / (gain + loss) if warm and gain + loss > 0 else None)
    return out


def test_rsi_matches_a_decayed_sum_loop(grid: pl.DataFrame) -> None:
    day = grid.filter(pl.col("ts") < grid["ts"][0] + timedelta(minutes=20))
    # A null price row must keep the last value: the loop re-decays to its own ts instead,
    # which gives the same ratio because gain and loss decay by the same factor.
    _assert_close(_compute(day, "rsi", minutes=2), _rsi_loop(_rows(day), 2), rel=1e-7)


def test_rsi_on_a_gap_free_grid_is_wilder_with_adjusted_weights() -> None:
    grid = _grid(seed=5, gaps=False)
    frame = grid.to_pandas()
    change = frame.groupby("session_date")["price"].diff()
    by_session = frame["session_date"]
    gain = (
        change.clip(lower=0)
        .groupby(by_session)
        .transform(lambda s: s.ewm(alpha=1 / 840, adjust=True).mean())
    )
    loss = (
        (-change)
        .clip(lower=0)
        .groupby(by_session)
        .transform(lambda s: s.ewm(alpha=1 / 840, adjust=True).mean())
    )
    expected = 100 * gain / (gain + loss)
    first = frame.groupby("session_date")["ts"].transform("first")
    expected[(frame["ts"] - first) < pd.Timedelta(minutes=14)] = np.nan
    _assert_close(_compute(grid, "rsi", minutes=14), expected.tolist(), rel=1e-7)
    assert _compute(grid, "rsi")[: 14 * 60] == [None] * (14 * 60)


def test_realized_volatility_matches_a_loop(grid: pl.DataFrame) -> None:
    expected = []
    for session_rows in _sessions(_rows(grid)):
        returns = []  # (ts, squared log return, seconds) of each return in the session
        last = None
        for row in session_rows:
            if row["price"] is not None:
                if last is not None:
                    seconds = (row["ts"] - last[0]).total_seconds()
                    returns.append((row["ts"], math.log(row["price"] / last[1]) ** 2, seconds))
                last = (row["ts"], row["price"])
        times = [r[0] for r in returns]
        for row in session_rows:
            start = bisect.bisect_right(times, row["ts"] - timedelta(minutes=5))
            inside = returns[start : bisect.bisect_right(times, row["ts"])]
            seconds = sum(r[2] for r in inside)
            variance = sum(r[1] for r in inside) / seconds if seconds else None
            expected.append(None if variance is None else math.sqrt(variance * 252 * 22_500))
    _assert_close(_compute(grid, "realized_volatility", minutes=5), expected)
    assert _compute(grid, "realized_volatility", minutes=5)[0] is None


@pytest.mark.parametrize("minutes", [1, 15])
def test_opening_range_matches_a_loop_and_is_null_until_complete(
    grid: pl.DataFrame, minutes: int
) -> None:
    high, low = [], []
    for session_rows in _sessions(_rows(grid)):
        end = session_rows[0]["ts"] + timedelta(minutes=minutes)
        in_range = [r["price"] for r in session_rows if r["ts"] < end and r["price"] is not None]
        for row in session_rows:
            high.append(max(in_range) if row["ts"] >= end else None)
            low.append(min(in_range) if row["ts"] >= end else None)
    assert _compute(grid, "opening_range_high", minutes=minutes) == high
    assert _compute(grid, "opening_range_low", minutes=minutes) == low
    # session two opens at 09:15:03 IST, so its range completes at 09:15:03 + minutes
    second = grid.with_row_index().filter(pl.col("session_date") == SESSIONS[1])
    values = _compute(grid, "opening_range_high", minutes=minutes)
    opened = second["ts"][0]
    for index, ts in zip(second["index"], second["ts"], strict=True):
        assert (values[index] is None) == (ts < opened + timedelta(minutes=minutes))


def test_open_of_day_and_previous_close_match_a_loop(grid: pl.DataFrame) -> None:
    rows = _rows(grid)
    rows[0]["price"] = None  # a session that opens without a price
    frame = grid.with_columns(pl.Series("price", [r["price"] for r in rows]))
    opens, closes, last_close, session, day_open, seen = [], [], None, None, None, None
    for row in rows:
        if row["session_date"] != session:
            last_close, session, day_open = seen, row["session_date"], None
        if row["price"] is not None:
            day_open = row["price"] if day_open is None else day_open
            seen = row["price"]
        opens.append(day_open)
        closes.append(last_close)
    assert _compute(frame, "open_of_day") == opens
    assert _compute(frame, "previous_close") == closes
    day_two = frame.filter(pl.col("session_date") == SESSIONS[1])
    last_of_day_one = frame.filter(pl.col("session_date") == SESSIONS[0])["price"].drop_nulls()[-1]
    assert set(_compute(frame, "previous_close")[-day_two.height :]) == {last_of_day_one}
    assert opens[0] is None and opens[1] == rows[1]["price"]


def test_vwap_distance_matches_a_loop(grid: pl.DataFrame) -> None:
    expected, session = [], None
    for row in _rows(grid):
        if row["session_date"] != session:
            session, value, volume = row["session_date"], 0.0, 0
        if row["price"] is not None:
            value += row["price"] * (row["volume"] or 0)
            volume += row["volume"] or 0
        vwap = value / volume if volume else None
        expected.append(
            (row["price"] - vwap) / vwap * 10_000 if vwap and row["price"] is not None else None
        )
    _assert_close(_compute(grid, "vwap_distance_bps"), expected, absolute=1e-7)


def test_identity_metrics_and_aliases(grid: pl.DataFrame) -> None:
    assert _compute(grid, "ltp") == grid["price"].to_list()
    assert _compute(grid, "last_price") == grid["price"].to_list()
    assert _compute(grid, "bid") == grid["bid"].to_list()
    assert _compute(grid, "ask") == grid["ask"].to_list()
    m = get_metric("ema")
    assert m.output_name(m.parse_params({"minutes": 1})) == "ema_1m_price"
    assert next(iter(m.params_model.model_fields)) == "minutes"  # positional-friendly


def test_minute_suffix_references_resolve_to_minute_window_metrics() -> None:
    metric, params = resolve_minute_window("volume_2m")
    assert metric.name == "volume_over_minutes" and params.minutes == 2
    metric, params = resolve_minute_window("ema_15m")
    assert metric.name == "ema" and params.model_dump() == {"minutes": 15, "field": "price"}
    assert resolve_minute_window("realised_volatility_5m")[0].name == "realized_volatility"
    assert resolve_minute_window("ltp_5m") is None  # not a minute-window metric
    assert resolve_minute_window("volume_0m") is None
    assert resolve_minute_window("volume") is None


SERIES = [m for m in all_metrics() if m.family in {"technical", "options"} and m.kind == "series"]


def _with_option_columns(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        spot=pl.col("price") * 100,
        strike=pl.lit(2_200_000.0),
        years_to_expiry=pl.lit(7 / 365),
        is_call=pl.lit(True),
        expiry=pl.col("session_date").dt.offset_by("7d"),
    ).with_columns(price=pl.col("price") / 10, bid=pl.col("bid") / 10, ask=pl.col("ask") / 10)


@pytest.mark.parametrize("m", SERIES, ids=[m.name for m in SERIES])
def test_no_look_ahead(grid: pl.DataFrame, m) -> None:
    frame = _with_option_columns(grid)
    expr = m.series(m.params_model())
    full = frame.select(expr).to_series()
    rng = np.random.default_rng(11)
    # cuts inside session one, inside session two's opening range, and late in session two
    for cut in (900, frame.height - SECONDS_PER_SESSION + 200, frame.height - 30):
        later = frame.height - cut
        perturbed = pl.concat(
            [
                frame.head(cut),
                frame.tail(later).with_columns(
                    price=pl.col("price") * pl.Series(rng.uniform(0.5, 1.5, later)),
                    volume=pl.Series(rng.integers(0, 10_000, later)),
                    bid=pl.col("bid") * 0.9,
                    ask=pl.col("ask") * 1.1,
                    spot=pl.col("spot") * 1.05,
                ),
            ]
        )
        assert frame.head(cut).select(expr).to_series().equals(full.head(cut)), m.name
        assert perturbed.select(expr).to_series().head(cut).equals(full.head(cut)), m.name


@pytest.mark.parametrize("m", SERIES, ids=[m.name for m in SERIES])
def test_a_session_alone_gives_the_same_values(grid: pl.DataFrame, m) -> None:
    frame = _with_option_columns(grid)
    expr = m.series(m.params_model())
    second = frame.filter(pl.col("session_date") == SESSIONS[1])
    alone = second.select(expr).to_series()
    inside = frame.select(expr).to_series().tail(second.height)
    if m.name == "previous_close":
        assert alone.null_count() == second.height and inside.null_count() == 0
    else:
        assert alone.equals(inside), m.name
