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

import hashlib
import itertools
import json
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from ticklake._version import __version__
from ticklake.backtest.conditions import compile_spec_conditions
from ticklake.backtest.conditions.ast import (
    All,
    AnyOf,
    Arithmetic,
    Compare,
    Condition,
    MetricRef,
    Not,
    Number,
    Operand,
)
from ticklake.backtest.conditions.parser import parse_condition
from ticklake.backtest.conditions.runtime import DayMarket
from ticklake.backtest.data import DaySkip, load_day, strike_reach_steps
from ticklake.backtest.engine import (
    ATTEMPT_SCHEMA,
    TRADE_SCHEMA,
    WEEKDAY_NAMES,
    DayOutcome,
    _skipped,
    run_loaded_day,
)
from ticklake.backtest.runner import (
    CACHE_DIR,
    DAILY_SCHEMA,
    RUNS_DIR,
    RunResult,
    _git_sha,
    _input_hashes,
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
from ticklake.backtest.stats import compute_statistics, session_seconds_from_spec
from ticklake.errors import ConfigError, ExecutionError
from ticklake.lake import Lake, open_lake
from ticklake.lake.manifest import sha256_file, utc_now_iso

SWEEP_DAY_FILES = ("trades.parquet", "attempts.parquet", "daily.parquet")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_VARIANTS = 10_000
#: Statistics where smaller is better (ranked ascending).
ASCENDING_STATISTICS = frozenset({"max_drawdown_paise", "total_costs_paise"})
RANK_STATISTICS = (
    "total_net_pnl_paise",
    "sharpe_ratio",
    "sortino_ratio",
    "profit_factor",
    "win_rate_traded_days",
    "average_daily_net_pnl_rupees",
    "max_drawdown_paise",
    "total_costs_paise",
)

ProgressFn = Callable[[dict[str, Any]], None]


# ---------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class SweepSpec:
    """A strategy template with sweep axes and constraints."""

    template: dict[str, Any]
    axes: dict[str, list[Any]]
    constraints: tuple[str, ...] = ()
    source: str = "sweep"

    @property
    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.axes.values())


@dataclass(frozen=True)
class Variant:
    index: int
    values: dict[str, Any]
    spec: StrategySpec = field(repr=False, compare=False)


def sweep_from_data(data: Mapping[str, Any], *, source: str = "sweep") -> SweepSpec:
    """Split a strategy mapping into its template, axes and constraints."""
    body = dict(data)
    axes = body.pop("sweep", None)
    constraints = body.pop("constraints", None) or []
    if not isinstance(axes, dict) or not axes:
        raise ConfigError(
            f"{source}: 'sweep' must map axis names to lists of values, e.g. "
            "sweep: {ema_fast: [1, 2]}"
        )
    for name, values in axes.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
            raise ConfigError(f"{source}: sweep axis {name!r} must be an identifier")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: sweep axis {name!r} needs a non-empty list of values")
    if not isinstance(constraints, list) or not all(isinstance(c, str) for c in constraints):
        raise ConfigError(f"{source}: 'constraints' must be a list of text conditions")
    return SweepSpec(body, {str(k): list(v) for k, v in axes.items()}, tuple(constraints), source)


