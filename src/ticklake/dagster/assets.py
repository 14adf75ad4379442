"""Dagster objects from the asset graph of :func:`ticklake.dagster.plan_assets`.

Imported by :func:`ticklake.dagster.definitions` only, after ``dagster`` is known to be
installed. Every materialisation opens the lake afresh (a step may run in a process of
its own) and calls the facade's verbs, as the CLI does: ``promote``, ``bars``,
``analytics``, ``sql_build`` and ``validate``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from ticklake.api import LakeSession, open_lake
from ticklake.dagster.plan import CHECK_NAME, AssetNode, Key, calendar_days, job_name

#: the ``dagster`` module, imported by :func:`build` (so that importing this module, as
#: ``pytest --doctest-modules`` does, needs no Dagster)
dg: Any = None


def _import_dagster() -> Any:
    global dg
    if dg is None:
        try:
            import dagster
        except ImportError as exc:
            raise ImportError(
                "ticklake.dagster needs Dagster: install the extra with "
                "`pip install 'ticklake[dagster]'` (or `make install-dagster`)"
            ) from exc
        dg = dagster
    return dg


def _partition(lake: LakeSession, key: Key, day: date) -> Any:
    for part in lake.partitions(key[1], layer=key[0]):
        if part.date == day:
            return part
    return None


def _partition_metadata(lake: LakeSession, key: Key, day: date | None) -> dict[str, Any]:
    if day is None or key[0] not in ("bronze", "silver", "gold"):
        return {}
    part = _partition(lake, key, day)
    if part is None:
        return {"rows": 0, "partition": "none (no rows that day)"}
    manifest = part.manifest
    return {
        "rows": manifest.rows if manifest else part.rows,
        "file_sha256": manifest.file_sha256 if manifest else "",
        "spec_hash": (manifest.lineage.spec_hash or "") if manifest else "",
        "path": dg.MetadataValue.path(str(part.path)),
    }


def _check(
    lake: LakeSession, key: Key, day: date | None, options: dict[str, dict[str, Any]]
) -> Any:
    dataset = ".".join(key)
    window = {"start": day, "end": day} if day is not None else {}
    report = lake.validate(dataset, **window, **options.get(dataset, {}))
    failing = sorted({r for rules in report.failing_days.values() for r in rules})
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(list(key)),
        check_name=CHECK_NAME,
        passed=report.verdict != "FAIL",
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "verdict": report.verdict,
            "reason": report.verdict_reason,
            "failing_rules": ", ".join(failing) or "none",
        },
    )


def _run(node: AssetNode, lake: LakeSession, day: date | None) -> dict[str, Any]:
    """Commit ``node``'s partition ``day`` through the lake; returns run metadata."""
    if node.kind == "dataset":
        part = _partition(lake, node.key, day) if day is not None else None
        if part is None:
            from ticklake.lake.advice import rebuild_advice

            assert day is not None
            advice = rebuild_advice(lake, node.key[0], node.key[1], day, None)
            raise dg.Failure(f"{'.'.join(node.key)} has no partition for {day}: {advice}")
        lake.check_partitions([part])  # the committed file is what its manifest says
        return {"verb": "check_partitions"}
    if node.kind == "promote":
        assert day is not None
        result = lake.promote(node.key[1], [day])
        if day in result.held_back:
            raise dg.Failure(f"{day} held back from silver: {result.held_back[day]}")
        return {"verb": "promote", "promoted": len(result.promoted)}
    if node.kind == "bars":
        p = node.params
        summary = lake.bars(p["source"], p["interval"], out=p["out"], start=day, end=day)
        status = ", ".join(f"{d.day} {d.status}" for d in summary.days) or "no rows"
        return {"verb": "bars", "status": status}
    if node.kind == "analytics":
        run = lake.analytics(node.params["pipeline"], start=day, end=day)
        return {"verb": "analytics", "run_id": run.run_id}
    if node.kind == "model":
        builds = lake.sql_build([node.params["model"]], start=day, end=day)
        built = sum(b.days_built for b in builds)
        return {"verb": "sql_build", "days_built": built, "models": len(builds)}
    raise AssertionError(node.kind)  # pragma: no cover


