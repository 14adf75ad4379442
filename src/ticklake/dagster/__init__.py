"""Dagster assets for a lake: ``definitions(lake)`` returns Dagster ``Definitions``.

The optional ``ticklake[dagster]`` extra (``make install-dagster`` puts it in a venv of
its own, ``.venv/dagster-env``). Nothing else in ticklake imports this module, and this
module imports ``dagster`` only inside :func:`definitions`, so ``import ticklake.dagster``
works without it (:func:`plan_assets`, the asset graph as plain data, needs no Dagster).

What maps to what (``docs/dagster.md``):

- every lake dataset is an asset keyed ``[layer, name]``, partitioned by trading day:
  the sessions of the dataset's exchange calendar (from its time zone, as the quality
  rules choose it) between its first and last day, plus any day present off-calendar;
- a bronze dataset's materialisation checks the committed partition and reports it
  (the data comes from ``ticklake ingest``); a promoted silver dataset calls
  ``lake.promote``; a bars dataset (or a ``bars=["SOURCE:INTERVAL"]`` build) calls
  ``lake.bars(source, interval, out=..., start=day, end=day)``;
- each analytics pipeline (``pipelines=[YAML, ...]``) is one multi-asset with one asset
  per pass (its gold dataset); a partition runs ``lake.analytics(yaml, start=day, end=day)``;
- each SQL model of the lake's SQL project is an asset (``[layer, name]`` for a dataset
  model, partitioned; ``[main, name]`` for a view or table); it runs ``lake.sql_build``;
- dependencies come from the partitions' lineage, the passes' inputs and the models'
  references;
- each dataset asset (not the gold outputs of passes and models) carries a blocking asset
  check ``quality_rules``: ``lake.validate(dataset, start=day, end=day)``; a FAIL verdict
  fails the check (INVESTIGATE passes it, with the verdict in its metadata);
- one job and one daily schedule per calendar: the schedule asks for the days present
  in the lake that some asset of the calendar has not materialised yet.

Every commit goes through the lake, so a re-materialisation of an unchanged day is a
no-op (same spec and inputs: the partition's file and sha256 stay).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from ticklake.api import LakeSession
from ticklake.dagster.plan import AssetNode, calendar_days, plan_assets

__all__ = ["AssetNode", "calendar_days", "definitions", "plan_assets"]


def definitions(
    lake: LakeSession | Path | str,
    *,
    pipelines: Sequence[Path | str] = (),
    datasets: Sequence[str] | None = None,
    bars: Sequence[str] = (),
    sql: bool = True,
    until: date | None = None,
    cron: str = "0 2 * * *",
    validate_options: dict[str, dict[str, Any]] | None = None,
) -> Any:
    """Dagster ``Definitions`` for a lake (see the module docstring).

    ``pipelines``, ``datasets``, ``bars`` and ``sql`` are those of :func:`plan_assets`;
    ``until`` extends the partitions to that day on each calendar (default: the last day
    present); ``cron`` is the schedules' cron (daily at 02:00 by default);
    ``validate_options`` maps a dataset (``layer.name``) to keyword options of
    ``lake.validate`` (``rules``, ``parameters``, ``calendar``).
    """
    from ticklake.dagster.assets import build

    root = lake.root if isinstance(lake, LakeSession) else Path(lake)
    nodes = plan_assets(root, pipelines=pipelines, datasets=datasets, bars=bars, sql=sql)
    return build(
        root,
        nodes,
        until=until,
        cron=cron,
        validate_options=validate_options or {},
    )
