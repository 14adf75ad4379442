"""L2 metrics through the registry against a hand-written Polars version, same run.

Input: LOBSTER's GOOG level-10 book (147,916 snapshots), copied ``--copies`` times under
different instrument names so the timing is not dominated by fixed costs. Both sides
compute the same columns per instrument and 1-minute bucket:

- snapshot metrics (one ``group_by_dynamic``): spread and spread in bps (mean), mid and
  microprice (last), depth on 5 levels, depth within 10 bps, imbalance on 1 and 5
  levels, snapshot count;
- time-weighted spread (weights capped at the bucket end).

"registry" builds them from ``get_metric(...)`` exactly as a pipeline does; "hand"
is the same arithmetic typed out directly in Polars, in three versions that differ
only in how the time-weighted spread orders its rows:

- ``hand, sorts whole book``: sorts the whole book (all 40 level columns) by
  instrument and ts (the old peer);
- ``hand, sorts 4 columns``: selects ts, instrument and the best quotes first and
  sorts only those (what the registry does);
- ``hand, no sort``: skips the sort, relying on the input being in ts order (it is:
  ``load`` sorts it; the registry cannot assume that of a user's frame).

Every hand version's output is checked equal to the registry's (all columns: keys
and counts exactly, floats within ``rtol = 1e-12``, same nulls) before it is timed.
The sides run round-robin ``--repeat`` times after one warm-up round, best time of
each reported with the load average. Ratio = hand time / registry time against the
fastest hand version; the target is ≥ 1.0× (the registry adds no overhead).

    python benchmarks/bench_l2_metrics.py
    python benchmarks/bench_l2_metrics.py --copies 20 --repeat 5
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from ticklake.analytics.buckets import BucketSpec
from ticklake.analytics.metrics import l2
from ticklake.analytics.registry import get_metric

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lobster-2012-06-21"
PATH = DATA / "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip"
LEVELS = 10
DUMMY = 9_999_999_999
MIDNIGHT_UTC_NS = int(datetime(2012, 6, 21, 4, tzinfo=UTC).timestamp()) * 1_000_000_000
TARGET = 1.0
RTOL = 1e-12
SortMode = Literal["book", "lean", "none"]
HANDS: dict[str, SortMode] = {
    "hand, sorts whole book": "book",
    "hand, sorts 4 columns": "lean",
    "hand, no sort": "none",
}
SPEC = BucketSpec(width="1m")
REQUESTS = [
    ("book_spread", {}),
    ("book_spread_bps", {}),
    ("book_mid_price", {}),
    ("microprice", {}),
    ("book_depth", {"levels": 5}),
    ("book_depth_within_bps", {"bps": 10}),
    ("order_book_imbalance", {"levels": 1}),
    ("order_book_imbalance", {"levels": 5}),
    ("book_update_count", {}),
]


def _member(kind: str) -> pl.DataFrame:
    with zipfile.ZipFile(PATH) as archive:
        (name,) = [n for n in archive.namelist() if f"_{kind}_" in n]
        return pl.read_csv(io.BytesIO(archive.read(name)), has_header=False, infer_schema=False)


def load(copies: int) -> pl.DataFrame:
    seconds = _member("message")[:, 0].str.split_exact(".", 1)
    ns = pl.select(
        seconds.struct[0].cast(pl.Int64) * 1_000_000_000
        + seconds.struct[1].fill_null("").str.slice(0, 9).str.pad_end(9, "0").cast(pl.Int64)
        + MIDNIGHT_UTC_NS
    ).to_series()
    units = _member("orderbook").select(pl.all().cast(pl.Int64)).to_numpy()
    columns: dict[str, object] = {
        "ts": pl.from_epoch(ns, "ns").dt.replace_time_zone("UTC"),
        "seq": np.arange(1, units.shape[0] + 1),
    }
    for side, offset in (("bid", 2), ("ask", 0)):
        for i in range(LEVELS):
            price = units[:, 4 * i + offset]
            empty = np.abs(price) == DUMMY
            columns[f"{side}_price_{i}"] = np.where(empty, np.nan, price / 10_000)
            columns[f"{side}_size_{i}"] = np.where(empty, np.nan, units[:, 4 * i + offset + 1])
    one = pl.DataFrame(columns).fill_nan(None)
    return pl.concat(one.with_columns(instrument=pl.lit(f"GOOG{k}")) for k in range(copies)).sort(
        "ts", "instrument", "seq"
    )


def registry_version(book: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    exprs = []
    for name, values in REQUESTS:
        m = get_metric(name)
        exprs += m.expressions(m.parse_params(values))
    snapshots = book.group_by_dynamic(
        "ts", group_by="instrument", **SPEC.group_by_dynamic_args()
    ).agg(exprs)
    weighted = get_metric("time_weighted_spread").fn(book, l2.NoParams(), SPEC)
    return snapshots, weighted


def hand_snapshots(book: pl.DataFrame) -> pl.DataFrame:
    """The snapshot metrics typed out (one ``group_by_dynamic``, like the registry)."""
    bid, ask = pl.col("bid_price_0"), pl.col("ask_price_0")
    bid_size, ask_size = pl.col("bid_size_0"), pl.col("ask_size_0")
    mid = (bid + ask) / 2

    def depth(side: str, n: int) -> pl.Expr:
        return pl.sum_horizontal(pl.col(f"{side}_size_{i}").fill_null(0.0) for i in range(n))

    within = pl.sum_horizontal(
        pl.when((pl.col(f"{s}_price_{i}") - mid).abs() / mid * 10_000 <= 10 + 1e-9)
        .then(pl.col(f"{s}_size_{i}"))
        .otherwise(0.0)
        for s in ("bid", "ask")
        for i in range(LEVELS)
    )
    b1, a1, b5, a5 = depth("bid", 1), depth("ask", 1), depth("bid", 5), depth("ask", 5)
    return book.group_by_dynamic(
        "ts", group_by="instrument", every="1m", period="1m", closed="right", label="right"
    ).agg(
        (ask - bid).mean().alias("book_spread_mean"),
        ((ask - bid) / mid * 10_000).mean().alias("book_spread_bps_mean"),
        mid.last().alias("book_mid_price_last"),
        ((bid * ask_size + ask * bid_size) / (bid_size + ask_size)).last().alias("microprice_last"),
        (b5 + a5).mean().alias("book_depth_5_levels_both_mean"),
        pl.when(mid.is_not_null()).then(within).mean().alias("book_depth_within_10_bps_both_mean"),
        pl.when(b1 + a1 > 0)
        .then((b1 - a1) / (b1 + a1))
        .mean()
        .alias("order_book_imbalance_1_levels_mean"),
        pl.when(b5 + a5 > 0)
        .then((b5 - a5) / (b5 + a5))
        .mean()
        .alias("order_book_imbalance_5_levels_mean"),
        pl.len().alias("book_update_count"),
    )


def hand_weighted(book: pl.DataFrame, sort: SortMode) -> pl.DataFrame:
    """Time-weighted spread: weight = time to the next snapshot, capped at the bucket end.

    ``sort``: ``"book"`` sorts the whole book (every level column) by instrument and
    ts, ``"lean"`` selects the four columns it reads first and sorts only those,
    ``"none"`` relies on the input already being in ts order (true here: ``load``
    sorts it) and skips the sort.
    """
    bid, ask = pl.col("bid_price_0"), pl.col("ask_price_0")
    start = pl.col("ts").dt.truncate("1m")
    end = pl.when(start == pl.col("ts")).then(pl.col("ts")).otherwise(start.dt.offset_by("1m"))
    following = pl.col("ts").shift(-1).over("instrument")
    weight = (
        pl.when(following.is_null() | (following > end)).then(end).otherwise(following)
        - pl.col("ts")
    ).dt.total_nanoseconds()
    if sort == "book":
        rows = book.sort("instrument", "ts", maintain_order=True)
    elif sort == "lean":
        rows = book.select("ts", "instrument", "bid_price_0", "ask_price_0").sort(
            "instrument", "ts", maintain_order=True
        )
    else:
        rows = book.select("ts", "instrument", "bid_price_0", "ask_price_0")
    return (
        rows.with_columns(_w=weight, _label=end, _v=ask - bid)
        .filter(pl.col("_v").is_not_null())
        .group_by("instrument", "_label")
        .agg(
            ((pl.col("_v") * pl.col("_w")).sum() / pl.col("_w").sum()).alias("time_weighted_spread")
        )
        .rename({"_label": "ts"})
        .sort("instrument", "ts")
    )


def hand_version(book: pl.DataFrame, sort: SortMode = "lean") -> tuple[pl.DataFrame, pl.DataFrame]:
    return hand_snapshots(book), hand_weighted(book, sort)


def check_equal(ours: tuple[pl.DataFrame, ...], theirs: tuple[pl.DataFrame, ...]) -> None:
    """Both outputs of a hand version equal the registry's, column by column."""
    for mine, hand in zip(ours, theirs, strict=True):
        mine, hand = mine.sort("instrument", "ts"), hand.sort("instrument", "ts")
        assert mine.columns == hand.columns, (mine.columns, hand.columns)
        for column in hand.columns:
            left, right = mine[column], hand[column]
            assert left.is_null().equals(right.is_null()), f"nulls differ in {column}"
            if left.dtype.is_float():
                np.testing.assert_allclose(
                    left.to_numpy(), right.to_numpy(), rtol=RTOL, err_msg=column
                )
            else:
                assert left.equals(right), column


