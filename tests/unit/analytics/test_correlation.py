"""Correlation metrics: golden checks against independent pandas/numpy computations on
real Binance BTCUSDT data, a known correlation and a known lag on synthetic data, the
Epps effect, boundaries, and a pipeline run.

The real data hold one instrument, so the two real series paired here are BTCUSDT trade
prices ("BTCUSDT") and BTCUSDT quoted mids ("MID", from the top-of-book sample of the
same minute): both real, asynchronous, and strongly but not perfectly correlated.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from ticklake import init_lake
from ticklake.analytics.buckets import BucketSpec
from ticklake.analytics.metrics import correlation as c
from ticklake.analytics.pipeline import parse_pipeline
from ticklake.analytics.registry import get_metric
from ticklake.analytics.run import run_pipeline
from ticklake.errors import ConfigError

DATA = Path(__file__).resolve().parents[2] / "data" / "binance"
T0 = datetime(2024, 1, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def real() -> pl.DataFrame:
    trades = pl.read_parquet(DATA / "btcusdt-trades.parquet").select(
        ts=pl.col("timestamp").cast(pl.Datetime("ns", "UTC")),
        instrument=pl.lit("BTCUSDT"),
        price="price",
    )
    quotes = pl.read_parquet(DATA / "btcusdt-quotes.parquet").select(
        ts=pl.col("timestamp").cast(pl.Datetime("ns", "UTC")),
        instrument=pl.lit("MID"),
        price=(pl.col("bid") + pl.col("ask")) / 2,
    )
    return pl.concat([trades, quotes]).sort("ts", maintain_order=True)


# ---- the independent oracle: pandas resample/asof + numpy ---------------------------


def _pandas_grid(real: pl.DataFrame, width: str, sample: str) -> dict[pd.Timestamp, pd.DataFrame]:
    """Per (start, end] bucket labelled by its end: previous-tick log returns of each
    series on the grid start, start + sample, ..., end (bucket's own rows only)."""
    df = real.to_pandas()
    w, s = pd.Timedelta(width), pd.Timedelta(sample)
    out = {}
    first = df.ts.min().floor(w)
    for start in pd.date_range(first, df.ts.max(), freq=w):
        end = start + w
        grid = pd.date_range(start, end, freq=s)
        cols = {}
        for name, rows in df[(df.ts > start) & (df.ts <= end)].groupby("instrument"):
            last = rows.groupby("ts").price.last()  # duplicates: the last stored row
            cols[name] = np.log(last.asof(grid)).diff()
        out[end] = pd.DataFrame(cols, index=grid)
    return out


def _corr_beta(x: pd.Series, y: pd.Series, min_samples: int) -> tuple[float, float]:
    both = pd.concat([x, y], axis=1).dropna()
    if len(both) < min_samples:
        return np.nan, np.nan
    cov = np.cov(both.iloc[:, 0], both.iloc[:, 1], ddof=1)
    return float(np.corrcoef(both.iloc[:, 0], both.iloc[:, 1])[0, 1]), cov[0, 1] / cov[1, 1]


def _values(out: pl.DataFrame, instrument: str) -> dict[pd.Timestamp, float]:
    rows = out.filter(pl.col("instrument") == instrument).sort("ts")
    return {pd.Timestamp(t): v for t, v in zip(rows["ts"], rows[rows.columns[-1]], strict=True)}


def _assert_close(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if np.isnan(value):
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(value, abs=1e-9, rel=0), key


@pytest.mark.parametrize(("width", "sample"), [("15s", "250ms"), ("10s", "1s")])
def test_previous_tick_correlation_and_beta_match_pandas(
    real: pl.DataFrame, width: str, sample: str
) -> None:
    grids = _pandas_grid(real, width, sample)
    bucket = BucketSpec(width=width)
    params = c.SampledParams(reference="MID", sample=sample, min_samples=5)
    want_corr, want_beta = {}, {}
    for label, g in grids.items():
        if "MID" in g and "BTCUSDT" in g:
            want_corr[label], want_beta[label] = _corr_beta(g.BTCUSDT, g.MID, 5)
    corr = _values(c.return_correlation(real, params, bucket), "BTCUSDT")
    beta = _values(c.return_beta(real, params, bucket), "BTCUSDT")
    assert len(want_corr) >= 3 and all(0 < v < 1 for v in want_corr.values())
    _assert_close(corr, want_corr)
    _assert_close(beta, want_beta)
    # the reference with itself
    assert all(
        v == pytest.approx(1.0)
        for v in _values(c.return_correlation(real, params, bucket), "MID").values()
    )


def test_lead_lag_matches_shifted_pandas(real: pl.DataFrame) -> None:
    grids = _pandas_grid(real, "15s", "250ms")
    params = c.LeadLagParams(
        reference="MID", sample="250ms", max_lag=3, min_samples=5, each_lag=True
    )
    out = c.lead_lag_correlation(real, params, BucketSpec(width="15s"))
    base = "lead_lag_250ms_MID"
    for label, g in grids.items():
        row = out.filter((pl.col("instrument") == "BTCUSDT") & (pl.col("ts") == label))
        xcorr = {}
        for lag in range(-3, 4):
            # positive lag: the reference's return `lag` steps earlier
            xcorr[lag] = _corr_beta(g.BTCUSDT, g.MID.shift(lag), 5)[0]
            got = row[f"{base}_xcorr_lag_{c._lag_name(lag)}"].item()
            assert got == pytest.approx(xcorr[lag], abs=1e-9, rel=0)
        best = max(xcorr, key=lambda k: (abs(xcorr[k]), -abs(k), -k))
        assert row[f"{base}_lag"].item() == best
        assert row[f"{base}_correlation"].item() == pytest.approx(xcorr[best], abs=1e-9)


def _refresh_oracle(a: list[int], b: list[int]) -> list[int]:
    """Refresh times by a plain walk over the merged observation times."""
    points, seen_a, seen_b = [], False, False
    for t in sorted(set(a) | set(b)):
        seen_a |= t in a
        seen_b |= t in b
        if seen_a and seen_b:
            points.append(t)
            seen_a = seen_b = False
    return points


def test_refresh_time_matches_a_plain_walk(real: pl.DataFrame) -> None:
    df = real.to_pandas()
    params = c.SampledParams(
        reference="MID", sample="100ms", sampling="refresh_time", min_samples=5
    )
    got = _values(c.return_correlation(real, params, BucketSpec(width="15s")), "BTCUSDT")
    want = {}
    step = pd.Timedelta("100ms")
    for start in pd.date_range(df.ts.min().floor("15s"), df.ts.max(), freq="15s"):
        rows = df[(df.ts > start) & (df.ts <= start + pd.Timedelta("15s"))].copy()
        rows["j"] = np.ceil((rows.ts - start) / step).astype(int)
        last = {n: r.groupby("j").price.last() for n, r in rows.groupby("instrument")}
        if len(last) < 2:
            continue
        points = _refresh_oracle(list(last["BTCUSDT"].index), list(last["MID"].index))
        x = np.diff(np.log(last["BTCUSDT"].reindex(range(max(points) + 1)).ffill()[points]))
        y = np.diff(np.log(last["MID"].reindex(range(max(points) + 1)).ffill()[points]))
        want[start + pd.Timedelta("15s")] = _corr_beta(pd.Series(x), pd.Series(y), 5)[0]
    assert len(want) >= 3
    _assert_close(got, want)


def test_rolling_matches_pandas(real: pl.DataFrame) -> None:
    params = c.RollingParams(reference="MID", window=8, min_samples=4)
    corr = c.rolling_correlation(real, params, BucketSpec(width="1s"))
    beta = c.rolling_beta(real, params, BucketSpec(width="1s"))
    df = real.to_pandas()
    df["label"] = df.ts.dt.ceil("1s")
    closes = df.groupby(["label", "instrument"]).price.last().unstack()
    returns = np.log(closes.ffill()).diff()
    traded = closes.BTCUSDT.notna()
    for i, label in enumerate(closes.index):
        if not traded.iloc[i]:
            continue
        window = returns.iloc[max(0, i - 7) : i + 1]
        want_c, want_b = _corr_beta(window.BTCUSDT, window.MID, 4)
        for out, want in ((corr, want_c), (beta, want_b)):
            got = _values(out, "BTCUSDT")[label]
            assert got is None if np.isnan(want) else got == pytest.approx(want, abs=1e-9)
    assert corr.filter(pl.col("instrument") == "BTCUSDT").height == int(traded.sum())


# ---- synthetic: a known correlation, the Epps effect, a known lag ---------------------


def synthetic(
    rho: float = 0.6, hours: int = 8, gaps: tuple[float, float] = (2.0, 5.0), seed: int = 3
) -> pl.DataFrame:
    """Correlated Brownian log prices on a 100 ms grid, traded at Poisson times (mean
    gaps of 2 s and 5 s): the trade price is the efficient price (no noise)."""
    rng = np.random.default_rng(seed)
    steps = hours * 36_000
    z1 = rng.standard_normal(steps)
    z2 = rho * z1 + np.sqrt(1 - rho**2) * rng.standard_normal(steps)
    frames = []
    for name, z, gap in (("A", z1, gaps[0]), ("B", z2, gaps[1])):
        logp = np.cumsum(0.0005 * np.sqrt(0.1) * z)
        times = np.cumsum(rng.exponential(gap, int(hours * 3600 / gap * 1.3)))
        times = times[times < hours * 3600 - 1]
        frames.append(
            pl.DataFrame(
                {
                    "ts": [T0 + timedelta(microseconds=int(t * 1e6)) for t in times],
                    "instrument": name,
                    "price": 100 * np.exp(logp[(times * 10).astype(int)]),
                }
            )
        )
    return pl.concat(frames).with_columns(pl.col("ts").dt.cast_time_unit("ns")).sort("ts")


def _mean_corr(frame: pl.DataFrame, width: str, **params: object) -> float:
    p = c.SampledParams(reference="B", min_samples=5, **params)  # type: ignore[arg-type]
    out = c.return_correlation(frame, p, BucketSpec(width=width))
    return float(out.filter(pl.col("instrument") == "A")[out.columns[-1]].mean())  # type: ignore[arg-type]


def test_known_correlation_and_the_epps_effect() -> None:
    f = synthetic()
    rho = 0.6
    # refresh time (100 ms resolution, returns over every 5th refresh point) recovers rho
    refresh = _mean_corr(f, "8h", sample="100ms", sampling="refresh_time", refresh_every=5)
    assert refresh == pytest.approx(rho, abs=0.07)
    # Epps: previous-tick correlation shrinks as the sampling interval shrinks...
    previous = {s: _mean_corr(f, "1h", sample=s) for s in ("100ms", "1s", "10s", "1m")}
    values = list(previous.values())
    assert values == sorted(values) and values[0] < 0.05 and values[-1] > 0.5
    # ...while refresh time at the same fine resolution keeps most of it
    fine_refresh = _mean_corr(f, "1h", sample="100ms", sampling="refresh_time")
    assert fine_refresh > 0.4 > 10 * previous["100ms"]
    # the figures quoted in docs/analytics.md ("Correlation metrics")
    quoted = {"100ms": 0.009, "1s": 0.077, "10s": 0.402, "1m": 0.549}
    assert {s: round(v, 3) for s, v in previous.items()} == quoted
    assert (round(refresh, 3), round(fine_refresh, 3)) == (0.562, 0.448)


def test_lead_lag_finds_a_known_lag() -> None:
    rng = np.random.default_rng(11)
    ref = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 300)))
    k = 3  # A is the reference 3 samples (seconds) later: the reference leads by +3
    ts = [T0 + timedelta(seconds=i + 1) for i in range(300)]
    frame = pl.DataFrame(
        {
            "ts": ts + ts[k:],
            "instrument": ["R"] * 300 + ["A"] * (300 - k),
            "price": np.concatenate([ref, ref[:-k]]),
        }
    ).sort("ts")
    params = c.LeadLagParams(reference="R", sample="1s", max_lag=5, min_samples=10)
    out = c.lead_lag_correlation(frame, params, BucketSpec(width="5m"))
    row = out.filter(pl.col("instrument") == "A")
    assert row["lead_lag_1s_R_lag"].item() == k
    assert row["lead_lag_1s_R_correlation"].item() > 0.99
    swapped = c.lead_lag_correlation(
        frame, params.model_copy(update={"reference": "A"}), BucketSpec(width="5m")
    )
    assert swapped.filter(pl.col("instrument") == "R")["lead_lag_1s_A_lag"].item() == -k


