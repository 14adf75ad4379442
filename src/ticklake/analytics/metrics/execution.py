"""Execution-quality metrics: effective spread, and the **post-trade** measures
(markouts, realised spread, price impact) at horizons after each trade.

Inputs: ``trades`` (``ts, instrument, price, size, side``) and ``quotes`` (``ts,
instrument, bid_price, ask_price``; :func:`quotes_from_book` turns l2 snapshots into
them). The pre-trade mid is the last quote strictly before the trade (a quote stamped
at the trade's own instant may already include its effect). The mid at ``t + h`` is
the last quote at or before ``t + h`` (backward as-of).

Post-trade measures use data from after the trade **by definition**: they describe
what happened next and must never feed a decision at trade time. Their outputs are
named ``post_trade_*`` and sit in the trade's bucket; a markout whose horizon passes the
bucket end uses later data, and one whose horizon passes the instrument's last quote
is null (nothing observed there).

Signs: ``side`` is the aggressor (``buy`` +1, ``sell`` -1); without a side the quote
rule applies (above the pre-trade mid: buy, below: sell, at it: left out).
"""

from __future__ import annotations

import polars as pl
from pydantic import Field

from ticklake.analytics.buckets import BucketSpec
from ticklake.analytics.registry import MetricParams, NoParams, metric

#: horizons are whole milliseconds, applied in integer ns (no float rounding)
_NS_PER_MS = 1_000_000


def quotes_from_book(book: pl.DataFrame) -> pl.DataFrame:
    """Level 0 of l2 snapshots as quotes: ``ts, instrument, bid_price, ask_price``."""
    return book.select(
        "ts", "instrument", bid_price=pl.col("bid_price_0"), ask_price=pl.col("ask_price_0")
    )


