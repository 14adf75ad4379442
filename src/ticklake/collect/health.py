"""The health file: ``<lake>/health/heartbeat.json`` and ``health.md``.

Written by the orchestrator every ``heartbeat_seconds`` (and a final one on stop).
Status, worst first:

- ``ERROR``: a stream silent for longer than ``silent_error_seconds`` (default 120), or
  a job that failed 3 times in a row.
- ``DEGRADED``: a job whose last run failed, an unrecoverable gap today, or less than
  5 % of the disk free.
- ``HEALTHY``: none of these.
- ``STOPPED``: the orchestrator stopped cleanly (the last heartbeat says so).

``ticklake health`` prints it and exits with :data:`EXIT_CODES` so a monitoring probe can
test it: 0 HEALTHY, 20 DEGRADED, 21 ERROR, 22 STOPPED or a heartbeat older than three
periods (the orchestrator is gone), 23 no heartbeat at all.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ticklake.lake.commit import write_text_atomic

HEALTH_DIR = "health"
HEARTBEAT = "heartbeat.json"
EXIT_CODES = {"HEALTHY": 0, "DEGRADED": 20, "ERROR": 21, "STOPPED": 22, "STALE": 22, "MISSING": 23}


@dataclass
class JobState:
    """What the orchestrator knows of one scheduled job."""

    name: str
    kind: str
    every_seconds: float
    runs: int = 0
    failures_in_a_row: int = 0
    last_started: float | None = None
    last_seconds: float | None = None
    last_result: str | None = None  # "ok: ..." | "failed: ..."
    next_due: float = 0.0

    def snapshot(self) -> dict[str, Any]:
        started = self.last_started
        return {
            "kind": self.kind,
            "every_seconds": self.every_seconds,
            "runs": self.runs,
            "last_run": None if started is None else _iso(started),
            "last_seconds": None if self.last_seconds is None else round(self.last_seconds, 3),
            "last_result": self.last_result,
            "failures_in_a_row": self.failures_in_a_row,
        }


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds")


@dataclass
class Health:
    """Builds and writes the heartbeat from the collectors' stats and the jobs."""

    lake_root: Path
    heartbeat_seconds: float = 30.0
    silent_error_seconds: float = 120.0
    jobs: dict[str, JobState] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return self.lake_root / HEALTH_DIR

    def build(self, collectors: list[Any], *, stopped: bool = False) -> dict[str, Any]:
        now_ns = time.time_ns()
        today = datetime.now(UTC).date()
        streams: dict[str, Any] = {}
        reasons: list[tuple[str, str]] = []
        for collector in collectors:
            snap = collector.stats.snapshot(now_ns)
            gaps_today = _gaps_today(collector.gaps.read(), today)
            for name, s in snap["streams"].items():
                key = f"{snap['market']}:{name}"
                last = s["last_recv_ns"]
                silent = None if last is None else (now_ns - last) / 1e9
                unrecovered = [g for g in gaps_today.get(name, []) if not g["recovered"]]
                streams[key] = {
                    "last_message": None if last is None else _iso(last / 1e9),
                    "silent_seconds": None if silent is None else round(silent, 1),
                    "rate_per_second": s["rate_per_second"],
                    "latency_ms_p50": s["latency_ms"]["p50"],
                    "latency_ms_p95": s["latency_ms"]["p95"],
                    "gaps_today": len(gaps_today.get(name, [])),
                    "unrecovered_gaps_today": len(unrecovered),
                    "lines_written": s["written"],
                }
                if silent is not None and silent > self.silent_error_seconds:
                    reasons.append(("ERROR", f"{key}: no message for {silent:.0f} s"))
                if unrecovered:
                    reasons.append(
                        ("DEGRADED", f"{key}: {len(unrecovered)} unrecoverable gap(s) today")
                    )
            for name, gaps in gaps_today.items():  # a stream with gaps but no stats yet
                lost = [g for g in gaps if not g["recovered"]]
                if name not in snap["streams"] and lost:
                    reasons.append(
                        (
                            "DEGRADED",
                            f"{snap['market']}:{name}: {len(lost)} unrecoverable gap(s) today",
                        )
                    )
        for job in self.jobs.values():
            if job.failures_in_a_row >= 3:
                reasons.append(
                    ("ERROR", f"job {job.name}: failed {job.failures_in_a_row} times in a row")
                )
            elif job.failures_in_a_row:
                reasons.append(("DEGRADED", f"job {job.name}: last run {job.last_result}"))
        disk = shutil.disk_usage(self.lake_root)
        free = disk.free / disk.total if disk.total else 1.0
        if free < 0.05:
            reasons.append(("DEGRADED", f"disk {free:.1%} free"))
        status = "STOPPED" if stopped else "HEALTHY"
        if not stopped:
            for level in ("ERROR", "DEGRADED"):
                if any(r[0] == level for r in reasons):
                    status = level
                    break
        return {
            "status": status,
            "reasons": [text for _, text in reasons],
            "written_at": _iso(now_ns / 1e9),
            "written_ns": now_ns,
            "heartbeat_seconds": self.heartbeat_seconds,
            "pid": os.getpid(),
            "streams": streams,
            "collectors": [
                {"market": c.stats.market, "gaps_file": str(c.gaps.path)}
                for c in collectors
                if hasattr(c.gaps, "path")
            ],
            "jobs": {name: job.snapshot() for name, job in self.jobs.items()},
            "disk_free_bytes": disk.free,
            "disk_free_share": round(free, 4),
        }

    def write(self, collectors: list[Any], *, stopped: bool = False) -> dict[str, Any]:
        beat = self.build(collectors, stopped=stopped)
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, text in ((HEARTBEAT, json.dumps(beat, indent=1)), ("health.md", render(beat))):
            write_text_atomic(self.directory / name, text)
        return beat


