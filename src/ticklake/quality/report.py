"""Validation reports: rule summaries, the verdict, and Markdown / JSON renderings.

Verdict rule (the thresholds are each rule's parameters, printed in the report):

- a rule **fails** when its violations exceed ``allowed_violation_share`` of what it
  checked (0 by default; R6 allows 0.1 %). Violations within the allowance are
  *tolerated*;
- **FAIL** when any rule of severity ``error`` fails;
- **INVESTIGATE** when no error rule fails but a ``warning`` rule does;
- **PASS** otherwise (``info`` rules never change the verdict).

A day *fails* when an ``error`` rule fails on that day alone; those are the days
``--quarantine-failing`` records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from ticklake.lake.commit import write_text_atomic
from ticklake.quality.base import (
    MAX_OFFENDING_ROWS,
    DatasetContext,
    Rule,
    RuleFinding,
    Severity,
    merge_statistics,
)

VERDICTS = ("PASS", "INVESTIGATE", "FAIL")


QUALITY_REPORTS_DIR = Path("reports") / "quality"


@dataclass
class RuleSummary:
    """One rule over the whole run."""

    id: str
    name: str
    description: str
    severity: str
    unit: str
    parameters: dict[str, Any]
    checked: int = 0
    violations: int = 0
    status: str = "pass"  # pass | tolerated | fail | noted (info) | not checked | skipped
    statistics: dict[str, float] = field(default_factory=dict)
    offending: pl.DataFrame = field(default_factory=pl.DataFrame)
    failed_days: list[date] = field(default_factory=list)
    skip_reason: str | None = None

    @property
    def share(self) -> float:
        return self.violations / self.checked if self.checked else 0.0

    @property
    def allowed_share(self) -> float:
        return float(self.parameters.get("allowed_violation_share", 0.0))


@dataclass
class ValidationReport:
    """What ``validate_dataset`` found; ``write`` renders Markdown and JSON."""

    run_id: str
    lake: str
    layer: str
    dataset: str
    schema: str
    timezone: str
    calendar: str
    start: date | None
    end: date | None
    days: list[date]
    rows: int
    started_at: str
    seconds: float
    executor: str
    version: str
    rules: list[RuleSummary]
    #: per day, per rule id: (checked, violations)
    day_results: dict[date, dict[str, tuple[int, int]]]
    verdict: str = "PASS"
    verdict_reason: str = ""
    report_paths: list[str] = field(default_factory=list)

    def rule(self, rule_id: str) -> RuleSummary:
        for summary in self.rules:
            if summary.id == rule_id or summary.name == rule_id:
                return summary
        raise KeyError(f"rule {rule_id!r} is not in this report ({[r.id for r in self.rules]})")

    @property
    def failing_days(self) -> dict[date, list[str]]:
        """Days on which an error rule fails, with those rules."""
        out: dict[date, list[str]] = {}
        for summary in self.rules:
            if summary.severity != Severity.error:
                continue
            for day in summary.failed_days:
                out.setdefault(day, []).append(summary.id)
        return dict(sorted(out.items()))

    @property
    def passing_days(self) -> list[date]:
        failing = self.failing_days
        return [d for d in self.days if d not in failing]

    # ------------------------------------------------------------------ render
    def to_dict(self) -> dict[str, Any]:
        return {
            "run": {
                "run_id": self.run_id,
                "lake": self.lake,
                "dataset": f"{self.layer}.{self.dataset}",
                "schema": self.schema,
                "timezone": self.timezone,
                "calendar": self.calendar,
                "start": _iso(self.start),
                "end": _iso(self.end),
                "days_validated": len(self.days),
                "first_day": _iso(self.days[0]) if self.days else None,
                "last_day": _iso(self.days[-1]) if self.days else None,
                "rows": self.rows,
                "started_at": self.started_at,
                "seconds": round(self.seconds, 3),
                "executor": self.executor,
                "ticklake_version": self.version,
            },
            "verdict": self.verdict,
            "verdict_reason": self.verdict_reason,
            "verdict_rule": VERDICT_RULE,
            "summary": [
                {
                    "rule": r.id,
                    "name": r.name,
                    "severity": r.severity,
                    "unit": r.unit,
                    "checked": r.checked,
                    "violations": r.violations,
                    "percent": round(100 * r.share, 6),
                    "allowed_percent": round(100 * r.allowed_share, 6),
                    "status": r.status,
                }
                for r in self.rules
            ],
            "failing_days": {_iso(d): rules for d, rules in self.failing_days.items()},
            "rules": {
                r.id: {
                    "name": r.name,
                    "description": r.description,
                    "severity": r.severity,
                    "parameters": r.parameters,
                    "statistics": r.statistics,
                    "failed_days": [_iso(d) for d in r.failed_days],
                    "skip_reason": r.skip_reason,
                    "offending_rows": _records(r.offending),
                }
                for r in self.rules
            },
            "days": {
                _iso(d): {rid: {"checked": c, "violations": v} for rid, (c, v) in per.items()}
                for d, per in sorted(self.day_results.items())
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=_json_default) + "\n"

    def to_markdown(self) -> str:
        lines = [
            f"# Validation report: {self.layer}.{self.dataset}",
            "",
            f"**Verdict: {self.verdict}** — {self.verdict_reason}",
            "",
            "## Run",
            "",
            "| field | value |",
            "|---|---|",
        ]
        run = self.to_dict()["run"]
        for key, value in run.items():
            lines.append(f"| {key} | {'' if value is None else value} |")
        lines += [
            "",
            "## Summary",
            "",
            "| rule | name | severity | unit | checked | violations | % | allowed % | status |",
            "|---|---|---|---|---:|---:|---:|---:|---|",
        ]
        for r in self.rules:
            lines.append(
                f"| {r.id} | {r.name} | {r.severity} | {r.unit} | {r.checked:,} | "
                f"{r.violations:,} | {100 * r.share:.4f} | {100 * r.allowed_share:.4f} | "
                f"{r.status}{' (' + r.skip_reason + ')' if r.skip_reason else ''} |"
            )
        lines += ["", "## Verdict rule", "", VERDICT_RULE, ""]
        failing = self.failing_days
        lines += ["## Failing days", ""]
        if failing:
            lines.append("| date | weekday | failed error rules |")
            lines.append("|---|---|---|")
            for day, rules in failing.items():
                lines.append(f"| {day} | {day.strftime('%a')} | {', '.join(rules)} |")
        else:
            lines.append("No day fails an error rule.")
        lines += ["", "## Rules", ""]
        for r in self.rules:
            lines += [f"### {r.id} {r.name} ({r.severity}): {r.status}", "", r.description, ""]
            if r.skip_reason:
                lines += [f"Skipped: {r.skip_reason}.", ""]
                continue
            params = ", ".join(f"`{k}={v}`" for k, v in r.parameters.items())
            lines += [f"Parameters: {params}", ""]
            lines.append(
                f"Checked {r.checked:,} {r.unit}, {r.violations:,} violations "
                f"({100 * r.share:.4f} %)."
                + (f" Failed on {len(r.failed_days)} day(s)." if r.failed_days else "")
            )
            lines.append("")
            if r.statistics:
                stats = ", ".join(f"{k} = {_fmt(v)}" for k, v in sorted(r.statistics.items()))
                lines += [f"Statistics: {stats}.", ""]
            if r.offending.height:
                lines += [
                    f"Top {min(r.offending.height, MAX_OFFENDING_ROWS)} offending rows "
                    f"(times in {self.timezone}):",
                    "",
                    *_markdown_table(r.offending, self.timezone),
                    "",
                ]
        return "\n".join(lines).rstrip() + "\n"

    @property
    def report_id(self) -> str:
        """``<layer>.<dataset>-<run_id>``: the name the lake keeps this report under."""
        return f"{self.layer}.{self.dataset}-{self.run_id}"

    def write_to_lake(self, lake_root: Path | str) -> str:
        """Keep the report in the lake (``reports/quality/<report_id>.md|json``), where
        the dashboard's Quality page lists it; returns the report id."""
        directory = Path(lake_root) / QUALITY_REPORTS_DIR
        self.write(directory / f"{self.report_id}.md", directory / f"{self.report_id}.json")
        return self.report_id

    def write(
        self, markdown: Path | str | None = None, json_path: Path | str | None = None
    ) -> None:
        """Write the Markdown and/or JSON report (atomically)."""
        for path, render in ((markdown, self.to_markdown), (json_path, self.to_json)):
            if path is None:
                continue
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            self.report_paths.append(str(target))
            write_text_atomic(target, render())


