"""The alpha101 family on real minute bars, against an independent plain-pandas
computation of sixteen alphas, through a pipeline run, and the refused alphas.

The bars (``tests/data/alpha101/minute_bars.csv``, see its PROVENANCE.md) are real
1-minute OHLCV bars of CME Euro FX futures (four days) and a BTC perpetual (two days):
only one contract per source exists in the repository's samples, so each *day* is one
instrument, and all six are laid on the same clock (2024-03-04, 17:00-22:00 UTC) to
form a cross-section. Some FX minutes have no bar, so the cross-section varies. The
samples have no VWAP: ``vwap`` is the typical price ``(high + low + close) / 3``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from typer.testing import CliRunner

from ticklake import init_lake
from ticklake.analytics.buckets import BucketSpec
from ticklake.analytics.metrics import alpha101
from ticklake.analytics.metrics.alpha101_ops import Panel
from ticklake.analytics.pipeline import parse_pipeline
from ticklake.analytics.registry import get_metric
from ticklake.analytics.run import run_pipeline
from ticklake.cli import app
from ticklake.errors import ConfigError

DATA = Path(__file__).resolve().parents[2] / "data" / "alpha101" / "minute_bars.csv"
DAY = datetime(2024, 3, 4, tzinfo=UTC)
RTOL, ATOL = 1e-9, 1e-12


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    raw = pl.read_csv(DATA).with_columns(
        pl.col("source_ts").str.to_datetime("%Y-%m-%d %H:%M", time_zone="UTC")
    )
    clock = pl.col("source_ts") - pl.col("source_ts").dt.truncate("1d")
    return (
        raw.with_columns(ts=pl.lit(DAY).dt.cast_time_unit("ns") + clock)
        .with_columns(
            ts_end=pl.col("ts") + pl.duration(minutes=1),
            vwap=(pl.col("high") + pl.col("low") + pl.col("close")) / 3,
        )
        .select("ts", "ts_end", "instrument", "open", "high", "low", "close", "volume", "vwap")
        .sort("ts", "instrument")
    )


# --------------------------------------------------------------- the pandas oracle
class Ref:
    """The paper's operators on a long pandas frame, written independently: groupby +
    rolling for time series, numpy windows for correlation, groupby(ts) for ranks."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.df = frame.sort_values(["instrument", "ts"]).reset_index(drop=True)
        self.g = self.df["instrument"]
        for c in ("open", "high", "low", "close", "volume", "vwap"):
            setattr(self, c, self.df[c].astype(float))
        self.returns = self.close / self.delay(self.close, 1) - 1

    def _by(self, x: pd.Series) -> pd.core.groupby.SeriesGroupBy:
        return x.groupby(self.g, sort=False)

    def delay(self, x: pd.Series, d: int) -> pd.Series:
        return self._by(x).shift(d)

    def delta(self, x: pd.Series, d: int) -> pd.Series:
        return x - self.delay(x, d)

    def roll(self, x: pd.Series, d: int, how: str) -> pd.Series:
        return self._by(x).transform(lambda s: getattr(s.rolling(d), how)())

    def apply(self, x: pd.Series, d: int, fn: Callable[[np.ndarray], float]) -> pd.Series:
        return self._by(x).transform(lambda s: s.rolling(d).apply(fn, raw=True))

    def ts_rank(self, x: pd.Series, d: int) -> pd.Series:
        return self.apply(x, d, lambda w: pd.Series(w).rank().iloc[-1] / d)

    def ts_argmax(self, x: pd.Series, d: int) -> pd.Series:
        return self.apply(x, d, lambda w: float(np.argmax(w) + 1))

    def decay_linear(self, x: pd.Series, d: int) -> pd.Series:
        weights = np.arange(1, d + 1, dtype=float)
        return self.apply(x, d, lambda w: float(w @ weights / weights.sum()))

    def _pairwise(self, x: pd.Series, y: pd.Series, d: int, corr: bool) -> pd.Series:
        out = pd.Series(np.nan, index=x.index)
        for _, idx in self.df.groupby("instrument", sort=False).groups.items():
            a, b = x.loc[idx].to_numpy(float), y.loc[idx].to_numpy(float)
            if len(a) < d:
                continue
            wa, wb = sliding_window_view(a, d), sliding_window_view(b, d)
            # shifted by the window's first value first: a constant window is exactly 0
            wa0, wb0 = wa - wa[:, :1], wb - wb[:, :1]
            ca = wa0 - wa0.mean(axis=1, keepdims=True)
            cb = wb0 - wb0.mean(axis=1, keepdims=True)
            cov = (ca * cb).sum(axis=1) / (d - 1)
            value = cov
            if corr:
                with np.errstate(divide="ignore", invalid="ignore"):
                    value = cov / np.sqrt((ca**2).sum(axis=1) * (cb**2).sum(axis=1) / (d - 1) ** 2)
                flat = (wa.max(axis=1) == wa.min(axis=1)) | (wb.max(axis=1) == wb.min(axis=1))
                value = np.where(flat, 0.0, value)
            value = np.where(np.isnan(wa).any(axis=1) | np.isnan(wb).any(axis=1), np.nan, value)
            out.loc[idx[d - 1 :]] = value
        return out

    def correlation(self, x: pd.Series, y: pd.Series, d: int) -> pd.Series:
        return self._pairwise(x, y, d, corr=True)

    def covariance(self, x: pd.Series, y: pd.Series, d: int) -> pd.Series:
        return self._pairwise(x, y, d, corr=False)

    def rank(self, x: pd.Series) -> pd.Series:
        return x.groupby(self.df["ts"]).rank(pct=True)

    def where(self, cond: pd.Series, a: object, b: object) -> pd.Series:
        """``cond ? a : b`` where ``cond`` is 1.0 / 0.0 / NaN (missing stays missing)."""
        picked = np.where(cond == 1, a, b)
        return pd.Series(np.where(cond.isna(), np.nan, picked), index=cond.index)

    @staticmethod
    def lt(a: pd.Series | float, b: pd.Series | float) -> pd.Series:
        result = pd.Series(np.less(a, b).astype(float))
        result[pd.isna(a) | pd.isna(b)] = np.nan
        return result


