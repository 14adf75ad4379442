"""Correlation and beta between instruments and against a reference (an index, a future).

Frame metrics: they see every instrument of the batch at once and pair each instrument
(the reference included, which gives 1) with the ``reference`` instrument.

**Sampling.** Within each bucket of the pass, prices are sampled on a finer grid of
``sample`` width (the bucket width must be a whole multiple of it). Grid point ``g_j =
bucket_start + j * sample`` (``j = 0..n``) holds the last price at or before it among the
bucket's own rows (previous tick; no carry-in from the previous bucket, so a day's values
never depend on how days were batched). Returns are log returns between samples.

- ``previous_tick``: every grid step is a return, paired across the two instruments.
- ``refresh_time`` (Barndorff-Nielsen, Hansen, Lunde & Shephard 2011): sample only at
  refresh points, the first grid points by which *both* instruments have traded since the
  previous refresh point; returns run between refresh points. ``sample`` is then the time
  resolution (a small one, e.g. ``1ms``, is pure refresh time).

**Epps effect.** With asynchronous trading, previous-tick returns over short intervals
mix fresh moves of one instrument with stale (zero) moves of the other, so the measured
correlation shrinks towards 0 as ``sample`` shrinks. Refresh-time sampling pairs fresh
prices only and recovers most of the true correlation at fine resolution
(tests/unit/analytics/test_correlation.py measures both).

Values are null (never NaN or inf) with fewer than ``min_samples`` return pairs or a zero
variance (a constant price).

Examples:
    >>> p = SampledParams(reference="IDX")
    >>> get_metric("return_correlation").output_name(p)
    'return_correlation_1s_previous_tick_IDX'
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field

from ticklake.analytics.buckets import BucketSpec, duration_ns
from ticklake.analytics.registry import MetricParams, get_metric, metric
from ticklake.errors import ConfigError

KEYS = ["instrument", "_label"]
INPUTS = ("trades.ts", "trades.instrument", "trades.price")


class CorrelationParams(MetricParams):
    reference: str | None = Field(
        default=None, description="the instrument every instrument is paired with (required)"
    )
    price: str = Field(
        default="price",
        description="price column: 'price' for trades, 'close' for bars, 'mid' for quotes "
        "('mid' is (bid + ask) / 2 when the input has no 'mid' column)",
    )
    min_samples: int = Field(default=10, ge=2, description="fewest return pairs for a value")


class SampledParams(CorrelationParams):
    sample: str = Field(default="1s", description="sampling grid width inside each bucket")
    sampling: Literal["previous_tick", "refresh_time"] = "previous_tick"
    refresh_every: int = Field(
        default=1, ge=1, description="refresh_time: returns over every k-th refresh point"
    )


class LeadLagParams(CorrelationParams):
    sample: str = Field(default="1s", description="sampling grid width inside each bucket")
    max_lag: int = Field(default=5, ge=1, le=1000, description="lags -k..+k sample steps")
    each_lag: bool = Field(default=False, description="also output every lag's correlation")


class RollingParams(CorrelationParams):
    window: int = Field(default=20, ge=2, description="buckets in the rolling window")


def _reference(params: CorrelationParams, name: str) -> str:
    if params.reference is None:
        raise ConfigError(f"metric {name!r}: parameter 'reference' (an instrument) is required")
    return params.reference


def _price_value(frame: pl.DataFrame, column: str) -> pl.Expr:
    if column == "mid" and "mid" not in frame.columns:
        return (pl.col("bid") + pl.col("ask")) / 2
    return pl.col(column).cast(pl.Float64)


def _prices(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """``instrument, ts, _p``: time-sorted positive finite prices."""
    out = frame.select("instrument", "ts", _price_value(frame, column).alias("_p"))
    out = out.filter(pl.col("_p").is_finite() & (pl.col("_p") > 0))
    return out.sort("ts", maintain_order=True)


def _observed(
    frame: pl.DataFrame, params: SampledParams | LeadLagParams, bucket: BucketSpec
) -> tuple[pl.DataFrame, int]:
    """``instrument, _label, _j, _p``: the last price per bucket and grid index, and ``n``.

    A row at ``ts`` is seen from grid point ``j = ceil((ts - bucket_start) / sample)`` on.
    """
    width, step = duration_ns(bucket.width), duration_ns(params.sample)
    if width % step:
        raise ConfigError(
            f"sample {params.sample!r} must divide the bucket width {bucket.width!r} exactly"
        )
    label = bucket.label_expr(pl.col("ts"))
    start = label.dt.offset_by(f"-{bucket.width}") if bucket.label == "end" else label
    offset = (pl.col("ts") - start).dt.total_nanoseconds()
    observed = (
        _prices(frame, params.price)
        .with_columns(_label=label, _j=(offset + step - 1) // step)
        .group_by([*KEYS, "_j"], maintain_order=True)
        .agg(pl.col("_p").last())
        .sort([*KEYS, "_j"])
    )
    return observed, width // step


def _grid_returns(observed: pl.DataFrame, n: int) -> pl.DataFrame:
    """``instrument, _label, _j, _r``: previous-tick log returns on the full grid 0..n."""
    grid = (
        observed.select(KEYS)
        .unique(maintain_order=True)
        .with_columns(_j=pl.int_ranges(0, n + 1, dtype=pl.Int64))
        .explode("_j")
    )
    logp = pl.col("_p").log().forward_fill().over(KEYS)
    return (
        grid.join(observed.with_columns(pl.col("_j").cast(pl.Int64)), on=[*KEYS, "_j"], how="left")
        .sort([*KEYS, "_j"])
        .with_columns(_r=logp - logp.shift(1).over(KEYS))
        .select(*KEYS, "_j", "_r")
    )


def _pairs(returns: pl.DataFrame, reference: str, lag: int = 0) -> pl.DataFrame:
    """``instrument, _label, _x, _y``: each instrument's return at ``j`` with the
    reference's at ``j - lag`` (both known)."""
    ref = returns.filter(pl.col("instrument") == reference).select(
        "_label", (pl.col("_j") + lag).alias("_j"), pl.col("_r").alias("_y")
    )
    return (
        returns.join(ref, on=["_label", "_j"], how="inner")
        .rename({"_r": "_x"})
        .drop_nulls(["_x", "_y"])
        .select(*KEYS, "_x", "_y")
    )


