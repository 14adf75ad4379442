"""Measure the read check's cost: first read of a ~100 MB partition vs a plain scan.

Run: ``.venv/bin/python tests/unit/lake/measure_read_check.py [rows]`` (not a test).
Prints the partition size, sha256 throughput, and best-of-5 times of a plain Polars
scan, ``lake.scan`` on a process's first read (hash + scan) and on later reads
(cached), and with ``lake.verify_reads = false`` (no check), for a full read and for a
one-column aggregate, and the same for SQL.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration" / "_scripts"))

from lakegen import make_trades

import ticklake
from ticklake.lake import integrity


def best(fn, first: bool, k: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(k):
        if first:
            integrity.forget_verified()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main(rows: int) -> None:
    lake = ticklake.init_lake(Path(tempfile.mkdtemp()) / "lake")
    lake.write("big", make_trades(days=1, rows_per_day=rows, seed=1), schema="trades")
    (path,) = lake.partition_files("big")
    size = path.stat().st_size
    hashing = best(lambda: integrity.hash_file(path), first=False)
    print(
        f"partition {size / 1e6:.1f} MB, {rows:,} rows; sha256 {hashing * 1e3:.0f} ms "
        f"({size / hashing / 1e9:.2f} GB/s)"
    )
    cases = {
        "full read": lambda lf: lf.collect(),
        "mean(price)": lambda lf: lf.select(pl.col("price").mean()).collect(),
    }
    trusting = ticklake.open_lake(lake.root, lake={"verify_reads": False})
    for name, run in cases.items():
        plain = best(lambda run=run: run(pl.scan_parquet(path)), first=False)
        first = best(lambda run=run: run(lake.scan("big")), first=True)
        cached = best(lambda run=run: run(lake.scan("big")), first=False)
        off = best(lambda run=run: run(trusting.scan("big")), first=True)
        print(
            f"{name:12s} plain {plain * 1e3:7.1f} ms | lake.scan first read {first * 1e3:7.1f} ms"
            f" (+{(first - plain) * 1e3:.0f} ms) | cached {cached * 1e3:7.1f} ms"
            f" | verify_reads off {off * 1e3:7.1f} ms"
        )
    query = "SELECT avg(price) FROM bronze.big"
    first = best(lambda: lake.sql(query), first=True)
    cached = best(lambda: lake.sql(query), first=False)
    off = best(lambda: trusting.sql(query), first=True)
    print(
        f"sql avg      first read {first * 1e3:7.1f} ms | cached {cached * 1e3:7.1f} ms"
        f" | verify_reads off {off * 1e3:7.1f} ms"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4_000_000)
