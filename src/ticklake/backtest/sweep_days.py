"""A sweep's day task: every variant on one day, the day loaded once per distinct data
need and its metric series shared (``DayMarket``); only the kernel runs per variant.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from ticklake._version import __version__
from ticklake.backtest.condition_runtime import DayMarket
from ticklake.backtest.conditions import compile_spec_conditions
from ticklake.backtest.data import DaySkip, load_day, strike_reach_steps
from ticklake.backtest.engine import (
    ENGINE_REVISION,
    WEEKDAY_NAMES,
    DayOutcome,
    _skipped,
    ctrl_c_in_kernels,
    run_loaded_day,
)
from ticklake.backtest.run_ledger import CACHE_DIR, DAILY_SCHEMA, _input_hashes, _write_frame
from ticklake.backtest.spec import StrategySpec, parse_spec, spec_hash
from ticklake.lake import Lake, open_lake
from ticklake.lake.manifest import sha256_file

SWEEP_DAY_FILES = ("trades.parquet", "attempts.parquet", "daily.parquet")


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


@ctrl_c_in_kernels
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
            "engine": ENGINE_REVISION,
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
