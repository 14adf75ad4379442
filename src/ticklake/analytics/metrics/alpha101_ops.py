"""The operators of Kakushadze's "101 Formulaic Alphas" (2016) over a panel of bars.

A :class:`Panel` holds bars of several instruments sorted by ``(instrument, ts)``; every
operator takes and returns a ``pl.Series`` aligned with those rows, so a formula reads
like the paper's. Semantics (the paper's definitions, Appendix A.1):

- **Time-series operators** run per instrument in ``ts`` order over the last ``d`` bars
  *including the current one* (no look-ahead): ``delay(x, d)`` is ``x`` ``d`` bars ago,
  ``delta(x, d) = x - delay(x, d)``, ``sum``/``product``/``stddev`` (sample, ddof 1),
  ``correlation``/``covariance`` (sample), ``ts_min``/``ts_max``, ``ts_argmax``/
  ``ts_argmin`` (position of the extreme in the window, 1 = oldest bar, d = current bar,
  the oldest on ties), ``ts_rank`` (rank of the current value among the last ``d``,
  average on ties, divided by ``d``: in ``(0, 1]``), ``decay_linear`` (weights ``d, d-1,
  ..., 1`` from the current bar back, normalised to sum 1). A non-integer ``d`` is
  floored, as the paper says. A window with a missing value (warm-up included) gives a
  missing value: the first ``d - 1`` bars of each instrument are null.
- **Cross-sectional operators** run at each ``ts`` across the instruments with a value
  there: ``rank`` is the percentile rank (average rank on ties / count of values, in
  ``(0, 1]``), ``scale(x, a)`` rescales so that ``sum(abs(x)) = a``.
- ``correlation`` over a full window where either input is constant (zero variance,
  e.g. a rank that does not change) is undefined in the paper; it is **0** here (no
  linear relation), so such windows do not blank every operator downstream.
- ``returns = close / delay(close, 1) - 1``; ``adv{d}`` = mean of the dollar volume
  ``volume * vwap`` over the last ``d`` bars (the paper's "average daily dollar volume").
- A condition ``c ? a : b`` with a missing ``c`` is missing; NaN is treated as missing.

Examples:
    >>> import polars as pl
    >>> from datetime import datetime
    >>> bars = pl.DataFrame({"ts": [datetime(2024, 1, 1, 0, m) for m in (0, 1, 2)] * 2,
    ...     "instrument": ["A"] * 3 + ["B"] * 3, "open": 1.0, "high": 1.0, "low": 1.0,
    ...     "close": [1.0, 2.0, 4.0, 3.0, 3.0, 1.0], "volume": 1.0, "vwap": 1.0})
    >>> p = Panel(bars)
    >>> p.delta(p.close, 1).to_list()
    [None, 1.0, 2.0, None, 0.0, -2.0]
    >>> p.rank(p.close).to_list()
    [0.5, 0.5, 1.0, 1.0, 1.0, 0.5]
    >>> p.ts_argmax(p.close, 2).to_list()
    [None, 2.0, 2.0, None, 1.0, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache

import numpy as np
import polars as pl

Value = pl.Series | float | int | None
BAR_COLUMNS = ("open", "high", "low", "close", "volume", "vwap")


def window(d: float) -> int:
    """The paper's window length: a non-integer ``d`` is floored (at least 1)."""
    return max(1, math.floor(d))


