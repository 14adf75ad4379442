"""Background jobs of the dashboard: backtests, sweeps, pipelines and validations.

A job runs in a small thread pool (never in the request), calling the same library
function the CLI calls, with the lake's configured executor (so a ``process`` lake
still runs each day in a spawned worker). Its state lives in memory and in
``<lake>/jobs/<job_id>.json``, rewritten atomically on every change, so a restarted
server lists past jobs; jobs that were queued or running when it stopped are marked
``interrupted`` and can be resumed (a backtest through
:func:`ticklake.backtest.runner.resume_backtest`, keeping its finished days).

A backtest, sweep or resume job's progress also carries ``eta_seconds``,
``elapsed_seconds`` and ``eta_model`` (:mod:`ticklake.backtest.eta`, as the CLI's bar).

Cancelling sets an event that the library's ``progress`` callback checks: it raises
:class:`~ticklake.errors.InterruptedRunError` after the day (or batch) in flight, so
the run's ledger says ``interrupted`` and it can be resumed later. A validation has no
progress hook: cancelling one that runs takes effect when it ends (the job is marked
``cancelled``; the report it wrote stays).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from ticklake.api import LakeSession
from ticklake.backtest.runner import new_run_id
from ticklake.errors import ConfigError, InterruptedRunError, TicklakeError
from ticklake.lake.commit import write_text_atomic
from ticklake.lake.manifest import utc_now_iso
from ticklake.web.errors import JobStateError, ResourceNotFoundError, json_safe

JOBS_DIR = "jobs"
JOB_KINDS = ("backtest", "sweep", "pipeline", "validate", "resume")
ACTIVE = frozenset({"queued", "running"})
RESUMABLE = frozenset({"interrupted", "cancelled", "failed"})
JOB_ID = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{8}$")


@dataclass
class Job:
    """One job's state; ``progress`` is the latest dict from the library's callback."""

    job_id: str
    kind: str
    params: dict[str, Any]
    status: str = "queued"
    created_at: str = field(default_factory=utc_now_iso)
    started_at: str | None = None
    finished_at: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    run_id: str | None = None
    resumed_from: str | None = None
    title: str = ""

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


class _Cancelled(InterruptedRunError):
    """Raised from a progress callback when the user cancelled the job."""


ProgressFn = Callable[[dict[str, Any]], None]
JobRunner = Callable[["JobManager", Job, ProgressFn], dict[str, Any]]


class JobManager:
    """Queue, run, persist, cancel and resume jobs over one lake."""

    def __init__(
        self,
        lake: LakeSession,
        *,
        workers: int = 1,
        executor: str | None = None,
        executor_workers: int | None = None,
    ) -> None:
        self.lake = lake
        self.executor = executor
        self.executor_workers = executor_workers
        self.directory = lake.root / JOBS_DIR
        self._jobs: dict[str, Job] = {}
        self._versions: dict[str, int] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._futures: dict[str, Future[None]] = {}
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="tl-job")
        self._load()

    # ------------------------------------------------------------------ state
    def _load(self) -> None:
        """Read persisted jobs; those that were active when the server stopped are interrupted."""
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("*.json")):
            try:
                data = json.loads(path.read_text())
                job = Job(**data)
            except (OSError, ValueError, TypeError):
                continue  # a foreign or damaged file is not a job; leave it alone
            if job.status in ACTIVE:
                job.status = "interrupted"
                job.finished_at = job.finished_at or utc_now_iso()
                job.error = {
                    "type": "InterruptedRunError",
                    "message": "the server stopped while this job was "
                    + ("queued" if job.started_at is None else "running")
                    + "; resume it to finish",
                }
                self._persist(job)
            self._jobs[job.job_id] = job
            self._versions[job.job_id] = 0

    def _persist(self, job: Job) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        text = json.dumps(job.to_dict(), indent=1, sort_keys=True) + "\n"
        write_text_atomic(self.directory / f"{job.job_id}.json", text)

    def _update(self, job: Job, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(job, key, value)
            self._versions[job.job_id] = self._versions.get(job.job_id, 0) + 1
            self._persist(job)

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id) if JOB_ID.match(job_id) else None
            if job is None:
                raise ResourceNotFoundError(f"no job {job_id!r}", job_id=job_id)
            return job

    def snapshot(self, job_id: str) -> tuple[int, dict[str, Any]]:
        """The job's change counter and a copy of its state (for server-sent events)."""
        with self._lock:
            job = self.get(job_id)
            return self._versions.get(job_id, 0), job.to_dict()

    def list(self, *, limit: int = 100, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            jobs = [j for j in self._jobs.values() if kind is None or j.kind == kind]
        jobs.sort(key=lambda j: (j.created_at, j.job_id), reverse=True)
        return [j.to_dict() for j in jobs[:limit]]

    # ------------------------------------------------------------ submit/run
    def submit(self, kind: str, params: dict[str, Any], *, resumed_from: str | None = None) -> Job:
        """Validate ``params`` now (errors reach the caller), then queue the job."""
        if kind not in RUNNERS:
            raise ConfigError(f"unknown job kind {kind!r}; kinds: {', '.join(JOB_KINDS)}")
        prepared, title, run_id = PREPARERS[kind](self, params)
        now = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        job = Job(
            job_id=f"{now}-{uuid.uuid4().hex[:8]}",
            kind=kind,
            params=prepared,
            run_id=run_id,
            resumed_from=resumed_from,
            title=title,
        )
        with self._lock:
            self._jobs[job.job_id] = job
            self._cancel[job.job_id] = threading.Event()
            self._update(job)
            self._futures[job.job_id] = self._pool.submit(self._run, job)
        return job

    def _run(self, job: Job) -> None:
        cancel = self._cancel[job.job_id]
        if cancel.is_set():
            return
        self._update(job, status="running", started_at=utc_now_iso())

        def progress(state: dict[str, Any]) -> None:
            self._update(job, progress=json_safe(dict(state)))
            if cancel.is_set():
                raise _Cancelled("cancelled from the dashboard; resume the job to finish it")

        try:
            result = RUNNERS[job.kind](self, job, progress)
        except InterruptedRunError as exc:
            status = "cancelled" if cancel.is_set() else "interrupted"
            self._finish(job, status, error=exc)
            return
        except TicklakeError as exc:
            self._finish(job, "failed", error=exc)
            return
        except Exception as exc:  # a bug in a library function: keep the job record honest
            self._finish(job, "failed", error=exc)
            return
        if cancel.is_set():
            self._finish(job, "cancelled", result=result)
            return
        self._finish(job, "done", result=result)

    def _finish(
        self,
        job: Job,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: BaseException | None = None,
    ) -> None:
        payload = None
        if error is not None:
            payload = {"type": type(error).__name__, "message": str(error)}
        changes: dict[str, Any] = {}
        if isinstance(job.progress, dict) and "eta_seconds" in job.progress:
            changes["progress"] = {**job.progress, "eta_seconds": 0.0}  # nothing is left
        self._update(
            job,
            status=status,
            finished_at=utc_now_iso(),
            result=json_safe(result or {}),
            error=payload,
            **changes,
        )

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        with self._lock:
            if job.status not in ACTIVE:
                raise JobStateError(
                    f"job {job_id} is {job.status}; only queued or running jobs can be cancelled",
                    job_id=job_id,
                )
            self._cancel.setdefault(job_id, threading.Event()).set()
            future = self._futures.get(job_id)
            if job.status == "queued" and future is not None and future.cancel():
                self._finish(job, "cancelled")
        return job

    def resume(self, job_id: str) -> Job:
        """Start a job that finishes an interrupted, cancelled or failed one."""
        job = self.get(job_id)
        if job.status not in RESUMABLE:
            raise JobStateError(
                f"job {job_id} is {job.status}; only interrupted, cancelled or failed jobs resume",
                job_id=job_id,
            )
        run_dir = self.lake.root / "runs" / job.run_id if job.run_id else None
        if (
            job.kind in ("backtest", "sweep", "resume")
            and run_dir
            and (run_dir / "run.json").is_file()
        ):
            params = {k: job.params.get(k) for k in ("executor", "workers") if job.params.get(k)}
            return self.submit("resume", {**params, "run_id": job.run_id}, resumed_from=job_id)
        return self.submit(job.kind, job.params, resumed_from=job_id)

    def wait(self, job_id: str, timeout_seconds: float = 60.0) -> Job:
        """Block until the job is no longer queued or running (tests, CLI)."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            job = self.get(job_id)
            if job.status not in ACTIVE:
                return job
            time.sleep(0.05)
        raise TimeoutError(
            f"job {job_id} still {self.get(job_id).status} after {timeout_seconds} s"
        )

    def shutdown(self, *, wait: bool = True) -> None:
        """Cancel what runs (after its current day) and stop the pool."""
        with self._lock:
            for job_id, job in self._jobs.items():
                if job.status in ACTIVE:
                    self._cancel.setdefault(job_id, threading.Event()).set()
        self._pool.shutdown(wait=wait, cancel_futures=True)

    # --------------------------------------------------------------- helpers
    def executor_for(self, params: dict[str, Any]) -> tuple[str | None, int | None]:
        return params.get("executor") or self.executor, params.get("workers") or (
            self.executor_workers
        )


# ------------------------------------------------------------------ preparation
def _apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for dotted, value in overrides.items():
        target = data
        *parents, leaf = str(dotted).split(".")
        for key in parents:
            child = target.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {dotted!r}: {key!r} is not a mapping", key=dotted)
            target = child
        target[leaf] = value
    return data


def strategy_from_request(params: dict[str, Any]) -> Any:
    """A validated StrategySpec from ``{"spec": {...}}`` or ``{"template": NAME}`` + overrides."""
    from ticklake.backtest.spec import parse_spec

    overrides = params.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(
            "overrides must map dotted keys to values, e.g. {'time.end': '2024-01-09'}"
        )
    data, source = _strategy_data(params)
    if "sweep" in data:
        raise ConfigError(
            f"{source} has 'sweep' axes: submit it as a sweep job (kind 'sweep'); "
            "/api/v1/strategies/validate reports its grid size"
        )
    return parse_spec(_apply_overrides(data, overrides), source=source)


def _strategy_data(params: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The raw strategy mapping of a request: ``spec`` JSON or a ``template`` name."""
    import yaml

    from ticklake.strategies import template_path

    if params.get("template") and params.get("spec") is not None:
        raise ConfigError(
            "give the strategy as 'spec' or as 'template', not both (a template's settings "
            "can be changed with 'overrides')"
        )
    if params.get("template"):
        data = yaml.safe_load(template_path(str(params["template"])).read_text())
        return data, f"template {params['template']}"
    if isinstance(params.get("spec"), dict):
        return json.loads(json.dumps(params["spec"])), "strategy"
    raise ConfigError("give a strategy as 'spec' (its JSON) or 'template' (a template name)")


def _check_executor(params: dict[str, Any]) -> dict[str, Any]:
    from ticklake.execution import EXECUTORS

    executor = params.get("executor")
    if executor is not None and executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    workers = params.get("workers")
    if workers is not None and (not isinstance(workers, int) or not 1 <= workers <= 64):
        raise ConfigError("workers must be a whole number from 1 to 64")
    return {"executor": executor, "workers": workers}


def _prepare_backtest(
    manager: JobManager, params: dict[str, Any]
) -> tuple[dict[str, Any], str, str]:
    from ticklake.backtest.spec import spec_document

    spec = strategy_from_request(params)
    instruments = [spec.instrument_dataset(leg) for leg in spec.legs if leg.instrument]
    for dataset in (spec.universe.options_dataset, spec.universe.underlying_dataset, *instruments):
        if dataset:
            manager.lake.dataset_info(dataset)  # unknown dataset: 404 now, not a failed job
    prepared = {
        "spec": spec_document(spec),
        "use_cache": bool(params.get("use_cache", True)),
        **_check_executor(params),
    }
    return prepared, f"backtest {spec.name}", new_run_id(spec.name)


def _start_eta(manager: JobManager, job: Job, progress: ProgressFn, specs: list[Any]) -> ProgressFn:
    """Send the first state, with the prior's ETA; return ``progress`` adding the ETA fields."""
    from ticklake.backtest.eta import run_eta
    from ticklake.backtest.runner import plan_days

    days = sorted({d.isoformat() for spec in specs for d in plan_days(spec)})  # as run_sweep
    executor, workers = manager.executor_for(job.params)
    kind = "sweep" if job.kind == "sweep" else "backtest"
    use_cache = job.params.get("use_cache", True)
    eta = run_eta(manager.lake, specs, days, executor=executor, workers=workers,
                  use_cache=use_cache, kind=kind)  # fmt: skip
    start = {"days_done": 0, "days_total": len(days), "fills": 0, "net_pnl_paise": 0}
    progress({**start, **eta.fields()})
    return eta.wrap(progress)


def _run_backtest(manager: JobManager, job: Job, progress: ProgressFn) -> dict[str, Any]:
    from ticklake.backtest.spec import parse_spec

    spec = parse_spec(job.params["spec"])
    executor, workers = manager.executor_for(job.params)
    result = manager.lake.backtest(
        spec,
        executor=executor,
        workers=workers,
        run_id=job.run_id,
        use_cache=job.params.get("use_cache", True),
        progress=_start_eta(manager, job, progress, [spec]),
    )
    return {"run_id": result.run_id, "status": result.status, "totals": result.ledger["totals"]}


def _prepare_resume(manager: JobManager, params: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    from ticklake.backtest.runner import RUNS_DIR

    run_id = str(params.get("run_id") or "")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", run_id) or run_id in (".", ".."):
        raise ConfigError("run_id must name a run directory under runs/")
    if not (manager.lake.root / RUNS_DIR / run_id / "run.json").is_file():
        raise ResourceNotFoundError(f"no run {run_id!r} to resume", run_id=run_id)
    return {"run_id": run_id, **_check_executor(params)}, f"resume {run_id}", run_id


def _run_resume(manager: JobManager, job: Job, progress: ProgressFn) -> dict[str, Any]:
    from ticklake.backtest.eta import resume_eta
    from ticklake.backtest.runner import RUNS_DIR

    executor, workers = manager.executor_for(job.params)
    run_dir = manager.lake.root / RUNS_DIR / job.params["run_id"]
    eta = resume_eta(manager.lake, run_dir, executor=executor, workers=workers)
    progress(eta.fields())
    result = manager.lake.resume(
        str(run_dir), executor=executor, workers=workers, progress=eta.wrap(progress)
    )
    return {"run_id": result.run_id, "status": result.status, "totals": result.ledger.get("totals")}


def sweep_document(sweep: Any) -> dict[str, Any]:
    """The sweep as ``POST /jobs/sweep`` takes it: the template with its axes and constraints."""
    return {**sweep.template, "sweep": sweep.axes, "constraints": list(sweep.constraints)}


def sweep_from_request(params: dict[str, Any]) -> Any:
    """A SweepSpec from ``{"spec": {..., "sweep": {...}}}`` or a sweep ``template`` + overrides."""
    from ticklake.backtest.sweep import sweep_from_data

    data, source = _strategy_data(params)
    if "sweep" not in data:
        raise ConfigError(f"{source} has no 'sweep' axes: submit it as a backtest job")
    return sweep_from_data(_apply_overrides(data, params.get("overrides") or {}), source=source)


def _prepare_sweep(manager: JobManager, params: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    from ticklake.backtest.sweep import RANK_STATISTICS, expand

    sweep = sweep_from_request(params)
    variants = expand(sweep)  # bad axes, constraints or variants fail now, with a 422
    first = variants[0].spec
    for dataset in (first.universe.options_dataset, first.universe.underlying_dataset):
        if dataset:
            manager.lake.dataset_info(dataset)
    rank_by = params.get("rank_by") or "total_net_pnl_paise"
    if rank_by not in RANK_STATISTICS:
        raise ConfigError(f"rank_by {rank_by!r}: use one of {', '.join(RANK_STATISTICS)}")
    prepared = {
        "spec": sweep_document(sweep),
        "rank_by": rank_by,
        "use_cache": bool(params.get("use_cache", True)),
        **_check_executor(params),
    }
    title = f"sweep {first.name} ({len(variants)} of {sweep.grid_size} variants)"
    run_id = new_run_id(f"{first.name}-sweep")
    return json_safe(prepared), title, run_id


def _run_sweep(manager: JobManager, job: Job, progress: ProgressFn) -> dict[str, Any]:
    from ticklake.backtest.sweep import expand

    sweep = sweep_from_request(job.params)
    executor, workers = manager.executor_for(job.params)
    progress = _start_eta(manager, job, progress, [v.spec for v in expand(sweep)])
    result = manager.lake.sweep(
        sweep,
        executor=executor,
        workers=workers,
        run_id=job.run_id,
        use_cache=job.params.get("use_cache", True),
        rank_by=job.params.get("rank_by") or "total_net_pnl_paise",
        progress=progress,
    )
    return {"run_id": result.run_id, "status": result.status, "variants": result.ledger["variants"]}


def _prepare_pipeline(
    manager: JobManager, params: dict[str, Any]
) -> tuple[dict[str, Any], str, None]:
    from ticklake.analytics.pipeline import LakeTargetSpec, parse_pipeline

    data = params.get("pipeline")
    if data is None and isinstance(params.get("pipeline_yaml"), str):
        from ticklake.web.yaml_input import load_yaml

        data = load_yaml(params["pipeline_yaml"], "the pipeline")  # no tags, bounded aliases
        data = json.loads(json.dumps(data, default=str))
    if not isinstance(data, dict):
        raise ConfigError("give the pipeline as 'pipeline' (its JSON, as in a pipeline YAML file)")
    spec = parse_pipeline(data, source="pipeline")
    # The web may not import code or write outside the lake: no metric modules, lake targets only.
    if spec.metric_modules:
        raise ConfigError(
            "metric_modules are not allowed from the dashboard (they import Python code); "
            "install the metrics as a plugin or run the pipeline with `ticklake analytics run`"
        )
    targets = [*spec.targets, *(t for p in spec.passes for t in (p.targets or ()))]
    if any(not isinstance(t, LakeTargetSpec) for t in targets):
        raise ConfigError(
            "only lake targets are allowed from the dashboard; write to Delta, PostgreSQL or "
            "files with `ticklake analytics run`"
        )
    prepared = {
        "pipeline": spec.model_dump(mode="json"),
        "start": params.get("start"),
        "end": params.get("end"),
        **_check_executor(params),
    }
    return prepared, f"pipeline {spec.name}", None


def _run_pipeline(manager: JobManager, job: Job, progress: ProgressFn) -> dict[str, Any]:
    from datetime import date

    from ticklake.analytics.pipeline import parse_pipeline

    spec = parse_pipeline(job.params["pipeline"])
    executor, workers = manager.executor_for(job.params)
    start, end = job.params.get("start"), job.params.get("end")
    run = manager.lake.analytics(
        spec,
        start=date.fromisoformat(start) if start else None,
        end=date.fromisoformat(end) if end else None,
        executor=executor,
        workers=workers,
        progress=progress,
    )
    outputs = [spec.output_dataset(p) for p in spec.passes]
    return {"run_id": run.run_id, "rows_out": run.rows_out, "datasets": outputs}


def _prepare_validate(
    manager: JobManager, params: dict[str, Any]
) -> tuple[dict[str, Any], str, None]:
    dataset = params.get("dataset")
    if not isinstance(dataset, str):
        raise ConfigError("give the dataset to validate as 'dataset'")
    info = manager.lake.dataset_info(dataset)
    rules = params.get("rules")
    if rules is not None and (
        not isinstance(rules, list) or not all(isinstance(r, str) for r in rules)
    ):
        raise ConfigError("rules must be a list of rule ids, e.g. ['R1', 'R5']")
    parameters = params.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ConfigError("parameters must map rule ids to their settings")
    prepared = {
        "dataset": f"{info.layer}.{info.name}",
        "start": params.get("start"),
        "end": params.get("end"),
        "rules": rules,
        "parameters": parameters,
        **_check_executor(params),
    }
    return prepared, f"validate {info.layer}.{info.name}", None


def _run_validate(manager: JobManager, job: Job, progress: ProgressFn) -> dict[str, Any]:
    executor, workers = manager.executor_for(job.params)
    report = manager.lake.validate(
        job.params["dataset"],
        start=job.params.get("start"),
        end=job.params.get("end"),
        rules=job.params.get("rules"),
        parameters=job.params.get("parameters") or None,
        executor=executor,
        workers=workers,
    )
    report_id = report.write_to_lake(manager.lake.root)
    progress({"done": 1, "total": 1})
    return {"report_id": report_id, "verdict": report.verdict}


Preparer = Callable[[JobManager, dict[str, Any]], tuple[dict[str, Any], str, str | None]]
PREPARERS: dict[str, Preparer] = {
    "backtest": _prepare_backtest,
    "resume": _prepare_resume,
    "sweep": _prepare_sweep,
    "pipeline": _prepare_pipeline,
    "validate": _prepare_validate,
}
RUNNERS: dict[str, JobRunner] = {
    "backtest": _run_backtest,
    "resume": _run_resume,
    "sweep": _run_sweep,
    "pipeline": _run_pipeline,
    "validate": _run_validate,
}
