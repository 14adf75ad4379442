"""Benchmark the backtest day task on full-scale generated BANKNIFTY option days.

Not part of the test suite. Prints tables (copy them into docs/benchmarks.md):

1. per day: wall time of ``run_day`` (load / kernel / outputs), option rows/s, and the
   ratio to a raw Parquet scan of the same columns of that day's partition (target ≤ 2×);
2. first vs second run: Numba compile (empty cache), cache load (new process), warm call;
3. peak RSS: one fresh process per day, and one process over all days (flat?, ≤ 2 GB);
4. a plain pandas implementation of the same straddle, its fills checked against the
   engine's, and the speed ratio (target ≥ 20×);
5. the extrapolated 5-year time on 2 workers (1,250 days / 2 × per-day time; ≤ 2 min).

The lake is generated and ingested once into ``--out`` (default ``benchmarks/out/``) and
reused by later runs with the same parameters.

    python benchmarks/bench_backtest.py            # 20 full-scale days (first run builds the lake)
    python benchmarks/bench_backtest.py --quick    # 2 small days, under a minute
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from ticklake.backtest.data import OPTION_COLUMNS, load_day
from ticklake.backtest.engine import outcome_from_kernel, run_day, simulate
from ticklake.backtest.spec import StrategySpec, parse_spec
from ticklake.lake import Lake, open_lake

HERE = Path(__file__).resolve().parent
FIRST_DAY = date(2024, 1, 1)
OPTIONS = "banknifty_options"
SPOT = "banknifty_spot"
FIVE_YEARS_DAYS = 1_250
BENCH_WORKERS = 2


def straddle_spec(first: date, last: date) -> StrategySpec:
    """ATM short straddle, 09:20 entry, hourly re-targeting, 15:20 exit, crossing the spread."""
    return parse_spec(
        {
            "name": "bench_atm_straddle",
            "universe": {
                "underlying": "BANKNIFTY",
                "options_dataset": OPTIONS,
                "underlying_dataset": SPOT,
            },
            "time": {
                "start": first.isoformat(),
                "end": last.isoformat(),
                "entry_windows": ["09:20-09:25"],
                "exit_time": "15:20",
            },
            "legs": [
                {"name": "ce", "opt_type": "CE", "side": "sell"},
                {"name": "pe", "opt_type": "PE", "side": "sell"},
            ],
            "rebalance": {"kind": "every", "minutes": 60},
        }
    )


# --------------------------------------------------------------------------- the lake


def build_lake(out: Path, days: int, strikes_each_side: int) -> Path:
    """Generate and ingest ``days`` days once; return the lake root (reused when present)."""
    from _generated_lake import build_generated_lake

    return build_generated_lake(
        out / f"banknifty-{FIRST_DAY}-{days}d-{strikes_each_side}s",
        first_day=FIRST_DAY,
        days=days,
        strikes_each_side=strikes_each_side,
        options_dataset=OPTIONS,
        spot_dataset=SPOT,
    )


def lake_days(lake: Lake) -> list[date]:
    return sorted(p.date for p in lake.partitions(OPTIONS))


def partition_path(lake: Lake, dataset: str, day: date) -> Path:
    return next(p.path for p in lake.partitions(dataset) if p.date == day)


# --------------------------------------------------------------------------- measurements


def rss_now_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    # VmHWM, not ru_maxrss: a child started from a big parent inherits the parent's
    # ru_maxrss across fork+exec, while VmHWM belongs to the new address space only.
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def time_day(lake: Lake, spec: StrategySpec, day: date) -> dict[str, Any]:
    """Time one ``run_day`` split into its phases, plus the raw scan of the same columns."""
    partition = partition_path(lake, OPTIONS, day)
    began = time.perf_counter()
    raw = pl.scan_parquet(partition).select(list(OPTION_COLUMNS)).collect()
    scan_seconds = time.perf_counter() - began
    raw_rows = raw.height
    del raw

    began = time.perf_counter()
    loaded = load_day(lake, spec, day)
    load_seconds = time.perf_counter() - began
    if not hasattr(loaded, "bid"):
        return {"day": str(day), "skipped": getattr(loaded, "reason", "?")}
    began = time.perf_counter()
    result = simulate(spec, loaded)
    kernel_seconds = time.perf_counter() - began
    began = time.perf_counter()
    outcome = outcome_from_kernel(spec, loaded, result)
    outputs_seconds = time.perf_counter() - began

    began = time.perf_counter()
    again = run_day(lake, spec, day)  # the whole task, end to end, as the runner calls it
    day_seconds = time.perf_counter() - began
    assert again.trades.equals(outcome.trades)
    return {
        "day": str(day),
        "rows_in_partition": raw_rows,
        "contracts_loaded": int(loaded.bid.shape[0]),
        "scan_seconds": scan_seconds,
        "load_seconds": load_seconds,
        "kernel_seconds": kernel_seconds,
        "outputs_seconds": outputs_seconds,
        "day_seconds": day_seconds,
        "fills": outcome.trades.height,
        "net_pnl_paise": outcome.summary["net_pnl_paise"],
    }


def child_day(lake_root: str, day: str, mode: str) -> dict[str, Any]:
    """One measurement in this (fresh) process; printed as JSON for the parent."""
    lake = open_lake(lake_root)
    the_day = date.fromisoformat(day)
    spec = straddle_spec(the_day, the_day)
    if mode == "compile":
        began = time.perf_counter()
        run_day(lake, spec, the_day)
        first = time.perf_counter() - began
        began = time.perf_counter()
        run_day(lake, spec, the_day)
        second = time.perf_counter() - began
        return {"first_seconds": first, "second_seconds": second, "peak_rss_mb": peak_rss_mb()}
    run_day(lake, spec, the_day)  # warm up: Numba cache load, cost table, imports
    baseline = peak_rss_mb()
    timing = time_day(lake, spec, the_day)
    return {**timing, "peak_rss_mb": peak_rss_mb(), "rss_before_day_mb": baseline}


def run_child(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- pandas peer


def pandas_straddle_day(lake: Lake, day: date, spec: StrategySpec) -> pd.DataFrame:
    """The same straddle written plainly with pandas: merge_asof per contract onto the grid.

    Cross fills (sell at bid, buy at ask), a quote is tradeable when bid > 0, ask > 0 and
    its age ≤ 5 s (as-of lookback 5 s); ATM = spot rounded to the 100-point strike step;
    every 60 minutes after the last (re)balance the legs move to the new ATM strike.
    """
    step_paise, tol = 100 * 100, pd.Timedelta(seconds=5)
    opts = pd.read_parquet(partition_path(lake, OPTIONS, day), columns=list(OPTION_COLUMNS))
    spot = pd.read_parquet(partition_path(lake, SPOT, day), columns=["ts", "price"])
    expiry = min(e for e in opts["expiry"].unique() if e >= day)
    opts = opts[opts["expiry"] == expiry]
    ist = "Asia/Kolkata"
    start = pd.Timestamp(datetime.combine(day, datetime.min.time())).tz_localize(ist)
    grid = pd.date_range(
        start + pd.Timedelta(hours=9, minutes=15), periods=22_500, freq="1s"
    ).tz_convert("UTC")
    grid_frame = pd.DataFrame({"ts": grid.astype("datetime64[ns, UTC]")})
    spot = pd.merge_asof(grid_frame, spot.sort_values("ts"), on="ts", tolerance=tol)
    spot_paise = np.rint(spot["price"].fillna(0).to_numpy() * 100).astype(np.int64)
    opts = opts.assign(
        strike_paise=np.rint(opts["strike"] * 100).astype(np.int64),
        quote_ts=opts["ts"],
        bid=np.rint(opts["bid_price_0"].fillna(0) * 100).astype(np.int64),
        ask=np.rint(opts["ask_price_0"].fillna(0) * 100).astype(np.int64),
    ).sort_values("ts")
    keys = opts[["opt_type", "strike_paise"]].drop_duplicates()
    left = keys.merge(grid_frame, how="cross").sort_values("ts")
    book = pd.merge_asof(
        left,
        opts[["ts", "opt_type", "strike_paise", "quote_ts", "bid", "ask", "symbol"]],
        on="ts",
        by=["opt_type", "strike_paise"],
        tolerance=tol,
    )
    book["ok"] = (book["bid"] > 0) & (book["ask"] > 0) & (book["ts"] - book["quote_ts"] <= tol)
    book = book.set_index(["opt_type", "strike_paise", "ts"]).sort_index()

    def quote(opt: str, strike: int, t: int) -> Any:
        try:
            row = book.loc[(opt, strike, grid[t])]
        except KeyError:
            return None
        return row if bool(row["ok"]) else None

    entry_lo, entry_hi, exit_t = 5 * 60, 10 * 60, 22_500 - 10 * 60
    fills: list[dict[str, Any]] = []
    held: dict[str, int] = {}

    def trade(t: int, opt: str, strike: int, side: str, reason: str, row: Any) -> None:
        price = int(row["ask"] if side == "buy" else row["bid"])
        fills.append(
            {
                "ts": grid[t],
                "symbol": row["symbol"],
                "side": side,
                "price_paise": price,
                "reason": reason,
            }
        )

    def atm(t: int) -> int:
        return int((spot_paise[t] + step_paise // 2) // step_paise * step_paise)

    anchor = -1
    for t in range(entry_lo, entry_hi):
        if spot_paise[t] <= 0:
            continue
        rows = {opt: quote(opt, atm(t), t) for opt in ("CE", "PE")}
        if all(r is not None for r in rows.values()):
            for opt, row in rows.items():
                trade(t, opt, atm(t), "sell", "entry", row)
                held[opt] = atm(t)
            anchor = t
            break
    if anchor < 0:
        return pd.DataFrame(fills)
    t = anchor + 3600
    while t < exit_t:
        moved = {opt for opt in held if atm(t) != held[opt]} if spot_paise[t] > 0 else set()
        ready = all(
            quote(opt, atm(t), t) is not None and quote(opt, held[opt], t) is not None
            for opt in moved
        )
        if spot_paise[t] <= 0 or not ready:
            t += 1  # retry next second
            continue
        for opt in ("CE", "PE"):
            if opt in moved:
                trade(t, opt, held[opt], "buy", "rebalance_close", quote(opt, held[opt], t))
                trade(t, opt, atm(t), "sell", "rebalance_open", quote(opt, atm(t), t))
                held[opt] = atm(t)
        t += 3600
    for opt in ("CE", "PE"):
        for s in range(exit_t, 22_500):
            row = quote(opt, held[opt], s)
            if row is not None:
                trade(s, opt, held[opt], "buy", "exit_time", row)
                break
    return pd.DataFrame(fills)


def compare_with_pandas(lake: Lake, day: date) -> dict[str, Any]:
    spec = straddle_spec(day, day)
    run_day(lake, spec, day)  # warm
    began = time.perf_counter()
    engine = run_day(lake, spec, day).trades
    engine_seconds = time.perf_counter() - began
    began = time.perf_counter()
    peer = pandas_straddle_day(lake, day, spec)
    pandas_seconds = time.perf_counter() - began
    ours = engine.select("ts", "symbol", "side", "price_paise", "reason").to_pandas()
    ours["ts"] = ours["ts"].astype("datetime64[ns, UTC]")
    if not peer.empty:
        peer["ts"] = peer["ts"].astype("datetime64[ns, UTC]")
    same = len(ours) == len(peer) and bool(
        (
            ours.sort_values(["ts", "symbol"]).reset_index(drop=True)
            == peer[ours.columns].sort_values(["ts", "symbol"]).reset_index(drop=True)
        ).all(axis=None)
    )
    return {
        "day": str(day),
        "engine_seconds": engine_seconds,
        "pandas_seconds": pandas_seconds,
        "fills_engine": len(ours),
        "fills_pandas": len(peer),
        "fills_identical": same,
    }


# --------------------------------------------------------------------------- report


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """Markdown table; ``columns`` = (key, header, format)."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = [
        "| " + " | ".join(format(r[k], f) if k in r else "" for k, _, f in columns) + " |"
        for r in rows
    ]
    return "\n".join([head, rule, *body])


