"""Run directories and their ledgers, shared by single runs and sweeps.

The layout (``<lake>/runs/<run_id>/``, the day cache ``<lake>/cache/backtest/``), the
ledger ``run.json`` (read, saved after every day, checked against the day files'
hashes), atomic frame writes, the input hashes a day's cache key is made of, and the
loop that runs day jobs through an executor.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from ticklake.backtest.conditions import compile_spec_conditions
from ticklake.backtest.day_inputs import partition_hash, previous_underlying_day
from ticklake.backtest.spec import StrategySpec
from ticklake.errors import ConfigError, InterruptedRunError, LakeError
from ticklake.execution import get_executor
from ticklake.lake import Lake
from ticklake.lake.commit import write_parquet, write_text_atomic
from ticklake.lake.manifest import sha256_file
from ticklake.market.calendar import trading_days

RUNS_DIR = "runs"
CACHE_DIR = "cache/backtest"
DAY_FILES = ("trades.parquet", "attempts.parquet", "summary.json")
PNL_FILE = "pnl.parquet"


def day_files(pnl_per_second: bool) -> tuple[str, ...]:
    """The files a run writes per day (plus the per-second P&L when asked for)."""
    return (*DAY_FILES, PNL_FILE) if pnl_per_second else DAY_FILES


DAILY_SCHEMA = pl.Schema(
    {
        "date": pl.Date(),
        "status": pl.String(),
        "skip_reason": pl.String(),
        "fills": pl.Int64(),
        "round_trips": pl.Int64(),
        "gross_pnl_paise": pl.Int64(),
        "costs_paise": pl.Int64(),
        "net_pnl_paise": pl.Int64(),
        "marked_closes": pl.Int64(),
        "marked_pnl_paise": pl.Int64(),
        "first_entry_ts": pl.Datetime("ns", "UTC"),
        "last_exit_ts": pl.Datetime("ns", "UTC"),
        "max_drawdown_paise": pl.Int64(),
        "exposure_seconds": pl.Int64(),
        "underlying_source": pl.String(),
        "expiry": pl.Date(),
    }
)
ProgressFn = Callable[[dict[str, Any]], None]


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    ledger: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.ledger["status"])

    def trades(self) -> pl.DataFrame:
        return pl.read_parquet(self.run_dir / "trades.parquet")

    def daily(self) -> pl.DataFrame:
        return pl.read_parquet(self.run_dir / "daily.parquet")


def new_run_id(name: str) -> str:
    """A unique run id: the strategy name, a local timestamp and a random suffix."""
    return f"{name}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _write_frame(frame: pl.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}.tmp")
    try:
        write_parquet(frame.to_arrow(), tmp, row_group_rows=262_144, zstd_level=3)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _save_ledger(run_dir: Path, ledger: dict[str, Any]) -> None:
    # Rewritten after every day: orjson is ≈ 20× json.dumps here (a 1,250-day ledger is
    # ≈ 0.7 MB), which keeps the parent's per-day cost flat on multi-year runs.
    text = orjson.dumps(
        ledger, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    ).decode()
    write_text_atomic(run_dir / "run.json", text + "\n")


def load_ledger(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a backtest run (no run.json)", path=str(run_dir))
    return json.loads(path.read_text())


def resolve_run(lake: Lake, run: str) -> Path:
    """A run directory from a run id or path."""
    candidate = Path(run)
    if (candidate / "run.json").is_file():
        return candidate
    in_lake = lake.root / RUNS_DIR / run
    if (in_lake / "run.json").is_file():
        return in_lake
    runs = sorted(p.name for p in (lake.root / RUNS_DIR).glob("*") if (p / "run.json").is_file())
    raise ConfigError(
        f"no run {run!r} in {lake.root / RUNS_DIR}; recent runs: {', '.join(runs[-5:]) or 'none'}",
        run=run,
    )


def plan_days(spec: StrategySpec) -> list[date]:
    """Exchange trading days from start to end (weekday filters apply per day)."""
    return trading_days(spec.time.start, spec.time.end)


def _intact(directory: Path, entry: dict[str, Any], files: tuple[str, ...] = DAY_FILES) -> bool:
    outputs = entry.get("outputs") or {}
    if set(outputs) != set(files):
        return False
    return all(
        (directory / name).is_file() and sha256_file(directory / name) == sha
        for name, sha in outputs.items()
    )


def _input_hashes(lake: Lake, spec: StrategySpec, day: date) -> dict[str, str]:
    """The sha256 of every partition the day reads (one manifest read each)."""
    hashes = {}
    for dataset in (spec.universe.options_dataset, spec.universe.underlying_dataset):
        if not dataset:
            continue
        try:
            sha = partition_hash(lake, dataset, day)
        except LakeError:
            sha = None
        if sha is not None:
            hashes[f"{dataset}/{day}"] = sha
    if compile_spec_conditions(spec).needs_underlying:
        # Conditions on the underlying also read the previous day (previous_close).
        previous = previous_underlying_day(lake, spec, day)
        dataset = spec.universe.underlying_dataset
        if previous is not None and dataset:
            sha = partition_hash(lake, dataset, previous)
            if sha is not None:
                hashes[f"{dataset}/{previous}"] = sha
    return hashes


def execute_day_jobs(
    lake: Lake,
    run_dir: Path,
    ledger: dict[str, Any],
    task: Callable[[Any], dict[str, Any]],
    jobs: list[Any],
    *,
    executor: str | None,
    workers: int | None,
    progress: ProgressFn | None,
    extra_totals: dict[str, Any] | None = None,
) -> None:
    """Run day jobs (each with a ``.day``), recording every finished day in the ledger.

    The ledger is saved after each day, and marked ``interrupted`` or ``failed`` when
    the executor stops early, so ``resume`` knows exactly what is left.
    """
    totals: dict[str, Any] = {
        "days_total": len(ledger["days"]),
        "days_done": len(ledger["days"]) - len(jobs),
        "fills": 0,
        "net_pnl_paise": 0,
        **(extra_totals or {}),
    }
    for entry in ledger["days"].values():
        if entry.get("status") == "done":
            totals["fills"] += entry.get("fills", 0)
            totals["net_pnl_paise"] += entry.get("net_pnl_paise", 0)

    def on_result(index: int, entry: dict[str, Any]) -> None:
        ledger["days"][jobs[index].day] = entry
        _save_ledger(run_dir, ledger)
        totals["days_done"] += 1
        totals["fills"] += entry["fills"]
        totals["net_pnl_paise"] += entry["net_pnl_paise"]
        if progress is not None:
            progress({**totals, "day": jobs[index].day})

    settings = lake.settings.execution
    # Days are small tasks: workers serve many (replaced after day_tasks_per_worker days
    # or when their memory grows past worker_max_rss_mib) instead of one process a day.
    run = get_executor(
        executor or settings.executor,
        workers=workers or settings.workers,
        tasks_per_worker=settings.day_tasks_per_worker,
        max_worker_rss_mib=settings.worker_max_rss_mib,
    )
    try:
        run.map(task, jobs, on_result=on_result)
    except InterruptedRunError:
        ledger["status"] = "interrupted"
        _save_ledger(run_dir, ledger)
        raise
    except BaseException:
        ledger["status"] = "failed"
        _save_ledger(run_dir, ledger)
        raise