def ref_alphas(r: Ref) -> dict[int, pd.Series]:
    d1 = r.delta(r.close, 1)
    body = (r.close - r.open) / r.open
    with np.errstate(divide="ignore", invalid="ignore"):
        a053 = -1 * r.delta(((r.close - r.low) - (r.high - r.close)) / (r.close - r.low), 9)
        a054 = -1 * (r.low - r.close) * r.open**5 / ((r.low - r.high) * r.close**5)
    base001 = r.where(r.lt(r.returns, 0), r.roll(r.returns, 20, "std"), r.close)
    inner009 = r.where(r.lt(r.roll(d1, 5, "max"), 0), d1, -d1)
    return {
        1: r.rank(r.ts_argmax(np.sign(base001) * base001.abs() ** 2, 5)) - 0.5,
        2: -1 * r.correlation(r.rank(r.delta(np.log(r.volume), 2)), r.rank(body), 6),
        3: -1 * r.correlation(r.rank(r.open), r.rank(r.volume), 10),
        4: -1 * r.ts_rank(r.rank(r.low), 9),
        6: -1 * r.correlation(r.open, r.volume, 10),
        9: r.where(r.lt(0, r.roll(d1, 5, "min")), d1, inner009),
        12: np.sign(r.delta(r.volume, 1)) * (-1 * d1),
        13: -1 * r.rank(r.covariance(r.rank(r.close), r.rank(r.volume), 5)),
        23: r.where(r.lt(r.roll(r.high, 20, "mean"), r.high), -1 * r.delta(r.high, 2), 0.0),
        26: -1 * r.roll(r.correlation(r.ts_rank(r.volume, 5), r.ts_rank(r.high, 5), 5), 3, "max"),
        33: r.rank(-1 * (1 - r.open / r.close)),
        41: np.sqrt(r.high * r.low) - r.vwap,
        53: a053,
        54: a054,
        57: -(r.close - r.vwap) / r.decay_linear(r.rank(r.ts_argmax(r.close, 30)), 2),
        101: (r.close - r.open) / ((r.high - r.low) + 0.001),
        **more_ref_alphas(r),
    }