def load_sweep(path: Path | str) -> SweepSpec | None:
    """Read a strategy file; return its sweep, or ``None`` when it has no ``sweep:``."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict) or "sweep" not in data:
        return None
    return sweep_from_data(data, source=str(path))


def substitute(value: Any, values: Mapping[str, Any], *, where: str = "spec") -> Any:
    """Replace ``${axis}`` in every string of ``value`` (typed when it is the whole string)."""
    if isinstance(value, dict):
        return {k: substitute(v, values, where=f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, values, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    whole = _PLACEHOLDER.fullmatch(value.strip())

    def lookup(name: str) -> Any:
        if name not in values:
            raise ConfigError(
                f"{where}: unknown sweep variable ${{{name}}}; axes: {', '.join(values) or 'none'}"
            )
        return values[name]

    if whole:
        return lookup(whole.group(1))
    return _PLACEHOLDER.sub(lambda m: str(lookup(m.group(1))), value)


def constraint_holds(text: str, values: Mapping[str, Any]) -> bool:
    """Evaluate a constraint (``ema_fast < ema_slow``) with the condition parser."""
    return bool(_truth(parse_condition(text, where=f"constraint {text!r}"), values, text))


def _truth(node: Condition, values: Mapping[str, Any], text: str) -> bool:
    if isinstance(node, All):
        return all(_truth(i, values, text) for i in node.items)
    if isinstance(node, AnyOf):
        return any(_truth(i, values, text) for i in node.items)
    if isinstance(node, Not):
        return not _truth(node.item, values, text)
    assert isinstance(node, Compare)
    if node.op.startswith("crosses"):
        raise ConfigError(f"constraint {text!r}: {node.op} has no meaning between axis values")
    left, right = _number(node.left, values, text), _number(node.right, values, text)
    return {
        ">": left > right,
        ">=": left >= right,
        "<": left < right,
        "<=": left <= right,
        "==": left == right,
        "!=": left != right,
    }[node.op]


def _number(node: Operand, values: Mapping[str, Any], text: str) -> float:
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Arithmetic):
        left, right = _number(node.left, values, text), _number(node.right, values, text)
        if node.op == "/" and right == 0:
            raise ConfigError(f"constraint {text!r}: division by zero")
        return {"+": left + right, "-": left - right, "*": left * right}.get(
            node.op, left / right if right else math.nan
        )
    if isinstance(node, MetricRef) and not node.args and node.of == "underlying":
        if node.metric not in values:
            raise ConfigError(
                f"constraint {text!r}: unknown axis {node.metric!r}; axes: {', '.join(values)}"
            )
        value = values[node.metric]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(
                f"constraint {text!r}: axis {node.metric!r} = {value!r} is not a number"
            )
        return float(value)
    raise ConfigError(f"constraint {text!r}: only axis names, numbers and + - * / are allowed")


def grid_values(sweep: SweepSpec) -> list[dict[str, Any]]:
    """The axis values of every variant the constraints keep, in grid order."""
    if sweep.grid_size > MAX_VARIANTS:
        raise ConfigError(
            f"{sweep.source}: the grid has {sweep.grid_size:,} variants, more than "
            f"{MAX_VARIANTS:,}; shorten an axis"
        )
    names = list(sweep.axes)
    kept = []
    for combination in itertools.product(*(sweep.axes[n] for n in names)):
        values = dict(zip(names, combination, strict=True))
        if all(constraint_holds(c, values) for c in sweep.constraints):
            kept.append(values)
    return kept


def expand(sweep: SweepSpec) -> list[Variant]:
    """Every variant of the grid that satisfies the constraints, numbered from 0."""
    variants: list[Variant] = []
    for values in grid_values(sweep):
        data = substitute(sweep.template, values)
        label = ", ".join(f"{k}={v}" for k, v in values.items())
        spec = parse_spec(data, source=f"{sweep.source} [{label}]")
        variants.append(Variant(len(variants), values, spec))
    if not variants:
        raise ConfigError(f"{sweep.source}: the constraints leave no variant of the grid")
    return variants


# ---------------------------------------------------------------------- one day
def _data_key(spec: StrategySpec) -> str:
    """What ``load_day`` depends on: variants with equal keys share one load."""
    return json.dumps(
        [
            spec.universe.model_dump(mode="json"),
            spec.time.session_start,
            spec.time.session_end,
            spec.time.timezone,
            spec.fills.as_of_tolerance_seconds,
            spec.fills.max_quote_age_seconds,
            # Instrument legs load their instruments' rows, in leg order.
            [
                [i, spec.instrument_dataset(leg), leg.instrument.symbol]
                for i, leg in enumerate(spec.legs)
                if leg.instrument is not None
            ],
        ],
        sort_keys=True,
    )


def run_day_variants(lake: Lake, specs: list[StrategySpec], day: date) -> list[DayOutcome]:
    """Backtest every variant on one day, loading the day once per distinct data need."""
    outcomes: list[DayOutcome | None] = [None] * len(specs)
    groups: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        weekday = WEEKDAY_NAMES[day.weekday()]
        if weekday not in spec.time.weekdays:
            outcomes[i] = _skipped(day, f"weekday {weekday} not selected")
        else:
            groups.setdefault(_data_key(spec), []).append(i)
    for indices in groups.values():
        plans = {i: compile_spec_conditions(specs[i]) for i in indices}
        first = specs[indices[0]]
        loaded = load_day(
            lake,
            first,
            day,
            market_fields=any(p.needs_contracts for p in plans.values()),
            # Load every strike any variant's selectors can reach, not just the first's.
            reach_steps=max(strike_reach_steps(specs[i]) for i in indices),
        )
        if isinstance(loaded, DaySkip):
            for i in indices:
                outcomes[i] = _skipped(day, loaded.reason)
            continue
        market = DayMarket(lake, first, loaded)
        for i in indices:
            outcomes[i] = run_loaded_day(specs[i], loaded, market, plans[i])
    return [o for o in outcomes if o is not None]


def _daily_frame(summaries: list[dict[str, Any]]) -> pl.DataFrame:
    return (
        pl.DataFrame(summaries, infer_schema_length=None)
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
        .select(
            pl.col("variant").cast(pl.Int64),
            *[pl.col(c).cast(t) for c, t in DAILY_SCHEMA.items()],
        )
    )


@dataclass(frozen=True)
class SweepDayJob:
    lake_root: str
    run_dir: str
    specs_json: str  # JSON list of the variants' specs, in variant order
    day: str
    use_cache: bool = True


def sweep_day_task(job: SweepDayJob) -> dict[str, Any]:
    """Run (or fetch from the cache) every variant of one day; write the day's files."""
    started = time.perf_counter()
    lake = open_lake(job.lake_root)
    specs = [parse_spec(s) for s in json.loads(job.specs_json)]
    day = date.fromisoformat(job.day)
    out_dir = Path(job.run_dir) / "days" / job.day
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs: dict[str, str] = {}
    for spec in specs:
        inputs |= _input_hashes(lake, spec, day)
    body = json.dumps(
        {
            "specs": [spec_hash(s) for s in specs],
            "day": job.day,
            "inputs": inputs,
            "v": __version__,
        },
        sort_keys=True,
    )
    key = "sweep-" + hashlib.sha256(body.encode()).hexdigest()
    cache = lake.root / CACHE_DIR / key[6:8] / key
    cached = job.use_cache and (cache / "daily.parquet").is_file()
    if cached:
        for name in SWEEP_DAY_FILES:
            tmp = out_dir / f".tmp-{uuid.uuid4().hex}.tmp"
            shutil.copyfile(cache / name, tmp)
            os.replace(tmp, out_dir / name)
        daily = pl.read_parquet(out_dir / "daily.parquet")
    else:
        outcomes = run_day_variants(lake, specs, day)
        trades = pl.concat(
            [
                o.trades.select(pl.lit(v, pl.Int64).alias("variant"), pl.all())
                for v, o in enumerate(outcomes)
            ]
        )
        attempts = pl.concat(
            [
                o.attempts.select(pl.lit(v, pl.Int64).alias("variant"), pl.all())
                for v, o in enumerate(outcomes)
            ]
        )
        daily = _daily_frame([{"variant": v, **o.summary} for v, o in enumerate(outcomes)])
        _write_frame(trades, out_dir / "trades.parquet")
        _write_frame(attempts, out_dir / "attempts.parquet")
        _write_frame(daily, out_dir / "daily.parquet")
        if job.use_cache:
            staging = cache.parent / f".tmp-{uuid.uuid4().hex}"
            staging.mkdir(parents=True, exist_ok=True)
            for name in SWEEP_DAY_FILES:
                shutil.copyfile(out_dir / name, staging / name)
            try:
                os.replace(staging, cache)
            except OSError:  # another run cached the same day first: identical content
                shutil.rmtree(staging, ignore_errors=True)
    return {
        "status": "done",
        "variants": len(specs),
        "fills": int(daily["fills"].sum()),
        "net_pnl_paise": int(daily["net_pnl_paise"].sum()),
        "outputs": {n: sha256_file(out_dir / n) for n in SWEEP_DAY_FILES},
        "inputs": inputs,
        "cache_key": key,
        "cached": bool(cached),
        "seconds": round(time.perf_counter() - started, 3),
    }


