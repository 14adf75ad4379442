"""Summary statistics, outlier rules and regime buckets against independent computations."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy import stats as scipy_stats

from ticklake.stats.summary import (
    edge_buckets,
    find_outliers,
    quantile_buckets,
    quantile_labels,
    summarize,
)


def _long(values: list[float], window: str = "09:15-09:20", **labels: list[str]) -> pl.DataFrame:
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(len(values))]
    data = {"day": days, "window": window, "measure": "return_bps", "value": values}
    data.update(labels)
    return pl.DataFrame(data)


def test_summary_matches_numpy_scipy_and_pandas() -> None:
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.normal(1.0, 4.0, 57), rng.exponential(9.0, 9)])
    row = summarize(_long(values.tolist()), {}, far_from_mean_k=0.5).row(0, named=True)
    median = np.median(values)
    mad = np.median(np.abs(values - median))
    q1, q3 = np.percentile(values, [25, 75])
    assert row["count"] == values.size
    assert row["up_percent"] == pytest.approx(100 * np.mean(values > 0))
    assert row["mean"] == pytest.approx(np.mean(values))
    assert row["median"] == pytest.approx(median)
    assert row["std"] == pytest.approx(np.std(values, ddof=1))
    assert row["mad"] == pytest.approx(mad)
    assert row["mad"] == pytest.approx(scipy_stats.median_abs_deviation(values))
    assert (row["q1"], row["q3"]) == pytest.approx((q1, q3))
    assert row["iqr"] == pytest.approx(scipy_stats.iqr(values))
    assert row["skew"] == pytest.approx(scipy_stats.skew(values, bias=False))
    assert row["skew"] == pytest.approx(pd.Series(values).skew())
    assert row["median_far_from_mean"] == (abs(np.mean(values) - median) > 0.5 * mad)


def test_hand_computed_small_case() -> None:
    # 1, 2, 3, 4, 100: mean 22, median 3, |x - 3| = 2, 1, 0, 1, 97 -> MAD 1;
    # quartiles (linear) 2 and 4 -> IQR 2; |22 - 3| = 19 > 0.5 x 1 -> far from the mean.
    row = summarize(_long([1.0, 2.0, 3.0, 4.0, 100.0]), {}, 0.5).row(0, named=True)
    assert (row["count"], row["up_percent"], row["mean"], row["median"]) == (5, 100.0, 22.0, 3.0)
    assert (row["mad"], row["q1"], row["q3"], row["iqr"]) == (1.0, 2.0, 4.0, 2.0)
    assert row["median_far_from_mean"] is True
    assert row["std"] == pytest.approx(np.sqrt(((np.array([1, 2, 3, 4, 100]) - 22) ** 2).sum() / 4))
    close = summarize(_long([-1.0, 0.0, 1.0, 2.0, 3.0]), {}, 0.5).row(0, named=True)
    assert (close["mean"], close["median"], close["up_percent"]) == (1.0, 1.0, 60.0)
    assert close["median_far_from_mean"] is False
    two = summarize(_long([1.0, 2.0]), {}, 0.5).row(0, named=True)
    assert two["skew"] is None  # undefined below three values


def test_summary_per_regime_bucket_uses_only_that_buckets_days() -> None:
    values = [5.0, -3.0, 8.0, 1.0, -2.0, 4.0]
    labels = ["D1", "D2", "D1", "D2", "D10", "D1"]
    summary = summarize(
        _long(values, volatility_decile=labels),
        {"volatility_decile": quantile_labels(10, "D")},
        0.5,
    )
    per_bucket = summary.filter(pl.col("regime") == "volatility_decile")
    assert per_bucket["bucket"].to_list() == ["D1", "D2", "D10"]  # natural order
    d1 = per_bucket.filter(pl.col("bucket") == "D1").row(0, named=True)
    assert (d1["count"], d1["mean"], d1["median"]) == (3, pytest.approx(17 / 3), 5.0)
    everything = summary.filter(pl.col("regime") == "all").row(0, named=True)
    assert everything["count"] == 6


def test_outlier_rules_match_a_hand_check() -> None:
    rng = np.random.default_rng(9)
    values = np.round(rng.normal(0, 5, 40), 3)
    values[[3, 17]] = [60.0, -45.0]
    long = _long(values.tolist())
    median = np.median(values)
    mad = np.median(np.abs(values - median))
    q1, q3 = np.percentile(values, [25, 75])
    expected_mad = {i for i, v in enumerate(values) if abs(v - median) > 3.5 * 1.4826 * mad}
    expected_iqr = {
        i for i, v in enumerate(values) if v < q1 - 1.5 * (q3 - q1) or v > q3 + 1.5 * (q3 - q1)
    }
    found = find_outliers(long, "both", 3.5, 1.5)
    index = {d: i for i, d in enumerate(long["day"])}
    assert {index[d] for d in found.filter(pl.col("rule") == "mad")["day"]} == expected_mad
    assert {index[d] for d in found.filter(pl.col("rule") == "iqr")["day"]} == expected_iqr
    assert {3, 17} <= expected_mad
    assert find_outliers(long, "mad", 3.5, 1.5)["rule"].unique().to_list() == ["mad"]
    reason = found.filter((pl.col("rule") == "mad") & (pl.col("value") == 60.0))["reason"].item()
    assert reason.startswith(f"|x - median| = {round(60.0 - median, 4)} > 3.5 x 1.4826 x MAD")


def test_quantile_buckets_match_pandas_qcut() -> None:
    rng = np.random.default_rng(2)
    values = rng.lognormal(3.5, 0.4, 73)
    ours = quantile_buckets(pl.Series(values), 10, "D").to_list()
    theirs = pd.qcut(values, 10, labels=False) + 1
    assert ours == [f"D{k}" for k in theirs]


def test_deciles_by_hand() -> None:
    # 20 values 1..20: decile edges at 2.9, 4.8, ..., 18.1 (linear): two values each.
    values = pl.Series([float(v) for v in range(20, 0, -1)] + [None])
    labels = quantile_buckets(values, 10, "D").to_list()
    expected = [f"D{(v - 1) // 2 + 1}" for v in range(20, 0, -1)] + [None]
    assert labels == expected


def test_gap_edges_are_left_closed() -> None:
    out = edge_buckets(pl.Series([-80.0, -50.0, -20.0, 0.0, 19.99, 20.0, 50.0, None]),
                       [-50.0, -20.0, 20.0, 50.0]).to_list()  # fmt: skip
    assert out == [
        "< -50 bps", "[-50, -20) bps", "[-20, 20) bps", "[-20, 20) bps", "[-20, 20) bps",
        "[20, 50) bps", ">= 50 bps", None,
    ]  # fmt: skip
