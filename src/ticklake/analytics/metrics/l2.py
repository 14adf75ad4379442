"""L2 metrics over order-book snapshots (``l2_N``: ``bid_price_i``, ``bid_size_i``,
``ask_price_i``, ``ask_size_i``; level 0 is the best; null = no level).

Snapshot metrics compute a value per snapshot and aggregate it over the bucket's
snapshots with ``aggregation``: ``mean`` (per snapshot, not time-weighted), ``last``
(the state at the bucket's last snapshot: rows are time-sorted, as ``group_by_dynamic``
requires), ``min`` or ``max``. Time-weighted metrics
are frame metrics: each snapshot weighs the time until the next snapshot, capped at its
bucket's end, so no snapshot weighs time after its bucket (no look-ahead); the time
between the bucket start and its first snapshot is not counted.
"""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import Field

from ticklake.analytics.buckets import BucketSpec
from ticklake.analytics.metrics.trade import time_weighted_per_bucket
from ticklake.analytics.registry import MetricParams, NoParams, metric

Aggregation = Literal["mean", "last", "min", "max"]
BookSide = Literal["both", "bid", "ask"]

BID = pl.col("bid_price_0")
ASK = pl.col("ask_price_0")
BID_SIZE = pl.col("bid_size_0")
ASK_SIZE = pl.col("ask_size_0")
MID = (BID + ASK) / 2


def _top(frame: pl.DataFrame) -> pl.DataFrame:
    """The columns a best-quote frame metric reads: time-weighting sorts the rows, and
    sorting only these (not every level of the book) is most of its cost."""
    return frame.select("ts", "instrument", "bid_price_0", "ask_price_0")


def _aggregate(value: pl.Expr, aggregation: Aggregation) -> pl.Expr:
    if aggregation == "last":
        return value.last()
    method: pl.Expr = getattr(value, aggregation)()
    return method


class SnapshotParams(MetricParams):
    aggregation: Aggregation = "mean"


class LastSnapshotParams(MetricParams):
    aggregation: Aggregation = "last"


def spread_value() -> pl.Expr:
    """Per snapshot: best ask minus best bid (null when a side is empty)."""
    return ASK - BID


def spread_bps_value() -> pl.Expr:
    """Per snapshot: the spread in basis points of the mid."""
    return (ASK - BID) / MID * 10_000


def microprice_value() -> pl.Expr:
    """Per snapshot: the mid weighted towards the side with less size."""
    return (BID * ASK_SIZE + ASK * BID_SIZE) / (BID_SIZE + ASK_SIZE)


def depth_value(levels: int, side: BookSide) -> pl.Expr:
    """Per snapshot: total size on the top ``levels`` levels of ``side``."""
    sides = ("bid", "ask") if side == "both" else (side,)
    return pl.sum_horizontal(
        pl.col(f"{s}_size_{i}").fill_null(0.0) for s in sides for i in range(levels)
    )


@metric(
    name="book_spread",
    family="l2",
    title="Quoted spread from book snapshots",
    unit="price",
    inputs=("l2.bid_price_0", "l2.ask_price_0"),
    params=SnapshotParams,
    output="book_spread_{aggregation}",
)
def book_spread(params: SnapshotParams) -> pl.Expr:
    """The best ask minus the best bid, aggregated over the bucket's snapshots.

    Snapshots with an empty side are skipped.

    Formula:
        aggregation(ask_price_0 - bid_price_0)

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"ts": [1, 2], "bid_price_0": [10.0, 10.0],
        ...                    "ask_price_0": [10.2, 10.4]})
        >>> round(df.select(book_spread(SnapshotParams())).item(), 6)
        0.3
    """
    return _aggregate(spread_value(), params.aggregation).alias(f"book_spread_{params.aggregation}")


@metric(
    name="book_spread_bps",
    family="l2",
    title="Quoted spread in basis points, from book snapshots",
    unit="bps",
    inputs=("l2.bid_price_0", "l2.ask_price_0"),
    params=SnapshotParams,
    output="book_spread_bps_{aggregation}",
)
def book_spread_bps(params: SnapshotParams) -> pl.Expr:
    """The quoted spread relative to the mid, in basis points, over the bucket's snapshots.

    Formula:
        aggregation((ask_price_0 - bid_price_0) / ((ask_price_0 + bid_price_0) / 2) * 1e4)

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"ts": [1], "bid_price_0": [99.0], "ask_price_0": [101.0]})
        >>> df.select(book_spread_bps(SnapshotParams())).item()
        200.0
    """
    return _aggregate(spread_bps_value(), params.aggregation).alias(
        f"book_spread_bps_{params.aggregation}"
    )