class Panel:
    """Bars of several instruments sorted by ``(instrument, ts)``, with the operators."""

    def __init__(self, bars: pl.DataFrame) -> None:
        frame = bars.sort("instrument", "ts")
        self.keys = frame.select("instrument", "ts")
        self.n = frame.height
        cols = {c: frame[c].cast(pl.Float64).fill_nan(None) for c in BAR_COLUMNS}
        self.open, self.high, self.low = cols["open"], cols["high"], cols["low"]
        self.close, self.volume, self.vwap = cols["close"], cols["volume"], cols["vwap"]
        self.returns = self.close / self.delay(self.close, 1) - 1
        self._adv: dict[int, pl.Series] = {}

    # ------------------------------------------------------------------ plumbing
    def _frame(self, *xs: Value) -> tuple[pl.DataFrame, list[pl.Expr]]:
        columns: dict[str, pl.Series] = {}
        exprs: list[pl.Expr] = []
        for i, x in enumerate(xs):
            if isinstance(x, pl.Series):
                name = f"__x{i}"
                columns[name] = _clean(x)
                exprs.append(pl.col(name))
            else:
                exprs.append(pl.lit(None if x is None else float(x), dtype=pl.Float64))
        return self.keys.with_columns(**columns), exprs

    def _eval(self, by: str, fn: Callable[..., pl.Expr], *xs: Value) -> pl.Series:
        frame, exprs = self._frame(*xs)
        return frame.select(fn(*exprs).over(by).alias("x")).to_series().cast(pl.Float64)

    def _ts(self, fn: Callable[..., pl.Expr], *xs: Value) -> pl.Series:
        return self._eval("instrument", fn, *xs)

    # ------------------------------------------------------------ elementwise
    def where(self, cond: pl.Series, a: Value, b: Value) -> pl.Series:
        """``cond ? a : b``; missing where ``cond`` is missing."""
        frame, (c, x, y) = self._frame(cond.cast(pl.Float64), a, b)
        expr = pl.when(c.is_null()).then(None).when(c != 0).then(x).otherwise(y)
        return frame.select(expr.alias("x")).to_series()

    def pow(self, x: Value, e: Value) -> pl.Series:
        frame, (a, b) = self._frame(x, e)
        return frame.select(a.pow(b).alias("x")).to_series()

    def signedpower(self, x: pl.Series, e: Value) -> pl.Series:
        return x.sign() * self.pow(x.abs(), e)

    def min2(self, a: pl.Series, b: pl.Series) -> pl.Series:
        frame, (x, y) = self._frame(a, b)
        both = pl.when(x.is_null() | y.is_null()).then(None).otherwise(pl.min_horizontal(x, y))
        return frame.select(both.alias("x")).to_series()

    def max2(self, a: pl.Series, b: pl.Series) -> pl.Series:
        frame, (x, y) = self._frame(a, b)
        both = pl.when(x.is_null() | y.is_null()).then(None).otherwise(pl.max_horizontal(x, y))
        return frame.select(both.alias("x")).to_series()

    @staticmethod
    def fl(x: pl.Series) -> pl.Series:
        """A boolean as 1.0 / 0.0 (missing stays missing)."""
        return x.cast(pl.Float64)

    # --------------------------------------------------------- cross-sectional
    def rank(self, x: pl.Series) -> pl.Series:
        return self._eval("ts", lambda v: v.rank("average") / v.count(), x)

    def scale(self, x: pl.Series, a: float = 1.0) -> pl.Series:
        return self._eval("ts", lambda v: v * a / v.abs().sum(), x)

    # ------------------------------------------------------------- time series
    def delay(self, x: pl.Series, d: float) -> pl.Series:
        return self._ts(lambda v: v.shift(window(d)), x)

    def delta(self, x: pl.Series, d: float) -> pl.Series:
        return x - self.delay(x, d)

    def sum(self, x: pl.Series, d: float) -> pl.Series:
        return self._ts(lambda v: v.rolling_sum(window(d)), x)

    def mean(self, x: pl.Series, d: float) -> pl.Series:
        return self._ts(lambda v: v.rolling_mean(window(d)), x)

    def product(self, x: pl.Series, d: float) -> pl.Series:
        n = window(d)
        return self._ts(lambda v: _fold([v.shift(k) for k in range(n)], lambda a, b: a * b), x)

    def ts_min(self, x: pl.Series, d: float) -> pl.Series:
        return self._ts(lambda v: v.rolling_min(window(d)), x)

    def ts_max(self, x: pl.Series, d: float) -> pl.Series:
        return self._ts(lambda v: v.rolling_max(window(d)), x)

    def _argextreme(self, x: pl.Series, d: float, largest: bool) -> pl.Series:
        n = window(d)

        def arg(v: pl.Expr) -> pl.Expr:
            extreme = v.rolling_max(n) if largest else v.rolling_min(n)
            # position 1 = oldest bar (lag n-1); the oldest wins ties
            hits = [pl.when(v.shift(n - 1 - j) == extreme).then(j + 1) for j in range(n)]
            return pl.when(extreme.is_null()).then(None).otherwise(pl.min_horizontal(hits))

        return self._ts(arg, x)

    def ts_argmax(self, x: pl.Series, d: float) -> pl.Series:
        return self._argextreme(x, d, largest=True)

    def ts_argmin(self, x: pl.Series, d: float) -> pl.Series:
        return self._argextreme(x, d, largest=False)

    def ts_rank(self, x: pl.Series, d: float) -> pl.Series:
        n = window(d)

        def rank(v: pl.Expr) -> pl.Expr:
            terms = [
                (v.shift(k) < v).cast(pl.Float64) + 0.5 * (v.shift(k) == v).cast(pl.Float64)
                for k in range(1, n)
            ]
            if not terms:
                return v * 0 + 1.0
            return (1.0 + _fold(terms, lambda a, b: a + b)) / n

        return self._ts(rank, x)

    def decay_linear(self, x: pl.Series, d: float) -> pl.Series:
        n = window(d)
        total = n * (n + 1) / 2
        return self._ts(
            lambda v: _fold([v.shift(k) * ((n - k) / total) for k in range(n)], lambda a, b: a + b),
            x,
        )

    def stddev(self, x: pl.Series, d: float) -> pl.Series:
        return self.covariance(x, x, d).sqrt()

    def covariance(self, x: pl.Series, y: pl.Series, d: float) -> pl.Series:
        n = window(d)

        def cov(a: pl.Expr, b: pl.Expr) -> pl.Expr:
            if n < 2:
                return pl.lit(None, dtype=pl.Float64)
            ma, mb = a.rolling_mean(n), b.rolling_mean(n)
            terms = [(a.shift(k) - ma) * (b.shift(k) - mb) for k in range(n)]
            # a constant window has covariance exactly 0 (not the rolling mean's roundoff)
            flat = (a.rolling_max(n) == a.rolling_min(n)) | (b.rolling_max(n) == b.rolling_min(n))
            return pl.when(flat).then(0.0).otherwise(_fold(terms, lambda p, q: p + q) / (n - 1))

        return self._ts(cov, x, y)

    def correlation(self, x: pl.Series, y: pl.Series, d: float) -> pl.Series:
        n = window(d)
        flat_x = self._ts(lambda v: v.rolling_max(n) == v.rolling_min(n), x)
        flat_y = self._ts(lambda v: v.rolling_max(n) == v.rolling_min(n), y)
        cov = self.covariance(x, y, n)
        value = cov / (self.covariance(x, x, n) * self.covariance(y, y, n)).sqrt()
        return self.where(self.fl((flat_x + flat_y) == 0), value, 0.0)

    def adv(self, d: float) -> pl.Series:
        n = window(d)
        if n not in self._adv:
            self._adv[n] = self.mean(self.volume * self.vwap, n)
        return self._adv[n]


