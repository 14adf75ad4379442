"""Summary statistics, outlier rules and regime buckets over per-day values.

Definitions (``x`` = the used days' values of one window and measure):

- ``up_percent``: ``100 * count(x > 0) / count(x)``;
- ``std``: sample standard deviation (ddof 1); ``mad``: median absolute deviation
  ``median(|x - median(x)|)``, unscaled; ``q1`` / ``q3``: linear-interpolated
  quartiles (numpy's default), ``iqr = q3 - q1``; ``skew``: adjusted Fisher-Pearson
  sample skewness (pandas ``Series.skew``, scipy ``skew(bias=False)``; null below 3 days);
- ``median_far_from_mean``: ``|mean - median| > k * mad`` (default ``k = 0.5``);
- outliers: MAD rule ``|x - median| > t * 1.4826 * mad`` (default ``t = 3.5``; 1.4826
  makes the MAD a standard-deviation estimate for normal data) and IQR rule
  ``x < q1 - m * iqr or x > q3 + m * iqr`` (default ``m = 1.5``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import polars as pl

#: Scale of the MAD to a standard deviation for normally distributed values.
MAD_TO_STD = 1.4826
SUMMARY_GROUP = ("window", "measure", "regime", "bucket")


def summary_expressions(far_from_mean_k: float) -> list[pl.Expr]:
    """Aggregations of ``value`` for one group (see the module docstring)."""
    x = pl.col("value")
    mean, median = x.mean(), x.median()
    mad = (x - median).abs().median()
    return [
        x.count().alias("count"),
        ((x > 0).sum() / x.count() * 100).alias("up_percent"),
        mean.alias("mean"),
        median.alias("median"),
        x.std(ddof=1).alias("std"),
        mad.alias("mad"),
        x.quantile(0.25, "linear").alias("q1"),
        x.quantile(0.75, "linear").alias("q3"),
        (x.quantile(0.75, "linear") - x.quantile(0.25, "linear")).alias("iqr"),
        pl.when(x.count() >= 3).then(x.skew(bias=False)).alias("skew"),
        x.min().alias("min"),
        x.max().alias("max"),
        ((mean - median).abs() > far_from_mean_k * mad).alias("median_far_from_mean"),
    ]


def summarize(
    long: pl.DataFrame, regimes: dict[str, list[str]], far_from_mean_k: float
) -> pl.DataFrame:
    """Summary rows per (window, measure) over all days and per bucket of each regime.

    ``long`` has ``window``, ``measure``, ``value`` and one label column per regime;
    ``regimes`` maps each regime column to its bucket labels in display order.
    """
    exprs = summary_expressions(far_from_mean_k)
    values = long.filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())
    parts = [
        values.group_by("window", "measure", maintain_order=True)
        .agg(exprs)
        .with_columns(pl.lit("all").alias("regime"), pl.lit("all").alias("bucket"))
    ]
    for regime in regimes:
        parts.append(
            values.filter(pl.col(regime).is_not_null())
            .group_by("window", "measure", regime, maintain_order=True)
            .agg(exprs)
            .rename({regime: "bucket"})
            .with_columns(pl.lit(regime).alias("regime"), pl.col("bucket").cast(pl.String))
        )
    columns = [*SUMMARY_GROUP, *(e.meta.output_name() for e in exprs)]
    out = pl.concat([p.select(columns) for p in parts], how="vertical_relaxed")
    order = {("all", "all"): 0}
    for regime, labels in regimes.items():
        order.update({(regime, label): i for i, label in enumerate(labels)})
    position = pl.Series(
        [order.get(key, 0) for key in zip(out["regime"], out["bucket"], strict=True)]
    )

    def rank(column: str, names: list[str]) -> pl.Expr:
        mapping = {name: i for i, name in enumerate(names)}
        return pl.col(column).replace_strict(mapping, return_dtype=pl.Int64).alias(f"_{column}")

    return (
        out.with_columns(
            position.alias("_bucket"),
            rank("window", long["window"].unique(maintain_order=True).to_list()),
            rank("measure", long["measure"].unique(maintain_order=True).to_list()),
            rank("regime", ["all", *regimes]),
        )
        .sort("_window", "_measure", "_regime", "_bucket", maintain_order=True)
        .drop("_window", "_measure", "_regime", "_bucket")
    )


def find_outliers(
    long: pl.DataFrame, rule: str, mad_threshold: float, iqr_multiplier: float
) -> pl.DataFrame:
    """Days whose value breaks the MAD and/or IQR rule within their (window, measure).

    Returns ``day``, ``window``, ``measure``, ``value``, ``rule`` (``mad`` or ``iqr``)
    and ``reason`` (the comparison with its numbers).
    """
    x = pl.col("value")
    values = long.filter(x.is_not_null() & x.is_not_nan())
    stats = values.group_by("window", "measure").agg(
        x.median().alias("_median"),
        (x - x.median()).abs().median().alias("_mad"),
        x.quantile(0.25, "linear").alias("_q1"),
        x.quantile(0.75, "linear").alias("_q3"),
    )
    joined = values.join(stats, on=["window", "measure"], how="left")
    found = []
    if rule in ("mad", "both"):
        limit = mad_threshold * MAD_TO_STD * pl.col("_mad")
        distance = (x - pl.col("_median")).abs()
        found.append(
            joined.filter(distance > limit).select(
                "day", "window", "measure", "value",
                pl.lit("mad").alias("rule"),
                pl.format(
                    "|x - median| = {} > {} x 1.4826 x MAD = {}",
                    distance.round(4), pl.lit(mad_threshold), limit.round(4),
                ).alias("reason"),
            )
        )  # fmt: skip
    if rule in ("iqr", "both"):
        iqr = pl.col("_q3") - pl.col("_q1")
        low = pl.col("_q1") - iqr_multiplier * iqr
        high = pl.col("_q3") + iqr_multiplier * iqr
        found.append(
            joined.filter((x < low) | (x > high)).select(
                "day", "window", "measure", "value",
                pl.lit("iqr").alias("rule"),
                pl.format(
                    "x = {} outside [Q1 - {} IQR, Q3 + {} IQR] = [{}, {}]",
                    x.round(4), pl.lit(iqr_multiplier), pl.lit(iqr_multiplier),
                    low.round(4), high.round(4),
                ).alias("reason"),
            )
        )  # fmt: skip
    schema = {
        "day": pl.Date,
        "window": pl.String,
        "measure": pl.String,
        "value": pl.Float64,
        "rule": pl.String,
        "reason": pl.String,
    }
    if not found:
        return pl.DataFrame(schema=schema)
    return pl.concat(found).sort("window", "measure", "day", "rule").cast(schema)  # type: ignore[arg-type]


def quantile_labels(buckets: int, prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(1, buckets + 1)]


def quantile_buckets(values: pl.Series, buckets: int, prefix: str) -> pl.Series:
    """Label each value with its quantile bucket ``<prefix>1`` .. ``<prefix><buckets>``.

    Edges are the linear-interpolated quantiles ``k / buckets``; bucket ``i`` holds
    ``(edge[i-1], edge[i]]`` like ``pandas.qcut(values, buckets, labels=False) + 1``
    (the lowest value falls in bucket 1). Nulls stay null.

    Examples:
        >>> quantile_buckets(pl.Series([1.0, 2.0, 3.0, 4.0]), 2, "Q").to_list()
        ['Q1', 'Q1', 'Q2', 'Q2']
    """
    present = values.drop_nulls()
    if present.len() == 0:
        return pl.Series(values.name, [None] * values.len(), dtype=pl.String)
    edges = [present.quantile(k / buckets, "linear") for k in range(1, buckets)]
    frame = pl.DataFrame({"x": values})
    count_below = pl.sum_horizontal([(pl.col("x") > edge).cast(pl.Int32) for edge in edges])
    index = (count_below + 1) if edges else pl.lit(1)
    labels = frame.select(
        pl.when(pl.col("x").is_not_null()).then(pl.format(f"{prefix}{{}}", index)).alias("x")
    )
    return labels.to_series().alias(values.name)


def edge_buckets(values: pl.Series, edges: Sequence[float], unit: str = "bps") -> pl.Series:
    """Label each value with the interval of ``edges`` it falls in, left-closed.

    Examples:
        >>> edge_buckets(pl.Series([-60.0, 0.0, 20.0]), [-50.0, 20.0]).to_list()
        ['< -50 bps', '[-50, 20) bps', '>= 20 bps']
    """
    labels = _edge_labels(edges, unit)
    out: list[str | None] = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        index = sum(1 for edge in edges if value >= edge)
        out.append(labels[index])
    return pl.Series(values.name, out, dtype=pl.String)


def edge_bucket_order(edges: Sequence[float], unit: str = "bps") -> list[str]:
    return _edge_labels(edges, unit)


def _edge_labels(edges: Sequence[float], unit: str) -> list[str]:
    if not edges:
        return [f"all {unit}"]
    text = [f"{e:g}" for e in edges]
    labels = [f"< {text[0]} {unit}"]
    labels += [f"[{a}, {b}) {unit}" for a, b in pairwise(text)]
    labels.append(f">= {text[-1]} {unit}")
    return labels
