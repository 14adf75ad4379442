"""Ingest throughput: ticklake's ingest pipeline against DuckDB's raw Parquet copy.

Two cases, each run on the same input by both sides:

- ``csv``: a Binance-style trades CSV (header, epoch-ms times), ingested with the
  generic ``csv`` reader and a mapping into a committed ``trades`` partition, against
  ``COPY (SELECT * FROM read_csv('x.csv')) TO 'x.parquet'``;
- ``options``: generated 52-column vendor option files (one Parquet file per
  contract), ingested with ``nse_options``, against
  ``COPY (SELECT * FROM read_parquet('dir/*.parquet')) TO 'x.parquet'``. With
  ``--days N`` each contract's file spans N trading days, as users' vendor files do
  (``--days 1,5,10`` runs each); the DuckDB side copies the same files.

Before a ticklake time counts, the committed lake is checked against the input: rows
per trading day and sums of key columns (``ts`` in UTC ns, ``strike``, ``oi``), the
input side read by DuckDB straight from the vendor files.

Input generation is not timed. Every measurement runs in its own subprocess, so
peak RSS (VmHWM, read at the end of the child) belongs to that side alone. Library
imports happen before the timer on both sides (``import duckdb``; ticklake's readers
and the lazily imported exchange calendar, which alone takes ~1 s to import when
``PYTHONDONTWRITEBYTECODE`` is set). The ratio is ticklake's rows/s over DuckDB's;
the target is ≥ 0.5×.

    python benchmarks/bench_ingest.py            # full: 5 M CSV rows, ~4.5 M option rows
    python benchmarks/bench_ingest.py --quick    # 500 k CSV rows, a small option day
    python benchmarks/bench_ingest.py --cases options --days 1,5,10 --strikes 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

TARGET_RATIO = 0.5

CSV_MAPPING = """\
schema: trades
columns: {trade_id: id, price: price, size: qty, side: is_buyer_maker}
value_maps:
  side: {"true": sell, "false": buy}
time: {column: time, unit: ms}
constants: {instrument: BTCUSDT, venue: binance}
"""


@dataclass(frozen=True)
class Scale:
    csv_rows: int
    strikes_each_side: int
    seconds_step: int


FULL = Scale(csv_rows=5_000_000, strikes_each_side=22, seconds_step=1)
QUICK = Scale(csv_rows=500_000, strikes_each_side=2, seconds_step=10)


# ------------------------------------------------------------------- inputs
def make_trades_csv(path: Path, rows: int, seed: int = 0) -> None:
    """Write Binance-style trades with a header: one UTC day, ms times, unique ids."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    day_start_ms = 1_704_067_200_000  # 2024-01-01 00:00 UTC
    times = day_start_ms + np.sort(rng.integers(0, 86_400_000, rows))
    price_cents = 4_200_000 + np.cumsum(rng.integers(-3, 4, rows))
    qty = np.round(rng.exponential(0.05, rows) + 0.00001, 5)
    price = price_cents / 100
    pl.DataFrame(
        {
            "id": np.arange(3_000_000_000, 3_000_000_000 + rows),
            "price": price,
            "qty": qty,
            "quote_qty": np.round(price * qty, 8),
            "time": times,
            "is_buyer_maker": rng.random(rows) < 0.5,
            "is_best_match": np.ones(rows, dtype=bool),
        }
    ).write_csv(path)


def make_option_files(out: Path, scale: Scale, days: int) -> tuple[int, int, list[date]]:
    """Generate ``days`` trading days of per-contract files under ``out/options/DAY/``."""
    from ticklake.generate.options import generate_options

    summary = generate_options(
        "BANKNIFTY",
        start=date(2024, 1, 8),
        days=days,
        out=out,
        strikes_each_side=scale.strikes_each_side,
        seconds_step=scale.seconds_step,
    )
    return summary.files, summary.rows, list(summary.dates)