def _refresh_pairs(observed: pl.DataFrame, reference: str, every: int = 1) -> pl.DataFrame:
    """Log returns between refresh points of each instrument and the reference."""
    by_key = observed.partition_by(KEYS, as_dict=True, maintain_order=True)
    rows: dict[str, list[object]] = {"instrument": [], "_label": [], "_x": [], "_y": []}
    for (instrument, label), part in by_key.items():
        ref = by_key.get((reference, label))
        if ref is None:
            continue
        a_j, a_p = part["_j"].to_numpy(), part["_p"].to_numpy()
        b_j, b_p = ref["_j"].to_numpy(), ref["_p"].to_numpy()
        points = refresh_points(a_j, b_j)[::every]
        if len(points) < 2:
            continue
        x = np.diff(np.log(a_p[np.searchsorted(a_j, points, side="right") - 1]))
        y = np.diff(np.log(b_p[np.searchsorted(b_j, points, side="right") - 1]))
        rows["instrument"] += [instrument] * len(x)
        rows["_label"] += [label] * len(x)
        rows["_x"] += x.tolist()
        rows["_y"] += y.tolist()
    return pl.DataFrame(rows, schema=_schema(observed.schema["_label"], "_x", "_y"))


def _schema(label: pl.DataType, *values: str) -> pl.Schema:
    columns: list[tuple[str, pl.DataType]] = [("instrument", pl.String()), ("_label", label)]
    return pl.Schema(columns + [(v, pl.Float64()) for v in values])