@metric(
    name="book_mid_price",
    family="l2",
    title="Mid price from book snapshots",
    unit="price",
    inputs=("l2.bid_price_0", "l2.ask_price_0"),
    params=LastSnapshotParams,
    output="book_mid_price_{aggregation}",
)
def book_mid_price(params: LastSnapshotParams) -> pl.Expr:
    """The midpoint of the best bid and ask; by default at the bucket's last snapshot.

    Formula:
        aggregation((bid_price_0 + ask_price_0) / 2)

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"ts": [2, 1], "bid_price_0": [10.0, 9.0],
        ...                    "ask_price_0": [11.0, 12.0]})
        >>> df.select(book_mid_price(LastSnapshotParams())).item()
        10.5
    """
    return _aggregate(MID, params.aggregation).alias(f"book_mid_price_{params.aggregation}")


@metric(
    name="microprice",
    family="l2",
    title="Microprice (size-weighted mid)",
    unit="price",
    inputs=("l2.bid_price_0", "l2.ask_price_0", "l2.bid_size_0", "l2.ask_size_0"),
    params=LastSnapshotParams,
    output="microprice_{aggregation}",
)
def microprice(params: LastSnapshotParams) -> pl.Expr:
    """The mid weighted by the opposite side's size: it leans toward the thinner side,
    where the next price move is likelier. By default at the bucket's last snapshot.

    Formula:
        aggregation((bid_price_0 * ask_size_0 + ask_price_0 * bid_size_0)
                    / (bid_size_0 + ask_size_0))

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"ts": [1], "bid_price_0": [10.0], "ask_price_0": [11.0],
        ...                    "bid_size_0": [300.0], "ask_size_0": [100.0]})
        >>> df.select(microprice(LastSnapshotParams())).item()
        10.75
    """
    return _aggregate(microprice_value(), params.aggregation).alias(
        f"microprice_{params.aggregation}"
    )


class DepthParams(MetricParams):
    levels: int = Field(default=5, ge=1, le=50, description="levels counted from the best")
    side: BookSide = "both"
    aggregation: Aggregation = "mean"


@metric(
    name="book_depth",
    family="l2",
    title="Depth on the top N levels",
    unit="base units",
    inputs=("l2.bid_size_i", "l2.ask_size_i"),
    params=DepthParams,
    output="book_depth_{levels}_levels_{side}_{aggregation}",
)
def book_depth(params: DepthParams) -> pl.Expr:
    """Total resting size on the top ``levels`` price levels of one or both sides.

    Empty levels count as zero. The frame must have at least ``levels`` levels.

    Formula:
        aggregation(sum(size_i for i < levels over the chosen sides))

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"ts": [1], "bid_size_0": [5.0], "bid_size_1": [7.0],
        ...                    "ask_size_0": [2.0], "ask_size_1": [None]})
        >>> df.select(book_depth(DepthParams(levels=2))).item()
        14.0
    """
    name = f"book_depth_{params.levels}_levels_{params.side}_{params.aggregation}"
    return _aggregate(depth_value(params.levels, params.side), params.aggregation).alias(name)


class DepthWithinParams(MetricParams):
    bps: float = Field(default=10.0, gt=0, description="distance from the mid, in bps")
    side: BookSide = "both"
    book_levels: int = Field(default=10, ge=1, description="levels the l2 dataset has (N)")
    aggregation: Aggregation = "mean"