def _clean(x: pl.Series) -> pl.Series:
    return x.cast(pl.Float64).fill_nan(None)


def _fold(exprs: list[pl.Expr], op: Callable[[pl.Expr, pl.Expr], pl.Expr]) -> pl.Expr:
    out = exprs[0]
    for e in exprs[1:]:
        out = op(out, e)
    return out


@lru_cache(maxsize=1)
def example_bars(instruments: int = 3, bars: int = 300) -> pl.DataFrame:
    """Deterministic random-walk minute bars (ts, instrument, OHLCV, vwap) for examples.

    Examples:
        >>> example_bars().shape
        (900, 8)
    """
    rng = np.random.default_rng(101)
    start = datetime(2024, 1, 2, 14, 30)
    frames = []
    for k in range(instruments):
        close = (100.0 + 0.2 * k) * np.exp(np.cumsum(rng.normal(0, 0.002, bars)))
        open_ = close * np.exp(rng.normal(0, 0.001, bars))
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.002, bars))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.002, bars))
        frames.append(
            pl.DataFrame(
                {
                    "ts": [start + timedelta(minutes=i) for i in range(bars)],
                    "instrument": f"X{k}",
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": rng.integers(100, 10_000, bars).astype(float),
                    "vwap": (high + low + close) / 3,
                }
            )
        )
    return pl.concat(frames).sort("ts", "instrument")
