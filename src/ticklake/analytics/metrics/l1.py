"""Top-of-book (L1) series metrics over a time-sorted frame with ``bid`` and ``ask``.

These work on any frame that has the best bid and ask: quotes, level 0 of L2
snapshots, or the 1-second grid of a backtest.
"""

from __future__ import annotations

import polars as pl

from ticklake.analytics.registry import NoParams, metric


@metric(
    name="mid_price",
    family="l1",
    title="Mid price",
    unit="price",
    inputs=("grid.bid", "grid.ask"),
    kind="series",
    aliases=("mid",),
)
def mid_price(params: NoParams) -> pl.Expr:
    """The midpoint of the best bid and ask; null when either side is missing.

    Formula:
        (bid + ask) / 2

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"bid": [99.0, None], "ask": [101.0, 102.0]})
        >>> df.select(mid_price(NoParams()))["bid"].to_list()
        [100.0, None]
    """
    return (pl.col("bid") + pl.col("ask")) / 2


@metric(
    name="spread",
    family="l1",
    title="Quoted spread",
    unit="price",
    inputs=("grid.bid", "grid.ask"),
    kind="series",
    aliases=("l1_spread",),
)
def spread(params: NoParams) -> pl.Expr:
    """The quoted spread: best ask minus best bid.

    Formula:
        ask - bid

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"bid": [99.0], "ask": [101.5]}).select(spread(NoParams())).item()
        2.5
    """
    return pl.col("ask") - pl.col("bid")


@metric(
    name="spread_bps",
    family="l1",
    title="Quoted spread in basis points of the mid",
    unit="bps",
    inputs=("grid.bid", "grid.ask"),
    kind="series",
)
def spread_bps(params: NoParams) -> pl.Expr:
    """The quoted spread relative to the mid price, in basis points.

    Formula:
        (ask - bid) / ((bid + ask) / 2) * 10_000

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"bid": [99.0], "ask": [101.0]}).select(spread_bps(NoParams())).item()
        200.0
    """
    return (pl.col("ask") - pl.col("bid")) / ((pl.col("bid") + pl.col("ask")) / 2) * 10_000