VERDICT_RULE = (
    "A rule fails when violations / checked exceeds its `allowed_violation_share` "
    "(listed as allowed %; violations within it are *tolerated*). "
    "FAIL: at least one `error` rule fails. INVESTIGATE: no error rule fails but at "
    "least one `warning` rule does. PASS: otherwise (`info` rules never change the "
    "verdict). A day fails when an error rule fails on that day alone; "
    "`--quarantine-failing` records those days."
)


def build_report(
    *,
    run_id: str,
    context: DatasetContext,
    rules: list[Rule],
    skipped: dict[str, str],
    findings: dict[str, list[RuleFinding]],
    rows: int,
    started_at: str,
    seconds: float,
    executor: str,
    version: str,
) -> ValidationReport:
    """Merge per-day findings into rule summaries and decide the verdict."""
    from ticklake.quality.registry import get_rule_class

    summaries: list[RuleSummary] = []
    day_results: dict[date, dict[str, tuple[int, int]]] = {}
    for rule in rules:
        items = sorted(findings.get(rule.id, []), key=lambda f: f.day)
        summary = RuleSummary(
            id=rule.id,
            name=rule.name,
            description=rule.description,
            severity=str(rule.severity),
            unit=rule.unit,
            parameters=rule.parameters.model_dump(mode="json"),
            checked=sum(f.checked for f in items),
            violations=sum(f.violations for f in items),
            statistics=merge_statistics([f.statistics for f in items]),
            offending=_merge_offending(items, getattr(rule, "rank_by", None)),
        )
        allowed = summary.allowed_share
        for f in items:
            day_results.setdefault(f.day, {})[rule.id] = (f.checked, f.violations)
            if f.violations and f.share > allowed:
                summary.failed_days.append(f.day)
        if summary.checked == 0:
            summary.status = "not checked"  # nothing it applies to (e.g. bars without quotes)
        elif summary.violations == 0:
            summary.status = "pass"
        elif summary.share > allowed:
            # An info rule only notes what it saw; it cannot fail.
            summary.status = "noted" if rule.severity == Severity.info else "fail"
        else:
            summary.status = "tolerated"
        summaries.append(summary)
    for rule_id, reason in skipped.items():
        cls = get_rule_class(rule_id)
        summaries.append(
            RuleSummary(
                id=cls.id,
                name=cls.name,
                description=cls.description,
                severity=str(cls.severity),
                unit=cls.unit,
                parameters={},
                status="skipped",
                skip_reason=reason,
            )
        )
    errors = [s.id for s in summaries if s.status == "fail" and s.severity == Severity.error]
    warnings = [s.id for s in summaries if s.status == "fail" and s.severity == Severity.warning]
    if errors:
        verdict, reason = "FAIL", f"error rule(s) failed: {', '.join(errors)}"
        if warnings:
            reason += f"; warning rule(s) failed: {', '.join(warnings)}"
    elif warnings:
        verdict, reason = "INVESTIGATE", f"warning rule(s) failed: {', '.join(warnings)}"
    else:
        verdict, reason = "PASS", "no error or warning rule exceeded its allowance"
    return ValidationReport(
        run_id=run_id,
        lake=context.lake_root,
        layer=context.layer,
        dataset=context.dataset,
        schema=context.schema.name,
        timezone=context.timezone,
        calendar=context.calendar,
        start=context.start,
        end=context.end,
        days=list(context.days),
        rows=rows,
        started_at=started_at,
        seconds=seconds,
        executor=executor,
        version=version,
        rules=summaries,
        day_results=day_results,
        verdict=verdict,
        verdict_reason=reason,
    )