def best_round_robin(repeat: int, calls: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best time of each call, run alternately so load changes hit all sides alike."""
    for call in calls.values():
        call()  # warm-up
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeat):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if not PATH.is_file():
        print(f"LOBSTER GOOG level-10 sample not found at {PATH}", file=sys.stderr)
        return 2
    book = load(args.copies)
    ours = registry_version(book)
    for sort in HANDS.values():
        check_equal(ours, hand_version(book, sort))
    print(f"every hand version equals the registry on all columns (floats rtol {RTOL:g})")
    calls: dict[str, Callable[[], object]] = {"registry": lambda: registry_version(book)}
    for name, sort in HANDS.items():
        calls[name] = lambda sort=sort: hand_version(book, sort)
    best = best_round_robin(args.repeat, calls)
    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = book.height
    registry_s = best["registry"]
    print(f"best of {args.repeat}, load average {load_avg} (1, 5, 15 min), {os.cpu_count()} cores")
    print()
    print("| side | seconds (best) | M snapshots/s | hand / registry |")
    print("| --- | ---: | ---: | ---: |")
    for name, seconds in best.items():
        print(
            f"| {name} | {seconds:.3f} | {rows / seconds / 1e6:.2f} | {seconds / registry_s:.2f}× |"
        )
    fastest = min(HANDS, key=best.__getitem__)
    ratio = best[fastest] / registry_s
    verdict = "meets" if ratio >= TARGET else "MISSES"
    print(
        f"\n{rows:,} snapshots ({args.copies} x GOOG level 10), {len(REQUESTS) + 1} metrics: "
        f"registry is {ratio:.2f}x the fastest hand version ({fastest}; {verdict} the "
        f"{TARGET:.1f}x target)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