# ---------------------------------------------------------------------- the run
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
        frames = [pl.read_parquet(run_dir / "days" / d / name) for d in days]
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
        "fills": trades.height,
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


# ---------------------------------------------------------------------- results
def variant_statistics(
    daily: pl.DataFrame, trades: pl.DataFrame, variant: int, session_seconds: int
) -> dict[str, Any]:
    """The run statistics of one variant (over the rows of ``daily``/``trades`` given)."""
    stats = compute_statistics(
        daily.filter(pl.col("variant") == variant).drop("variant"),
        trades.filter(pl.col("variant") == variant).drop("variant"),
        session_seconds=session_seconds,
    )
    return {name: getattr(stats, name) for name in (*RANK_STATISTICS, "days_traded", "fills")}


def _sort_key(statistic: str) -> pl.Expr:
    column = pl.col(statistic).cast(pl.Float64)
    return column if statistic in ASCENDING_STATISTICS else -column


def variant_table(
    daily: pl.DataFrame,
    trades: pl.DataFrame,
    variants: list[dict[str, Any]],
    spec: StrategySpec,
    *,
    rank_by: str = "total_net_pnl_paise",
) -> pl.DataFrame:
    """One row per variant: axis values, statistics, ``rank`` (1 = best by ``rank_by``)."""
    seconds = session_seconds_from_spec(spec_document(spec))
    rows = []
    for entry in variants:
        stats = variant_statistics(daily, trades, entry["variant"], seconds)
        rows.append({"variant": entry["variant"], **entry["values"], **stats})
    table = pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.col(c).cast(pl.Float64)
        for c in RANK_STATISTICS
        if c.endswith(("ratio", "factor", "days", "rupees"))
    )
    ordered = table.sort(_sort_key(rank_by), "variant", nulls_last=True)
    return ordered.with_columns(
        pl.int_range(1, ordered.height + 1, dtype=pl.Int64).alias("rank")
    ).select("rank", pl.all().exclude("rank"))