def _gaps_today(gaps: list[dict[str, Any]], today: Any) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for gap in gaps:
        if datetime.fromtimestamp(gap["recorded_ns"] / 1e9, tz=UTC).date() == today:
            out.setdefault(gap["stream"], []).append(gap)
    return out


def render(beat: dict[str, Any]) -> str:
    """``health.md``: the heartbeat for a person."""
    lines = [
        f"# ticklake health: {beat['status']}",
        "",
        f"Written {beat['written_at']} "
        f"(every {beat['heartbeat_seconds']:g} s, pid {beat['pid']}); disk "
        f"{beat['disk_free_share']:.1%} free.",
        "",
    ]
    lines += [f"- {r}" for r in beat["reasons"]] or ["- nothing to report"]
    lines += [
        "",
        "| stream | last message | msg/s | p50 ms | p95 ms | gaps today | lost |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in beat["streams"].items():
        lines.append(
            f"| {name} | {s['last_message']} | {s['rate_per_second']} | "
            f"{s['latency_ms_p50']} | {s['latency_ms_p95']} | {s['gaps_today']} | "
            f"{s['unrecovered_gaps_today']} |"
        )
    lines += [
        "",
        "| job | every | runs | last run | seconds | result |",
        "|---|---|---|---|---|---|",
    ]
    for name, j in beat["jobs"].items():
        lines.append(
            f"| {name} ({j['kind']}) | {j['every_seconds']:g} s | {j['runs']} | "
            f"{j['last_run']} | {j['last_seconds']} | {j['last_result']} |"
        )
    return "\n".join(lines) + "\n"


def read_health(lake_root: Path) -> tuple[str, dict[str, Any] | None]:
    """(status for the exit code, the heartbeat): STALE when older than 3 periods."""
    path = Path(lake_root) / HEALTH_DIR / HEARTBEAT
    if not path.is_file():
        return "MISSING", None
    beat = dict(json.loads(path.read_text()))
    age = (time.time_ns() - beat["written_ns"]) / 1e9
    if beat["status"] != "STOPPED" and age > 3 * beat["heartbeat_seconds"]:
        return "STALE", beat
    return str(beat["status"]), beat