def more_ref_alphas(r: Ref) -> dict[int, pd.Series]:
    adv = {d: r.roll(r.volume * r.vwap, d, "mean") for d in (20, 180)}
    d7 = r.delta(r.close, 7)
    a007 = r.where(r.lt(adv[20], r.volume), -1 * r.ts_rank(d7.abs(), 60) * np.sign(d7), -1.0)
    m8, s8, m2 = r.roll(r.close, 8, "mean"), r.roll(r.close, 8, "std"), r.roll(r.close, 2, "mean")
    ratio = r.volume / adv[20]
    at_least_one = 1 - r.lt(ratio, 1)  # (1 < ratio) || (ratio == 1); NaN stays NaN
    inner = r.where(r.lt(m2, m8 - s8), 1.0, r.where(at_least_one, 1.0, -1.0))
    a021 = r.where(r.lt(m8 + s8, m2), -1.0, inner)
    c = r.correlation(r.ts_rank(r.close, 3), r.ts_rank(adv[180], 12), 18)
    first = r.ts_rank(r.decay_linear(c, 4), 15)
    second = r.ts_rank(r.decay_linear(r.rank((r.low + r.open) - 2 * r.vwap) ** 2, 16), 4)
    return {
        7: a007,
        21: a021,
        42: r.rank(r.vwap - r.close) / r.rank(r.vwap + r.close),
        71: np.maximum(first, second),  # NaN if either is NaN
    }


@pytest.fixture(scope="module")
def reference(bars: pl.DataFrame) -> tuple[pd.DataFrame, dict[int, pd.Series]]:
    r = Ref(bars.to_pandas())
    return r.df, ref_alphas(r)


def _compare(ours: pl.DataFrame, keys: pd.DataFrame, want: pd.Series, name: str) -> None:
    expected = keys[["instrument", "ts"]].assign(want=want.replace([np.inf, -np.inf], np.nan))
    got = ours.to_pandas().merge(expected, on=["instrument", "ts"], how="outer")
    assert len(got) == len(ours) == len(keys), name
    a, b = got[name].to_numpy(float), got["want"].to_numpy(float)
    missing = np.isnan(a)
    assert (missing == np.isnan(b)).all(), (
        f"{name}: null where the oracle has a value: {np.flatnonzero(missing != np.isnan(b))}"
    )
    assert (~missing).sum() > 100, f"{name}: too few values to compare"
    np.testing.assert_allclose(a[~missing], b[~missing], rtol=RTOL, atol=ATOL, err_msg=name)


GOLDEN = [1, 2, 3, 4, 6, 7, 9, 12, 13, 21, 23, 26, 33, 41, 42, 53, 54, 57, 71, 101]


@pytest.mark.parametrize("number", GOLDEN)
def test_alpha_matches_the_pandas_oracle_on_real_bars(
    number: int, bars: pl.DataFrame, reference: tuple[pd.DataFrame, dict[int, pd.Series]]
) -> None:
    keys, alphas = reference
    m = get_metric(f"alpha101_{number:03d}")
    ours = m.fn(bars, m.params_model())
    _compare(ours, keys, alphas[number], m.name)


def test_every_implemented_alpha_runs_on_real_bars(bars: pl.DataFrame) -> None:
    counts = {}
    for number in sorted(alpha101.IMPLEMENTED):
        out = alpha101.compute_alpha(number, bars)
        assert out.height == bars.height and out.columns[2] == f"alpha101_{number:03d}"
        counts[number] = out[out.columns[2]].is_not_null().sum()
    # Every alpha yields values on 6 instruments x ~300 bars (long windows leave fewer).
    assert min(counts.values()) > 0, {k: v for k, v in counts.items() if v == 0}


def test_warm_up_is_the_window_and_there_is_no_look_ahead(bars: pl.DataFrame) -> None:
    full = alpha101.compute_alpha(12, bars)
    first = full.filter(pl.col("instrument") == "BTCPERP_0111")["alpha101_012"]
    assert first[0] is None and first[1] is not None  # delta(x, 1): one bar of warm-up
    # Values up to a time do not change when later bars are dropped (time series and ranks).
    cut = DAY + timedelta(hours=19)
    for number in (1, 26, 57):
        whole = alpha101.compute_alpha(number, bars).filter(pl.col("ts") < cut)
        early = alpha101.compute_alpha(number, bars.filter(pl.col("ts") < cut))
        assert whole.equals(early), number