def _compute(node: AssetNode, root: Path, options: dict[str, dict[str, Any]]) -> Any:
    # `context` stays unannotated: Dagster refuses a string annotation (future import)
    def compute(context) -> Iterator[Any]:
        day = date.fromisoformat(context.partition_key) if node.calendar else None
        lake = open_lake(root)
        info = _run(node, lake, day)
        for key in node.keys:
            checks = [_check(lake, key, day, options)] if node.check else []
            yield dg.MaterializeResult(
                asset_key=dg.AssetKey(list(key)),
                metadata={**info, **_partition_metadata(lake, key, day)},
                check_results=checks,
            )

    return compute


def build(
    root: Path,
    nodes: list[AssetNode],
    *,
    until: date | None,
    cron: str,
    validate_options: dict[str, dict[str, Any]],
) -> Any:
    """The ``Definitions``: assets, their checks, one job and schedule per calendar."""
    _import_dagster()
    partitions: dict[str, Any] = {}
    members: dict[str, list[AssetNode]] = {}
    for node in nodes:
        if node.calendar is None:
            continue
        members.setdefault(node.calendar, []).append(node)
    for calendar, group in members.items():
        days = set().union(*(n.days for n in group))
        partitions[calendar] = dg.StaticPartitionsDefinition(calendar_days(calendar, days, until))

    assets = []
    for node in nodes:
        pdef = partitions.get(node.calendar) if node.calendar else None
        specs = [
            dg.AssetSpec(
                dg.AssetKey(list(key)),
                deps=[dg.AssetKey(list(d)) for d in node.outputs.get(key, node.deps)],
                description=node.description,
                group_name=key[0],
                kinds={"ticklake", "duckdb"} if node.kind == "model" else {"ticklake"},
                metadata={
                    "ticklake/kind": node.kind,
                    **{f"ticklake/{k}": str(v) for k, v in node.params.items()},
                },
            )
            for key in node.keys
        ]
        check_specs = [
            dg.AssetCheckSpec(
                CHECK_NAME,
                asset=dg.AssetKey(list(key)),
                blocking=True,
                description="ticklake quality rules on the day (lake.validate); FAIL fails it",
            )
            for key in node.keys
            if node.check
        ]
        name = (
            "__".join(node.key).replace("-", "_")
            if not node.outputs
            else ("pipeline__" + str(node.params["name"]))
        )
        assets.append(
            dg.multi_asset(
                name=name,
                specs=specs,
                check_specs=check_specs or None,
                partitions_def=pdef,
                can_subset=False,
            )(_compute(node, root, validate_options))
        )

    jobs, schedules = [], []
    for calendar, group in members.items():
        keys = [dg.AssetKey(list(k)) for n in group for k in n.keys]
        job = dg.define_asset_job(
            job_name(calendar),
            selection=dg.AssetSelection.assets(*keys),
            description=f"materialise a day of every asset on the {calendar} calendar",
        )
        jobs.append(job)
        schedules.append(_schedule(job, partitions[calendar], calendar, group, root, cron))
    return dg.Definitions(assets=assets, jobs=jobs, schedules=schedules)


def new_days(instance: Any, root: Path, group: list[AssetNode], known: set[str]) -> list[str]:
    """Days present in the lake (a dataset of ``group`` has them) that some asset of the
    group has not materialised yet, oldest first."""
    lake = open_lake(root)
    present: set[str] = set()
    for node in group:
        if node.kind == "dataset":
            present |= {p.date.isoformat() for p in lake.partitions(node.key[1], layer=node.key[0])}
    missing: set[str] = set()
    for node in group:
        for key in node.keys:
            done = instance.get_materialized_partitions(dg.AssetKey(list(key)))
            missing |= present - set(done)
    return sorted(missing & known)


def _schedule(
    job: Any, pdef: Any, calendar: str, group: list[AssetNode], root: Path, cron: str
) -> Any:
    @dg.schedule(
        job=job,
        cron_schedule=cron,
        name=job.name.removesuffix("_days") + "_new_days",
        description=f"materialise the new days of the {calendar} assets",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    def schedule(context: Any) -> Any:
        known = set(pdef.get_partition_keys())
        days = new_days(context.instance, root, group, known)
        if not days:
            return dg.SkipReason(f"no new {calendar} day in the lake")
        return [dg.RunRequest(run_key=f"{job.name}:{day}", partition_key=day) for day in days]

    return schedule
