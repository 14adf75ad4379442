"""Parameter sweeps: one strategy template, a grid of variants, one data load per day.

A sweep file is a strategy with two more top-level keys::

    sweep:                         # axes, expanded as a Cartesian product in this order
      volume_lookback_min: [1, 2, 3, 4]
      ema_fast: [1, 2]
      ema_slow: [5, 10]
    constraints: ["ema_fast < ema_slow"]   # prune the grid (parsed, never eval'd)

``${axis}`` anywhere in the spec is replaced by the variant's value: a string that is
exactly ``${axis}`` takes the value with its type (``lots: ${lots}``); inside a longer
string it is spliced as text (``when: "ema(${ema_fast}) > ema(${ema_slow})"``).

Each **day task evaluates every variant**: the day is loaded once per distinct data
need (variants that change the universe, session or quote tolerances load their own),
metric series are computed once and shared (``DayMarket``), and only the kernel runs
per variant. The ledger has one entry per day covering all variants: a resumed sweep
redoes the days that are not done, with all their variants. Outputs carry a
``variant`` column; ``variants.parquet`` holds each variant's axis values and
statistics ranked by the chosen statistic.

Examples:
    >>> sweep = sweep_from_data({"name": "x", "sweep": {"fast": [1, 2], "slow": [2, 5]},
    ...     "constraints": ["fast < slow"], "legs": "${fast}"})
    >>> grid_values(sweep)
    [{'fast': 1, 'slow': 2}, {'fast': 1, 'slow': 5}, {'fast': 2, 'slow': 5}]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ticklake._version import __version__
from ticklake.backtest.engine import ATTEMPT_SCHEMA, TRADE_SCHEMA
from ticklake.backtest.run_ledger import (
    DAILY_SCHEMA,
    RUNS_DIR,
    RunResult,
    _git_sha,
    _intact,
    _save_ledger,
    _write_frame,
    execute_day_jobs,
    load_ledger,
    new_run_id,
    plan_days,
    resolve_run,
)
from ticklake.backtest.spec import StrategySpec, parse_spec, spec_document, spec_hash
from ticklake.backtest.sweep_days import (
    SWEEP_DAY_FILES,
    SweepDayJob,
    run_day_variants,
    sweep_day_task,
)
from ticklake.backtest.sweep_grid import (
    MAX_VARIANTS,
    SweepSpec,
    Variant,
    constraint_holds,
    expand,
    grid_values,
    load_sweep,
    substitute,
    sweep_from_data,
)
from ticklake.backtest.sweep_ranking import (
    ASCENDING_STATISTICS,
    RANK_STATISTICS,
    out_of_sample,
    variant_statistics,
    variant_table,
    walk_forward,
)
from ticklake.errors import ConfigError, ExecutionError
from ticklake.lake import Lake
from ticklake.lake.manifest import sha256_file, utc_now_iso

ProgressFn = Callable[[dict[str, Any]], None]


@dataclass
class SweepResult(RunResult):
    """A finished sweep: a run whose files carry a ``variant`` column, plus its ranking."""

    def variants(self) -> pl.DataFrame:
        return pl.read_parquet(self.run_dir / "variants.parquet")


def run_sweep(
    lake: Lake,
    sweep: SweepSpec,
    *,
    executor: str | None = None,
    workers: int | None = None,
    run_id: str | None = None,
    use_cache: bool = True,
    rank_by: str = "total_net_pnl_paise",
    progress: ProgressFn | None = None,
) -> SweepResult:
    """Run every variant of a sweep over the template's date range."""
    if rank_by not in RANK_STATISTICS:
        raise ConfigError(f"rank_by {rank_by!r}: use one of {', '.join(RANK_STATISTICS)}")
    variants = expand(sweep)
    first = variants[0].spec
    run_id = run_id or new_run_id(f"{first.name}-sweep")
    run_dir = lake.root / RUNS_DIR / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise ConfigError(
            f"run {run_id!r} already exists ({run_dir}): resume it, or give another run_id",
            run_id=run_id,
        ) from None
    specs = [spec_document(v.spec) for v in variants]
    (run_dir / "sweep.json").write_text(
        json.dumps(
            {
                "template": sweep.template,
                "axes": sweep.axes,
                "constraints": list(sweep.constraints),
                "grid_size": sweep.grid_size,
                "rank_by": rank_by,
                "variants": [{"variant": v.index, "values": v.values} for v in variants],
                "specs": specs,
            },
            indent=1,
            sort_keys=True,
            default=str,
        )
        + "\n"
    )
    (run_dir / "spec.json").write_text(json.dumps(specs[0], indent=1, sort_keys=True) + "\n")
    days = plan_days(first)
    for variant in variants[1:]:
        days = sorted(set(days) | set(plan_days(variant.spec)))
    ledger: dict[str, Any] = {
        "run_id": run_id,
        "kind": "sweep",
        "name": first.name,
        "spec_hash": spec_hash(first),
        "variants": len(variants),
        "grid_size": sweep.grid_size,
        "status": "running",
        "created_at": utc_now_iso(),
        "finished_at": None,
        "ticklake_version": __version__,
        "git_sha": _git_sha(),
        "executor": executor or lake.settings.execution.executor,
        "workers": workers or lake.settings.execution.workers,
        "lake": str(lake.root),
        "days": {d.isoformat(): {"status": "pending"} for d in days},
    }
    _save_ledger(run_dir, ledger)
    return _execute_sweep(lake, run_dir, ledger, executor, workers, use_cache, progress)


