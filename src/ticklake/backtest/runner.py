"""Runs: plan days, run one task per day through an executor, keep a ledger, finish.

Isolation: a run writes only inside ``<lake>/runs/<run_id>/`` (and the shared,
content-addressed day cache ``<lake>/cache/backtest/``, written by atomic renames).
Every day's outputs are written atomically under unique names and recorded in the
ledger with their sha256; a run is ``complete`` only when every planned day is done
and each output exists with its recorded hash. ``resume`` re-runs only the days that
are not. A day whose cache key — hash of (spec, the day's input partition hashes,
ticklake version) — was computed before is copied from the cache, not recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from ticklake._version import __version__
from ticklake.backtest.engine import (
    ATTEMPT_SCHEMA,
    ENGINE_REVISION,
    PNL_SCHEMA,
    TRADE_SCHEMA,
    run_day,
)
from ticklake.backtest.run_ledger import (
    CACHE_DIR,
    DAILY_SCHEMA,
    DAY_FILES,
    PNL_FILE,
    RUNS_DIR,
    ProgressFn,
    RunResult,
    _git_sha,
    _input_hashes,
    _intact,
    _save_ledger,
    _write_frame,
    day_files,
    execute_day_jobs,
    load_ledger,
    new_run_id,
    plan_days,
    resolve_run,
)
from ticklake.backtest.spec import StrategySpec, parse_spec, spec_document, spec_hash
from ticklake.backtest.stats import compute_statistics, session_seconds_from_spec
from ticklake.backtest.sweep import resume_sweep
from ticklake.errors import ConfigError, ExecutionError
from ticklake.lake import Lake, open_lake
from ticklake.lake.commit import write_text_atomic
from ticklake.lake.manifest import sha256_file, utc_now_iso


@dataclass(frozen=True)
class DayJob:
    lake_root: str
    run_dir: str
    spec_json: str
    day: str
    use_cache: bool = True
    pnl_per_second: bool = False


def _table_hashes(spec: StrategySpec) -> dict[str, str]:
    """Hashes of the editable tables a day's result depends on besides the data."""
    from ticklake.backtest.costs import cost_table_path
    from ticklake.market.rules import DEFAULT_RULES_PATH

    cost_path = cost_table_path(spec.costs.table)
    out = {"market_rules": sha256_file(DEFAULT_RULES_PATH)}
    if spec.costs.enabled and cost_path.is_file():
        out["costs"] = sha256_file(cost_path)
    return out


def cache_key(
    spec: StrategySpec, day: date, inputs: dict[str, str], *, pnl_per_second: bool = False
) -> str:
    """Hash of everything a day's result depends on: spec, data, tables, version (and
    whether the entry holds the per-second P&L, so a plain entry never serves such a run)."""
    fields: dict[str, Any] = {
        "spec": spec_hash(spec),
        "day": day.isoformat(),
        "inputs": inputs,
        "tables": _table_hashes(spec),
        "v": __version__,
        "engine": ENGINE_REVISION,
    }
    if pnl_per_second:
        fields["pnl_per_second"] = True
    body = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def _outputs(directory: Path, files: tuple[str, ...]) -> dict[str, str]:
    return {name: sha256_file(directory / name) for name in files if (directory / name).exists()}


def day_task(job: DayJob) -> dict[str, Any]:
    """Run (or fetch from the cache) one day; write its files; return its ledger entry."""
    started = time.perf_counter()
    lake = open_lake(job.lake_root)
    spec = parse_spec(json.loads(job.spec_json))
    day = date.fromisoformat(job.day)
    out_dir = Path(job.run_dir) / "days" / job.day
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = _input_hashes(lake, spec, day)
    key = cache_key(spec, day, inputs, pnl_per_second=job.pnl_per_second)
    files = day_files(job.pnl_per_second)
    cache = lake.root / CACHE_DIR / key[:2] / key
    cached = False
    if job.use_cache and (cache / "summary.json").is_file():
        for name in files:
            tmp = out_dir / f".tmp-{uuid.uuid4().hex}.tmp"
            shutil.copyfile(cache / name, tmp)
            os.replace(tmp, out_dir / name)
        summary = json.loads((out_dir / "summary.json").read_text())
        cached = True
    else:
        outcome = run_day(lake, spec, day, keep_pnl_path=job.pnl_per_second)
        _write_frame(outcome.trades, out_dir / "trades.parquet")
        _write_frame(outcome.attempts, out_dir / "attempts.parquet")
        if job.pnl_per_second:
            _write_frame(outcome.pnl_frame(), out_dir / PNL_FILE)
        summary = outcome.summary
        write_text_atomic(out_dir / "summary.json", json.dumps(summary, sort_keys=True) + "\n")
        if job.use_cache:
            staging = cache.parent / f".tmp-{uuid.uuid4().hex}"
            staging.mkdir(parents=True, exist_ok=True)
            for name in files:
                shutil.copyfile(out_dir / name, staging / name)
            try:
                os.replace(staging, cache)
            except OSError:  # another run cached the same day first: identical content
                shutil.rmtree(staging, ignore_errors=True)
    return {
        "status": "done",
        "daily_status": summary["status"],
        "reason": summary["skip_reason"],
        "fills": summary["fills"],
        "net_pnl_paise": summary["net_pnl_paise"],
        "marked_closes": summary.get("marked_closes", 0),
        "marked_pnl_paise": summary.get("marked_pnl_paise", 0),
        "outputs": _outputs(out_dir, files),
        "inputs": inputs,
        "cache_key": key,
        "cached": cached,
        "seconds": round(time.perf_counter() - started, 3),
    }


