"""The engine against hand-written Polars and DuckDB queries giving the same trades, per day.

Not part of the test suite. Three strategies, each a short position on the nearest
expiry entered at the first second of 09:20-09:25 where every leg can be sold, crossing
the spread (the rules the peers implement are in ``_hand_peers.py``):

- ``straddle``: ATM call and put, bought back from 15:20;
- ``strangle_stop``: 2-strike OTM call and put with a combined money stop (₹``--stop``),
  checked every second on the marks; bought back at the stop or from 15:20;
- ``delta``: the call and put nearest |delta| 0.3 among ATM ± 20 strikes (the engine's
  default ``strike_candidates``); bought back from 15:20.

The engine is timed with pruning on (``backtest.prune = true``, the default) and off; the
peers read only what each strategy needs. Both peers' fills must equal the engine's
(ts, symbol, side, price in paise, reason) before any time counts. Times are best of
``--repeat`` per day; the summary row is the sum over the days.

    python benchmarks/bench_backtest_vs_hand.py                 # 2 full days, 20 strikes
    python benchmarks/bench_backtest_vs_hand.py --days 10 --strikes-each-side 20
    python benchmarks/bench_backtest_vs_hand.py --lake PATH     # an existing lake
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from _hand_peers import Day, duckdb_day, polars_delta, polars_straddle, polars_strangle_stop

from ticklake.backtest.engine import run_day
from ticklake.backtest.spec import StrategySpec, parse_spec
from ticklake.lake import Lake, open_lake
from ticklake.market.rules import market_rules

HERE = Path(__file__).resolve().parent
FIRST_DAY = date(2024, 1, 1)
OPTIONS = "banknifty_options"
SPOT = "banknifty_spot"
STRATEGIES = ("straddle", "strangle_stop", "delta")
DELTA_TARGET = 0.3


def strategy_spec(name: str, day: date, stop_rupees: float) -> StrategySpec:
    selector: dict[str, Any] = {"kind": "atm"}
    exits: dict[str, Any] = {}
    if name == "strangle_stop":
        selector = {"kind": "otm", "steps": 2}
        exits = {"stop_loss": {"money": stop_rupees}}
    elif name == "delta":
        selector = {"kind": "delta", "target": DELTA_TARGET}
    return parse_spec(
        {
            "name": f"bench_vs_hand_{name}",
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
                {"name": "ce", "opt_type": "CE", "side": "sell", "selector": selector},
                {"name": "pe", "opt_type": "PE", "side": "sell", "selector": selector},
            ],
            "exits": exits,
        }
    )


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


def hand_polars(lake: Lake, name: str, day: date, stop_rupees: float) -> pl.DataFrame:
    d = Day(
        lake.partition_files(OPTIONS, start=day, end=day),
        lake.partition_files(SPOT, start=day, end=day),
        day,
    )
    if name == "straddle":
        return polars_straddle(d)
    if name == "strangle_stop":
        return polars_strangle_stop(d, market_rules("BANKNIFTY", day).lot_size, stop_rupees)
    return polars_delta(d, DELTA_TARGET)


def hand_duckdb(lake: Lake, name: str, day: date, stop_rupees: float) -> pl.DataFrame:
    options = [str(f) for f in lake.partition_files(OPTIONS, start=day, end=day)]
    spot = [str(f) for f in lake.partition_files(SPOT, start=day, end=day)]
    con = duckdb.connect()
    try:
        expiry = con.execute(
            "SELECT min(expiry) FROM read_parquet($f) WHERE expiry >= $d", {"f": options, "d": day}
        ).fetchone()[0]
        stop = None
        if name == "strangle_stop":
            stop = (market_rules("BANKNIFTY", day).lot_size, stop_rupees)
        return duckdb_day(con, options, spot, day, expiry, offset_steps=2 if stop else 0, stop=stop)
    finally:
        con.close()


def measure_day(
    lake: Lake, name: str, day: date, repeat: int, stop_rupees: float
) -> dict[str, Any]:
    spec = strategy_spec(name, day, stop_rupees)
    peers: dict[str, Callable[[], pl.DataFrame]] = {
        "polars": lambda: hand_polars(lake, name, day, stop_rupees)
    }
    if name != "delta":
        peers["duckdb"] = lambda: hand_duckdb(lake, name, day, stop_rupees)
    run_day(lake, spec, day, prune=True)  # warm the kernels and the page cache
    run_day(lake, spec, day, prune=False)
    pruned_s, pruned = best_of(repeat, lambda: run_day(lake, spec, day, prune=True))
    whole_s, whole = best_of(repeat, lambda: run_day(lake, spec, day, prune=False))
    if not (fills(pruned.trades).equals(fills(whole.trades)) and pruned.summary == whole.summary):
        raise SystemExit(f"{name} {day}: the engine's trades differ with and without pruning")
    row: dict[str, Any] = {
        "strategy": name,
        "day": str(day),
        "fills": pruned.trades.height,
        "pruned": pruned_s,
        "whole": whole_s,
        "reasons": sorted(set(pruned.trades["reason"].to_list())),
    }
    for peer, action in peers.items():
        action()
        seconds, hand = best_of(repeat, action)
        if hand.is_empty() or not fills(hand).equals(fills(pruned.trades)):
            raise SystemExit(
                f"{name} {day}: the {peer} peer's fills differ from the engine's:\n"
                f"{fills(hand)}\n{fills(pruned.trades)}"
            )
        row[peer] = seconds
    return row


def lake_root(
    lake: Path | None, days: int, strikes_each_side: int, out: Path = HERE / "out"
) -> Path:
    """``lake`` if given, else the generated lake of ``days`` days (built once, reused)."""
    if lake is not None:
        return lake
    from _generated_lake import build_generated_lake

    return build_generated_lake(
        out / f"banknifty-{FIRST_DAY}-{days}d-{strikes_each_side}s",
        first_day=FIRST_DAY,
        days=days,
        strikes_each_side=strikes_each_side,
        options_dataset=OPTIONS,
        spot_dataset=SPOT,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, help="an existing lake with the two datasets")
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--strikes-each-side", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stop", type=float, default=1500.0, help="strangle stop, rupees")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    lake = open_lake(lake_root(args.lake, args.days, args.strikes_each_side, args.out))
    days = sorted(p.date for p in lake.partitions(OPTIONS))[: args.days]
    groups = lake.dataset_info(OPTIONS).dataset_schema.row_group_rows
    print(f"{len(days)} days, row groups of {groups or lake.settings.lake.row_group_rows:,} rows")
    print(
        "| strategy | day | fills | exits | engine pruned s | engine whole s | Polars s "
        "| DuckDB s | pruned / Polars | pruned / DuckDB | whole / Polars |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.strategies.split(","):
        total: dict[str, float] = {"pruned": 0.0, "whole": 0.0, "polars": 0.0, "duckdb": 0.0}
        for day in days:
            r = measure_day(lake, name, day, args.repeat, args.stop)
            for key in total:
                total[key] += r.get(key, 0.0)
            print(_row(name, r["day"], r["fills"], ",".join(r["reasons"]), r), flush=True)
        print(_row(name, f"**{len(days)} days**", "", "", total), flush=True)


def _row(name: str, day: str, n_fills: Any, reasons: str, r: dict[str, float]) -> str:
    duck = r.get("duckdb") or 0.0
    duck_s = f"{duck:.3f}" if duck else "—"
    duck_ratio = f"{r['pruned'] / duck:.1f}×" if duck else "—"
    return (
        f"| {name} | {day} | {n_fills} | {reasons} | {r['pruned']:.3f} | {r['whole']:.3f} "
        f"| {r['polars']:.3f} | {duck_s} | {r['pruned'] / r['polars']:.1f}× | {duck_ratio} "
        f"| {r['whole'] / r['polars']:.1f}× |"
    )


if __name__ == "__main__":
    main()