# ---- boundaries -------------------------------------------------------------------------


def _two(first_second: int, constant: bool = False) -> pl.DataFrame:
    seconds = list(range(first_second, 11))
    a = [1.0 + (0 if constant else (s % 3) / 10) for s in seconds]
    b = [2.0 + (s % 2) / 10 for s in seconds]
    ts = [T0 + timedelta(seconds=s) for s in seconds]
    return pl.DataFrame(
        {"ts": ts * 2, "instrument": ["A"] * len(ts) + ["B"] * len(ts), "price": a + b}
    )


@pytest.mark.parametrize("metric", ["return_correlation", "return_beta"])
def test_min_samples_boundary_and_constant_price(metric: str) -> None:
    fn = get_metric(metric).fn
    params = c.SampledParams(reference="B", min_samples=5)
    bucket = BucketSpec(width="10s")
    # first trades at 5 s: returns at grid points 6..10 -> exactly 5 pairs
    exactly = fn(_two(5), params, bucket).filter(pl.col("instrument") == "A")
    assert exactly[exactly.columns[-1]].item() is not None
    fewer = fn(_two(6), params, bucket).filter(pl.col("instrument") == "A")
    assert fewer[fewer.columns[-1]].item() is None
    flat = fn(_two(1, constant=True), params, bucket)
    a_value = flat.filter(pl.col("instrument") == "A")[flat.columns[-1]].item()
    # a constant price: its correlation is undefined (null), its beta is 0
    assert a_value == (None if metric == "return_correlation" else 0.0)
    ref_flat = fn(_two(1, constant=True), params.model_copy(update={"reference": "A"}), bucket)
    values = ref_flat[ref_flat.columns[-1]].to_list()
    assert values == [None, None]  # zero variance of the reference: null, not NaN or inf


