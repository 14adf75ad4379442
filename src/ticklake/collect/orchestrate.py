"""``ticklake orchestrate CONFIG.toml``: collectors and the daily steps in one process.

One asyncio process runs the collectors (each its own tasks) and a scheduler for jobs:

=============  ================================================================
job ``kind``   what it does
=============  ================================================================
``route``      ``ingest binance_raw``: the raw parts of ``raw`` into ``prefix_*``
``bars``       ``bars build``: ``dataset`` to ``interval`` bars (only changed days)
``validate``   the quality rules on ``dataset`` (the verdict is the job's result)
``backfill``   REST ``klines`` / ``aggTrades`` of the last ``days`` days into ``raw``
``prune_raw``  delete raw parts older than ``retention_days`` that were routed
``compact``    ``lake repack`` each closed day of ``dataset`` (default: every bronze
               ``prefix_*`` dataset) once: sorted, in the lake's row groups
=============  ================================================================

Schedules are intervals (``every = "5m"``, ``"30s"``, ``"1h"``, ``"1d"``) and
``on_start = true`` runs a job at start-up too: a small loop, deliberately, instead of a
cron library, since the steps are periodic and a loop keeps one process and one clock
(a cron library would add a dependency for a feature these jobs do not use). A job runs
in a daemon thread, so it never blocks the collectors; a failure is logged, reported in
the heartbeat and retried after ``min(every, retry_seconds x 2^failures)``; it never takes
the collectors down. SIGINT / SIGTERM stops everything within 10 s: collectors close their
open parts, the final heartbeat says ``STOPPED``; a job still running is abandoned (every
lake commit is atomic, so it leaves nothing half-visible).

Config::

    lake = "lake"                 # paths are relative to the config file
    heartbeat_seconds = 30
    [[collectors]]                # the keys of `ticklake collect binance`
    market = "spot"
    symbols = ["BTCUSDT"]
    streams = ["aggTrade", "bookTicker", "depth"]
    out = "raw"
    [[jobs]]
    name = "route"
    kind = "route"
    every = "5m"
    raw = "raw"
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ticklake.collect.backfill import BackfillSpec, run_backfill
from ticklake.collect.binance import BinanceCollector, CollectorConfig
from ticklake.collect.health import Health, JobState
from ticklake.collect.logs import rotating_log
from ticklake.collect.rawfile import list_parts
from ticklake.collect.route import route_raw
from ticklake.errors import ConfigError
from ticklake.lake import Lake
from ticklake.lake.commit import write_text_atomic
from ticklake.lake.manifest import sha256_file

log = logging.getLogger("ticklake.collect.orchestrate")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
STOP_SECONDS = 10.0


def parse_every(value: str | float) -> float:
    """``"5m"`` -> 300.0; a number is seconds."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        try:
            seconds = float(text[:-1]) * UNITS[text[-1]] if text[-1] in UNITS else float(text)
        except (ValueError, IndexError):
            raise ValueError(f"every = {value!r}: use seconds or 30s / 5m / 1h / 1d") from None
    if seconds <= 0:
        raise ValueError(f"every = {value!r} must be positive")
    return seconds


class JobConfig(BaseModel):
    """One scheduled job (see the module's table for each ``kind``'s keys)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["route", "bars", "validate", "backfill", "prune_raw", "compact"]
    every: str | float
    on_start: bool = False
    retry_seconds: float = Field(30.0, gt=0)
    raw: Path | None = None
    prefix: str = "binance"
    dataset: str | None = None
    interval: str = "1m"
    market: Literal["spot", "usdm"] = "spot"
    symbols: list[str] = Field(default_factory=list)
    fetch: Literal["klines", "aggTrades"] = "klines"
    days: int = Field(1, ge=0)
    rest_url: str | None = None
    retention_days: float = Field(7.0, gt=0)

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | float) -> str | float:
        parse_every(value)
        return value


class OrchestratorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lake: Path
    heartbeat_seconds: float = Field(30.0, gt=0)
    silent_error_seconds: float = Field(120.0, gt=0)
    collectors: list[CollectorConfig] = Field(default_factory=list)
    jobs: list[JobConfig] = Field(default_factory=list)


def load_config(path: Path) -> OrchestratorConfig:
    """Read ``CONFIG.toml``; relative paths are relative to its directory."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it as TOML ({exc})") from None
    base = path.resolve().parent

    def anchor(value: Any) -> Any:
        return value if value is None or Path(value).is_absolute() else str(base / value)

    data["lake"] = anchor(data.get("lake"))
    for collector in data.get("collectors", []):
        collector["out"] = anchor(collector.get("out"))
    for job in data.get("jobs", []):
        if "raw" in job:
            job["raw"] = anchor(job["raw"])
    try:
        return OrchestratorConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None