@metric(
    name="book_depth_within_bps",
    family="l2",
    title="Depth within X basis points of the mid",
    unit="base units",
    inputs=("l2.bid_price_i", "l2.bid_size_i", "l2.ask_price_i", "l2.ask_size_i"),
    params=DepthWithinParams,
    output="book_depth_within_{bps:g}_bps_{side}_{aggregation}",
)
def book_depth_within_bps(params: DepthWithinParams) -> pl.Expr:
    """Resting size at prices within ``bps`` basis points of the mid (inclusive).

    Only the dataset's ``book_levels`` levels are visible, so depth beyond the last
    level is not counted; null when a side is empty (no mid).

    Formula:
        aggregation(sum(size_i where |price_i - mid| / mid * 1e4 <= bps))

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"ts": [1], "bid_price_0": [99.99], "bid_size_0": [5.0],
        ...     "bid_price_1": [99.0], "bid_size_1": [7.0], "ask_price_0": [100.01],
        ...     "ask_size_0": [2.0], "ask_price_1": [100.05], "ask_size_1": [4.0]})
        >>> df.select(book_depth_within_bps(DepthWithinParams(bps=5, book_levels=2))).item()
        11.0
    """
    sides = ("bid", "ask") if params.side == "both" else (params.side,)
    parts = []
    for side in sides:
        for i in range(params.book_levels):
            price = pl.col(f"{side}_price_{i}")
            inside = ((price - MID).abs() / MID * 10_000) <= params.bps + 1e-9
            parts.append(pl.when(inside).then(pl.col(f"{side}_size_{i}")).otherwise(0.0))
    value = pl.when(MID.is_not_null()).then(pl.sum_horizontal(parts))
    name = f"book_depth_within_{params.bps:g}_bps_{params.side}_{params.aggregation}"
    return _aggregate(value, params.aggregation).alias(name)


class ImbalanceParams(MetricParams):
    levels: int = Field(default=1, ge=1, le=50, description="levels counted from the best")
    aggregation: Aggregation = "mean"


@metric(
    name="order_book_imbalance",
    family="l2",
    title="Order-book imbalance on the top N levels",
    unit="ratio (-1..1)",
    inputs=("l2.bid_size_i", "l2.ask_size_i"),
    params=ImbalanceParams,
    output="order_book_imbalance_{levels}_levels_{aggregation}",
)
def order_book_imbalance(params: ImbalanceParams) -> pl.Expr:
    """Bid minus ask depth over their sum on the top ``levels`` levels, from -1 to 1.

    Positive when bids outweigh asks; null for an empty book.

    Formula:
        aggregation((bid_depth - ask_depth) / (bid_depth + ask_depth))

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"ts": [1], "bid_size_0": [300.0], "ask_size_0": [100.0]})
        >>> df.select(order_book_imbalance(ImbalanceParams())).item()
        0.5
    """
    bid = depth_value(params.levels, "bid")
    ask = depth_value(params.levels, "ask")
    value = pl.when(bid + ask > 0).then((bid - ask) / (bid + ask))
    name = f"order_book_imbalance_{params.levels}_levels_{params.aggregation}"
    return _aggregate(value, params.aggregation).alias(name)


@metric(
    name="book_update_count",
    family="l2",
    title="Book snapshots (updates) in the bucket",
    unit="count",
    inputs=("l2.ts",),
)
def book_update_count(params: NoParams) -> pl.Expr:
    """The number of book snapshots in the bucket (one per book event for LOBSTER).

    Formula:
        count(rows)

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"ts": [1, 2, 3]}).select(book_update_count(NoParams())).item()
        3
    """
    return pl.len().alias("book_update_count")


@metric(
    name="best_quote_update_count",
    family="l2",
    title="Changes of the best bid or ask (price or size)",
    unit="count",
    inputs=("l2.bid_price_0", "l2.bid_size_0", "l2.ask_price_0", "l2.ask_size_0"),
    kind="frame",
)
def best_quote_update_count(
    frame: pl.DataFrame, params: NoParams, bucket: BucketSpec | None = None
) -> pl.DataFrame:
    """Snapshots whose best bid or ask (price or size) differs from the previous snapshot.

    The comparison is with the instrument's previous snapshot even when it lies in an
    earlier bucket (a past value, never a future one); the first snapshot counts.

    Formula:
        count(snapshot where (bid_price_0, bid_size_0, ask_price_0, ask_size_0) changed)

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> t = [datetime(2024, 1, 1, 0, 0, s) for s in (1, 2, 3)]
        >>> f = pl.DataFrame({"ts": t, "instrument": "X", "bid_price_0": [1.0, 1.0, 1.0],
        ...     "bid_size_0": [5.0, 5.0, 6.0], "ask_price_0": 2.0, "ask_size_0": 1.0})
        >>> best_quote_update_count(f, NoParams())["best_quote_update_count"].to_list()
        [2]
    """
    bucket = bucket or BucketSpec()
    top = ["bid_price_0", "bid_size_0", "ask_price_0", "ask_size_0"]
    changed = pl.any_horizontal(
        pl.col(c).ne_missing(pl.col(c).shift().over("instrument")) for c in top
    ) | (pl.int_range(pl.len()).over("instrument") == 0)
    return (
        frame.sort("instrument", "ts", maintain_order=True)
        .with_columns(_changed=changed, _bucket=bucket.label_expr(pl.col("ts")))
        .group_by("instrument", "_bucket", maintain_order=True)
        .agg(pl.col("_changed").sum().alias("best_quote_update_count"))
        .rename({"_bucket": "ts"})
        .sort("instrument", "ts")
    )