def test_parameter_errors() -> None:
    frame = _two(1)
    with pytest.raises(ConfigError, match="'reference'"):
        c.return_correlation(frame, c.SampledParams(), BucketSpec(width="10s"))
    with pytest.raises(ConfigError, match="must divide"):
        c.return_correlation(
            frame, c.SampledParams(reference="B", sample="3s"), BucketSpec(width="10s")
        )
    with pytest.raises(ConfigError, match="unknown parameter"):
        get_metric("rolling_beta").parse_params({"reference": "B", "windw": 3})


def test_refresh_points_walk() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        a = np.unique(rng.integers(0, 60, 12))
        b = np.unique(rng.integers(0, 60, 7))
        assert c.refresh_points(a, b).tolist() == _refresh_oracle(a.tolist(), b.tolist())


# ---- a pipeline run -------------------------------------------------------------------


def test_pipeline_run_matches_direct_calls_and_batches(tmp_path: Path) -> None:
    lake = init_lake(tmp_path / "lake")
    days = [date(2024, 3, 4), date(2024, 3, 5)]
    frames = []
    rng = np.random.default_rng(2)
    for day in days:
        start = datetime(day.year, day.month, day.day, 15, tzinfo=UTC)
        common = np.cumsum(rng.normal(0, 1e-3, 3600))
        for k, name in enumerate(["AAA", "BBB", "IDX"]):
            logp = common + (0 if name == "IDX" else np.cumsum(rng.normal(0, 1e-3, 3600)))
            secs = np.sort(rng.choice(3600, 900, replace=False))
            frames.append(
                pl.DataFrame(
                    {
                        "ts": [start + timedelta(seconds=int(s), milliseconds=k) for s in secs],
                        "instrument": name,
                        "trade_id": [f"{day}-{name}-{i}" for i in range(len(secs))],
                        "price": 50 * np.exp(logp[secs]),
                        "size": 1.0,
                    }
                ).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
            )
    trades = pl.concat(frames).sort("ts")
    lake.write("trades", trades, schema="trades", timezone="UTC")
    modules = [
        {"metric": "return_correlation", "params": {"reference": "IDX", "sample": "10s"}},
        {"metric": "rolling_beta", "params": {"reference": "IDX", "window": 6, "min_samples": 4}},
    ]

    def spec(name: str) -> object:
        return parse_pipeline(
            {
                "name": name,
                "executor": "serial",
                "bucket": {"width": "5m"},
                "passes": [{"name": "p", "input": "trades", "modules": modules}],
            }
        )

    run_pipeline(lake, spec("daily"), batch_frequency="D")  # type: ignore[arg-type]
    run_pipeline(lake, spec("yearly"), batch_frequency="Y")  # type: ignore[arg-type]
    daily = lake.read("gold.daily_p").sort("instrument", "ts")
    yearly = lake.read("gold.yearly_p").sort("instrument", "ts")
    cols = ["instrument", "ts", "return_correlation_10s_previous_tick_IDX", "rolling_beta_6_IDX"]
    assert daily.select(cols).equals(yearly.select(cols))
    stored = lake.read("trades").select("ts", "instrument", "price")
    want = c.return_correlation(
        stored, c.SampledParams(reference="IDX", sample="10s"), BucketSpec(width="5m")
    ).sort("instrument", "ts")
    got = daily.select(want.columns)
    assert got["ts"].dt.epoch("ns").to_list() == want["ts"].dt.epoch("ns").to_list()
    np.testing.assert_allclose(got[cols[2]].to_numpy(), want[cols[2]].to_numpy(), atol=1e-12)
    aaa = daily.filter(pl.col("instrument") == "AAA")
    assert aaa[cols[2]].drop_nulls().mean() > 0.4  # half the variance is the common factor
    assert aaa[cols[3]].drop_nulls().len() > 10


def test_registered_and_explained() -> None:
    from typer.testing import CliRunner

    from ticklake.cli import app

    runner = CliRunner()
    for name in c.__all__:
        assert get_metric(name).family == "correlation"
    shown = runner.invoke(app, ["analytics", "explain", "return_correlation"])
    assert shown.exit_code == 0, shown.output
    assert "cov(r, r_ref) / (std(r) * std(r_ref))" in shown.output
    column = runner.invoke(app, ["analytics", "explain", "rolling_beta_6_IDX"])
    assert column.exit_code == 0 and "window=6, reference=IDX" in column.output
