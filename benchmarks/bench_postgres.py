"""PostgreSQL in and out: ticklake against ``psql``'s ``\\copy`` in the same run.

- **export** (lake → PostgreSQL): ``export trades --to postgres`` (Parquet partitions
  streamed as Arrow batches, binary COPY over ADBC, one transaction) against
  ``psql -c "\\copy t FROM 'trades.csv' CSV"`` of the same rows (the CSV is written
  beforehand, not timed) into a table with the same column types;
- **import** (PostgreSQL → lake): ``ingest postgres`` of the table (watermark ``ts``;
  streamed, spooled, committed day by day with manifests and sha256s) against
  ``psql -c "\\copy (SELECT ...) TO 'out.csv' CSV"`` of the same query.

Outputs are checked equal before a time counts: both tables have the same count, sums
and time bounds as the lake; the lake dataset ingested back equals the source table;
the psql CSV has every row. ticklake's two sides each run in a fresh subprocess, whose
peak RSS (VmHWM) is reported. The target is ticklake ≥ 0.5× psql's rows/s.

    python benchmarks/bench_postgres.py                 # 10 M rows
    python benchmarks/bench_postgres.py --rows 3000000  # a smaller run
    python benchmarks/bench_postgres.py --dsn-env PG_DSN  # an existing server (else a
                                                        # throwaway one is started)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

TARGET_RATIO = 0.5
ROOT = Path(__file__).resolve().parents[1]
CHECK_SQL = (
    "SELECT count(*), round(sum(price)::numeric, 3), round(sum(size)::numeric, 3), "
    "min(ts), max(ts), count(side) FROM {table}"
)
COLUMNS = "ts, instrument, trade_id, price, size, side, venue, recv_ts"
DDL = (
    "CREATE TABLE {table} (ts timestamptz, instrument text, trade_id text, price double "
    "precision, size double precision, side text, venue text, recv_ts timestamptz)"
)


def _psql() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))
    if not found:
        raise SystemExit("psql not found under /usr/lib/postgresql/*/bin (make system-deps)")
    return found[-1]


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------- inputs
def make_lake(path: Path, rows: int, days: int) -> None:
    """``rows`` trades over ``days`` days, written day by day (not timed)."""
    import numpy as np
    import polars as pl

    from ticklake import init_lake

    lake = init_lake(path)
    rng = np.random.default_rng(0)
    per_day = rows // days
    for d in range(days):
        n = per_day if d < days - 1 else rows - per_day * (days - 1)
        start = 1_704_096_000_000_000_000 + d * 86_400_000_000_000  # 2024-01-01 08:00 UTC
        # microsecond times: PostgreSQL keeps microseconds, so the round trip is exact
        ts = start + np.sort(rng.integers(0, 8 * 3_600_000_000, n)) * 1_000
        frame = pl.DataFrame(
            {
                "ts": pl.Series(ts).cast(pl.Datetime("ns", "UTC")),
                "instrument": rng.choice(["BTCUSDT", "ETHUSDT", "SOLUSDT"], n),
                "trade_id": pl.Series(np.arange(d * per_day, d * per_day + n)).cast(pl.String),
                "price": np.round(40_000 + np.cumsum(rng.normal(0, 1, n)), 2),
                "size": np.round(rng.exponential(0.05, n), 5),
                "side": pl.Series(rng.choice(["buy", "sell"], n)).set(
                    pl.Series(rng.random(n) < 0.1), None
                ),
                "venue": "binance",
            }
        )
        lake.write("trades", frame, schema="trades", input_is_unique=True)


# -------------------------------------------------------------- child sides
def child(kind: str, lake_path: str, dsn: str, table: str) -> None:
    import adbc_driver_postgresql.dbapi  # noqa: F401  (imports are not timed)
    import pyarrow  # noqa: F401

    from ticklake import init_lake, open_lake

    if kind == "export":
        lake = open_lake(lake_path)
        started = time.perf_counter()
        summary = lake.export("trades", to="postgres", table=table, dsn=dsn)
        seconds = time.perf_counter() - started
        rows = summary.rows
    else:
        lake = init_lake(lake_path)
        started = time.perf_counter()
        result = lake.ingest_postgres(
            f"SELECT {COLUMNS} FROM {table}", "trades", schema="trades", watermark="ts", dsn=dsn
        )
        seconds = time.perf_counter() - started
        rows = result.rows_read
    print(json.dumps({"seconds": seconds, "rows": rows, "rss_mib": _peak_rss_mib()}))


def run_child(kind: str, lake_path: Path, dsn: str, table: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(lake_path), dsn, table],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def psql(dsn: str, command: str) -> float:
    started = time.perf_counter()
    subprocess.run([_psql(), dsn, "-v", "ON_ERROR_STOP=1", "-qc", command], check=True)
    return time.perf_counter() - started


def fetch(dsn: str, query: str) -> tuple[object, ...]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
        assert row is not None
        return tuple(row)


def lake_check(lake_path: Path) -> tuple[object, ...]:
    import polars as pl

    from ticklake import open_lake

    lake = open_lake(lake_path)
    frame = pl.read_parquet([p.path for p in lake.partitions("trades")])
    return (
        frame.height,
        round(float(frame["price"].sum()), 3),
        round(float(frame["size"].sum()), 3),
        frame["ts"].min(),
        frame["ts"].max(),
        frame["side"].count(),
    )


def _same(a: tuple[object, ...], b: tuple[object, ...], what: str) -> None:
    # numeric sums from PostgreSQL are Decimal, timestamps datetimes: compare as text/float
    def norm(values: tuple[object, ...]) -> list[object]:
        return [round(float(v), 1) if not hasattr(v, "isoformat") else v for v in values]

    if norm(a) != norm(b):
        raise SystemExit(f"outputs differ ({what}): {a} != {b}; no time counts")


# --------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--dsn-env", default=None, help="use this server instead of a new one")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    with ExitStack() as stack:
        if args.dsn_env:
            dsn = os.environ[args.dsn_env]
        else:
            sys.path.insert(0, str(ROOT / "tests" / "integration"))
            from conftest import postgres_bin_dir, running_postgres

            bin_dir = postgres_bin_dir()
            if bin_dir is None:
                raise SystemExit("no PostgreSQL binaries (make system-deps) and no --dsn-env")
            dsn = stack.enter_context(running_postgres(bin_dir))
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=args.workdir)))
        os.chmod(work, 0o777)  # psql may run as another user than the server
        print(f"generating {args.rows:,} rows over {args.days} days in {work} ...", flush=True)
        make_lake(work / "lake", args.rows, args.days)
        want = lake_check(work / "lake")
        csv = work / "trades.csv"
        from ticklake import open_lake

        open_lake(work / "lake").export("trades", to=f"csv:{csv}")
        for name in ("psql_export",):
            psql(dsn, f"DROP TABLE IF EXISTS {name}; " + DDL.format(table=name))
        psql(dsn, "DROP TABLE IF EXISTS tl_export")

        print("export: ticklake ...", flush=True)
        ours_out = run_child("export", work / "lake", dsn, "tl_export")
        print("export: psql \\copy FROM ...", flush=True)
        peer_out = psql(dsn, f"\\copy psql_export ({COLUMNS}) FROM '{csv}' CSV HEADER")
        _same(fetch(dsn, CHECK_SQL.format(table="tl_export")), want, "ticklake export")
        _same(fetch(dsn, CHECK_SQL.format(table="psql_export")), want, "psql export")

        print("import: ticklake ...", flush=True)
        ours_in = run_child("import", work / "lake_in", dsn, "tl_export")
        print("import: psql \\copy TO ...", flush=True)
        out_csv = work / "out.csv"
        peer_in = psql(dsn, f"\\copy (SELECT {COLUMNS} FROM tl_export) TO '{out_csv}' CSV")
        _same(lake_check(work / "lake_in"), want, "ticklake import")
        with out_csv.open("rb") as fh:
            lines = sum(1 for _ in fh)
        if lines != args.rows:
            raise SystemExit(f"psql wrote {lines:,} lines, not {args.rows:,}")

    table = Table(
        "direction", "ticklake rows/s", "peak RSS", "psql \\copy rows/s", "ratio", "target"
    )
    for label, ours, peer in (
        ("export lake → PostgreSQL", ours_out, peer_out),
        ("import PostgreSQL → lake", ours_in, peer_in),
    ):
        rate = args.rows / ours["seconds"]
        peer_rate = args.rows / peer
        ratio = rate / peer_rate
        verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
        table.add_row(
            label,
            f"{rate:,.0f} ({ours['seconds']:.1f} s)",
            f"{ours['rss_mib']:,.0f} MiB",
            f"{peer_rate:,.0f} ({peer:.1f} s)",
            f"{ratio:.2f}×",
            f"≥ {TARGET_RATIO}×: {verdict}",
        )
    Console(width=140).print(table)
    # a shared machine skews both sides: say how busy it was
    print(
        "load average (1, 5, 15 min) at the end: " + ", ".join(f"{v:.1f}" for v in os.getloadavg())
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:6])
    else:
        main()