def run_backtest(
    lake: Lake,
    spec: StrategySpec,
    *,
    executor: str | None = None,
    workers: int | None = None,
    run_id: str | None = None,
    use_cache: bool = True,
    progress: ProgressFn | None = None,
    pnl_per_second: bool = False,
) -> RunResult:
    """Run a strategy over its date range; return the finished run.

    ``pnl_per_second`` also writes each day's P&L path, second by second
    (``pnl.parquet``: date, ts, pnl_paise, in_position; see ``DayOutcome.pnl_frame``).
    """
    run_id = run_id or new_run_id(spec.name)
    run_dir = lake.root / RUNS_DIR / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise ConfigError(
            f"run {run_id!r} already exists ({run_dir}): finish it with `ticklake backtest "
            "resume` / resume_backtest(), or give another run_id",
            run_id=run_id,
        ) from None
    spec_text = json.dumps(spec_document(spec), indent=1, sort_keys=True)
    write_text_atomic(run_dir / "spec.json", spec_text + "\n")
    days = plan_days(spec)
    ledger: dict[str, Any] = {
        "run_id": run_id,
        "name": spec.name,
        "spec": spec_document(spec),
        "spec_hash": spec_hash(spec),
        "status": "running",
        "created_at": utc_now_iso(),
        "finished_at": None,
        "ticklake_version": __version__,
        "git_sha": _git_sha(),
        "executor": executor or lake.settings.execution.executor,
        "workers": workers or lake.settings.execution.workers,
        "machine": {
            "hostname": socket.gethostname(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "lake": str(lake.root),
        "pnl_per_second": pnl_per_second,
        "days": {d.isoformat(): {"status": "pending"} for d in days},
    }
    _save_ledger(run_dir, ledger)
    return _execute(lake, run_dir, ledger, spec, executor, workers, use_cache, progress)


def resume_backtest(
    lake: Lake,
    run: str,
    *,
    executor: str | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> RunResult:
    """Finish an interrupted run without redoing days whose outputs are intact."""
    run_dir = resolve_run(lake, run)
    if (run_dir / "sweep.json").is_file():
        return resume_sweep(
            lake, str(run_dir), executor=executor, workers=workers, progress=progress
        )
    ledger = load_ledger(run_dir)
    spec = parse_spec(json.loads((run_dir / "spec.json").read_text()), source=str(run_dir))
    files = day_files(bool(ledger.get("pnl_per_second")))
    for day, entry in ledger["days"].items():
        if entry.get("status") == "done" and not _intact(run_dir / "days" / day, entry, files):
            ledger["days"][day] = {"status": "pending", "note": "outputs missing or changed"}
    ledger["status"] = "running"
    ledger.setdefault("resumed_at", []).append(utc_now_iso())
    return _execute(lake, run_dir, ledger, spec, executor, workers, True, progress)


def _execute(
    lake: Lake,
    run_dir: Path,
    ledger: dict[str, Any],
    spec: StrategySpec,
    executor: str | None,
    workers: int | None,
    use_cache: bool,
    progress: ProgressFn | None,
) -> RunResult:
    spec_json = json.dumps(spec_document(spec), sort_keys=True)
    pending = [d for d, e in sorted(ledger["days"].items()) if e.get("status") != "done"]
    pnl = bool(ledger.get("pnl_per_second"))
    jobs = [DayJob(str(lake.root), str(run_dir), spec_json, d, use_cache, pnl) for d in pending]
    execute_day_jobs(
        lake,
        run_dir,
        ledger,
        day_task,
        jobs,
        executor=executor,
        workers=workers,
        progress=progress,
    )
    finish_run(run_dir, ledger, spec)
    return RunResult(str(ledger["run_id"]), run_dir, ledger)


#: Summary fields a day written before marked closes existed lacks (it had none).
MARKED_DEFAULTS = {"marked_closes": 0, "marked_pnl_paise": 0}


def _day_trades(path: Path) -> pl.DataFrame:
    """A day's trades; a day written before the ``filled`` column holds only fills."""
    frame = pl.read_parquet(path)
    if "filled" not in frame.columns:
        frame = frame.with_columns(pl.lit(True).alias("filled"))
    return frame.select(list(TRADE_SCHEMA.names()))


def finish_run(run_dir: Path, ledger: dict[str, Any], spec: StrategySpec) -> None:
    """Check every day's outputs against the ledger, then write the run-level files."""
    pnl_per_second = bool(ledger.get("pnl_per_second"))
    files = day_files(pnl_per_second)
    broken = [
        d
        for d, e in ledger["days"].items()
        if e.get("status") != "done" or not _intact(run_dir / "days" / d, e, files)
    ]
    if broken:
        ledger["status"] = "incomplete"
        _save_ledger(run_dir, ledger)
        raise ExecutionError(
            f"run {ledger['run_id']} is incomplete: days {broken[:5]} lack verified outputs; "
            f"run `ticklake backtest resume {ledger['run_id']}`",
            run_id=ledger["run_id"],
        )
    days = sorted(ledger["days"])
    trades = [_day_trades(run_dir / "days" / d / "trades.parquet") for d in days]
    all_trades = (
        pl.concat(trades, how="vertical") if trades else pl.DataFrame(schema=TRADE_SCHEMA)
    ).sort(["date", "fill_index"])
    attempts = [pl.read_parquet(run_dir / "days" / d / "attempts.parquet") for d in days]
    all_attempts = (
        pl.concat(attempts, how="vertical") if attempts else pl.DataFrame(schema=ATTEMPT_SCHEMA)
    )
    summaries = [
        {**MARKED_DEFAULTS, **json.loads((run_dir / "days" / d / "summary.json").read_text())}
        for d in days
    ]
    daily = (
        pl.DataFrame(summaries)
        .with_columns(
            pl.col("date").str.to_date(),
            pl.col("expiry").cast(pl.String).str.to_date(),
            pl.col("first_entry_ts")
            .cast(pl.String)
            .str.to_datetime(time_zone="UTC", time_unit="ns"),
            pl.col("last_exit_ts").cast(pl.String).str.to_datetime(time_zone="UTC", time_unit="ns"),
            pl.col("skip_reason").cast(pl.String),
            pl.col("underlying_source").cast(pl.String),
        )
        .select([pl.col(c).cast(t) for c, t in DAILY_SCHEMA.items()])
    )
    n = spec.sampling.first_n_trades
    _write_frame(all_trades, run_dir / "trades.parquet")
    _write_frame(daily, run_dir / "daily.parquet")
    _write_frame(all_attempts, run_dir / "attempts.parquet")
    _write_frame(all_trades.head(n), run_dir / "samples.parquet")
    ledger["samples"] = {"kept": min(n, all_trades.height), "of": all_trades.height}
    ledger["totals"] = {
        "days": len(days),
        "traded_days": int((daily["status"] == "traded").sum()),
        "skipped_days": int((daily["status"] == "skipped").sum()),
        "fills": int(all_trades["filled"].sum()),
        "gross_pnl_paise": int(daily["gross_pnl_paise"].sum()),
        "costs_paise": int(daily["costs_paise"].sum()),
        "net_pnl_paise": int(daily["net_pnl_paise"].sum()),
        # Closes at a mark (no price on the book at the session's end): not fills.
        "marked_closes": int(daily["marked_closes"].sum()),
        "marked_pnl_paise": int(daily["marked_pnl_paise"].sum()),
    }
    run_files = ["trades.parquet", "daily.parquet", "attempts.parquet", "samples.parquet"]
    if pnl_per_second:
        paths = [run_dir / "days" / d / PNL_FILE for d in days]
        frames = [pl.read_parquet(p) for p in paths]
        pnl = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=PNL_SCHEMA)
        _write_frame(pnl, run_dir / PNL_FILE)
        run_files.append(PNL_FILE)
    ledger["outputs"] = {name: sha256_file(run_dir / name) for name in run_files}
    stats = compute_statistics(
        daily,
        all_trades,
        session_seconds=session_seconds_from_spec(spec_document(spec)),
    )
    write_text_atomic(
        run_dir / "stats.json", json.dumps(stats.to_dict(), indent=1, sort_keys=True) + "\n"
    )
    ledger["status"] = "complete"
    ledger["finished_at"] = utc_now_iso()
    _save_ledger(run_dir, ledger)


__all__ = [
    "CACHE_DIR",
    "DAILY_SCHEMA",
    "DAY_FILES",
    "PNL_FILE",
    "RUNS_DIR",
    "DayJob",
    "ProgressFn",
    "RunResult",
    "cache_key",
    "day_files",
    "day_task",
    "execute_day_jobs",
    "finish_run",
    "load_ledger",
    "new_run_id",
    "plan_days",
    "resolve_run",
    "resume_backtest",
    "run_backtest",
]