# --------------------------------------------------------------------------- jobs
def _route(lake: Lake, job: JobConfig) -> str:
    assert job.raw is not None
    if not list_parts(job.raw):
        return "ok: no raw parts yet"
    summary = route_raw(lake, job.raw, job.prefix)
    added = sum(summary.rows_added(d) for d in summary.datasets)
    return f"ok: {summary.parts_read} part(s), {added:,} row(s) added"


def _bars(lake: Lake, job: JobConfig) -> str:
    from ticklake.bars import build_bars

    assert job.dataset is not None
    summary = build_bars(lake, job.dataset, job.interval, executor="serial")
    built = sum(1 for d in summary.days if d.status == "built")
    return f"ok: {built} day(s) built, {len(summary.days) - built} unchanged"


def _validate(lake: Lake, job: JobConfig) -> str:
    from ticklake.quality import validate_dataset

    assert job.dataset is not None
    report = validate_dataset(lake, job.dataset, executor="serial")
    if report.verdict == "FAIL":
        raise RuntimeError(f"verdict FAIL on {len(report.days)} day(s)")
    return f"ok: verdict {report.verdict} on {len(report.days)} day(s)"


def _prune(lake: Lake, job: JobConfig) -> str:
    """Delete raw parts older than the retention whose sha256 a routed dataset records."""
    assert job.raw is not None
    cutoff = time.time() - job.retention_days * 86400
    routed: set[str] = set()
    for info in lake.datasets():
        if info.name.startswith(job.prefix + "_"):
            routed |= set(lake.ingested_sources(info.name, info.layer))
    removed = kept = 0
    for part in list_parts(job.raw):
        if part.stat().st_mtime >= cutoff:
            continue
        if sha256_file(part) in routed:
            part.unlink()
            removed += 1
        else:
            kept += 1  # never delete what the lake does not hold
    return f"ok: {removed} part(s) removed, {kept} old part(s) kept (not routed yet)"


COMPACTED_FILE = Path("health") / "compacted.json"


def _compact(lake: Lake, job: JobConfig) -> str:
    """Repack each closed trading day once; a day changed since (late data) again.

    A day is closed when it is before today in the dataset's time zone. What was
    compacted (the partition's sha256 after the repack) is kept in
    ``<lake>/health/compacted.json``, so a day is rewritten only when it changed.
    """
    from ticklake.lake.repack import repack

    path = lake.root / COMPACTED_FILE
    try:
        done: dict[str, dict[str, str]] = json.loads(path.read_text())
    except FileNotFoundError:
        done = {}
    except ValueError:
        done = {}  # unreadable: at worst each closed day is repacked once more
    if job.dataset is not None:
        targets = [lake.resolve(job.dataset)]
    else:
        targets = [
            (i.layer, i.name)
            for i in lake.datasets()
            if i.layer == "bronze" and i.name.startswith(job.prefix + "_")
        ]
    compacted = 0
    for layer, name in targets:
        info = lake.dataset_info(name, layer)
        today = datetime.now(ZoneInfo(info.timezone)).date()
        record = done.setdefault(f"{layer}.{name}", {})
        for part in lake.partitions(name, layer):
            if part.date >= today or part.manifest is None:
                continue
            if record.get(str(part.date)) == part.manifest.file_sha256:
                continue
            repack(lake, name, layer=layer, start=part.date, end=part.date)
            after = next(p for p in lake.partitions(name, layer) if p.date == part.date)
            assert after.manifest is not None
            record[str(part.date)] = after.manifest.file_sha256
            compacted += 1
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, json.dumps(done, indent=1, sort_keys=True))
    return f"ok: {compacted} closed day(s) compacted in {len(targets)} dataset(s)"


SYNC_JOBS: dict[str, Callable[[Lake, JobConfig], str]] = {
    "compact": _compact,
    "route": _route,
    "bars": _bars,
    "validate": _validate,
    "prune_raw": _prune,
}


