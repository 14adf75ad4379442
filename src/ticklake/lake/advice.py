"""How to rebuild a partition: the command that wrote it, from its lineage and layer.

bronze is re-ingested from the source files its lineage names (a re-ingest restores
the days whose partitions are missing even though the sources were ingested before);
silver bars are rebuilt by ``ticklake bars build`` / ``rollup``; other silver datasets
are promoted from bronze by ``ticklake validate --promote``; gold is re-made by the
analytics pipeline run whose spec hash the lineage records; a SQL model's dataset (either
layer) by ``ticklake sql build MODEL``.
"""

from __future__ import annotations

import json
import re
import shlex
from datetime import date
from pathlib import Path
from typing import Any

from ticklake.lake.lake import Lake
from ticklake.lake.layout import DATASET_FILE, RUNS_DIR, SOURCES_FILE
from ticklake.lake.manifest import DatasetInfo, Lineage


def _sources_ledger(lake: Lake, layer: str, dataset: str) -> list[dict[str, Any]]:
    path = lake.root / layer / dataset / SOURCES_FILE
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _bronze(lake: Lake, dataset: str, day: date, lineage: Lineage | None) -> str:
    ledger = _sources_ledger(lake, "bronze", dataset)
    by_sha = {str(r.get("sha256")): r for r in ledger}
    wanted: dict[str, str | None] = {}
    if lineage is not None:
        for source in lineage.sources:
            record = by_sha.get(source.sha256)
            wanted[source.path] = str(record.get("format")) if record else None
    if not wanted:  # no lineage left: the sources whose recorded days include the day
        for record in ledger:
            if day.isoformat() in (record.get("days") or []):
                wanted[str(record.get("path"))] = str(record.get("format"))
    if not wanted:
        return (
            f"re-ingest the source files of {day} with `ticklake ingest FORMAT FILES "
            f"--dataset {dataset}`"
        )
    by_format: dict[str, list[str]] = {}
    for path, fmt in wanted.items():
        by_format.setdefault(fmt or "FORMAT", []).append(path)
    commands = [
        f"`ticklake ingest {fmt} {' '.join(shlex.quote(p) for p in paths)} --dataset {dataset}`"
        for fmt, paths in sorted(by_format.items())
    ]
    return "re-ingest its sources: " + "; ".join(commands)


def _is_bars(lake: Lake, layer: str, dataset: str) -> bool:
    try:
        info = DatasetInfo.read(lake.root / layer / dataset / DATASET_FILE)
    except (OSError, ValueError):
        return False
    return info.dataset_schema.name == "bars"


def _silver(lake: Lake, dataset: str, day: date, lineage: Lineage | None) -> str:
    span = f"--start {day} --end {day}"
    if not _is_bars(lake, "silver", dataset):
        return (
            "promote the day again from bronze: "
            f"`ticklake validate bronze.{dataset} {span} --promote`"
        )
    match = re.fullmatch(r"bars_(\w+)", dataset)
    interval = match.group(1) if match else "INTERVAL"
    source = "SOURCE"
    if lineage is not None and lineage.sources:
        parts = Path(lineage.sources[0].path).parts
        if len(parts) >= 2:
            source = f"{parts[0]}.{parts[1]}"
    verb = (
        "rollup" if source.startswith("silver.") and _is_bars(lake, *source.split(".")) else "build"
    )
    return (
        f"rebuild the bars: `ticklake bars {verb} --dataset {source} --interval {interval} "
        f"--out {dataset} {span}`"
    )


def _gold(lake: Lake, day: date, lineage: Lineage | None) -> str:
    spec_hash = lineage.spec_hash if lineage is not None else None
    run = None
    if spec_hash:
        for ledger_path in sorted((lake.root / RUNS_DIR).glob("*/run.json")):
            try:
                ledger = json.loads(ledger_path.read_text())
            except (OSError, ValueError):
                continue
            if ledger.get("kind") == "analytics" and ledger.get("spec_hash") == spec_hash:
                run = ledger_path.parent.name
    where = (
        f" (spec hash {spec_hash[:12]}…" + (f", run {run})" if run else ")") if spec_hash else ""
    )
    return (
        f"re-run the analytics pipeline that wrote it{where}: "
        f"`ticklake analytics run PIPELINE --start {day} --end {day}`"
    )


#: How a SQL model's dataset describes itself (``ticklake.warehouse`` writes it).
MODEL_DESCRIPTION_PREFIX = "SQL model "


def _model(lake: Lake, layer: str, dataset: str) -> str | None:
    try:
        info = DatasetInfo.read(lake.root / layer / dataset / DATASET_FILE)
    except (OSError, ValueError):
        return None
    if not info.dataset_schema.description.startswith(MODEL_DESCRIPTION_PREFIX):
        return None
    return info.dataset_schema.name


def rebuild_advice(lake: Lake, layer: str, dataset: str, day: date, lineage: Lineage | None) -> str:
    """One sentence: the command that rebuilds ``layer.dataset`` on ``day``."""
    model = _model(lake, layer, dataset) if layer != "bronze" else None
    if model is not None:
        return (
            f"rebuild it from its SQL model: `ticklake sql build {model} --start {day} --end {day}`"
        )
    if layer == "bronze":
        return _bronze(lake, dataset, day, lineage)
    if layer == "silver":
        return _silver(lake, dataset, day, lineage)
    return _gold(lake, day, lineage)
