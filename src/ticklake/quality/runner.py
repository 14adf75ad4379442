"""Run quality rules over a dataset, one task per partition-day through an executor.

Each task reads its partition once (the union of the columns its rules need), runs
every applicable rule's ``check`` and, for cross-day rules, ``summarize``, and returns
small results. The parent then runs ``conclude`` for cross-day rules and builds the
:class:`~ticklake.quality.report.ValidationReport`. Cross-day rules that look back
(copied days) also get summaries of up to ``lookback_days`` partitions before the range.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import polars as pl

from ticklake._version import __version__
from ticklake.errors import ConfigError
from ticklake.execution import get_executor
from ticklake.lake import Lake
from ticklake.lake.manifest import utc_now_iso
from ticklake.quality.base import (
    DatasetContext,
    PartitionContext,
    Rule,
    RuleFinding,
    RuleParameters,
)
from ticklake.quality.calendars import default_calendar
from ticklake.quality.registry import select_rule_classes
from ticklake.quality.report import ValidationReport, build_report


@dataclass(frozen=True)
class DayTask:
    """One partition to check (picklable: rules travel with their parameters)."""

    context: PartitionContext
    rules: tuple[Rule, ...]
    #: only build cross-day summaries (a look-back day outside the validated range)
    summaries_only: bool = False


@dataclass
class DayOutcome:
    day: date
    rows: int
    findings: dict[str, RuleFinding] = field(default_factory=dict)
    summaries: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def check_partition(task: DayTask) -> DayOutcome:
    """Read one partition and run every rule of ``task`` on it."""
    started = time.perf_counter()
    schema = task.context.schema
    wanted: set[str] = set()
    for rule in task.rules:
        cols = rule.columns(schema)
        if cols is None:
            wanted = set(schema.column_names)
            break
        wanted |= cols
    columns = [c for c in schema.column_names if c in wanted]
    frame = pl.read_parquet(task.context.path, columns=columns)
    outcome = DayOutcome(task.context.day, frame.height)
    for rule in task.rules:
        if rule.cross_day:
            outcome.summaries[rule.id] = rule.summarize(frame, task.context)
        if task.summaries_only:
            continue
        finding = rule.check(frame, task.context)
        if finding is not None:
            outcome.findings[rule.id] = finding
    outcome.seconds = time.perf_counter() - started
    return outcome


def build_rules(
    rules: Sequence[str] | None, parameters: Mapping[str, Mapping[str, Any] | RuleParameters] | None
) -> list[Rule]:
    """Instantiate the selected rules with their parameters (keys: rule id or name)."""
    classes = select_rule_classes(rules)
    parameters = dict(parameters or {})
    out = []
    for cls in classes:
        params = parameters.pop(cls.id, None) or parameters.pop(cls.name, None)
        out.append(cls(params))
    if parameters:
        raise ConfigError(
            f"parameters given for rule(s) not selected or unknown: {', '.join(parameters)}; "
            f"selected: {', '.join(c.id for c in classes)}",
            rules=list(parameters),
        )
    return out


def _as_date(value: date | str | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def validate_dataset(
    lake: Lake,
    dataset: str,
    start: date | str | None = None,
    end: date | str | None = None,
    rules: Sequence[str] | None = None,
    *,
    parameters: Mapping[str, Mapping[str, Any] | RuleParameters] | None = None,
    layer: str | None = None,
    calendar: str | None = None,
    executor: str | None = None,
    workers: int | None = None,
) -> ValidationReport:
    """Validate a dataset's partitions in [start, end] and return the report.

    ``rules`` selects rules by id, name or family prefix (``["R1", "R5"]``; default all
    that apply to the dataset's schema). ``parameters`` maps a rule id (or name) to its
    thresholds, e.g. ``{"R6": {"max_spread_fraction": 0.1}, "R7": {"reference_dataset":
    "klines"}}``. ``calendar`` overrides the exchange calendar chosen from the dataset's
    time zone.

    Examples:
        >>> import tempfile, polars as pl
        >>> from datetime import datetime, timezone
        >>> from ticklake.lake import init_lake
        >>> lake = init_lake(tempfile.mkdtemp() + "/lake")
        >>> frame = pl.DataFrame({
        ...     "ts": [datetime(2024, 1, 2, 10, s, tzinfo=timezone.utc) for s in range(3)],
        ...     "instrument": ["X"] * 3, "price": [10.0, -1.0, 10.0]})
        >>> _ = lake.write("px", frame, schema="prices")
        >>> report = validate_dataset(lake, "px", rules=["R2"])
        >>> report.rule("R2").violations, report.verdict
        (1, 'FAIL')
    """
    started_at = utc_now_iso()
    started = time.perf_counter()
    info = lake.dataset_info(dataset, layer)
    schema = info.dataset_schema
    first, last = _as_date(start), _as_date(end)
    partitions = lake.partitions(info.name, layer=info.layer)
    all_days = tuple(p.date for p in partitions)
    chosen = [
        p
        for p in partitions
        if (first is None or p.date >= first) and (last is None or p.date <= last)
    ]
    context = DatasetContext(
        lake_root=str(lake.root),
        layer=info.layer,
        dataset=info.name,
        schema=schema,
        timezone=info.timezone,
        day_offset=info.day_offset,
        calendar=calendar or default_calendar(info.timezone),
        all_days=all_days,
        days=tuple(p.date for p in chosen),
        start=first,
        end=last,
    )
    selected = build_rules(rules, parameters)
    applicable: list[Rule] = []
    skipped: dict[str, str] = {}
    for rule in selected:
        if not rule.applies_to(schema):
            if rules is not None and rule.id in {r.strip() for r in rules}:
                skipped[rule.id] = f"does not apply to schema {schema.name}"
            continue
        reason = rule.skip_reason(context)
        if reason is not None:
            skipped[rule.id] = reason
        else:
            applicable.append(rule)
    tasks = [
        DayTask(PartitionContext(context, p.date, str(p.path)), tuple(applicable)) for p in chosen
    ]
    lookback = max((getattr(r, "lookback_days", 0) for r in applicable if r.cross_day), default=0)
    if chosen and lookback:
        cross = tuple(r for r in applicable if r.cross_day)
        window_start = chosen[0].date - timedelta(days=lookback)
        tasks += [
            DayTask(PartitionContext(context, p.date, str(p.path)), cross, summaries_only=True)
            for p in partitions
            if window_start <= p.date < chosen[0].date
        ]
    # The day tasks read these files by path: check them against their commits first.
    read = {task.context.day for task in tasks}
    lake.check_partitions([p for p in partitions if p.date in read])
    run = get_executor(
        executor or lake.settings.execution.executor,
        workers=workers or lake.settings.execution.workers,
        fresh_worker_per_task=False,
    )
    outcomes: list[DayOutcome] = run.map(check_partition, tasks)
    findings: dict[str, list[RuleFinding]] = {r.id: [] for r in applicable}
    for task, outcome in zip(tasks, outcomes, strict=True):
        if task.summaries_only:
            continue
        for rule_id, finding in outcome.findings.items():
            findings[rule_id].append(finding)
    for rule in applicable:
        if rule.cross_day:
            summaries = {o.day: o.summaries.get(rule.id) for o in outcomes}
            findings[rule.id].extend(rule.conclude(summaries, context))
    return build_report(
        run_id=time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8],
        context=context,
        rules=applicable,
        skipped=skipped,
        findings=findings,
        rows=sum(o.rows for t, o in zip(tasks, outcomes, strict=True) if not t.summaries_only),
        started_at=started_at,
        seconds=time.perf_counter() - started,
        executor=run.name,
        version=__version__,
    )