def refresh_points(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Refresh times of two sorted observation-time arrays: the first is when both have
    been seen; each next one is when both have been seen again since.

    Examples:
        >>> import numpy as np
        >>> refresh_points(np.array([1, 2, 3, 7]), np.array([2, 6, 8])).tolist()
        [2, 6, 8]
    """
    points: list[int] = []
    if len(a) == 0 or len(b) == 0:
        return np.array(points, dtype=np.int64)
    t = max(a[0], b[0])
    while True:
        points.append(int(t))
        ia, ib = np.searchsorted(a, t, side="right"), np.searchsorted(b, t, side="right")
        if ia == len(a) or ib == len(b):
            return np.array(points, dtype=np.int64)
        t = max(a[ia], b[ib])


def _stats(pairs: pl.DataFrame, min_samples: int) -> pl.DataFrame:
    """``instrument, _label, _corr, _beta`` (null below min_samples or at zero variance)."""
    x, y = pl.col("_x"), pl.col("_y")
    enough = pl.len() >= min_samples
    vx, vy, cov = x.var(), y.var(), pl.cov(x, y)
    return pairs.group_by(KEYS, maintain_order=True).agg(
        _corr=pl.when(enough & (vx > 0) & (vy > 0)).then(cov / (vx.sqrt() * vy.sqrt())),
        _beta=pl.when(enough & (vy > 0)).then(cov / vy),
    )


def _sampled(
    frame: pl.DataFrame, params: SampledParams, bucket: BucketSpec | None, name: str
) -> pl.DataFrame:
    reference = _reference(params, name)
    observed, n = _observed(frame, params, bucket or BucketSpec())
    if params.sampling == "refresh_time":
        pairs = _refresh_pairs(observed, reference, params.refresh_every)
    else:
        pairs = _pairs(_grid_returns(observed, n), reference)
    return _stats(pairs, params.min_samples)


def _finish(stats: pl.DataFrame, column: str, name: str) -> pl.DataFrame:
    return stats.select("instrument", pl.col("_label").alias("ts"), pl.col(column).alias(name))


@metric(
    name="return_correlation",
    family="correlation",
    title="Return correlation with a reference, per bucket",
    unit="correlation (-1..1)",
    inputs=INPUTS,
    kind="frame",
    params=SampledParams,
    output="return_correlation_{sample}_{sampling}_{reference}",
)
def return_correlation(
    frame: pl.DataFrame, params: SampledParams, bucket: BucketSpec | None = None
) -> pl.DataFrame:
    """The Pearson correlation, within each bucket, of an instrument's log returns with
    the reference's, sampled every ``sample`` (previous tick or refresh time; see the
    module docstring for the Epps effect).

    Formula:
        r_i = log p(t_i) - log p(t_{i-1}) on the sampling times t_i of the bucket;
        cov(r, r_ref) / (std(r) * std(r_ref))   (sample moments, n - 1)

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> t = [datetime(2024, 1, 1, 0, 0, s) for s in range(1, 6)]
        >>> f = pl.DataFrame({"ts": t * 2, "instrument": ["A"] * 5 + ["B"] * 5,
        ...     "price": [1.0, 2.0, 1.0, 2.0, 4.0, 1.0, 3.0, 1.0, 3.0, 9.0]})
        >>> p = SampledParams(reference="B", min_samples=3)
        >>> out = return_correlation(f, p, BucketSpec(width="1m"))
        >>> out.sort("instrument")["return_correlation_1s_previous_tick_B"].round(6).to_list()
        [1.0, 1.0]
    """
    name = get_metric("return_correlation").output_name(params)
    return _finish(_sampled(frame, params, bucket, "return_correlation"), "_corr", name)


@metric(
    name="return_beta",
    family="correlation",
    title="Beta to a reference, per bucket",
    unit="ratio",
    inputs=INPUTS,
    kind="frame",
    params=SampledParams,
    output="return_beta_{sample}_{sampling}_{reference}",
)
def return_beta(
    frame: pl.DataFrame, params: SampledParams, bucket: BucketSpec | None = None
) -> pl.DataFrame:
    """The beta of an instrument's sampled log returns on the reference's within each
    bucket (the least-squares slope), sampled like ``return_correlation``.

    Formula:
        cov(r, r_ref) / var(r_ref)

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> t = [datetime(2024, 1, 1, 0, 0, s) for s in range(1, 6)]
        >>> f = pl.DataFrame({"ts": t * 2, "instrument": ["A"] * 5 + ["B"] * 5,
        ...     "price": [1.0, 4.0, 1.0, 4.0, 16.0, 1.0, 2.0, 1.0, 2.0, 4.0]})
        >>> out = return_beta(f, SampledParams(reference="B", min_samples=3))
        >>> out.sort("instrument")["return_beta_1s_previous_tick_B"].round(6).to_list()
        [2.0, 1.0]
    """
    name = get_metric("return_beta").output_name(params)
    return _finish(_sampled(frame, params, bucket, "return_beta"), "_beta", name)


def _lag_name(lag: int) -> str:
    return f"m{-lag}" if lag < 0 else (f"p{lag}" if lag > 0 else "0")


@metric(
    name="lead_lag_correlation",
    family="correlation",
    title="Lead-lag cross-correlation with a reference, per bucket",
    unit="correlation (-1..1)",
    inputs=INPUTS,
    kind="frame",
    params=LeadLagParams,
    output="lead_lag_{sample}_{reference}_correlation",
)
def lead_lag_correlation(
    frame: pl.DataFrame, params: LeadLagParams, bucket: BucketSpec | None = None
) -> pl.DataFrame:
    """The cross-correlation of previous-tick sampled log returns with the reference's
    at lags -k..+k sample steps, per bucket: the lag of the largest absolute correlation
    (``..._lag``, in sample steps) and that correlation (``..._correlation``).

    Sign convention: a **positive lag means the reference leads** (its return at step
    ``j - lag`` goes with the instrument's at ``j``). Ties go to the smallest |lag|, then
    the negative one. ``each_lag`` adds ``..._xcorr_lag_m2``, ``..._xcorr_lag_0``,
    ``..._xcorr_lag_p2`` ... columns.

    Formula:
        xcorr(lag) = corr(r_j, r_ref_{j - lag}) over the bucket's grid steps j;
        lag* = argmax |xcorr(lag)|, lag in -k..k

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> t = [datetime(2024, 1, 1, 0, 0, s) for s in range(1, 10)]
        >>> ref = [1.0, 2.0, 1.5, 3.0, 2.0, 2.5, 1.0, 2.0]  # R at 1..8 s, A the same 1 s later
        >>> f = pl.DataFrame({"ts": t[1:] + t[:-1], "instrument": ["A"] * 8 + ["R"] * 8,
        ...     "price": ref * 2})
        >>> out = lead_lag_correlation(f, LeadLagParams(reference="R", max_lag=2,
        ...     min_samples=3), BucketSpec(width="10s")).filter(pl.col("instrument") == "A")
        >>> out["lead_lag_1s_R_lag"].item(), round(out["lead_lag_1s_R_correlation"].item(), 6)
        (1, 1.0)
    """
    reference = _reference(params, "lead_lag_correlation")
    observed, n = _observed(frame, params, bucket or BucketSpec())
    returns = _grid_returns(observed, n)
    base = f"lead_lag_{params.sample}_{reference}"
    parts = []
    for lag in range(-params.max_lag, params.max_lag + 1):
        stats = _stats(_pairs(returns, reference, lag), params.min_samples)
        parts.append(stats.select(*KEYS, pl.lit(lag).alias("_lag"), "_corr"))
    long = pl.concat(parts)
    best = (
        long.drop_nulls("_corr")
        .sort(
            [pl.col("_corr").abs(), pl.col("_lag").abs(), "_lag"],
            descending=[True, False, False],
        )
        .group_by(KEYS, maintain_order=True)
        .first()
        .select(
            *KEYS, pl.col("_lag").alias(f"{base}_lag"), pl.col("_corr").alias(f"{base}_correlation")
        )
    )
    out = long.select(KEYS).unique(maintain_order=True).join(best, on=KEYS, how="left")
    if params.each_lag:
        for lag in range(-params.max_lag, params.max_lag + 1):
            one = long.filter(pl.col("_lag") == lag).select(
                *KEYS, pl.col("_corr").alias(f"{base}_xcorr_lag_{_lag_name(lag)}")
            )
            out = out.join(one, on=KEYS, how="left")
    return out.rename({"_label": "ts"}).sort("instrument", "ts")


def _rolling(
    frame: pl.DataFrame, params: RollingParams, bucket: BucketSpec | None, name: str
) -> pl.DataFrame:
    """``instrument, _label, _corr, _beta`` over the last ``window`` buckets' returns."""
    reference = _reference(params, name)
    bucket = bucket or BucketSpec()
    session = pl.col("session_date") if "session_date" in frame.columns else pl.lit(0)
    prices = (
        frame.with_columns(_p=_price_value(frame, params.price))
        .filter(pl.col("_p").is_finite() & (pl.col("_p") > 0))
        .sort("ts", maintain_order=True)
        .select("instrument", "_p", _label=bucket.label_expr(pl.col("ts")), _session=session)
    )
    closes = prices.group_by(["_session", *KEYS], maintain_order=True).agg(pl.col("_p").last())
    rows: dict[str, list[object]] = {"instrument": [], "_label": [], "_corr": [], "_beta": []}
    for part in closes.partition_by("_session", maintain_order=True):
        wide = part.pivot(on="instrument", index="_label", values="_p").sort("_label")
        if reference not in wide.columns:
            continue
        logs = wide.select(pl.exclude("_label").log().forward_fill())
        returns = logs.select(pl.all() - pl.all().shift(1))
        y_all = returns[reference].to_numpy()
        labels = wide["_label"].to_list()
        for instrument in returns.columns:
            x_all = returns[instrument].to_numpy()
            traded = wide[instrument].is_not_null().to_numpy()
            for i in np.flatnonzero(traded):
                lo = max(0, i - params.window + 1)
                corr, beta = pearson_beta(x_all[lo : i + 1], y_all[lo : i + 1], params.min_samples)
                rows["instrument"].append(instrument)
                rows["_label"].append(labels[i])
                rows["_corr"].append(corr)
                rows["_beta"].append(beta)
    return pl.DataFrame(rows, schema=_schema(prices.schema["_label"], "_corr", "_beta"))


def pearson_beta(x: np.ndarray, y: np.ndarray, min_samples: int) -> tuple[float | None, ...]:
    """Correlation and beta of ``x`` on ``y`` over pairs where both are known; ``None``
    below ``min_samples`` pairs or at zero variance.

    Examples:
        >>> import numpy as np
        >>> pearson_beta(np.array([np.nan, 2.0, 4.0, 6.0]), np.array([1.0, 1.0, 2.0, 3.0]), 3)
        (1.0, 2.0)
    """
    known = ~(np.isnan(x) | np.isnan(y))
    x, y = x[known], y[known]
    if len(x) < min_samples:
        return None, None
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
    beta = sxy / syy if syy > 0 else None
    corr = sxy / np.sqrt(sxx * syy) if sxx > 0 and syy > 0 else None
    return (None if corr is None else float(corr)), beta


@metric(
    name="rolling_correlation",
    family="correlation",
    title="Rolling correlation of bucket returns with a reference",
    unit="correlation (-1..1)",
    inputs=INPUTS,
    kind="frame",
    params=RollingParams,
    output="rolling_correlation_{window}_{reference}",
)
def rolling_correlation(
    frame: pl.DataFrame, params: RollingParams, bucket: BucketSpec | None = None
) -> pl.DataFrame:
    """The correlation of bucket log returns with the reference's over the last
    ``window`` buckets (this one included), per instrument, restarting each session.

    A bucket's price is its last price; an instrument without a row in a bucket keeps its
    previous price (a zero return). The buckets are those in which any instrument of the
    batch traded; a value is output for each bucket the instrument traded in.

    Formula:
        R_b = log close_b - log close_{b-1};
        corr(R, R_ref) over buckets b-window+1..b

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> t = [datetime(2024, 1, 1, 0, m) for m in range(5)]
        >>> f = pl.DataFrame({"ts": t * 2, "instrument": ["A"] * 5 + ["B"] * 5,
        ...     "price": [1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0, 0.5]})
        >>> out = rolling_correlation(f, RollingParams(reference="B", window=3, min_samples=2))
        >>> out.filter(pl.col("instrument") == "A")["rolling_correlation_3_B"].to_list()
        [None, None, -1.0, -1.0, -1.0]
    """
    name = get_metric("rolling_correlation").output_name(params)
    return _finish(_rolling(frame, params, bucket, "rolling_correlation"), "_corr", name)


@metric(
    name="rolling_beta",
    family="correlation",
    title="Rolling beta of bucket returns to a reference",
    unit="ratio",
    inputs=INPUTS,
    kind="frame",
    params=RollingParams,
    output="rolling_beta_{window}_{reference}",
)
def rolling_beta(
    frame: pl.DataFrame, params: RollingParams, bucket: BucketSpec | None = None
) -> pl.DataFrame:
    """The beta of bucket log returns on the reference's over the last ``window``
    buckets, computed on the same returns as ``rolling_correlation``.

    Formula:
        cov(R, R_ref) / var(R_ref) over buckets b-window+1..b

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> t = [datetime(2024, 1, 1, 0, m) for m in range(4)]
        >>> f = pl.DataFrame({"ts": t * 2, "instrument": ["A"] * 4 + ["B"] * 4,
        ...     "price": [1.0, 4.0, 1.0, 4.0, 1.0, 2.0, 1.0, 2.0]})
        >>> out = rolling_beta(f, RollingParams(reference="B", window=3, min_samples=2))
        >>> out.filter(pl.col("instrument") == "A")["rolling_beta_3_B"].to_list()
        [None, None, 2.0, 2.0]
    """
    name = get_metric("rolling_beta").output_name(params)
    return _finish(_rolling(frame, params, bucket, "rolling_beta"), "_beta", name)


__all__ = [
    "lead_lag_correlation",
    "return_beta",
    "return_correlation",
    "rolling_beta",
    "rolling_correlation",
]
