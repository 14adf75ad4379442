"""Benchmark a full analytics pipeline over a generated multi-day BANKNIFTY option lake.

Not part of the test suite. The pipeline is the shipped example
``src/ticklake/analytics/examples/option_greeks.yml`` (BSM implied volatility and greeks
every 5 minutes, then the hourly cross-sectional IV rank). Three sides, each measured in
its own subprocess (peak RSS = VmHWM of that child; with the ``process`` executor that
is the driving process only, so the workers' ``ru_maxrss`` (RUSAGE_CHILDREN) is shown
too, an upper bound as a spawned worker's count starts from its parent's RSS),
alternating over ``--repeat`` rounds:

- ``raw scan``: ``pl.scan_parquet(<option partitions>).select(cols).collect()`` of the
  columns the pipeline loads (the pass lists no ``columns:``, so every column of the
  options dataset), plus ``ts, instrument, price`` of the spot partitions;
- ``pipeline serial``: ``run_pipeline(lake, spec, executor="serial")``;
- ``pipeline process×2``: ``run_pipeline(lake, spec, executor="process", workers=2)``.

``run_pipeline`` never skips a day (a re-run recomputes every batch and merges into the
existing gold rows), so before every pipeline round the lake's ``gold/`` and ``runs/``
are deleted: each round computes and commits everything from the bronze inputs and
writes into an empty gold layer. One untimed serial run first warms the Numba cache.
After the rounds the serial and process gold outputs are compared (sorted, ``equals``).
With ``--batch-frequency auto`` (the default) a lake this small is one batch, so the
``process`` executor has one task and no parallelism; ``--batch-frequency D`` gives it
one task per day.

The lake is generated and ingested once under ``--workdir`` (default
``benchmarks/out/``) as ``benchmarks/bench_backtest.py`` does, and reused; input
generation and ingest are not timed.

    python benchmarks/bench_pipeline.py            # 3 days, 10 strikes each side
    python benchmarks/bench_pipeline.py --quick    # 1 day, 3 strikes each side
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

HERE = Path(__file__).resolve().parent
PIPELINE = HERE.parent / "src" / "ticklake" / "analytics" / "examples" / "option_greeks.yml"
FIRST_DAY = date(2024, 1, 1)
OPTIONS = "banknifty_options"
SPOT = "banknifty_spot"
SPOT_COLUMNS = ["ts", "instrument", "price"]
SIDES = ("scan", "serial", "process")
LABELS = {"scan": "raw scan", "serial": "pipeline serial", "process": "pipeline process×2"}


# --------------------------------------------------------------------------- the lake


def build_lake(out: Path, days: int, strikes_each_side: int) -> Path:
    """Generate and ingest ``days`` days once; return the lake root (reused when present)."""
    from _generated_lake import build_generated_lake

    return build_generated_lake(
        out / f"pipeline-banknifty-{FIRST_DAY}-{days}d-{strikes_each_side}s",
        first_day=FIRST_DAY,
        days=days,
        strikes_each_side=strikes_each_side,
        options_dataset=OPTIONS,
        spot_dataset=SPOT,
        keep_generated=False,
    )


def reset_outputs(lake_root: Path) -> None:
    """Delete the gold layer and the run directories, so the next run computes everything."""
    for name in ("gold", "runs"):
        shutil.rmtree(lake_root / name, ignore_errors=True)
    (lake_root / "gold").mkdir()


def gold_outputs(lake_root: Path) -> dict[str, pl.DataFrame]:
    """Every gold dataset the pipeline wrote, read whole and sorted (for the comparison)."""
    from ticklake.analytics.pipeline import load_pipeline
    from ticklake.lake import open_lake

    lake = open_lake(lake_root)
    spec = load_pipeline(PIPELINE)
    frames = {}
    for pass_spec in spec.passes:
        name = spec.output_dataset(pass_spec)
        parts = [pl.read_parquet(p.path) for p in lake.partitions(name, layer="gold")]
        frame = pl.concat(parts, how="vertical") if parts else pl.DataFrame()
        frames[name] = frame.sort(frame.columns) if frame.height else frame
    return frames


# --------------------------------------------------------------------------- children


def peak_rss_mib() -> float:
    # VmHWM, not ru_maxrss: a child inherits its parent's ru_maxrss across fork+exec.
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def child(side: str, lake_root: str, frequency: str) -> dict[str, Any]:
    """One measurement in this (fresh) process; printed as JSON for the parent."""
    from ticklake.analytics.pipeline import load_pipeline
    from ticklake.analytics.run import run_pipeline
    from ticklake.lake import open_lake

    lake = open_lake(lake_root)
    if side == "scan":
        option_files = [p.path for p in lake.partitions(OPTIONS)]
        spot_files = [p.path for p in lake.partitions(SPOT)]
        columns = list(lake.dataset_info(OPTIONS).dataset_schema.column_names)
        began = time.perf_counter()
        options = pl.scan_parquet(option_files).select(columns).collect()
        spot = pl.scan_parquet(spot_files).select(SPOT_COLUMNS).collect()
        seconds = time.perf_counter() - began
        return {
            "seconds": seconds,
            "option_rows": options.height,
            "spot_rows": spot.height,
            "columns": len(columns),
            "peak_rss_mib": peak_rss_mib(),
        }
    if (Path(lake_root) / "runs").exists() or any((Path(lake_root) / "gold").iterdir()):
        raise SystemExit(f"{lake_root}: gold/ or runs/ left from an earlier round")
    spec = load_pipeline(PIPELINE)
    executor, workers = ("serial", None) if side == "serial" else ("process", 2)
    began = time.perf_counter()
    run = run_pipeline(lake, spec, executor=executor, workers=workers, batch_frequency=frequency)
    seconds = time.perf_counter() - began
    # ru_maxrss of the waited-for workers: an upper bound (a spawned worker starts its
    # count from this process's RSS at fork time); 0 with the serial executor.
    workers_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "seconds": seconds,
        "rows_out": run.rows_out,
        "rows_in": sum(s["passes"][spec.passes[0].name]["rows_in"] for s in run.summaries),
        "batches": len(run.batches),
        "frequency": run.frequency,
        "peak_rss_mib": peak_rss_mib(),
        "workers_rss_mib": workers_rss,
    }


def run_child(side: str, lake_root: Path, frequency: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", side, str(lake_root), frequency],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"child {side} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 day, 3 strikes each side")
    parser.add_argument("--days", type=int, default=None, help="days to generate (default 3)")
    parser.add_argument("--strikes-each-side", type=int, default=None, help="default 10")
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--workdir", type=Path, default=HERE / "out")
    parser.add_argument(
        "--batch-frequency",
        default="auto",
        choices=["auto", "D", "W", "M", "Y"],
        help="run_pipeline's batch_frequency (default auto: one batch for a small lake)",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    days_n = args.days or (1 if args.quick else 3)
    strikes = args.strikes_each_side or (3 if args.quick else 10)
    started = time.perf_counter()
    lake_root = build_lake(args.workdir, days_n, strikes)
    load = os.getloadavg()
    print(
        f"# ticklake analytics pipeline benchmark — {time.strftime('%Y-%m-%d %H:%M %Z')}\n"
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}, polars {pl.__version__}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
        f"command: python benchmarks/bench_pipeline.py {' '.join(sys.argv[1:])}\n"
        f"lake: {lake_root} ({days_n} days, strikes_each_side={strikes})\n"
        f"pipeline: {PIPELINE.relative_to(HERE.parent)}\n",
        flush=True,
    )

    # Untimed warm-up: Numba's on-disk cache, so no round pays the compile.
    reset_outputs(lake_root)
    run_child("serial", lake_root, args.batch_frequency)

    results: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    outputs: dict[str, dict[str, pl.DataFrame]] = {}
    for round_ in range(args.repeat):
        order = SIDES if round_ % 2 == 0 else SIDES[::-1]
        for side in order:
            if side != "scan":
                reset_outputs(lake_root)
            result = run_child(side, lake_root, args.batch_frequency)
            results[side].append(result)
            if side != "scan":
                outputs[side] = gold_outputs(lake_root)
            print(f"  round {round_ + 1}: {LABELS[side]} {result['seconds']:.2f} s", flush=True)
    reset_outputs(lake_root)

    option_rows = results["scan"][0]["option_rows"]
    if any(r["option_rows"] != option_rows for r in results["scan"]):
        raise SystemExit("the raw scan saw different row counts across rounds")
    for side in ("serial", "process"):
        seen = {r["rows_in"] for r in results[side]}
        if seen != {option_rows}:
            print(f"note: {side} pass 1 read {seen} rows, the raw scan {option_rows:,}")
    scan_median = statistics.median(r["seconds"] for r in results["scan"])
    rows = []
    for side in SIDES:
        median = statistics.median(r["seconds"] for r in results[side])
        rows.append(
            {
                "side": LABELS[side],
                "seconds": median,
                "all": " / ".join(f"{r['seconds']:.2f}" for r in results[side]),
                "rows_per_second": option_rows / median,
                "ratio": median / scan_median,
                "peak_rss_mib": max(r["peak_rss_mib"] for r in results[side]),
                "workers_rss_mib": max(r.get("workers_rss_mib", 0.0) for r in results[side]),
            }
        )
    print(
        f"\n## {option_rows:,} option rows ({results['scan'][0]['columns']} columns) + "
        f"{results['scan'][0]['spot_rows']:,} spot rows, {days_n} days; "
        f"median of {args.repeat} alternating rounds\n"
    )
    print(
        table(
            rows,
            [
                ("side", "side", "s"),
                ("seconds", "median (s)", ".2f"),
                ("all", "rounds (s)", "s"),
                ("rows_per_second", "input rows/s", ",.0f"),
                ("ratio", "÷ raw scan", ".1f"),
                ("peak_rss_mib", "peak RSS (MiB, max)", ",.0f"),
                ("workers_rss_mib", "worker peak RSS (MiB, ≤)", ",.0f"),
            ],
        )
    )
    first = results["serial"][0]
    gold = ", ".join(f"{name} {n:,}" for name, n in first["rows_out"].items())
    print(f"\ngold rows produced: {gold}")
    print(f"batches: {first['batches']} (frequency {first['frequency']})")
    same = all(
        outputs["serial"][name].equals(outputs["process"][name]) for name in outputs["serial"]
    ) and set(outputs["serial"]) == set(outputs["process"])
    print(f"serial and process gold outputs identical: {same}")
    print(f"\n(benchmark wall time {time.perf_counter() - started:.0f} s)")
    if not same:
        raise SystemExit("serial and process outputs differ")


if __name__ == "__main__":
    main()
