"""Day quarantine: record days that fail validation, and promote the rest to silver.

``<lake>/quarantine/<dataset>/_days.json`` lists quarantined days of a bronze dataset::

    {"dataset": "nifty", "days": [{"date": "2022-08-27", "rules": ["S2", "S3"],
      "report": "reports/nifty.md", "run_id": "...", "recorded_at": "..."}]}

Recording a validation run replaces the entries for every day that run validated:
a day that now passes leaves the quarantine, a day that still fails is updated, and
days outside the run are kept. :func:`promote` copies passing bronze days to a silver
dataset of the same name through ``Lake.write`` (merge + atomic commit), skipping
quarantined days unless ``force``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from ticklake.lake import Lake
from ticklake.lake.commit import write_text_atomic
from ticklake.lake.layout import LOCK_DIR, QUARANTINE_DIR
from ticklake.lake.locking import file_lock
from ticklake.lake.manifest import SourceRef, utc_now_iso
from ticklake.quality.report import ValidationReport

DAYS_FILE = "_days.json"


def quarantine_days_path(lake: Lake, dataset: str) -> Path:
    return lake.root / QUARANTINE_DIR / dataset / DAYS_FILE


def quarantined_days(lake: Lake, dataset: str) -> dict[date, dict[str, Any]]:
    """Quarantined days of ``dataset`` (plain name), with their failed rules and report."""
    path = quarantine_days_path(lake, dataset)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {date.fromisoformat(entry["date"]): entry for entry in data.get("days", [])}


def record_quarantine(
    lake: Lake, report: ValidationReport, report_path: str | None = None
) -> dict[date, list[str]]:
    """Quarantine the report's failing days (and release its passing ones); return the failing."""
    path = quarantine_days_path(lake, report.dataset)
    lock = lake.root / LOCK_DIR / QUARANTINE_DIR / report.dataset / "_days.lock"
    failing = report.failing_days
    with file_lock(lock, lake.settings.lake.lock_timeout_seconds, f"quarantine {report.dataset}"):
        entries = quarantined_days(lake, report.dataset)
        for day in report.days:
            entries.pop(day, None)
        now = utc_now_iso()
        for day, rules in failing.items():
            entries[day] = {
                "date": day.isoformat(),
                "rules": rules,
                "report": report_path,
                "run_id": report.run_id,
                "recorded_at": now,
            }
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"dataset": report.dataset, "days": [entries[d] for d in sorted(entries)]}
        write_text_atomic(path, json.dumps(body, indent=1) + "\n")
    return failing


@dataclass
class PromoteResult:
    """Which days went to silver and which were held back (and why)."""

    dataset: str
    promoted: list[date] = field(default_factory=list)
    held_back: dict[date, str] = field(default_factory=dict)
    rows: int = 0


def promote(
    lake: Lake,
    dataset: str,
    days: list[date],
    *,
    failing: dict[date, list[str]] | None = None,
    force: bool = False,
) -> PromoteResult:
    """Copy bronze ``days`` of ``dataset`` to ``silver.<dataset>``.

    Days in ``failing`` (this run's failing days) or in the quarantine are held back
    unless ``force``. Each promoted day is one ``Lake.write`` (atomic per day), its
    lineage naming the bronze partition and its sha256.
    """
    info = lake.dataset_info(dataset, "bronze")
    quarantine = quarantined_days(lake, info.name)
    failing = failing or {}
    result = PromoteResult(info.name)
    by_day = {p.date: p for p in lake.partitions(info.name, layer="bronze")}
    for day in sorted(days):
        reason = None
        if day in failing:
            reason = "failed " + ", ".join(failing[day])
        elif day in quarantine:
            reason = "quarantined (" + ", ".join(quarantine[day].get("rules", [])) + ")"
        if reason and not force:
            result.held_back[day] = reason
            continue
        part = by_day.get(day)
        if part is None:
            continue
        lake.check_partitions([part])  # never promote altered bronze rows to silver
        frame = pl.read_parquet(part.path)
        source = SourceRef(
            path=f"bronze/{info.name}/date={day.isoformat()}/data.parquet",
            sha256=part.manifest.file_sha256 if part.manifest else "",
        )
        lake.write(
            info.name,
            frame,
            layer="silver",
            schema=info.dataset_schema,
            timezone=info.timezone,
            day_offset=info.day_offset,
            sources=[source],
            input_is_unique=True,
        )
        result.promoted.append(day)
        result.rows += frame.height
    return result
