"""Writer processes for the lake crash and concurrency tests.

Usage: python lake_writer.py <lake> <mode> [options]; see ``main`` for the modes.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import polars as pl
from lakegen import make_trades, trading_days

import ticklake
from ticklake.lake import commit
from ticklake.lake.layout import PartitionRef
from ticklake.lake.locking import file_lock

CRASH_EXIT_CODE = 137


def crash_at(step_name: str, occurrence: int = 1):
    """A FAULT_HOOK that kills the process (no cleanup, no atexit) at a step."""
    seen = {"count": 0}

    def hook(step: str) -> None:
        if step == step_name:
            seen["count"] += 1
            if seen["count"] == occurrence:
                os._exit(CRASH_EXIT_CODE)

    return hook


def batch_frame(writer: int, commit_index: int, rows: int, days: list[date]) -> pl.DataFrame:
    """Rows of one commit: ids unique to (writer, commit); ``size`` encodes the commit."""
    day = days[(writer + commit_index) % len(days)]
    frame = make_trades(
        days=1, rows_per_day=rows, seed=writer * 10_000 + commit_index, first_day=day
    )
    return frame.with_columns(
        pl.format("w{}-c{}-", pl.lit(writer), pl.lit(commit_index))
        .add(pl.col("trade_id"))
        .alias("trade_id"),
        pl.lit(float(commit_index + 1)).alias("size"),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("lake")
    parser.add_argument(
        "mode", choices=["write", "loop", "commits", "hold_lock", "pause_in_commit"]
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--first-day", default="2024-01-02")
    parser.add_argument("--crash-step", default=None)
    parser.add_argument("--crash-occurrence", type=int, default=1)
    parser.add_argument("--writer", type=int, default=0)
    parser.add_argument("--commits", type=int, default=25)
    parser.add_argument("--partition-days", type=int, default=3)
    parser.add_argument("--signal-file", default=None)
    parser.add_argument("--release-file", default=None)
    args = parser.parse_args()
    lake = ticklake.open_lake(args.lake)
    first_day = date.fromisoformat(args.first_day)

    if args.mode == "write":
        # One multi-day write, optionally crashing at a commit step.
        if args.crash_step:
            commit.FAULT_HOOK = crash_at(args.crash_step, args.crash_occurrence)
        frame = make_trades(
            days=args.days, rows_per_day=args.rows, seed=args.seed, first_day=first_day
        )
        lake.write("nifty", frame, schema="trades", timezone="Asia/Kolkata")
    elif args.mode == "loop":
        # Many days, one write per day, until killed (or done).
        for day in trading_days(first_day, args.days):
            frame = make_trades(days=1, rows_per_day=args.rows, seed=args.seed, first_day=day)
            lake.write("nifty", frame, schema="trades", timezone="Asia/Kolkata")
            if args.signal_file:
                Path(args.signal_file).write_text(day.isoformat())
    elif args.mode == "commits":
        # Contended commits: each one adds distinct rows to one of a few shared days.
        days = trading_days(first_day, args.partition_days)
        for index in range(args.commits):
            frame = batch_frame(args.writer, index, args.rows, days)
            lake.write("nifty", frame, schema="trades", timezone="Asia/Kolkata")
            if args.signal_file:
                Path(args.signal_file).write_text(str(index + 1))
    elif args.mode == "hold_lock":
        ref = PartitionRef(lake.root, "bronze", "nifty", first_day)
        with file_lock(ref.lock_path, 60, ref.relative):
            Path(args.signal_file).write_text("locked")
            while not Path(args.release_file).exists():
                time.sleep(0.01)
    elif args.mode == "pause_in_commit":
        # Stop inside a commit (temp file written, lock held) until released.
        def pause(step: str) -> None:
            if step == "fsync_temp":
                Path(args.signal_file).write_text("paused")
                deadline = time.monotonic() + 30
                while not Path(args.release_file).exists():
                    if time.monotonic() > deadline:
                        raise OSError(errno.ETIMEDOUT, "never released")
                    time.sleep(0.01)

        commit.FAULT_HOOK = pause
        frame = make_trades(days=1, rows_per_day=args.rows, seed=args.seed, first_day=first_day)
        lake.write("nifty", frame, schema="trades", timezone="Asia/Kolkata")


if __name__ == "__main__":
    main()
