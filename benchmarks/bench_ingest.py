"""Ingest throughput: ticklake's ingest pipeline against DuckDB's raw Parquet copy.

Two cases, each run on the same input by both sides:

- ``csv``: a Binance-style trades CSV (header, epoch-ms times), ingested with the
  generic ``csv`` reader and a mapping into a committed ``trades`` partition, against
  ``COPY (SELECT * FROM read_csv('x.csv')) TO 'x.parquet'``;
- ``options``: one day of generated 52-column vendor option files (one Parquet file
  per contract), ingested with ``nse_options``, against
  ``COPY (SELECT * FROM read_parquet('dir/*.parquet')) TO 'x.parquet'``.

Input generation is not timed. Every measurement runs in its own subprocess, so
peak RSS (VmHWM, read at the end of the child) belongs to that side alone. Library
imports happen before the timer on both sides (``import duckdb``; ticklake's readers
and the lazily imported exchange calendar, which alone takes ~1 s to import when
``PYTHONDONTWRITEBYTECODE`` is set). The ratio is ticklake's rows/s over DuckDB's;
the target is ≥ 0.5×.

    python benchmarks/bench_ingest.py            # full: 5 M CSV rows, ~4.5 M option rows
    python benchmarks/bench_ingest.py --quick    # 500 k CSV rows, a small option day
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

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


def make_option_day(out: Path, scale: Scale) -> tuple[int, int]:
    from ticklake.generate.options import generate_options

    summary = generate_options(
        "BANKNIFTY",
        start=date(2024, 1, 8),
        days=1,
        out=out,
        strikes_each_side=scale.strikes_each_side,
        seconds_step=scale.seconds_step,
    )
    return summary.files, summary.rows


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
    return {"rows": rows, "seconds": seconds, "peak_rss_mib": _peak_rss_mib()}


def measure(case: str, source: Path, scratch: Path) -> dict[str, float]:
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
def print_table(results: list[tuple[str, str, dict[str, float], dict[str, float]]]) -> None:
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
                case if numbers is baseline else "",
                engine,
                f"{int(numbers['rows']):,}",
                f"{numbers['seconds']:.2f}",
                f"{numbers['rows'] / numbers['seconds']:,.0f}",
                f"{numbers['peak_rss_mib']:,.0f} MiB",
                shown,
                verdict,
            )
        table.add_section()
        del label
    Console(width=140).print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    parser.add_argument("--workdir", type=Path, help="where inputs go (default: a temp dir)")
    parser.add_argument(
        "--child", nargs=3, metavar=("CASE", "SOURCE", "WORK"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        case, source, work = args.child
        print(json.dumps(run_case(case, Path(source), Path(work))))
        return

    scale = QUICK if args.quick else FULL
    if args.workdir is not None:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.workdir))
    try:
        csv_path = root / "BTCUSDT-trades-2024-01-01.csv"
        started = time.perf_counter()
        make_trades_csv(csv_path, scale.csv_rows)
        files, rows = make_option_day(root / "generated", scale)
        print(
            f"inputs: {scale.csv_rows:,} CSV rows ({csv_path.stat().st_size / 2**20:,.0f} MiB), "
            f"{files} option files with {rows:,} rows; generated in "
            f"{time.perf_counter() - started:.0f} s (not timed)",
            flush=True,
        )
        options_dir = root / "generated" / "options" / "2024-01-08"
        results = []
        for case, source in (("csv", csv_path), ("options", options_dir)):
            baseline = measure(f"{case}_duckdb", source, root)
            ours = measure(f"{case}_ticklake", source, root)
            results.append((case, case, ours, baseline))
        print_table(results)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