def make_multiday_files(generated: Path, dates: list[date], target: Path) -> tuple[int, int]:
    """Join each contract's one-day files over ``dates`` into one file per contract.

    Vendor files of a contract cover every day it traded, rows in time order, so a
    weekly contract that expires mid-range spans fewer days than a monthly one.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    target.mkdir(parents=True, exist_ok=True)
    by_name: dict[str, list[Path]] = {}
    for day in dates:
        for path in sorted((generated / "options" / day.isoformat()).glob("*.parquet")):
            by_name.setdefault(path.name, []).append(path)
    rows = 0
    for name, paths in sorted(by_name.items()):
        table = pa.concat_tables([pq.read_table(p) for p in paths])
        pq.write_table(table, target / name)
        rows += table.num_rows
    return len(by_name), rows


def expected_option_days(source: Path) -> dict[str, list[float]]:
    """Per IST trading day of the input: rows, sum of UTC ns of ``ts``, strike, oi."""
    import duckdb

    query = f"""
        SELECT CAST(CAST(ts AS DATE) AS VARCHAR) AS day, count(*),
               sum(epoch_ns(ts) - 19800000000000)::HUGEINT::VARCHAR,
               round(sum(strike), 2), sum(oi)::HUGEINT::VARCHAR
        FROM read_parquet('{source}/*.parquet') GROUP BY 1 ORDER BY 1"""
    return {row[0]: [str(v) for v in row[1:]] for row in duckdb.execute(query).fetchall()}


def committed_option_days(lake_root: Path) -> dict[str, list[str]]:
    """The same sums over the committed partitions (``ts`` is stored in UTC)."""
    import duckdb

    query = f"""
        SELECT CAST(date AS VARCHAR), count(*),
               sum(epoch_ns(ts))::HUGEINT::VARCHAR,
               round(sum(strike), 2), sum(oi)::HUGEINT::VARCHAR
        FROM read_parquet('{lake_root}/bronze/options/date=*/data.parquet',
                          hive_partitioning = true)
        GROUP BY 1 ORDER BY 1"""
    return {row[0]: [str(v) for v in row[1:]] for row in duckdb.execute(query).fetchall()}


# ------------------------------------------------------------ child side
def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(case: str, source: Path, work: Path) -> dict[str, float]:
    """Run one measurement in this process; return rows, seconds, peak RSS."""
    if case.endswith("duckdb"):
        import duckdb

        target = work / "duckdb.parquet"
        reader = (
            f"read_csv('{source}')"
            if case == "csv_duckdb"
            else (f"read_parquet('{source}/*.parquet')")
        )
        started = time.perf_counter()
        row = duckdb.execute(f"COPY (SELECT * FROM {reader}) TO '{target}'").fetchone()
        seconds = time.perf_counter() - started
        rows = int(row[0]) if row else 0
    else:
        import exchange_calendars  # noqa: F401  (imported lazily by the NSE calendar)

        import ticklake
        import ticklake.ingest.readers  # registers every reader
        from ticklake.ingest.pipeline import ingest_files
        from ticklake.ingest.readers.base import ReaderOptions

        lake = ticklake.init_lake(work / "lake")
        started = time.perf_counter()
        if case == "csv_ticklake":
            mapping = work / "mapping.yml"
            mapping.write_text(CSV_MAPPING)
            summary = ingest_files(
                lake, "csv", [source], "trades", options=ReaderOptions(extra={"mapping": mapping})
            )
        else:
            summary = ingest_files(lake, "nse_options", [source], "options")
        seconds = time.perf_counter() - started
        if summary.failed:
            raise SystemExit(f"ingest failed: {summary.failed[0].error}")
        rows = summary.rows_committed
        peak = _peak_rss_mib()  # before the check below reads the lake
        if case == "options_ticklake":
            return {
                "rows": rows,
                "seconds": seconds,
                "peak_rss_mib": peak,
                "days": committed_option_days(lake.root),
            }
    return {"rows": rows, "seconds": seconds, "peak_rss_mib": _peak_rss_mib()}


def measure(case: str, source: Path, scratch: Path) -> dict[str, Any]:
    """Run ``case`` in a fresh subprocess (its own peak RSS) and return its numbers."""
    work = Path(tempfile.mkdtemp(prefix=f"{case}-", dir=scratch))
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child", case, str(source), str(work)],
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"{case} failed:\n{exc.stderr}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ report
def print_table(results: list[tuple[str, str, dict[str, Any], dict[str, Any]]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ingest throughput (same input, each side in its own process)")
    for name in ("case", "engine", "rows", "seconds", "rows/s", "peak RSS", "vs DuckDB", "target"):
        table.add_column(name, justify="left" if name in ("case", "engine") else "right")
    for case, label, ours, baseline in results:
        ratio = (ours["rows"] / ours["seconds"]) / (baseline["rows"] / baseline["seconds"])
        for engine, numbers, shown in (
            ("DuckDB COPY", baseline, "1.00×"),
            ("ticklake ingest", ours, f"{ratio:.2f}×"),
        ):
            verdict = ""
            if numbers is ours:
                ok = ratio >= TARGET_RATIO
                verdict = f"≥ {TARGET_RATIO}× " + ("[green]met[/]" if ok else "[red]missed[/]")
            table.add_row(
                label if numbers is baseline else "",
                engine,
                f"{int(numbers['rows']):,}",
                f"{numbers['seconds']:.2f}",
                f"{numbers['rows'] / numbers['seconds']:,.0f}",
                f"{numbers['peak_rss_mib']:,.0f} MiB",
                shown,
                verdict,
            )
        table.add_section()
        del case
    Console(width=140).print(table)


def _day_counts(text: str) -> list[int]:
    counts = sorted({int(part) for part in text.split(",") if part.strip()})
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"--days takes counts >= 1 like 1,5,10, not {text!r}")
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    parser.add_argument("--workdir", type=Path, help="where inputs go (default: a temp dir)")
    parser.add_argument(
        "--cases", default="csv,options", help="comma-separated cases (csv, options)"
    )
    parser.add_argument(
        "--days",
        type=_day_counts,
        default=[1],
        help="trading days each option file spans; a list (1,5,10) runs each",
    )
    parser.add_argument("--strikes", type=int, help="strikes each side (default: the scale's)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each side per case (best counts)"
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("CASE", "SOURCE", "WORK"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        case, source, work = args.child
        print(json.dumps(run_case(case, Path(source), Path(work))))
        return

    scale = QUICK if args.quick else FULL
    if args.strikes is not None:
        scale = Scale(scale.csv_rows, args.strikes, scale.seconds_step)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if args.workdir is not None:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.workdir))
    try:
        inputs: list[tuple[str, str, Path]] = []
        started = time.perf_counter()
        if "csv" in cases:
            csv_path = root / "BTCUSDT-trades-2024-01-01.csv"
            make_trades_csv(csv_path, scale.csv_rows)
            inputs.append(("csv", "csv", csv_path))
            print(f"inputs: {scale.csv_rows:,} CSV rows", flush=True)
        if "options" in cases:
            _, _, dates = make_option_files(root / "generated", scale, max(args.days))
            for days in args.days:
                source = root / f"options-{days}d"
                files, rows = make_multiday_files(root / "generated", dates[:days], source)
                print(
                    f"inputs: {files} option files spanning {days} day(s), {rows:,} rows",
                    flush=True,
                )
                inputs.append(("options", f"options {days}d", source))
        print(f"generated in {time.perf_counter() - started:.0f} s (not timed)", flush=True)
        results = []
        for case, label, source in inputs:
            expected = expected_option_days(source) if case == "options" else None
            runs = []
            for _ in range(args.repeat):  # alternate sides: both see the same load
                baseline = measure(f"{case}_duckdb", source, root)
                ours = measure(f"{case}_ticklake", source, root)
                if expected is not None and ours.pop("days") != expected:
                    raise SystemExit(f"{label}: the committed lake differs from the input")
                runs.append((ours, baseline))
            ours = min((r[0] for r in runs), key=lambda n: n["seconds"])
            baseline = min((r[1] for r in runs), key=lambda n: n["seconds"])
            ours["peak_rss_mib"] = max(r[0]["peak_rss_mib"] for r in runs)
            baseline["peak_rss_mib"] = max(r[1]["peak_rss_mib"] for r in runs)
            results.append((case, label, ours, baseline))
            print(
                f"{label}: ticklake {ours['rows'] / ours['seconds']:,.0f} rows/s "
                f"({ours['peak_rss_mib']:,.0f} MiB), DuckDB "
                f"{baseline['rows'] / baseline['seconds']:,.0f} rows/s "
                f"({baseline['peak_rss_mib']:,.0f} MiB), lake checked",
                flush=True,
            )
        print_table(results)
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
