"""Run a pipeline: date batches, one executor task per batch, gold commits, exports.

Dates are split into calendar batches (day, ISO week, month or year, clipped to the run's
start and end — Basalt's batches could start before the start date). Each batch is one
task, :func:`run_batch`, a module-level pure function of the resolved pipeline JSON and
the batch's days: it runs **every pass in order** for those days (so pass 2 sees pass
1's output for exactly its own days, not the last batch's) and commits each pass's rows
to the lake's gold layer, one atomic commit per day. With the ``process`` executor each
batch runs in a fresh spawned worker, so memory is returned after every batch. After a
batch returns, the parent loads its committed days into the external targets.

Ctrl+C stops the workers; a day is either committed whole or absent, and running the
same command again recomputes and replaces every day (commits merge on ``(instrument,
ts)``), so a re-run completes an interrupted run.

Automatic batch frequency (``batch_frequency: auto``): estimate the input rows per day
from the partition manifests of the lake datasets the passes read (mean rows per
partition in the date range), scaled by the universe (listed instruments ÷ instruments
in one sampled partition, at most 1). Then, with a budget of
:data:`BATCH_ROW_BUDGET` rows per batch:

- if the whole range (rows/day × days) fits the budget: ``Y`` (one batch per year);
- else the longest of ``M`` (31 days), ``W`` (7 days) that fits; else ``D``.

A given frequency is ``[N]D|W|M|Q|Y``: N days, ISO weeks, months, quarters or years per
batch (``2W``, ``3M``), counted from fixed origins (:func:`_period_key`).
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from ticklake.analytics.passes import PassOutput, run_pass
from ticklake.analytics.pipeline import PipelineSpec, import_metric_modules, validate_pipeline
from ticklake.analytics.targets import export_days, write_gold
from ticklake.errors import ConfigError, InterruptedRunError
from ticklake.execution import get_executor
from ticklake.lake import Lake, open_lake
from ticklake.lake.commit import write_text_atomic

#: rows of input one batch should hold at most (a few GB of Polars memory at worst)
BATCH_ROW_BUDGET = 20_000_000
_PERIOD_DAYS = {"Y": 366, "Q": 92, "M": 31, "W": 7, "D": 1}
_FREQUENCY = re.compile(r"^([1-9][0-9]{0,3})?([DWMQY])$")
ProgressFn = Callable[[dict[str, Any]], None]


# ------------------------------------------------------------------------- batching
def choose_batch_frequency(rows_per_day: float, n_days: int) -> str:
    """The batch frequency for an estimated input size (see the module docstring).

    Examples:
        >>> choose_batch_frequency(10_000, 250)    # 2.5 M rows in all: one batch a year
        'Y'
        >>> choose_batch_frequency(500_000, 250)   # 15.5 M a month fits
        'M'
        >>> choose_batch_frequency(2_000_000, 250)
        'W'
        >>> choose_batch_frequency(5_000_000, 250)
        'D'
    """
    if rows_per_day * max(n_days, 1) <= BATCH_ROW_BUDGET:
        return "Y"
    for frequency in ("M", "W"):
        if rows_per_day * _PERIOD_DAYS[frequency] <= BATCH_ROW_BUDGET:
            return frequency
    return "D"


def parse_frequency(frequency: str) -> tuple[int, str]:
    """``(multiple, unit)`` of a batch frequency: ``D W M Q Y``, optionally ``N`` times.

    Examples:
        >>> parse_frequency("W"), parse_frequency("2W"), parse_frequency("3M")
        ((1, 'W'), (2, 'W'), (3, 'M'))
    """
    match = _FREQUENCY.match(frequency.strip().upper()) if isinstance(frequency, str) else None
    if match is None:
        raise ConfigError(
            f"batch frequency {frequency!r} is not auto or [N]D|W|M|Q|Y "
            "(a day, ISO week, month, quarter or year, N of them per batch: e.g. 2W, 3M)",
            frequency=frequency,
        )
    return int(match.group(1) or 1), match.group(2)


def _period_key(day: date, frequency: str) -> tuple[int, ...]:
    """The batch a day falls in: its period's ordinal from a fixed origin, divided by N.

    Periods are counted from fixed origins (day 1 of the proleptic calendar; the ISO week
    of 0001-01-01, a Monday; month and quarter 0 of year 0), so a ``2W`` batch always
    pairs the same two weeks whatever the run's start (2024-01-08 starts a pair: the
    ISO weeks since 0001-01-01 are counted from 0).
    """
    multiple, unit = parse_frequency(frequency)
    if unit == "D":
        ordinal = day.toordinal()
    elif unit == "W":
        ordinal = (day.toordinal() - 1) // 7  # 0001-01-01 (ordinal 1) is a Monday
    elif unit == "M":
        ordinal = day.year * 12 + day.month - 1
    elif unit == "Q":
        ordinal = day.year * 4 + (day.month - 1) // 3
    else:
        ordinal = day.year
    return (ordinal // multiple,)


def make_batches(start: date, end: date, frequency: str) -> list[tuple[date, ...]]:
    """Calendar batches of the days in [start, end], clipped to the range.

    Examples:
        >>> [(b[0].isoformat(), len(b)) for b in make_batches(date(2024, 1, 3),
        ...                                                   date(2024, 1, 16), "W")]
        [('2024-01-03', 5), ('2024-01-08', 7), ('2024-01-15', 2)]
        >>> [(b[0].isoformat(), len(b)) for b in make_batches(date(2024, 1, 3),
        ...                                                   date(2024, 1, 30), "2W")]
        [('2024-01-03', 5), ('2024-01-08', 14), ('2024-01-22', 9)]
    """
    parse_frequency(frequency)
    batches: list[list[date]] = []
    day = start
    while day <= end:
        if batches and _period_key(batches[-1][-1], frequency) == _period_key(day, frequency):
            batches[-1].append(day)
        else:
            batches.append([day])
        day += timedelta(days=1)
    return [tuple(b) for b in batches]


def lake_inputs(spec: PipelineSpec) -> list[str]:
    """The lake datasets the passes read (not earlier passes' outputs)."""
    return [p.input for p in spec.passes if p.reads_pass(spec) is None]


def estimate_rows_per_day(lake: Lake, spec: PipelineSpec, start: date, end: date) -> float:
    """Input rows per day from partition manifests, scaled to the universe."""
    total = 0.0
    for dataset in dict.fromkeys(lake_inputs(spec)):
        parts = [p for p in lake.partitions(dataset) if start <= p.date <= end]
        if not parts:
            continue
        rows = [
            p.manifest.rows
            if p.manifest
            else pl.scan_parquet(p.path).select(pl.len()).collect().item()
            for p in parts
        ]
        per_day = sum(rows) / len(parts)
        if spec.universe != "all":
            names = lake.dataset_info(dataset).dataset_schema.column_names
            by = "instrument" if "instrument" in names else "underlying"  # option chains
            sample = pl.scan_parquet(parts[len(parts) // 2].path).select(pl.col(by).n_unique())
            instruments = max(1, int(sample.collect().item()))
            per_day *= min(1.0, len(spec.universe) / instruments)
        total += per_day
    return total


# ---------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class BatchJob:
    """One task: the resolved pipeline (JSON) and the batch's days (ISO dates)."""

    lake_root: str
    spec_json: str
    days: tuple[str, ...]
    index: int
    profile_dir: str | None = None

    def __repr__(self) -> str:  # executors name the item in errors
        return f"batch {self.index} ({self.days[0]}..{self.days[-1]})"


def run_batch(job: BatchJob) -> dict[str, Any]:
    """Compute every pass for the job's days and commit them to gold; return a summary."""
    tracer = None
    if job.profile_dir is not None:
        tracer = _start_tracer(Path(job.profile_dir) / f"batch-{job.index:05d}.json", job)
    try:
        return _run_batch(job)
    finally:
        if tracer is not None:
            tracer.stop()
            tracer.save()


def _run_batch(job: BatchJob) -> dict[str, Any]:
    started = time.perf_counter()
    lake = open_lake(job.lake_root)
    spec = PipelineSpec.model_validate_json(job.spec_json)
    import_metric_modules(spec)
    assert spec.timezone is not None
    days = tuple(date.fromisoformat(d) for d in job.days)
    outputs: dict[str, PassOutput] = {}
    passes: dict[str, dict[str, Any]] = {}
    for pass_spec in spec.passes:
        result = run_pass(lake, spec, pass_spec, spec.timezone, days, outputs)
        outputs[pass_spec.name] = result
        with _signals_deferred():
            write = write_gold(
                lake,
                spec.output_dataset(pass_spec),
                result.frame,
                timezone=spec.timezone,
                bucket=result.bucket,
                spec_hash=spec.spec_hash(),
                mode=spec.gold_mode(pass_spec),
            )
        passes[pass_spec.name] = {
            "rows_in": result.rows_in,
            "rows_out": result.frame.height,
            "partitions": [p.partition for p in write.partitions] if write else [],
        }
    return {
        "index": job.index,
        "days": list(job.days),
        "passes": passes,
        "seconds": round(time.perf_counter() - started, 3),
    }


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl+C / SIGTERM until the day commits in progress are finished.

    A commit interrupted midway is recovered by the lake on the next write, but
    finishing it (well under a second a day) leaves a clean lake for ``lake verify``.
    The signal is delivered again right after.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    wanted = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, _frame: received.append(signum)) for s in wanted}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if received:
            signal.raise_signal(received[0])


def _require_profiler() -> None:
    """Refuse ``profile=True`` in one line when VizTracer is not installed."""
    try:
        import viztracer  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--profile needs VizTracer, which is not installed: "
            "pip install 'ticklake[profile]' (or run without --profile)",
            extra="profile",
        ) from None


