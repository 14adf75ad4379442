"""Paging a 1 M-trade run result through the REST API: latency per page request.

Writes a synthetic run (``trades.parquet`` with the engine's schema and 1,000,000 fills)
into a scratch lake, then times ``GET /api/v1/runs/{run}/tables/trades`` through the
ASGI app (FastAPI TestClient: routing, security middleware, validation, Polars, JSON):

- cold: the first request (file read and cached);
- random pages in file order;
- random pages sorted by price (descending), after the sort's first request;
- random pages with a filter (``leg:eq:ce`` and a price floor);
- a new sort on every request (worst case: no view cache).

Target: p99 of a page request < 100 ms. Run: ``python benchmarks/bench_web_paging.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl


def synthetic_trades(rows: int, seed: int = 7) -> pl.DataFrame:
    """A trades table shaped like ``docs/backtest-results.md`` (values are random)."""
    rng = np.random.default_rng(seed)
    days = 250
    per_day = rows // days
    day_index = np.repeat(np.arange(days), per_day)
    rows = day_index.size
    base = datetime(2024, 1, 1, 3, 45, tzinfo=UTC)
    seconds = rng.integers(0, 22_500, rows)
    price = rng.integers(500, 60_000, rows)
    spread = rng.integers(5, 50, rows)
    side = rng.choice(["buy", "sell"], rows)
    return pl.DataFrame(
        {
            "date": day_index,
            "fill_index": np.tile(np.arange(per_day), days),
            "ts": pl.Series(day_index * 86_400 + seconds).cast(pl.Int64) * 1_000_000_000
            + int(base.timestamp() * 1e9),
            "leg": rng.choice(["ce", "pe", "ce_wing", "pe_wing"], rows),
            "position_id": rng.integers(0, 40, rows),
            "symbol": rng.choice(
                [f"BANKNIFTY24JAN{k}CE" for k in range(44_000, 52_000, 100)], rows
            ),
            "expiry": day_index // 7 * 7 + 3,
            "strike": rng.integers(440, 520, rows) * 100.0,
            "opt_type": rng.choice(["CE", "PE"], rows),
            "side": side,
            "lots": rng.integers(1, 4, rows),
            "quantity": rng.integers(1, 4, rows) * 15,
            "price_paise": price,
            "bid_paise": price - spread // 2,
            "ask_paise": price + spread // 2,
            "quote_age_seconds": rng.integers(0, 5, rows),
            "spot_paise": rng.integers(4_400_000, 5_200_000, rows),
            "underlying_source": "spot",
            "reason": rng.choice(["entry", "exit_time", "leg_stop", "rebalance_open"], rows),
            "cash_flow_paise": np.where(side == "sell", 1, -1) * price * 15,
            "costs_paise": rng.integers(2_000, 4_000, rows),
            "realized_pnl_paise": rng.integers(-50_000, 50_000, rows),
        }
    ).with_columns(
        pl.col("ts").cast(pl.Datetime("ns", "UTC")),
        (pl.lit(date(2024, 1, 1)) + pl.duration(days=pl.col("date"))).alias("date"),
        (pl.lit(date(2024, 1, 1)) + pl.duration(days=pl.col("expiry"))).alias("expiry"),
    )


def make_lake(rows: int) -> tuple[Path, str]:
    from ticklake.lake import init_lake

    root = Path(tempfile.mkdtemp(prefix="bench-web-")) / "lake"
    lake = init_lake(root)
    run_id = "bench-1m"
    run_dir = lake.root / "runs" / run_id
    run_dir.mkdir(parents=True)
    synthetic_trades(rows).write_parquet(run_dir / "trades.parquet", compression="zstd")
    (run_dir / "run.json").write_text(
        json.dumps({"run_id": run_id, "status": "complete", "days": {}, "created_at": ""})
    )
    return root, run_id


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="requests per scenario")
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from ticklake.web.app import create_app

    started = time.perf_counter()
    root, run_id = make_lake(args.rows)
    print(f"wrote {args.rows:,} synthetic fills in {time.perf_counter() - started:.1f} s")
    app = create_app(root)
    client = TestClient(app, base_url="http://127.0.0.1")
    url = f"/api/v1/runs/{run_id}/tables/trades"
    rng = random.Random(1)
    page_size = 100
    pages = args.rows // page_size

    def timed(params: dict[str, object]) -> float:
        begin = time.perf_counter()
        response = client.get(url, params=params)
        elapsed = time.perf_counter() - begin
        assert response.status_code == 200, response.text[:300]
        return elapsed * 1000

    results: dict[str, list[float]] = {}
    results["cold first page (read + cache)"] = [timed({"limit": page_size})]
    results["random pages, file order"] = [
        timed({"offset": rng.randrange(pages) * page_size, "limit": page_size})
        for _ in range(args.requests)
    ]
    sort = {"sort": "price_paise", "descending": True}
    first_sorted = timed({**sort, "limit": page_size})
    results["random pages, sorted by price"] = [
        timed({**sort, "offset": rng.randrange(pages) * page_size, "limit": page_size})
        for _ in range(args.requests)
    ]
    flt = {"filter": ["leg:eq:ce", "price_paise:ge:30000"]}
    first_filtered = timed({**flt, "limit": page_size})
    results["random pages, filtered (≈12 %)"] = [
        timed({**flt, "offset": rng.randrange(pages // 10) * page_size, "limit": page_size})
        for _ in range(args.requests)
    ]
    columns = ["price_paise", "ts", "strike", "costs_paise", "spot_paise", "symbol"]
    results["new sort every request (no cache)"] = [
        timed(
            {
                "sort": columns[i % len(columns)],
                "descending": i % 2 == 1,
                "offset": rng.randrange(pages) * page_size,
                "limit": page_size,
            }
        )
        for i in range(min(args.requests, 36))
    ]
    app.state.jobs.shutdown()

    print(f"\npaging {args.rows:,} trades, {page_size} rows a page (ms per request)")
    print(f"{'scenario':38} {'n':>5} {'median':>8} {'p95':>8} {'p99':>8} {'max':>8}")
    for name, values in results.items():
        print(
            f"{name:38} {len(values):>5} {statistics.median(values):>8.1f} "
            f"{percentile(values, 95):>8.1f} {percentile(values, 99):>8.1f} {max(values):>8.1f}"
        )
    print(
        f"first request of a new sort: {first_sorted:.1f} ms; "
        f"of a new filter: {first_filtered:.1f} ms"
    )
    cached = [v for k, v in results.items() if k.startswith("random")]
    worst_p99 = max(percentile(v, 99) for v in cached)
    verdict = "meets" if worst_p99 < 100 else "misses"
    print(f"p99 of cached page requests: {worst_p99:.1f} ms — {verdict} the 100 ms target")


if __name__ == "__main__":
    main()
