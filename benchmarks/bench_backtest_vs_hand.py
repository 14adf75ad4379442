"""The engine against a hand-written Polars query giving the same trades, per full day.

Not part of the test suite. The strategy: sell the ATM straddle (nearest expiry) at the
first second of 09:20-09:25 where both legs can be sold, buy both back from 15:20 on,
crossing the spread. The hand query reads only what that strategy needs (the spot, the
ATM strikes of the entry window, the held contracts after 15:20); the engine is timed
with pruning on (``backtest.prune = true``, the default) and off. The hand query's fills
must equal the engine's (ts, symbol, side, price in paise) before any time counts.

    python benchmarks/bench_backtest_vs_hand.py                 # 2 full days, 20 strikes
    python benchmarks/bench_backtest_vs_hand.py --days 10 --strikes-each-side 20
    python benchmarks/bench_backtest_vs_hand.py --lake PATH     # an existing lake

Prints one markdown table (ratios from one run, best of ``--repeat``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from ticklake.backtest.engine import run_day
from ticklake.backtest.spec import StrategySpec, parse_spec
from ticklake.lake import Lake, open_lake

HERE = Path(__file__).resolve().parent
FIRST_DAY = date(2024, 1, 1)
OPTIONS = "banknifty_options"
SPOT = "banknifty_spot"
IST = ZoneInfo("Asia/Kolkata")
SESSION_SECONDS = 22_500
TOLERANCE_SECONDS = 5  # as_of_tolerance_seconds = max_quote_age_seconds = 5 (defaults)
STEP_PAISE = 100 * 100  # BANKNIFTY strike step


def straddle_spec(day: date) -> StrategySpec:
    return parse_spec(
        {
            "name": "bench_vs_hand_straddle",
            "universe": {
                "underlying": "BANKNIFTY",
                "options_dataset": OPTIONS,
                "underlying_dataset": SPOT,
            },
            "time": {
                "start": day.isoformat(),
                "end": day.isoformat(),
                "entry_windows": ["09:20-09:25"],
                "exit_time": "15:20",
            },
            "legs": [
                {"name": "ce", "opt_type": "CE", "side": "sell"},
                {"name": "pe", "opt_type": "PE", "side": "sell"},
            ],
        }
    )


# ------------------------------------------------------------------------ the hand query


def _grid(day: date, start: str, end: str) -> pl.DataFrame:
    """Seconds ``[start, end)`` of the day (IST wall clock), as UTC ns timestamps."""

    def at(clock: str) -> datetime:
        hour, minute = (int(x) for x in clock.split(":"))
        return datetime.combine(day, datetime.min.time(), IST) + timedelta(
            hours=hour, minutes=minute
        )

    return pl.DataFrame(
        {
            "ts": pl.datetime_range(
                at(start), at(end), "1s", closed="left", time_unit="ns", eager=True
            ).dt.convert_time_zone("UTC")
        }
    )


def _paise(column: str) -> pl.Expr:
    paise = (pl.col(column).cast(pl.Float64) * 100).round(0)
    return pl.when(paise > 0).then(paise).otherwise(0).fill_null(0).fill_nan(0).cast(pl.Int64)


def _book(left: pl.DataFrame, quotes: pl.DataFrame) -> pl.DataFrame:
    """As-of join of ``left`` (ts, opt_type, strike) to the quotes, with age and paise."""
    joined = left.sort("ts").join_asof(
        quotes.sort("ts"),
        on="ts",
        by=["opt_type", "strike"],
        strategy="backward",
        tolerance=timedelta(seconds=TOLERANCE_SECONDS),
    )
    age = (pl.col("ts") - pl.col("quote_ts")).dt.total_seconds()
    return joined.with_columns(
        _paise("bid_price_0").alias("bid"), _paise("ask_price_0").alias("ask"), age.alias("age")
    )


def hand_day(lake: Lake, day: date) -> pl.DataFrame:
    """The straddle's fills by hand: ts, symbol, side, price_paise, reason."""
    options_file = lake.partition_files(OPTIONS, start=day, end=day)
    spot_file = lake.partition_files(SPOT, start=day, end=day)
    chain = pl.scan_parquet(options_file)
    expiries = chain.select(pl.col("expiry").unique()).collect()["expiry"].to_list()
    expiry = min(e for e in expiries if e >= day)
    spot = pl.scan_parquet(spot_file).select("ts", "price").collect().sort("ts")
    window = _grid(day, "09:20", "09:25").join_asof(
        spot, on="ts", strategy="backward", tolerance=timedelta(seconds=TOLERANCE_SECONDS)
    )
    spot_paise = _paise("price")
    window = window.with_columns(
        ((spot_paise + STEP_PAISE // 2) // STEP_PAISE * STEP_PAISE).alias("atm")
    ).filter(pl.col("price").is_not_null())
    strikes = (window["atm"].unique() / 100).to_list()

    def quotes(strike_filter: pl.Expr) -> pl.DataFrame:
        return (
            chain.filter((pl.col("expiry") == expiry) & strike_filter)
            .select("ts", "opt_type", "strike", "symbol", "bid_price_0", "ask_price_0")
            .with_columns(pl.col("ts").alias("quote_ts"))
            .collect()
        )

    sides = pl.DataFrame({"opt_type": ["CE", "PE"]})
    left = window.select("ts", (pl.col("atm") / 100).alias("strike")).join(sides, how="cross")
    entry = _book(left, quotes(pl.col("strike").is_in(strikes)))
    sellable = (pl.col("bid") > 0) & (pl.col("age") <= TOLERANCE_SECONDS)
    ready = entry.group_by("ts").agg(sellable.all().alias("ok"), pl.len().alias("n"))
    first = ready.filter(pl.col("ok") & (pl.col("n") == 2))["ts"].min()
    if first is None:
        return pl.DataFrame()
    opened = entry.filter(pl.col("ts") == first)
    held = opened.select("opt_type", "strike")
    exits = _grid(day, "15:20", "15:30").join(held, how="cross")
    closing = _book(exits, quotes(pl.col("strike").is_in(held["strike"].to_list())))
    buyable = (pl.col("ask") > 0) & (pl.col("age") <= TOLERANCE_SECONDS)
    closed = closing.filter(buyable).sort("ts").group_by("opt_type").first()
    return pl.concat(
        [
            opened.select(
                "ts",
                "symbol",
                pl.lit("sell").alias("side"),
                pl.col("bid").alias("price_paise"),
                pl.lit("entry").alias("reason"),
            ),
            closed.select(
                "ts",
                "symbol",
                pl.lit("buy").alias("side"),
                pl.col("ask").alias("price_paise"),
                pl.lit("exit_time").alias("reason"),
            ),
        ]
    ).sort("ts", "symbol")


# ------------------------------------------------------------------------ timing


def best_of(repeat: int, action: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        began = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - began)
    return best, result


def fills(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        pl.col("ts").cast(pl.Datetime("ns", "UTC")),
        pl.col("symbol").cast(pl.String),
        pl.col("side").cast(pl.String),
        pl.col("price_paise").cast(pl.Int64),
        pl.col("reason").cast(pl.String),
    ).sort("ts", "symbol")


def measure_day(lake: Lake, day: date, repeat: int) -> dict[str, Any]:
    spec = straddle_spec(day)
    run_day(lake, spec, day, prune=True)  # warm the kernels and the page cache
    run_day(lake, spec, day, prune=False)
    hand_day(lake, day)
    pruned_s, pruned = best_of(repeat, lambda: run_day(lake, spec, day, prune=True))
    whole_s, whole = best_of(repeat, lambda: run_day(lake, spec, day, prune=False))
    hand_s, hand = best_of(repeat, lambda: hand_day(lake, day))
    if not (fills(pruned.trades).equals(fills(whole.trades)) and pruned.summary == whole.summary):
        raise SystemExit(f"{day}: the engine's trades differ with and without pruning")
    if hand.is_empty() or not fills(hand).equals(fills(pruned.trades)):
        raise SystemExit(
            f"{day}: the hand query's fills differ from the engine's:\n{fills(hand)}\n"
            f"{fills(pruned.trades)}"
        )
    rows = lake.scan(OPTIONS, start=day, end=day).select(pl.len()).collect().item()
    return {
        "day": str(day),
        "rows": rows,
        "fills": pruned.trades.height,
        "pruned": pruned_s,
        "whole": whole_s,
        "hand": hand_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, help="an existing lake with the two datasets")
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--strikes-each-side", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    if args.lake is None:
        from _generated_lake import build_generated_lake

        root = build_generated_lake(
            args.out / f"banknifty-{FIRST_DAY}-{args.days}d-{args.strikes_each_side}s",
            first_day=FIRST_DAY,
            days=args.days,
            strikes_each_side=args.strikes_each_side,
            options_dataset=OPTIONS,
            spot_dataset=SPOT,
        )
    else:
        root = args.lake
    lake = open_lake(root)
    days = sorted(p.date for p in lake.partitions(OPTIONS))[: args.days]
    print(f"row groups of {lake.settings.lake.row_group_rows:,} rows")
    print(
        "| day | option rows | fills | engine pruned s | engine whole chain s | hand Polars s "
        "| pruned / hand | whole / hand |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for day in days:
        r = measure_day(lake, day, args.repeat)
        print(
            f"| {r['day']} | {r['rows']:,} | {r['fills']} | {r['pruned']:.3f} | {r['whole']:.3f} "
            f"| {r['hand']:.3f} | {r['pruned'] / r['hand']:.1f}× | {r['whole'] / r['hand']:.1f}× |",
            flush=True,
        )


if __name__ == "__main__":
    main()
