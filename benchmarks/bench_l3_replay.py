"""LOBSTER L3 book replay throughput, in messages per second on one core, checked.

For each LOBSTER sample (AAPL/AMZN/GOOG, levels 1/5/10) it times:

- ``kernel``: the Numba kernel alone (``replay_top_levels``) on prepared arrays,
  messages only (no snapshot refills);
- ``exact kernel``: the same kernel with LOBSTER's book file as prepared refill arrays
  (``has_snapshots=True``): the kernel's share of the exact mode;
- ``reconstruct_book``: the public wrapper from an l3 frame to an ``l2_N`` frame
  (action/side coding, price keys, kernel, output frame);
- ``exact``: the wrapper with LOBSTER's book file as refill source (snapshot-refill
  mode: alignment of the snapshots on (instrument, seq) — a row-for-row check, the
  join only if that fails —, their conversion to key/price/size arrays, kernel, output
  frame); ``exact prep`` times that alignment + conversion alone.

Every book that is timed is checked first against LOBSTER's own order-book file (an
independent replay, by LOBSTER): the exact kernel's and the exact wrapper's books must
equal it on every row and level (prices in 1/10,000 $, sizes, LOBSTER's dummies for
empty levels), and take levels from the file only where a level enters the window from
deeper; the message-only kernel's and wrapper's books must equal it on every level
they state as known (the others are unknown without the file) and on every row
before the first unknown level. A mismatch stops the run before any timing.

Parsing the CSV files is not timed. Each figure is the best of ``--repeat`` runs after
one warm-up call (JIT compilation excluded), printed with the load average. Numba runs
the kernel on one thread, so messages/s is per core. Target: ≥ 2 M messages/s, for the
bare kernel and for the exact mode (tardis-machine replays ~0.7 M/s).

    python benchmarks/bench_l3_replay.py              # all six samples, best of 3
    python benchmarks/bench_l3_replay.py --repeat 10
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from ticklake.analytics.kernels.book import book_arrays, initial_state, replay_top_levels
from ticklake.analytics.metrics.l3_replay import (
    DEFAULT_PRICE_DIGITS,
    _aligned,
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


def load(ticker: str, levels: int) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    """(l3 messages, l2 book) frames of one sample, parsed with plain Polars, and the
    order-book file's raw integers (ask p, ask s, bid p, bid s) x N, the check's oracle."""
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
    return messages, book, units


def as_units(prices: np.ndarray, sizes: np.ndarray, levels: int) -> np.ndarray:
    """A book in LOBSTER's layout and units; NaN levels (empty or unknown) as dummies.

    ``prices``/``sizes`` are the kernel's (2, levels, n) arrays; side 0 is bid, 1 ask.
    """
    n = prices.shape[2]
    out = np.empty((n, 4 * levels), dtype=np.int64)
    for i in range(levels):
        for j, (s, values, dummy, scale) in enumerate(
            (
                (1, prices, DUMMY, 10_000),
                (1, sizes, 0, 1),
                (0, prices, -DUMMY, 10_000),
                (0, sizes, 0, 1),
            )
        ):
            column = values[s, i]
            out[:, 4 * i + j] = np.where(np.isnan(column), dummy, np.round(column * scale))
    return out


def frame_arrays(frame: pl.DataFrame, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """An ``l2_N`` frame's levels as the kernel's (2, levels, n) price and size arrays."""
    _, prices, sizes = book_arrays(frame, levels, DEFAULT_PRICE_DIGITS)
    return prices, sizes


def entering_levels(messages: pl.DataFrame, units: np.ndarray) -> int:
    """Events after which a level enters the top N from deeper (a removal emptying a
    level of a full side): the only rows the exact mode may take from the file."""
    removal = messages["action"].is_in(["cancel", "delete", "fill"]).to_numpy()
    offset = np.where(messages["side"].to_numpy() == "ask", 0, 2)
    key = np.round(messages["price"].fill_null(0).to_numpy() * 10_000).astype(np.int64)
    levels = units.shape[1] // 4
    count = 0
    for i in np.flatnonzero(removal[1:]) + 1:
        before = units[i - 1, offset[i] :: 4][:levels]
        after = units[i, offset[i] :: 4][:levels]
        if np.all(np.abs(before) != DUMMY) and key[i] in before and key[i] not in after:
            count += 1
    return count


def check_exact(name: str, units: np.ndarray, prices, sizes, levels: int) -> None:
    mine = as_units(prices, sizes, levels)
    wrong = np.flatnonzero((mine != units).any(axis=1))
    assert wrong.size == 0, f"{name}: {wrong.size} rows differ from LOBSTER, first {wrong[0]}"


def check_known(name: str, units: np.ndarray, prices, sizes, known, levels: int) -> int:
    """Known levels equal LOBSTER's; returns the first row with an unknown level."""
    mine = as_units(prices, sizes, levels)
    unknown = np.zeros(mine.shape, dtype=bool)
    for i in range(levels):
        for j, s in enumerate((1, 1, 0, 0)):
            unknown[:, 4 * i + j] = known[:, s] <= i
    wrong = np.flatnonzero(((mine != units) & ~unknown).any(axis=1))
    assert wrong.size == 0, f"{name}: {wrong.size} rows state a wrong level, first {wrong[0]}"
    first_unknown = int(np.argmax(unknown.any(axis=1))) if unknown.any() else len(units)
    assert first_unknown > 0 and (mine[:first_unknown] == units[:first_unknown]).all(), name
    return first_unknown


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
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"LOBSTER samples not found at {DATA}", file=sys.stderr)
        return 2
    rows: list[tuple[str, int, dict[str, float], int, int]] = []
    for ticker, levels in SAMPLES:
        name = f"{ticker}_{levels}"
        messages, book, units = load(ticker, levels)
        initial = lobster_initial_book(messages, book)
        arrays = _events(messages, DEFAULT_PRICE_DIGITS)
        state = initial_state(initial, levels, DEFAULT_PRICE_DIGITS)
        no_snap = (np.full((2, 0, 1), -1, np.int64), np.full((2, 0, 1), np.nan))
        snap = book_arrays(book, levels, DEFAULT_PRICE_DIGITS)

        def kernel(
            snapshots: tuple = no_snap,
            exact: bool = False,
            arrays: dict = arrays,
            state: tuple = state,
            levels: int = levels,
        ) -> tuple:
            return replay_top_levels(
                arrays["action"], arrays["side"], arrays["price_key"], arrays["price"],
                arrays["size"], levels, levels, *state, snapshots[0], snapshots[1],
                snapshots[-1], exact,
            )  # fmt: skip

        def wrapper(exact: bool, m=messages, i=initial, b=book, lv=levels) -> pl.DataFrame:
            return reconstruct_book(
                m, lv, initial=i, snapshots=b if exact else None, window_levels=lv
            )

        def exact_prep(m=messages, b=book, lv=levels) -> tuple:
            # the wrapper's preparation: the join only if the book file is not row-aligned
            if _aligned(m, b):  # the messages are in the wrapper's (ts, seq) order
                aligned = b
            else:
                aligned = m.select("instrument", "seq").join(
                    b, on=["instrument", "seq"], how="left", maintain_order="left"
                )
            return book_arrays(aligned, lv, DEFAULT_PRICE_DIGITS)

        # ---- check every book that is timed against LOBSTER's file
        price, size, bare_known, _ = kernel()
        first_unknown = check_known(f"{name} kernel", units, price, size, bare_known, levels)
        # the wrapper's nulls are "empty or unknown": its levels must be the kernel's
        wrapped = frame_arrays(wrapper(False), levels)
        assert np.array_equal(wrapped[0], price, equal_nan=True), name
        assert np.array_equal(wrapped[1], size, equal_nan=True), name
        check_known(f"{name} reconstruct_book", units, *wrapped, bare_known, levels)
        price, size, _, refilled = kernel(snap, True)
        check_exact(f"{name} exact kernel", units, price, size, levels)
        refills = int(refilled.sum())
        assert refills == entering_levels(messages, units), (name, refills)
        check_exact(f"{name} exact", units, *frame_arrays(wrapper(True), levels), levels)

        times = {
            "kernel": best_of(args.repeat, kernel),
            "exact kernel": best_of(args.repeat, lambda k=kernel, s=snap: k(s, True)),
            "reconstruct_book": best_of(args.repeat, lambda w=wrapper: w(False)),
            "exact": best_of(args.repeat, lambda w=wrapper: w(True)),
            "exact prep": best_of(args.repeat, exact_prep),
        }
        rows.append((name, messages.height, times, refills, first_unknown))

    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        "every timed book checked against LOBSTER's order-book file: exact modes equal on "
        "every row and level, message-only modes on every level they state as known"
    )
    print(f"best of {args.repeat}, load average {load_avg} (1, 5, 15 min), {os.cpu_count()} cores")
    print()
    columns = ("kernel", "exact kernel", "reconstruct_book", "exact")
    print(
        "| sample | messages | refills | first unknown row (no file) | "
        + " | ".join(f"{c} M msg/s" for c in columns)
        + " | exact prep (s) | exact (s) |"
    )
    print(
        "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in columns) + " | ---: | ---: |"
    )
    total = sum(n for _, n, _, _, _ in rows)
    sums = {c: sum(t[c] for _, _, t, _, _ in rows) for c in (*columns, "exact prep")}
    for name, n, times, refills, first_unknown in rows:
        rates = " | ".join(f"{n / times[c] / 1e6:.2f}" for c in columns)
        print(
            f"| {name} | {n:,} | {refills:,} | {first_unknown:,} | {rates} | "
            f"{times['exact prep']:.4f} | {times['exact']:.4f} |"
        )
    rates = " | ".join(f"{total / sums[c] / 1e6:.2f}" for c in columns)
    print(f"| all | {total:,} | | | {rates} | {sums['exact prep']:.4f} | {sums['exact']:.4f} |")
    print()
    for label, column in (("kernel", "kernel"), ("exact mode", "exact")):
        rate = total / sums[column]
        verdict = "meets" if rate >= TARGET else "MISSES"
        print(
            f"{label} over all samples: {rate / 1e6:.2f} M messages/s per core "
            f"({verdict} the {TARGET / 1e6:.0f} M/s target)"
        )
    share = sums["exact prep"] / sums["exact"]
    print(
        f"exact mode: snapshot alignment + array conversion {share:.0%} of its time, "
        f"kernel {sums['exact kernel'] / sums['exact']:.0%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