def _merge_offending(items: list[RuleFinding], rank_by: str | None) -> pl.DataFrame:
    frames = [f.offending for f in items if f.offending.height]
    if not frames:
        return pl.DataFrame()
    merged = pl.concat(frames, how="diagonal_relaxed")
    if rank_by is not None and rank_by in merged.columns:
        merged = merged.sort(rank_by, descending=True, nulls_last=True, maintain_order=True)
    return merged.head(MAX_OFFENDING_ROWS)


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    if not frame.height:
        return []
    out = frame.with_columns(
        pl.col(c).cast(pl.String) for c, t in frame.schema.items() if t.is_temporal()
    )
    return out.to_dicts()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}" if not value.is_integer() else f"{int(value):,}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _markdown_table(frame: pl.DataFrame, timezone: str) -> list[str]:
    local = frame.with_columns(
        pl.col(c).dt.convert_time_zone(timezone).dt.strftime("%Y-%m-%d %H:%M:%S%.3f")
        for c, t in frame.schema.items()
        if isinstance(t, pl.Datetime) and t.time_zone is not None
    )
    header = "| " + " | ".join(local.columns) + " |"
    rule = "|" + "|".join("---" for _ in local.columns) + "|"
    rows = [
        "| " + " | ".join("" if v is None else _fmt(v) for v in row) + " |"
        for row in local.iter_rows()
    ]
    return [header, rule, *rows]