def _start_tracer(path: Path, job: BatchJob | None) -> Any:
    from viztracer import VizTracer, get_tracer

    if get_tracer() is not None:  # serial executor: the run's own tracer is running
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    name = f"ticklake {job!r}" if job is not None else "ticklake analytics run"
    # 50 µs: keeps traces small enough for Perfetto while showing every real step.
    tracer = VizTracer(
        output_file=str(path),
        min_duration=50,
        verbose=0,
        process_name=name,
        tracer_entries=2_000_000,
    )
    tracer.start()
    return tracer


# ------------------------------------------------------------------------------ run
@dataclass
class PipelineRun:
    """What a run did: its id, directory, batches and per-batch summaries."""

    run_id: str
    run_dir: Path
    spec: PipelineSpec
    batches: list[tuple[date, ...]]
    frequency: str
    summaries: list[dict[str, Any]] = field(default_factory=list)
    profile_path: Path | None = None

    @property
    def rows_out(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for summary in self.summaries:
            for name, entry in summary["passes"].items():
                out[name] = out.get(name, 0) + entry["rows_out"]
        return out


def resolve_run(
    lake: Lake,
    spec: PipelineSpec,
    *,
    start: date | None = None,
    end: date | None = None,
) -> PipelineSpec:
    """Fill in the time zone, start and end from the lake where the spec leaves them open."""
    updates: dict[str, Any] = {}
    inputs = lake_inputs(spec)
    if spec.timezone is None:
        updates["timezone"] = lake.dataset_info(inputs[0]).timezone if inputs else "UTC"
    start = start or spec.start
    end = end or spec.end
    if start is None or end is None:
        days = sorted({p.date for d in dict.fromkeys(inputs) for p in lake.partitions(d)})
        if not days:
            raise ConfigError(
                f"pipeline {spec.name!r}: its inputs {inputs} have no partitions; ingest data "
                "first or give --start/--end",
                pipeline=spec.name,
            )
        start = start or days[0]
        end = end or days[-1]
    if end < start:
        raise ConfigError(f"end {end} is before start {start}", pipeline=spec.name)
    updates |= {"start": start, "end": end}
    return spec.model_copy(update=updates)


def run_pipeline(
    lake: Lake,
    spec: PipelineSpec,
    *,
    start: date | None = None,
    end: date | None = None,
    executor: str | None = None,
    workers: int | None = None,
    batch_frequency: str | None = None,
    profile: bool = False,
    progress: ProgressFn | None = None,
) -> PipelineRun:
    """Run every pass of ``spec`` over its date range; see the module docstring."""
    validate_pipeline(spec)
    for dataset in dict.fromkeys(lake_inputs(spec)):
        lake.dataset_info(dataset)  # unknown input: fail before any work, naming it
    spec = resolve_run(lake, spec, start=start, end=end)
    assert spec.start is not None and spec.end is not None
    frequency = batch_frequency or spec.batch_frequency
    if frequency == "auto":
        n_days = (spec.end - spec.start).days + 1
        frequency = choose_batch_frequency(
            estimate_rows_per_day(lake, spec, spec.start, spec.end), n_days
        )
    batches = make_batches(spec.start, spec.end, frequency)
    if profile:
        _require_profiler()  # before anything is written: no run is left "running"
    now = datetime.now(UTC)
    run_id = f"analytics-{now:%Y%m%dT%H%M%S}-{now.microsecond:06d}-{spec.spec_hash()[:8]}"
    run_dir = lake.root / "runs" / run_id
    run_dir.mkdir(parents=True)
    run = PipelineRun(run_id, run_dir, spec, batches, frequency)
    profile_dir = run_dir / "profile" if profile else None
    jobs = [
        BatchJob(
            str(lake.root),
            spec.to_json(),
            tuple(d.isoformat() for d in batch),
            index,
            str(profile_dir) if profile_dir else None,
        )
        for index, batch in enumerate(batches)
    ]
    ledger: dict[str, Any] = {
        "run_id": run_id,
        "kind": "analytics",
        "pipeline": spec.model_dump(mode="json"),
        "spec_hash": spec.spec_hash(),
        "batch_frequency": frequency,
        "batches": {str(j.index): {"days": list(j.days), "status": "pending"} for j in jobs},
        "status": "running",
        "started_at": now.isoformat(),
    }
    _save_ledger(run_dir, ledger)

    def on_result(index: int, summary: dict[str, Any]) -> None:
        days = list(batches[index])
        for pass_spec in spec.passes:
            summary["passes"][pass_spec.name]["exported_rows"] = export_days(
                lake, spec, pass_spec, days
            )
        ledger["batches"][str(index)] = {**summary, "status": "done"}
        _save_ledger(run_dir, ledger)
        run.summaries.append(summary)
        if progress is not None:
            progress({"done": len(run.summaries), "total": len(jobs), "days": days})

    chosen = executor or spec.executor or lake.settings.execution.executor
    pool = get_executor(
        chosen,
        workers=workers or spec.workers or lake.settings.execution.workers,
        fresh_worker_per_task=lake.settings.execution.fresh_worker_per_task,
    )
    if progress is not None:
        progress({"done": 0, "total": len(jobs), "days": []})
    parent_tracer = None
    try:
        if profile:
            parent_tracer = _start_tracer(run_dir / "profile" / "parent.json", None)
        pool.map(run_batch, jobs, on_result=on_result)
    except InterruptedRunError:
        ledger["status"] = "interrupted"
        _save_ledger(run_dir, ledger)
        raise
    except BaseException:
        ledger["status"] = "failed"
        _save_ledger(run_dir, ledger)
        raise
    finally:
        if parent_tracer is not None:
            parent_tracer.stop()
            parent_tracer.save()
    if profile_dir is not None:
        run.profile_path = combine_traces(profile_dir, run_dir / "profile.json")
    run.summaries.sort(key=lambda s: s["index"])
    ledger["status"] = "done"
    ledger["finished_at"] = datetime.now(UTC).isoformat()
    ledger["rows_out"] = run.rows_out
    _save_ledger(run_dir, ledger)
    return run


def combine_traces(directory: Path, output: Path) -> Path:
    """Merge the parent's and every worker's VizTracer files into one Perfetto trace."""
    from viztracer.report_builder import ReportBuilder

    files = sorted(str(p) for p in directory.glob("*.json"))
    ReportBuilder(files, verbose=0).save(output_file=str(output))
    return output


def _save_ledger(run_dir: Path, ledger: dict[str, Any]) -> None:
    write_text_atomic(
        run_dir / "run.json", json.dumps(ledger, indent=1, sort_keys=True, default=str)
    )
