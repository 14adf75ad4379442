"""The hot day cache: a second strategy over the same days, with and without it (#16).

Not part of the test suite. On a generated lake (default: the 10-day, 20-strike lake of
``bench_backtest_vs_hand.py``, built once), per day:

1. ``A plain``: strategy A (a delta-selected call and put, whose scan of ATM ± 20 strikes
   gives the widest band) with the cache off (the pruned read: its band only);
2. ``B plain``: strategy B (a 2-strike OTM strangle with a combined stop, or ``--second``)
   with the cache off;
3. ``cold``: strategy A with ``backtest.day_cache = true`` on an empty cache: it reads its
   band from Parquet like ``A plain``, aligns it and writes the entries;
4. ``B warm``: strategy B with the cache on: B's band lies inside A's, so it maps A's
   entry (checked: nothing new is written), no Parquet decoding of the chain.

Runs 1-2 come first so that the per-process sha256 check of a partition's first read
(``lake.verify_reads``) is paid by the uncached side, as it is in a new process.

B warm's trades, attempts and summary must equal B plain's before any time counts.
Times are best of ``--repeat`` (cold: one run, the cache cleared before each day).

    python benchmarks/bench_day_cache.py
    python benchmarks/bench_day_cache.py --lake PATH --second delta
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from bench_backtest_vs_hand import OPTIONS, best_of, lake_root, strategy_spec

from ticklake.backtest.day_cache import CACHE_SUBDIR, DayCache
from ticklake.backtest.engine import run_day
from ticklake.lake import open_lake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--strikes-each-side", type=int, default=20)
    parser.add_argument("--first", default="delta", help="A: its band must cover B's")
    parser.add_argument("--second", default="strangle_stop")
    parser.add_argument("--stop", type=float, default=1500.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    root = lake_root(args.lake, args.days, args.strikes_each_side)
    cached = open_lake(root, backtest={"day_cache": True})
    plain = open_lake(root, backtest={"day_cache": False})
    shutil.rmtree(root / CACHE_SUBDIR, ignore_errors=True)
    days = sorted(p.date for p in plain.partitions(OPTIONS))[: args.days]
    run_day(plain, strategy_spec(args.first, days[0], args.stop), days[0])  # JIT warm-up
    print(f"{len(days)} days; A = {args.first}, B = {args.second}")
    print(
        "| day | A cold (writes) s | A plain s | B plain s | B warm s | B plain / warm "
        "| cold / A plain |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    totals = dict.fromkeys(("cold", "a_plain", "b_plain", "b_warm"), 0.0)
    for day in days:
        a = strategy_spec(args.first, day, args.stop)
        b = strategy_spec(args.second, day, args.stop)
        r: dict[str, float] = {}
        r["a_plain"], _ = best_of(args.repeat, lambda a=a, day=day: run_day(plain, a, day))
        r["b_plain"], want = best_of(args.repeat, lambda b=b, day=day: run_day(plain, b, day))
        began = time.perf_counter()
        run_day(cached, a, day)
        r["cold"] = time.perf_counter() - began
        written = len(list((root / CACHE_SUBDIR).glob("*/*.arrow")))
        r["b_warm"], got = best_of(args.repeat, lambda b=b, day=day: run_day(cached, b, day))
        # B's band lies inside A's: its first warm run already hits (writes nothing).
        assert len(list((root / CACHE_SUBDIR).glob("*/*.arrow"))) == written
        assert got.summary == want.summary, (got.summary, want.summary)
        assert got.trades.equals(want.trades)
        assert got.attempts.equals(want.attempts)
        for key in totals:
            totals[key] += r[key]
        print(_row(str(day), r), flush=True)
    print(_row(f"**{len(days)} days**", totals))
    status = DayCache.of(cached)
    assert status is not None
    s = status.status()
    size = f"{s.bytes / 2**20:,.0f} MiB (bound {s.max_bytes / 2**30:.1f} GiB)"
    print(f"cache: {s.entries} entries, {size}")


def _row(day: str, r: dict[str, float]) -> str:
    return (
        f"| {day} | {r['cold']:.3f} | {r['a_plain']:.3f} | {r['b_plain']:.3f} | "
        f"{r['b_warm']:.3f} | {r['b_plain'] / r['b_warm']:.1f}× | {r['cold'] / r['a_plain']:.1f}× |"
    )


if __name__ == "__main__":
    main()
