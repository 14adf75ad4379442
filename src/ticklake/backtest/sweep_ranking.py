"""Ranking a sweep's variants and choosing one honestly: the variant table (statistics
per variant, ranked), the out-of-sample choice and rolling walk-forward windows.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from ticklake.backtest.spec import StrategySpec, spec_document
from ticklake.backtest.stats import compute_statistics, session_seconds_from_spec
from ticklake.errors import ConfigError

#: Statistics where smaller is better (ranked ascending).
ASCENDING_STATISTICS = frozenset({"max_drawdown_paise", "total_costs_paise"})
RANK_STATISTICS = (
    "total_net_pnl_paise",
    "sharpe_ratio",
    "sortino_ratio",
    "profit_factor",
    "win_rate_traded_days",
    "average_daily_net_pnl_rupees",
    "max_drawdown_paise",
    "total_costs_paise",
)


def variant_statistics(
    daily: pl.DataFrame, trades: pl.DataFrame, variant: int, session_seconds: int
) -> dict[str, Any]:
    """The run statistics of one variant (over the rows of ``daily``/``trades`` given)."""
    stats = compute_statistics(
        daily.filter(pl.col("variant") == variant).drop("variant"),
        trades.filter(pl.col("variant") == variant).drop("variant"),
        session_seconds=session_seconds,
    )
    return {name: getattr(stats, name) for name in (*RANK_STATISTICS, "days_traded", "fills")}


def _sort_key(statistic: str) -> pl.Expr:
    column = pl.col(statistic).cast(pl.Float64)
    return column if statistic in ASCENDING_STATISTICS else -column


def variant_table(
    daily: pl.DataFrame,
    trades: pl.DataFrame,
    variants: list[dict[str, Any]],
    spec: StrategySpec,
    *,
    rank_by: str = "total_net_pnl_paise",
) -> pl.DataFrame:
    """One row per variant: axis values, statistics, ``rank`` (1 = best by ``rank_by``)."""
    seconds = session_seconds_from_spec(spec_document(spec))
    rows = []
    for entry in variants:
        stats = variant_statistics(daily, trades, entry["variant"], seconds)
        rows.append({"variant": entry["variant"], **entry["values"], **stats})
    table = pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.col(c).cast(pl.Float64)
        for c in RANK_STATISTICS
        if c.endswith(("ratio", "factor", "days", "rupees"))
    )
    ordered = table.sort(_sort_key(rank_by), "variant", nulls_last=True)
    return ordered.with_columns(
        pl.int_range(1, ordered.height + 1, dtype=pl.Int64).alias("rank")
    ).select("rank", pl.all().exclude("rank"))


def out_of_sample(
    daily: pl.DataFrame,
    trades: pl.DataFrame,
    variants: list[dict[str, Any]],
    spec: StrategySpec,
    *,
    train_end: date,
    test_end: date | None = None,
    rank_by: str = "total_net_pnl_paise",
) -> dict[str, Any]:
    """Choose the best variant on days ``<= train_end``; report it on the later days.

    Returns the chosen variant, its training and test statistics, and its test rank
    among all variants (1 = it was also the best out of sample).
    """
    train = daily.filter(pl.col("date") <= train_end)
    test = daily.filter(pl.col("date") > train_end)
    if test_end is not None:
        test = test.filter(pl.col("date") <= test_end)
    if train.height == 0 or test.height == 0:
        raise ConfigError(
            f"out-of-sample split at {train_end} leaves an empty training or test period"
        )
    train_trades = trades.filter(pl.col("date") <= train_end)
    test_trades = trades.filter(pl.col("date").is_in(test["date"].unique().implode()))
    on_train = variant_table(train, train_trades, variants, spec, rank_by=rank_by)
    on_test = variant_table(test, test_trades, variants, spec, rank_by=rank_by)
    chosen = int(on_train["variant"][0])
    test_row = on_test.filter(pl.col("variant") == chosen).row(0, named=True)
    return {
        "rank_by": rank_by,
        "train": [str(train["date"].min()), str(train["date"].max())],
        "test": [str(test["date"].min()), str(test["date"].max())],
        "chosen_variant": chosen,
        "values": next(v["values"] for v in variants if v["variant"] == chosen),
        "train_statistic": on_train.row(0, named=True)[rank_by],
        "test_statistic": test_row[rank_by],
        "test_rank": int(test_row["rank"]),
        "variants": len(variants),
        "best_test_variant": int(on_test["variant"][0]),
    }


def walk_forward(
    daily: pl.DataFrame,
    trades: pl.DataFrame,
    variants: list[dict[str, Any]],
    spec: StrategySpec,
    *,
    train_days: int,
    test_days: int,
    rank_by: str = "total_net_pnl_paise",
) -> pl.DataFrame:
    """Rolling windows: choose on ``train_days`` planned days, report the next
    ``test_days``; one row per window (the test windows do not overlap)."""
    if train_days < 1 or test_days < 1:
        raise ConfigError("walk-forward needs train_days >= 1 and test_days >= 1")
    dates = sorted(daily["date"].unique().to_list())
    rows = []
    start = 0
    while start + train_days < len(dates):
        train_dates = dates[start : start + train_days]
        test_dates = dates[start + train_days : start + train_days + test_days]
        window = daily.filter(pl.col("date").is_in(train_dates + test_dates))
        result = out_of_sample(
            window,
            trades.filter(pl.col("date").is_in(train_dates + test_dates)),
            variants,
            spec,
            train_end=train_dates[-1],
            rank_by=rank_by,
        )
        rows.append(
            {
                "train_start": train_dates[0],
                "train_end": train_dates[-1],
                "test_start": test_dates[0],
                "test_end": test_dates[-1],
                "chosen_variant": result["chosen_variant"],
                "train_statistic": _float(result["train_statistic"]),
                "test_statistic": _float(result["test_statistic"]),
                "test_rank": result["test_rank"],
            }
        )
        start += test_days
    if not rows:
        raise ConfigError(
            f"walk-forward: {len(dates)} planned days are too few for {train_days} training days"
        )
    return pl.DataFrame(rows)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