def trade_markouts(
    trades: pl.DataFrame, quotes: pl.DataFrame, horizons_ms: tuple[int, ...] = ()
) -> pl.DataFrame:
    """Per trade: ``sign``, ``mid_before`` and, per horizon, ``mid_after_{h}ms``.

    ``mid_after`` is null when ``t + h`` is later than the instrument's last quote.
    """
    mids = (
        quotes.select(
            "instrument",
            quote_ts="ts",
            mid=(pl.col("bid_price") + pl.col("ask_price")) / 2,
        )
        .sort("instrument", "quote_ts", maintain_order=True)
        .with_columns(last_quote_ts=pl.col("quote_ts").max().over("instrument"))
    )
    out = (
        trades.with_row_index("_row")
        .sort("ts")
        .join_asof(
            mids.select("instrument", "quote_ts", mid_before="mid"),
            left_on="ts",
            right_on="quote_ts",
            by="instrument",
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
    )
    quote_sign = (
        pl.when(pl.col("price") > pl.col("mid_before"))
        .then(1)
        .when(pl.col("price") < pl.col("mid_before"))
        .then(-1)
    )
    out = out.with_columns(
        sign=pl.when(pl.col("side") == "buy")
        .then(1)
        .when(pl.col("side") == "sell")
        .then(-1)
        .otherwise(quote_sign)
        .cast(pl.Float64)
    ).drop("quote_ts")
    last = mids.group_by("instrument").agg(pl.col("last_quote_ts").first())
    out = out.join(last, on="instrument", how="left")
    for horizon in horizons_ms:
        target = pl.col("ts") + pl.duration(nanoseconds=horizon * _NS_PER_MS)
        out = (
            out.with_columns(_target=target)
            .sort("_target")
            .join_asof(
                mids.select("instrument", "quote_ts", _mid="mid"),
                left_on="_target",
                right_on="quote_ts",
                by="instrument",
                strategy="backward",
                check_sortedness=False,
            )
            .with_columns(
                pl.when(pl.col("_target") <= pl.col("last_quote_ts"))
                .then(pl.col("_mid"))
                .alias(f"mid_after_{horizon}ms")
            )
            .drop("_target", "_mid", "quote_ts")
        )
    return out.sort("_row").drop("_row", "last_quote_ts")


def _per_bucket(
    rows: pl.DataFrame, value: pl.Expr, name: str, bucket: BucketSpec | None
) -> pl.DataFrame:
    bucket = bucket or BucketSpec()
    return (
        rows.with_columns(_value=value, _bucket=bucket.label_expr(pl.col("ts")))
        .filter(pl.col("_value").is_not_null())
        .group_by("instrument", "_bucket", maintain_order=True)
        .agg(pl.col("_value").mean().alias(name))
        .rename({"_bucket": "ts"})
        .sort("instrument", "ts")
    )


class HorizonParams(MetricParams):
    horizon_ms: int = Field(default=1000, gt=0, description="time after the trade, ms")


SIGN = pl.col("sign")
PRICE = pl.col("price")
MID_BEFORE = pl.col("mid_before")


@metric(
    name="effective_spread_bps",
    family="execution",
    title="Effective spread",
    unit="bps",
    inputs=("trades.price", "trades.side", "quotes.bid_price", "quotes.ask_price"),
    kind="frame",
)
def effective_spread_bps(
    frame: pl.DataFrame,
    params: NoParams,
    bucket: BucketSpec | None = None,
    *,
    quotes: pl.DataFrame,
) -> pl.DataFrame:
    """Twice the signed distance of each trade from the pre-trade mid, in bps of that
    mid, averaged over the bucket's trades (equal weight). Uses only data up to the
    trade.

    Formula:
        mean(2 * sign * (price - mid_before) / mid_before * 1e4)

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> q = pl.DataFrame({"ts": [datetime(2024, 1, 1, 0, 0, 1)], "instrument": "X",
        ...                   "bid_price": [99.0], "ask_price": [101.0]})
        >>> t = pl.DataFrame({"ts": [datetime(2024, 1, 1, 0, 0, 2)], "instrument": "X",
        ...                   "price": [101.0], "size": [1.0], "side": ["buy"]})
        >>> effective_spread_bps(t, NoParams(), quotes=q).item(0, 2)
        200.0
    """
    rows = trade_markouts(frame, quotes)
    value = 2 * SIGN * (PRICE - MID_BEFORE) / MID_BEFORE * 10_000
    return _per_bucket(rows, value, "effective_spread_bps", bucket)


@metric(
    name="post_trade_markout_bps",
    family="execution",
    title="Post-trade markout (uses data after the trade)",
    unit="bps",
    inputs=("trades.price", "trades.side", "quotes.bid_price", "quotes.ask_price"),
    kind="frame",
    params=HorizonParams,
    output="post_trade_markout_{horizon_ms}ms_bps",
)
def post_trade_markout_bps(
    frame: pl.DataFrame,
    params: HorizonParams,
    bucket: BucketSpec | None = None,
    *,
    quotes: pl.DataFrame,
) -> pl.DataFrame:
    """How far the mid moved in the aggressor's favour ``horizon_ms`` after each trade,
    in bps of the trade price, averaged over the bucket's trades. A post-trade measure:
    it uses the mid after the trade and must not feed decisions at trade time.

    Formula:
        mean(sign * (mid(t + h) - price) / price * 1e4)

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> q = pl.DataFrame({"ts": [datetime(2024, 1, 1, 0, 0, s) for s in (1, 3, 9)],
        ...     "instrument": "X", "bid_price": [99.0, 101.0, 0.0],
        ...     "ask_price": [101.0, 103.0, 0.0]})
        >>> t = pl.DataFrame({"ts": [datetime(2024, 1, 1, 0, 0, 2)], "instrument": "X",
        ...                   "price": [101.0], "size": [1.0], "side": ["buy"]})
        >>> round(post_trade_markout_bps(t, HorizonParams(horizon_ms=1000), quotes=q
        ...     ).item(0, 2), 4)
        99.0099
    """
    h = params.horizon_ms
    rows = trade_markouts(frame, quotes, (h,))
    value = SIGN * (pl.col(f"mid_after_{h}ms") - PRICE) / PRICE * 10_000
    return _per_bucket(rows, value, f"post_trade_markout_{h}ms_bps", bucket)


@metric(
    name="post_trade_realised_spread_bps",
    family="execution",
    title="Post-trade realised spread (uses data after the trade)",
    unit="bps",
    inputs=("trades.price", "trades.side", "quotes.bid_price", "quotes.ask_price"),
    kind="frame",
    params=HorizonParams,
    output="post_trade_realised_spread_{horizon_ms}ms_bps",
    aliases=("post_trade_realized_spread_bps",),
)
def post_trade_realised_spread_bps(
    frame: pl.DataFrame,
    params: HorizonParams,
    bucket: BucketSpec | None = None,
    *,
    quotes: pl.DataFrame,
) -> pl.DataFrame:
    """The liquidity provider's revenue: twice the signed distance of the trade price
    from the mid ``horizon_ms`` later, in bps of the pre-trade mid. Post-trade: uses
    the mid after the trade.

    Formula:
        mean(2 * sign * (price - mid(t + h)) / mid_before * 1e4)

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> q = pl.DataFrame({"ts": [datetime(2024, 1, 1, 0, 0, s) for s in (1, 3, 9)],
        ...     "instrument": "X", "bid_price": [99.0, 100.0, 0.0],
        ...     "ask_price": [101.0, 101.0, 0.0]})
        >>> t = pl.DataFrame({"ts": [datetime(2024, 1, 1, 0, 0, 2)], "instrument": "X",
        ...                   "price": [101.0], "size": [1.0], "side": ["buy"]})
        >>> post_trade_realised_spread_bps(t, HorizonParams(), quotes=q).item(0, 2)
        100.0
    """
    h = params.horizon_ms
    rows = trade_markouts(frame, quotes, (h,))
    value = 2 * SIGN * (PRICE - pl.col(f"mid_after_{h}ms")) / MID_BEFORE * 10_000
    return _per_bucket(rows, value, f"post_trade_realised_spread_{h}ms_bps", bucket)


@metric(
    name="post_trade_price_impact_bps",
    family="execution",
    title="Post-trade price impact (uses data after the trade)",
    unit="bps",
    inputs=("trades.price", "trades.side", "quotes.bid_price", "quotes.ask_price"),
    kind="frame",
    params=HorizonParams,
    output="post_trade_price_impact_{horizon_ms}ms_bps",
)
def post_trade_price_impact_bps(
    frame: pl.DataFrame,
    params: HorizonParams,
    bucket: BucketSpec | None = None,
    *,
    quotes: pl.DataFrame,
) -> pl.DataFrame:
    """The permanent part of the spread: twice the signed move of the mid from before
    the trade to ``horizon_ms`` after it, in bps of the pre-trade mid. Effective spread
    = realised spread + price impact. Post-trade: uses the mid after the trade.

    Formula:
        mean(2 * sign * (mid(t + h) - mid_before) / mid_before * 1e4)

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> q = pl.DataFrame({"ts": [datetime(2024, 1, 1, 0, 0, s) for s in (1, 3, 9)],
        ...     "instrument": "X", "bid_price": [99.0, 100.0, 0.0],
        ...     "ask_price": [101.0, 101.0, 0.0]})
        >>> t = pl.DataFrame({"ts": [datetime(2024, 1, 1, 0, 0, 2)], "instrument": "X",
        ...                   "price": [101.0], "size": [1.0], "side": ["buy"]})
        >>> post_trade_price_impact_bps(t, HorizonParams(), quotes=q).item(0, 2)
        100.0
    """
    h = params.horizon_ms
    rows = trade_markouts(frame, quotes, (h,))
    value = 2 * SIGN * (pl.col(f"mid_after_{h}ms") - MID_BEFORE) / MID_BEFORE * 10_000
    return _per_bucket(rows, value, f"post_trade_price_impact_{h}ms_bps", bucket)