def out_of_sample(
    daily: pl.DataFrame,
    trades: pl.DataFrame,
    variants: list[dict[str, Any]],
    spec: StrategySpec,
    *,
    train_end: date,
    test_end: date | None = None,
    rank_by: str = "total_net_pnl_paise",
) -> dict[str, Any]:
    """Choose the best variant on days ``<= train_end``; report it on the later days.

    Returns the chosen variant, its training and test statistics, and its test rank
    among all variants (1 = it was also the best out of sample).
    """
    train = daily.filter(pl.col("date") <= train_end)
    test = daily.filter(pl.col("date") > train_end)
    if test_end is not None:
        test = test.filter(pl.col("date") <= test_end)
    if train.height == 0 or test.height == 0:
        raise ConfigError(
            f"out-of-sample split at {train_end} leaves an empty training or test period"
        )
    train_trades = trades.filter(pl.col("date") <= train_end)
    test_trades = trades.filter(pl.col("date").is_in(test["date"].unique().implode()))
    on_train = variant_table(train, train_trades, variants, spec, rank_by=rank_by)
    on_test = variant_table(test, test_trades, variants, spec, rank_by=rank_by)
    chosen = int(on_train["variant"][0])
    test_row = on_test.filter(pl.col("variant") == chosen).row(0, named=True)
    return {
        "rank_by": rank_by,
        "train": [str(train["date"].min()), str(train["date"].max())],
        "test": [str(test["date"].min()), str(test["date"].max())],
        "chosen_variant": chosen,
        "values": next(v["values"] for v in variants if v["variant"] == chosen),
        "train_statistic": on_train.row(0, named=True)[rank_by],
        "test_statistic": test_row[rank_by],
        "test_rank": int(test_row["rank"]),
        "variants": len(variants),
        "best_test_variant": int(on_test["variant"][0]),
    }


def walk_forward(
    daily: pl.DataFrame,
    trades: pl.DataFrame,
    variants: list[dict[str, Any]],
    spec: StrategySpec,
    *,
    train_days: int,
    test_days: int,
    rank_by: str = "total_net_pnl_paise",
) -> pl.DataFrame:
    """Rolling windows: choose on ``train_days`` planned days, report the next
    ``test_days``; one row per window (the test windows do not overlap)."""
    if train_days < 1 or test_days < 1:
        raise ConfigError("walk-forward needs train_days >= 1 and test_days >= 1")
    dates = sorted(daily["date"].unique().to_list())
    rows = []
    start = 0
    while start + train_days < len(dates):
        train_dates = dates[start : start + train_days]
        test_dates = dates[start + train_days : start + train_days + test_days]
        window = daily.filter(pl.col("date").is_in(train_dates + test_dates))
        result = out_of_sample(
            window,
            trades.filter(pl.col("date").is_in(train_dates + test_dates)),
            variants,
            spec,
            train_end=train_dates[-1],
            rank_by=rank_by,
        )
        rows.append(
            {
                "train_start": train_dates[0],
                "train_end": train_dates[-1],
                "test_start": test_dates[0],
                "test_end": test_dates[-1],
                "chosen_variant": result["chosen_variant"],
                "train_statistic": _float(result["train_statistic"]),
                "test_statistic": _float(result["test_statistic"]),
                "test_rank": result["test_rank"],
            }
        )
        start += test_days
    if not rows:
        raise ConfigError(
            f"walk-forward: {len(dates)} planned days are too few for {train_days} training days"
        )
    return pl.DataFrame(rows)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


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