def _variants_of(run_dir: Path) -> tuple[dict[str, Any], list[StrategySpec]]:
    info = json.loads((run_dir / "sweep.json").read_text())
    return info, [parse_spec(s) for s in info["specs"]]


def resume_sweep(
    lake: Lake,
    run: str,
    *,
    executor: str | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> SweepResult:
    """Finish an interrupted sweep: days whose outputs are intact are kept."""
    run_dir = resolve_run(lake, run)
    ledger = load_ledger(run_dir)
    for day, entry in ledger["days"].items():
        if entry.get("status") == "done" and not _intact(
            run_dir / "days" / day, entry, SWEEP_DAY_FILES
        ):
            ledger["days"][day] = {"status": "pending", "note": "outputs missing or changed"}
    ledger["status"] = "running"
    ledger.setdefault("resumed_at", []).append(utc_now_iso())
    return _execute_sweep(lake, run_dir, ledger, executor, workers, True, progress)


def _execute_sweep(
    lake: Lake,
    run_dir: Path,
    ledger: dict[str, Any],
    executor: str | None,
    workers: int | None,
    use_cache: bool,
    progress: ProgressFn | None,
) -> SweepResult:
    info, specs = _variants_of(run_dir)
    specs_json = json.dumps([spec_document(s) for s in specs], sort_keys=True)
    pending = [d for d, e in sorted(ledger["days"].items()) if e.get("status") != "done"]
    jobs = [SweepDayJob(str(lake.root), str(run_dir), specs_json, d, use_cache) for d in pending]
    execute_day_jobs(
        lake,
        run_dir,
        ledger,
        sweep_day_task,
        jobs,
        executor=executor,
        workers=workers,
        progress=progress,
        extra_totals={"variants": len(specs)},
    )
    _finish_sweep(run_dir, ledger, info, specs)
    return SweepResult(str(ledger["run_id"]), run_dir, ledger)


def _finish_sweep(
    run_dir: Path, ledger: dict[str, Any], info: dict[str, Any], specs: list[StrategySpec]
) -> None:
    broken = [
        d
        for d, e in ledger["days"].items()
        if e.get("status") != "done" or not _intact(run_dir / "days" / d, e, SWEEP_DAY_FILES)
    ]
    if broken:
        ledger["status"] = "incomplete"
        _save_ledger(run_dir, ledger)
        raise ExecutionError(
            f"sweep {ledger['run_id']} is incomplete: days {broken[:5]} lack verified outputs; "
            f"run `ticklake backtest resume {ledger['run_id']}`",
            run_id=ledger["run_id"],
        )
    days = sorted(ledger["days"])

    def gather(name: str, schema: pl.Schema) -> pl.DataFrame:
        frames = [_day_frame(run_dir / "days" / d / name, schema) for d in days]
        empty = pl.DataFrame(schema={"variant": pl.Int64, **dict(schema)})
        return pl.concat(frames, how="vertical") if frames else empty

    trades = gather("trades.parquet", TRADE_SCHEMA).sort(["variant", "date", "fill_index"])
    attempts = gather("attempts.parquet", ATTEMPT_SCHEMA).sort(["variant", "date"])
    daily = gather("daily.parquet", DAILY_SCHEMA).sort(["variant", "date"])
    _write_frame(trades, run_dir / "trades.parquet")
    _write_frame(attempts, run_dir / "attempts.parquet")
    _write_frame(daily, run_dir / "daily.parquet")
    variants = variant_table(
        daily,
        trades,
        info["variants"],
        specs[0],
        rank_by=str(info.get("rank_by") or RANK_STATISTICS[0]),
    )
    _write_frame(variants, run_dir / "variants.parquet")
    best = variants.row(0, named=True)
    ledger["totals"] = {
        "days": len(days),
        "variants": len(specs),
        "fills": int(trades["filled"].sum()),
        "marked_closes": int(daily["marked_closes"].sum()),
        "best_variant": best["variant"],
        "best_net_pnl_paise": best["total_net_pnl_paise"],
    }
    ledger["outputs"] = {
        n: sha256_file(run_dir / n)
        for n in ("trades.parquet", "daily.parquet", "attempts.parquet", "variants.parquet")
    }
    ledger["status"] = "complete"
    ledger["finished_at"] = utc_now_iso()
    _save_ledger(run_dir, ledger)


#: Columns a day file written before marked closes existed lacks, and their value then:
#: every trade was a fill, no close was at a mark.
_OLD_DAY_DEFAULTS: dict[str, Any] = {"filled": True, "marked_closes": 0, "marked_pnl_paise": 0}


def _day_frame(path: Path, schema: pl.Schema) -> pl.DataFrame:
    """One day's output file, with the columns older runs lack set to their defaults."""
    frame = pl.read_parquet(path)
    missing = [n for n in _OLD_DAY_DEFAULTS if n in schema and n not in frame.columns]
    if not missing:
        return frame
    frame = frame.with_columns(pl.lit(_OLD_DAY_DEFAULTS[n], schema[n]).alias(n) for n in missing)
    return frame.select(["variant", *schema.names()])


def read_sweep(run_dir: Path) -> tuple[dict[str, Any], pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(sweep.json, variants, daily, trades) of a finished sweep run."""
    info = json.loads((run_dir / "sweep.json").read_text())
    return (
        info,
        pl.read_parquet(run_dir / "variants.parquet"),
        pl.read_parquet(run_dir / "daily.parquet"),
        pl.read_parquet(run_dir / "trades.parquet"),
    )


def is_sweep_run(run_dir: Path) -> bool:
    return (Path(run_dir) / "sweep.json").is_file()


__all__ = [
    "ASCENDING_STATISTICS",
    "MAX_VARIANTS",
    "RANK_STATISTICS",
    "SWEEP_DAY_FILES",
    "SweepDayJob",
    "SweepResult",
    "SweepSpec",
    "Variant",
    "constraint_holds",
    "expand",
    "grid_values",
    "is_sweep_run",
    "load_sweep",
    "out_of_sample",
    "read_sweep",
    "resume_sweep",
    "run_day_variants",
    "run_sweep",
    "substitute",
    "sweep_day_task",
    "sweep_from_data",
    "variant_statistics",
    "variant_table",
    "walk_forward",
]
