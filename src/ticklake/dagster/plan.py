"""The asset graph of a lake as plain data: :func:`plan_assets` (no Dagster needed).

:mod:`ticklake.dagster.assets` turns it into Dagster objects.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ticklake.api import LakeSession, open_lake
from ticklake.errors import ConfigError

__all__ = ["AssetNode", "calendar_days", "plan_assets"]

Key = tuple[str, ...]

_LINEAGE_PATH = re.compile(r"^(bronze|silver|gold)/([^/]+)/date=")
_INTERVAL_SUFFIX = re.compile(r"(?:^|_)(\d+(?:ms|s|m|min|h|hour|d|day))$")
CHECK_NAME = "quality_rules"


@dataclass
class AssetNode:
    """One asset of the graph, before Dagster: what to call and what it depends on."""

    key: Key
    kind: str  # dataset | promote | bars | analytics | model
    deps: list[Key] = field(default_factory=list)
    #: the exchange calendar its partitions follow; None: not partitioned
    calendar: str | None = None
    #: days present in the lake (its own, else its inputs')
    days: set[date] = field(default_factory=set)
    params: dict[str, Any] = field(default_factory=dict)
    check: bool = False
    description: str = ""
    #: a multi-asset's other outputs (analytics: one key per pass), with their deps
    outputs: dict[Key, list[Key]] = field(default_factory=dict)

    @property
    def keys(self) -> list[Key]:
        return list(self.outputs) or [self.key]


def _days_of(lake: LakeSession, layer: str, name: str) -> set[date]:
    return {p.date for p in lake.partitions(name, layer=layer)}


def _lineage_deps(lake: LakeSession, layer: str, name: str) -> list[Key]:
    deps: dict[Key, None] = {}
    for part in lake.partitions(name, layer=layer):
        if part.manifest is None:
            continue
        for source in part.manifest.lineage.sources:
            match = _LINEAGE_PATH.match(source.path)
            if match and (match.group(1), match.group(2)) != (layer, name):
                deps[(match.group(1), match.group(2))] = None
    return list(deps)


def _resolve(lake: LakeSession, dataset: str) -> Key | None:
    try:
        return tuple(lake.resolve(dataset))
    except Exception:  # an unknown dataset (a ticklake error): not a lake dataset
        return None


def _pipeline_node(lake: LakeSession, path: Path) -> AssetNode:
    from ticklake.analytics.pipeline import load_pipeline

    spec = load_pipeline(path)
    outputs: dict[Key, list[Key]] = {}
    by_pass: dict[str, Key] = {}
    for spec_pass in spec.passes:
        key: Key = ("gold", spec.output_dataset(spec_pass))
        earlier = spec_pass.reads_pass(spec)
        deps: list[Key] = []
        if earlier is not None:
            deps.append(by_pass[earlier])
        else:
            found = _resolve(lake, spec_pass.input)
            deps.append(found or ("bronze", spec_pass.input))
        # datasets a preprocess step reads (an option grid's underlying, quotes, ...)
        for step in spec_pass.preprocess:
            for value in step.model_dump().values():
                if isinstance(value, str) and value != spec_pass.input:
                    found = _resolve(lake, value)
                    if found is not None and found not in deps:
                        deps.append(found)
        by_pass[spec_pass.name] = key
        outputs[key] = deps
    first = next(iter(outputs))
    return AssetNode(
        key=first,
        kind="analytics",
        params={"pipeline": str(path), "name": spec.name},
        description=spec.description or f"analytics pipeline {spec.name}",
        outputs=outputs,
    )


def _parse_bars(text: str, lake: LakeSession) -> AssetNode:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise ConfigError(f"bars= entries are 'SOURCE:INTERVAL[:OUT]', not {text!r}")
    from ticklake.bars.alignment import parse_interval

    source = _resolve(lake, parts[0])
    if source is None:
        raise ConfigError(f"bars={text!r}: no lake dataset {parts[0]!r}", dataset=parts[0])
    out = parts[2] if len(parts) == 3 else parse_interval(parts[1]).dataset_name()
    return AssetNode(
        key=("silver", out),
        kind="bars",
        deps=[source],
        params={"source": ".".join(source), "interval": parts[1], "out": out},
        check=True,
        description=f"{parts[1]} bars of {'.'.join(source)}",
    )


def plan_assets(
    lake: LakeSession | Path | str,
    *,
    pipelines: Sequence[Path | str] = (),
    datasets: Sequence[str] | None = None,
    bars: Sequence[str] = (),
    sql: bool = True,
) -> list[AssetNode]:
    """The asset graph of a lake as plain data (what :func:`definitions` builds on).

    ``datasets`` limits the dataset assets to these (``name`` or ``layer.name``; default
    every dataset); ``bars`` adds bars builds (``"SOURCE:INTERVAL[:OUT]"``) not yet in
    the lake; ``sql=False`` leaves the SQL project's models out.
    """
    from ticklake.quality.calendars import default_calendar

    session = lake if isinstance(lake, LakeSession) else open_lake(lake)
    wanted = None if datasets is None else {_resolve(session, d) or ("?", d) for d in datasets}
    nodes: dict[Key, AssetNode] = {}
    produced: set[Key] = set()  # datasets that a pipeline or a model writes

    pipeline_nodes = [_pipeline_node(session, Path(p)) for p in pipelines]
    for node in pipeline_nodes:
        produced |= set(node.outputs)
    model_nodes: list[AssetNode] = []
    if sql and _configured_project(session):
        project = session.sql_project()
        outputs = {name: spec.output for name, spec in project.models.items()}
        for plan in project.plan():
            spec = plan.spec
            key: Key = tuple(spec.output.split(".", 1))
            deps = [tuple(i.split(".", 1)) for i in plan.inputs if "." in i]
            deps += [tuple(outputs.get(m, f"main.{m}").split(".", 1)) for m in plan.depends_on]
            model_nodes.append(
                AssetNode(
                    key=key,
                    kind="model",
                    deps=[d for d in deps if d[0] in ("bronze", "silver", "gold", "main")],
                    params={"model": spec.name, "partitioned": spec.materialized == "dataset"},
                    description=spec.description or f"SQL model {spec.name}",
                )
            )
            produced.add(key)

    for info in session.datasets():
        key = (info.layer, info.name)
        if key in produced:  # the pipeline's or model's asset stands for it
            continue
        if wanted is not None and key not in wanted:
            continue
        deps = _lineage_deps(session, info.layer, info.name)
        node = AssetNode(
            key=key,
            kind="dataset",
            deps=deps,
            calendar=default_calendar(info.timezone),
            days=_days_of(session, info.layer, info.name),
            # the quality rules are for market data: bronze and silver, not derived gold
            check=info.layer != "gold",
            description=info.dataset_schema.description or f"{info.layer}.{info.name}",
        )
        interval = _INTERVAL_SUFFIX.search(info.name)
        if info.layer == "silver" and info.dataset_schema.name == "bars" and deps and interval:
            node.kind = "bars"
            node.params = {
                "source": ".".join(deps[0]),
                "interval": interval.group(1),
                "out": info.name,
            }
        elif info.layer == "silver" and deps == [("bronze", info.name)]:
            node.kind = "promote"
        nodes[key] = node
    for text in bars:
        node = _parse_bars(text, session)
        nodes.setdefault(node.key, node)
    for node in pipeline_nodes + model_nodes:
        nodes[node.key] = node

    _assign_calendars(session, nodes)
    return list(nodes.values())


def _configured_project(session: LakeSession) -> bool:
    from ticklake.warehouse.build import default_project_dir

    return (default_project_dir(session) / "models").is_dir()


def _assign_calendars(session: LakeSession, nodes: dict[Key, AssetNode]) -> None:
    """Derived assets follow their first partitioned input's calendar and days."""
    by_key: dict[Key, AssetNode] = {}
    for node in nodes.values():
        for key in node.keys:
            by_key[key] = node
    for _ in range(len(nodes) + 1):  # to a fixed point (the graph is acyclic)
        changed = False
        for node in nodes.values():
            if node.kind == "dataset" or (node.kind == "model" and not node.params["partitioned"]):
                continue
            deps = [d for k in node.keys for d in node.outputs.get(k, node.deps)]
            inputs = [by_key[d] for d in deps if d in by_key and by_key[d] is not node]
            partitioned = [n for n in inputs if n.calendar is not None]
            if not partitioned:
                continue
            calendar = partitioned[0].calendar
            days = set().union(*(n.days for n in partitioned if n.calendar == calendar))
            own: set[date] = set()  # days it has already (off its inputs' days too)
            for key in node.keys:
                if key[0] in ("bronze", "silver", "gold") and key[0] in session.layers_of(key[1]):
                    own |= _days_of(session, key[0], key[1])
            if (calendar, days | own) != (node.calendar, node.days):
                node.calendar, node.days = calendar, days | own
                changed = True
        if not changed:
            return


def calendar_days(calendar: str, days: set[date], until: date | None = None) -> list[str]:
    """The partition keys: the calendar's sessions from the first day present to the
    last (or ``until``), plus every day present off-calendar."""
    if not days:
        return []
    first, last = min(days), max(max(days), until or max(days))
    sessions: set[date]
    try:
        from ticklake.quality.calendars import session_bounds_ns

        sessions = set(session_bounds_ns(calendar, first, last))
    except Exception:  # an unknown calendar or a range outside it: every day
        sessions = {first + timedelta(days=i) for i in range((last - first).days + 1)}
    return sorted(d.isoformat() for d in sessions | days)


def job_name(calendar: str) -> str:
    return "ticklake_" + re.sub(r"[^A-Za-z0-9]+", "_", calendar).strip("_").lower() + "_days"