def test_operators_floor_non_integer_windows() -> None:
    frame = pl.DataFrame(
        {
            "ts": [datetime(2024, 1, 1, 0, m) for m in range(4)],
            "instrument": "A",
            **{c: [1.0, 2.0, 3.0, 5.0] for c in ("open", "high", "low", "close")},
            "volume": 1.0,
            "vwap": 1.0,
        }
    )
    p = Panel(frame)
    assert p.sum(p.close, 2.9).to_list() == [None, 3.0, 5.0, 8.0]
    decayed = p.decay_linear(p.close, 2.5).to_list()  # weights 2 (current), 1 (previous)
    assert decayed[0] is None and decayed[1:] == pytest.approx([5 / 3, 8 / 3, 13 / 3])
    assert p.ts_rank(p.close, 3).to_list() == [None, None, 1.0, 1.0]


@pytest.mark.parametrize("number", sorted(alpha101.REFUSED))
def test_alphas_needing_industry_or_cap_refuse_with_the_reason(
    number: int, bars: pl.DataFrame
) -> None:
    m = get_metric(f"alpha101_{number:03d}")
    need = "market capitalisation" if number == 56 else "industry classification"
    assert ("cap" if number == 56 else "ndneutralize") in m.formula.lower()
    with pytest.raises(ConfigError, match=need):
        m.fn(bars, m.params_model())


def test_registered_with_formulas_and_explained() -> None:
    for number in range(1, 102):
        m = get_metric(f"alpha101_{number:03d}")
        assert m.family == "alpha101" and m.kind == "frame" and m.formula
        assert all(i.startswith("bars.") for i in m.inputs)
    assert get_metric("alpha101_054").inputs == (
        "bars.open",
        "bars.high",
        "bars.low",
        "bars.close",
    )
    out = CliRunner().invoke(app, ["analytics", "explain", "alpha101_012"], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert "(sign(delta(volume, 1)) * (-1 * delta(close, 1)))" in out.output


def test_a_missing_column_is_named(bars: pl.DataFrame) -> None:
    with pytest.raises(ConfigError, match=r"alpha101_005 needs bars columns vwap"):
        alpha101.compute_alpha(5, bars.drop("vwap"))
    assert alpha101.compute_alpha(101, bars.drop("vwap")).height == bars.height


def test_alphas_through_a_pipeline_run(
    tmp_path: Path,
    bars: pl.DataFrame,
    reference: tuple[pd.DataFrame, dict[int, pd.Series]],
) -> None:
    lake = init_lake(tmp_path / "lake")
    lake.write("bars_1m", bars, schema="bars", timezone="UTC")
    spec = parse_pipeline(
        {
            "name": "alphas",
            "executor": "serial",
            "bucket": {"width": "1m", "label": "start", "closed": "left"},
            "passes": [
                {
                    "name": "minute",
                    "input": "bars_1m",
                    "modules": [
                        {"metric": "alpha101_012"},
                        {"metric": "alpha101_026"},
                        {"metric": "alpha101_101"},
                    ],
                }
            ],
        }
    )
    run_pipeline(lake, spec)
    gold = lake.read("gold.alphas_minute").sort("instrument", "ts")
    keys, alphas = reference
    assert gold.height == bars.height
    for number in (12, 26, 101):
        name = f"alpha101_{number:03d}"
        _compare(gold.select("instrument", "ts", name), keys, alphas[number], name)
    # A wider bucket keeps each instrument's last bar of the bucket.
    five = alpha101.compute_alpha(101, bars, BucketSpec(width="5m", label="start", closed="left"))
    last = (
        alpha101.compute_alpha(101, bars)
        .with_columns(pl.col("ts").dt.truncate("5m"))
        .group_by("instrument", "ts", maintain_order=True)
        .last()
        .sort("instrument", "ts")
    )
    assert five.equals(last)