def _in_thread(fn: Callable[[], str]) -> asyncio.Future[str]:
    """Run ``fn`` in a daemon thread (abandoned, not joined, if the process stops)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def target() -> None:
        try:
            result = fn()
        except BaseException as exc:  # reported on the loop
            loop.call_soon_threadsafe(_settle, future, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, future, result, None)

    threading.Thread(target=target, daemon=True, name="ticklake-job").start()
    return future


def _settle(future: asyncio.Future[str], result: str | None, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result or "")


class Orchestrator:
    """Collectors + scheduled jobs + the heartbeat; ``await run()`` until stopped."""

    def __init__(self, config: OrchestratorConfig) -> None:
        self.config = config
        self.lake = Lake(config.lake)
        self.collectors = [BinanceCollector(c) for c in config.collectors]
        self.health = Health(self.lake.root, config.heartbeat_seconds, config.silent_error_seconds)
        now = time.monotonic()
        for job in config.jobs:
            every = parse_every(job.every)
            self.health.jobs[job.name] = JobState(
                job.name, job.kind, every, next_due=now if job.on_start else now + every
            )
        self._stop = asyncio.Event()
        self._running: dict[str, asyncio.Future[str]] = {}

    def stop(self) -> None:
        self._stop.set()

    async def _run_job(self, job: JobConfig, state: JobState) -> None:
        state.last_started = time.time()
        started = time.perf_counter()
        try:
            if job.kind == "backfill":
                result = await self._backfill(job)
            else:
                fn = SYNC_JOBS[job.kind]
                future = _in_thread(lambda: fn(self.lake, job))
                self._running[job.name] = future
                result = await future
            state.failures_in_a_row = 0
            state.last_result = result
            state.next_due = time.monotonic() + state.every_seconds
            log.info("job %s: %s", job.name, result)
        except Exception as exc:  # a job never takes the collectors down
            state.failures_in_a_row += 1
            state.last_result = f"failed: {type(exc).__name__}: {exc}"[:300]
            retry = min(state.every_seconds, job.retry_seconds * 2 ** (state.failures_in_a_row - 1))
            state.next_due = time.monotonic() + retry
            log.warning("job %s %s; retry in %.0f s", job.name, state.last_result, retry)
        finally:
            self._running.pop(job.name, None)
            state.runs += 1
            state.last_seconds = time.perf_counter() - started

    async def _backfill(self, job: JobConfig) -> str:
        assert job.raw is not None
        today = datetime.now(UTC).date()
        spec = BackfillSpec(
            market=job.market,
            symbols=job.symbols,
            kind=job.fetch,
            interval=job.interval,
            start=today - timedelta(days=job.days),
            end=today,
            out=job.raw,
            rest_url=job.rest_url,
        )
        summary = await run_backfill(spec)
        return f"ok: {sum(summary.lines.values()):,} line(s) in {summary.pages} page(s)"

    async def _scheduler(self) -> None:
        jobs = {j.name: j for j in self.config.jobs}
        tasks: dict[str, asyncio.Task[None]] = {}
        while not self._stop.is_set():
            now = time.monotonic()
            for name, state in self.health.jobs.items():
                busy = name in tasks and not tasks[name].done()
                if not busy and now >= state.next_due:
                    tasks[name] = asyncio.create_task(self._run_job(jobs[name], state))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.2)
        for task in tasks.values():
            task.cancel()

    async def _heartbeat(self) -> None:
        while not self._stop.is_set():
            self.health.write(self.collectors)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.heartbeat_seconds)

    async def run(self, duration: float | None = None) -> dict[str, Any]:
        """Run until :meth:`stop` (or ``duration`` seconds); returns the final heartbeat."""
        collector_tasks = [asyncio.create_task(c.run()) for c in self.collectors]
        helpers = [asyncio.create_task(self._scheduler()), asyncio.create_task(self._heartbeat())]
        try:
            if duration is None:
                await self._stop.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), duration)
        finally:
            self._stop.set()
            deadline = time.monotonic() + STOP_SECONDS - 1
            for collector in self.collectors:
                collector.stop()
            _, pending = await asyncio.wait(
                [*collector_tasks, *helpers], timeout=max(0.1, deadline - time.monotonic())
            )
            for task in pending:
                task.cancel()
            if self._running:
                log.warning("stopping with job(s) still running: %s", ", ".join(self._running))
        return self.health.write(self.collectors, stopped=True)


def log_to_file(lake_root: Path) -> Path:
    """A rotating log in ``<lake>/health/orchestrator.log`` (10 MB x 5)."""
    return rotating_log(lake_root / "health", "orchestrator.log")
