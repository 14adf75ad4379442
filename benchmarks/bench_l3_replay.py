"""LOBSTER L3 book replay throughput, in messages per second on one core.

For each LOBSTER sample (AAPL/AMZN/GOOG, levels 1/5/10) it times:

- ``kernel``: the Numba kernel alone (``replay_top_levels``) on prepared arrays,
  messages only (no snapshot refills);
- ``reconstruct_book``: the public wrapper from an l3 frame to an ``l2_N`` frame
  (action/side coding, price keys, kernel, output frame);
- ``+ snapshots``: the wrapper with LOBSTER's book file as refill source (exact mode).

Parsing the CSV files is not timed. Each figure is the best of ``--repeat`` runs after
one warm-up call (JIT compilation excluded). Numba runs the kernel on one thread, so
messages/s is per core. Target: ≥ 2 M messages/s (tardis-machine replays ~0.7 M/s).

    python benchmarks/bench_l3_replay.py              # all six samples, 5 repeats
    python benchmarks/bench_l3_replay.py --repeat 20
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from ticklake.analytics.kernels.book import initial_state, replay_top_levels
from ticklake.analytics.metrics.l3_replay import (
    DEFAULT_PRICE_DIGITS,
    _events,
    lobster_initial_book,
    reconstruct_book,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lobster-2012-06-21"
SAMPLES = [("AAPL", 1), ("AMZN", 1), ("AMZN", 5), ("GOOG", 1), ("GOOG", 5), ("GOOG", 10)]
EVENTS = {1: "add", 2: "cancel", 3: "delete", 4: "fill", 5: "fill_hidden", 6: "trade", 7: "halt"}
TARGET = 2_000_000
DUMMY = 9_999_999_999


def _member(path: Path, kind: str) -> pl.DataFrame:
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if f"_{kind}_" in n]
        return pl.read_csv(io.BytesIO(archive.read(name)), has_header=False, infer_schema=False)


def load(ticker: str, levels: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(l3 messages, l2 book) frames of one sample, parsed with plain Polars."""
    path = DATA / f"LOBSTER_SampleFile_{ticker}_2012-06-21_{levels}.zip"
    raw = _member(path, "message")
    raw.columns = ["time", "type", "order_id", "size", "price", "direction"]
    seconds = pl.col("time").str.split_exact(".", 1)
    event = pl.col("type").cast(pl.Int64)
    messages = raw.select(
        ts=pl.from_epoch(
            seconds.struct[0].cast(pl.Int64) * 1_000_000_000
            + seconds.struct[1].fill_null("").str.slice(0, 9).str.pad_end(9, "0").cast(pl.Int64),
            "ns",
        ).dt.replace_time_zone("UTC"),
        instrument=pl.lit(ticker),
        seq=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
        action=event.replace_strict(EVENTS),
        side=pl.when(event != 7).then(
            pl.col("direction").replace_strict({"1": "bid", "-1": "ask"}, default=None)
        ),
        order_id=pl.col("order_id").cast(pl.Int64),
        price=pl.when(event != 7).then(pl.col("price").cast(pl.Int64) / 10_000),
        size=pl.col("size").cast(pl.Float64),
    )
    units = _member(path, "orderbook").select(pl.all().cast(pl.Int64)).to_numpy()
    columns = {}
    for side, offset in (("bid", 2), ("ask", 0)):
        for i in range(levels):
            price = units[:, 4 * i + offset]
            empty = np.abs(price) == DUMMY
            columns[f"{side}_price_{i}"] = np.where(empty, np.nan, price / 10_000)
            columns[f"{side}_size_{i}"] = np.where(empty, np.nan, units[:, 4 * i + offset + 1])
    book = pl.concat(
        [messages.select("ts", "instrument", "seq"), pl.DataFrame(columns).fill_nan(None)],
        how="horizontal",
    )
    return messages, book


def best_of(repeat: int, call: Callable[[], object]) -> float:
    call()  # warm-up: JIT compile / caches
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"LOBSTER samples not found at {DATA}", file=sys.stderr)
        return 2
    header = (
        f"{'sample':<10}{'messages':>10}{'kernel M msg/s':>16}"
        f"{'reconstruct M/s':>17}{'+ snapshots M/s':>17}"
    )
    print(header)
    print("-" * len(header))
    total_messages = 0
    total_kernel = 0.0
    for ticker, levels in SAMPLES:
        messages, book = load(ticker, levels)
        initial = lobster_initial_book(messages, book)
        arrays = _events(messages, DEFAULT_PRICE_DIGITS)
        state = initial_state(initial, levels, DEFAULT_PRICE_DIGITS)
        no_snap = (np.full((1, 2, levels), -1, np.int64), np.full((1, 2, levels), np.nan))

        def kernel(
            arrays: dict = arrays,
            state: tuple = state,
            levels: int = levels,
            no_snap: tuple = no_snap,
        ) -> object:
            return replay_top_levels(
                arrays["action"], arrays["side"], arrays["price_key"], arrays["price"],
                arrays["size"], levels, levels, *state, no_snap[0], no_snap[1], no_snap[1],
                False,
            )  # fmt: skip

        n = messages.height
        kernel_s = best_of(args.repeat, kernel)
        wrapper_s = best_of(
            args.repeat,
            lambda m=messages, i=initial, lv=levels: reconstruct_book(
                m, lv, initial=i, window_levels=lv
            ),
        )
        exact_s = best_of(
            args.repeat,
            lambda m=messages, i=initial, b=book, lv=levels: reconstruct_book(
                m, lv, initial=i, snapshots=b, window_levels=lv
            ),
        )
        total_messages += n
        total_kernel += kernel_s
        print(
            f"{ticker + '_' + str(levels):<10}{n:>10,}{n / kernel_s / 1e6:>16.1f}"
            f"{n / wrapper_s / 1e6:>17.2f}{n / exact_s / 1e6:>17.2f}"
        )
    rate = total_messages / total_kernel
    verdict = "meets" if rate >= TARGET else "MISSES"
    print("-" * len(header))
    print(
        f"kernel over all samples: {rate / 1e6:.1f} M messages/s per core "
        f"({verdict} the {TARGET / 1e6:.0f} M/s target)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