def one_process_over_days(lake_root: str, days: list[date]) -> list[dict[str, Any]]:
    lake = open_lake(lake_root)
    rows = []
    for day in days:
        spec = straddle_spec(day, day)
        began = time.perf_counter()
        outcome = run_day(lake, spec, day)
        rows.append(
            {
                "day": str(day),
                "seconds": time.perf_counter() - began,
                "fills": outcome.trades.height,
                "rss_mb": rss_now_mb(),
                "peak_rss_mb": peak_rss_mb(),
            }
        )
        del outcome
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 small days, under a minute")
    parser.add_argument("--days", type=int, default=None, help="days to generate (default 20)")
    parser.add_argument("--strikes-each-side", type=int, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--child", nargs=3, metavar=("LAKE", "DAY", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_day(*args.child)))
        return
    days_n = args.days or (2 if args.quick else 20)
    strikes = args.strikes_each_side or (2 if args.quick else 22)
    started = time.perf_counter()
    lake_root = build_lake(args.out, days_n, strikes)
    lake = open_lake(lake_root)
    days = lake_days(lake)
    print(
        f"# ticklake backtest benchmark — {time.strftime('%Y-%m-%d %H:%M %Z')}\n"
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}, polars {pl.__version__}\n"
        f"command: python benchmarks/bench_backtest.py {' '.join(sys.argv[1:])}\n"
        f"lake: {lake_root} ({len(days)} days, strikes_each_side={strikes})\n",
        flush=True,
    )

    # 1. compile cost: an empty Numba cache in a fresh process, then the cached kernels.
    cases = []
    with tempfile.TemporaryDirectory() as cache_dir:
        fresh_cache = {"NUMBA_CACHE_DIR": cache_dir}
        cold = run_child([str(lake_root), str(days[0]), "compile"], fresh_cache)
        if not args.quick:
            cases.append({"case": "new process, empty Numba cache (compiles)", **cold})
        cached = run_child([str(lake_root), str(days[0]), "compile"], fresh_cache)
        cases.append({"case": "new process, Numba cache on disk", **cached})
    print("## First vs second run (day " + str(days[0]) + ")\n")
    print(
        table(
            cases,
            [
                ("case", "case", "s"),
                ("first_seconds", "first run_day (s)", ".2f"),
                ("second_seconds", "second run_day, same process (s)", ".2f"),
            ],
        )
        + "\n",
        flush=True,
    )

    # 2. per day, one fresh process each: timings and peak RSS.
    per_day = [run_child([str(lake_root), str(day), "day"]) for day in days]
    for row in per_day:
        row["rows_per_second"] = row["rows_in_partition"] / row["day_seconds"]
        row["vs_scan"] = row["day_seconds"] / row["scan_seconds"]
    print("## Per day (fresh process per day, warm Numba cache)\n")
    print(
        table(
            per_day,
            [
                ("day", "day", "s"),
                ("rows_in_partition", "option rows", ",d"),
                ("contracts_loaded", "contracts loaded", "d"),
                ("scan_seconds", "raw scan (s)", ".2f"),
                ("load_seconds", "load+align (s)", ".2f"),
                ("kernel_seconds", "kernel (s)", ".3f"),
                ("outputs_seconds", "outputs (s)", ".3f"),
                ("day_seconds", "run_day (s)", ".2f"),
                ("rows_per_second", "rows/s", ",.0f"),
                ("vs_scan", "÷ raw scan", ".1f"),
                ("fills", "fills", "d"),
                ("peak_rss_mb", "peak RSS (MB)", ",.0f"),
            ],
        )
        + "\n",
        flush=True,
    )

    # 3. one process over all days: is memory flat?
    over = one_process_over_days(str(lake_root), days)
    print(f"## One process over {len(days)} consecutive days\n")
    print(
        table(
            over,
            [
                ("day", "day", "s"),
                ("seconds", "run_day (s)", ".2f"),
                ("fills", "fills", "d"),
                ("rss_mb", "RSS after day (MB)", ",.0f"),
                ("peak_rss_mb", "peak RSS so far (MB)", ",.0f"),
            ],
        )
        + "\n",
        flush=True,
    )

    # 4. pandas peer on the first days.
    peers = [compare_with_pandas(lake, day) for day in days[: 1 if args.quick else 3]]
    for row in peers:
        row["speedup"] = row["pandas_seconds"] / row["engine_seconds"]
    print("## Plain pandas implementation of the same straddle\n")
    print(
        table(
            peers,
            [
                ("day", "day", "s"),
                ("engine_seconds", "ticklake run_day (s)", ".2f"),
                ("pandas_seconds", "pandas (s)", ".2f"),
                ("speedup", "speed-up", ".1f"),
                ("fills_engine", "fills (ticklake)", "d"),
                ("fills_pandas", "fills (pandas)", "d"),
                ("fills_identical", "same fills", ""),
            ],
        )
        + "\n",
        flush=True,
    )

    # 5. summary against the targets.
    day_seconds = float(np.median([r["day_seconds"] for r in per_day]))
    five_years = FIVE_YEARS_DAYS / BENCH_WORKERS * day_seconds
    summary = [
        {"what": "median run_day per day (s)", "value": f"{day_seconds:.2f}", "target": ""},
        {
            "what": "median run_day ÷ raw scan",
            "value": f"{np.median([r['vs_scan'] for r in per_day]):.1f}×",
            "target": "≤ 2×",
        },
        {
            "what": "max peak RSS, one day per process (MB)",
            "value": f"{max(r['peak_rss_mb'] for r in per_day):,.0f}",
            "target": "≤ 2,048",
        },
        {
            "what": f"RSS after day 1 → day {len(over)}, one process (MB)",
            "value": f"{over[0]['rss_mb']:,.0f} → {over[-1]['rss_mb']:,.0f}",
            "target": "flat",
        },
        {
            "what": "5 years (1,250 days) on 2 workers, extrapolated (s)",
            "value": f"{five_years:,.0f}",
            "target": "≤ 120",
        },
        {
            "what": "speed-up over pandas (median)",
            "value": f"{np.median([r['speedup'] for r in peers]):.1f}×",
            "target": "≥ 20×",
        },
    ]
    print("## Summary\n")
    print(
        table(
            summary, [("what", "measure", "s"), ("value", "value", "s"), ("target", "target", "s")]
        )
    )
    print(f"\n(benchmark wall time {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