@metric(
    name="time_weighted_spread",
    family="l2",
    title="Time-weighted quoted spread",
    unit="price",
    inputs=("l2.ts", "l2.bid_price_0", "l2.ask_price_0"),
    kind="frame",
)
def time_weighted_spread(
    frame: pl.DataFrame, params: NoParams, bucket: BucketSpec | None = None
) -> pl.DataFrame:
    """The quoted spread averaged over time: each snapshot weighs the time until the
    next snapshot, capped at its bucket's end (no look-ahead past the bucket).

    Formula:
        sum(spread_i * (min(ts_{i+1}, bucket_end) - ts_i)) / sum(weights)

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> t = [datetime(2024, 1, 1, 0, 0, s) for s in (15, 30, 45)]
        >>> f = pl.DataFrame({"ts": t, "instrument": "X", "bid_price_0": [10.0, 10.0, 10.0],
        ...                   "ask_price_0": [10.1, 10.4, 10.1]})
        >>> out = time_weighted_spread(f, NoParams(), BucketSpec(width="1m"))
        >>> [round(v, 6) for v in out["time_weighted_spread"]]
        [0.2]
    """
    return time_weighted_per_bucket(_top(frame), spread_value(), "time_weighted_spread", bucket)


@metric(
    name="time_weighted_spread_bps",
    family="l2",
    title="Time-weighted quoted spread in basis points",
    unit="bps",
    inputs=("l2.ts", "l2.bid_price_0", "l2.ask_price_0"),
    kind="frame",
)
def time_weighted_spread_bps(
    frame: pl.DataFrame, params: NoParams, bucket: BucketSpec | None = None
) -> pl.DataFrame:
    """The spread in basis points of the mid, averaged over time within each bucket.

    Formula:
        sum(spread_bps_i * (min(ts_{i+1}, bucket_end) - ts_i)) / sum(weights)

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> t = [datetime(2024, 1, 1, 0, 0, 10)]
        >>> f = pl.DataFrame({"ts": t, "instrument": "X", "bid_price_0": [99.0],
        ...                   "ask_price_0": [101.0]})
        >>> time_weighted_spread_bps(f, NoParams())["time_weighted_spread_bps"].to_list()
        [200.0]
    """
    return time_weighted_per_bucket(
        _top(frame), spread_bps_value(), "time_weighted_spread_bps", bucket
    )


class PresenceParams(MetricParams):
    side: BookSide = "both"


@metric(
    name="best_quote_presence_share",
    family="l2",
    title="Share of time a best quote was present",
    unit="ratio (0..1)",
    inputs=("l2.ts", "l2.bid_price_0", "l2.ask_price_0"),
    kind="frame",
    params=PresenceParams,
    output="best_quote_presence_share_{side}",
)
def best_quote_presence_share(
    frame: pl.DataFrame, params: PresenceParams, bucket: BucketSpec | None = None
) -> pl.DataFrame:
    """Time at best: the share of the bucket's observed time during which the side had a
    best quote (``both``: both sides at once), time-weighted like the spread.

    Observed time runs from the bucket's first snapshot to the bucket end.

    Formula:
        sum(1{best present}_i * w_i) / sum(w_i),  w_i = min(ts_{i+1}, bucket_end) - ts_i

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> t = [datetime(2024, 1, 1, 0, 0, s) for s in (20, 35)]
        >>> f = pl.DataFrame({"ts": t, "instrument": "X", "bid_price_0": [None, 10.0],
        ...                   "ask_price_0": [10.1, 10.1]})
        >>> best_quote_presence_share(f, PresenceParams(side="bid")).item(0, 2)
        0.625
    """
    present = {
        "bid": BID.is_not_null(),
        "ask": ASK.is_not_null(),
        "both": BID.is_not_null() & ASK.is_not_null(),
    }[params.side].cast(pl.Float64)
    name = f"best_quote_presence_share_{params.side}"
    return time_weighted_per_bucket(_top(frame), present, name, bucket)
