from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from _quality_helpers import Validate, at
from typer.testing import CliRunner

from ticklake.cli import app
from ticklake.lake import Lake
from ticklake.quality import MAX_OFFENDING_ROWS, validate_dataset
from ticklake.quality.quarantine import quarantined_days


def test_reports_keep_the_top_rows_and_the_run_metadata(validate: Validate, tmp_path: Path) -> None:
    prices = [1.0] * 60
    for i in range(0, 60, 2):
        prices[i] = -float(i + 1)  # 30 bad prices
    frame = pl.DataFrame(
        {"ts": [at(i) for i in range(60)], "instrument": ["X"] * 60, "price": prices}
    )
    report = validate(frame, "prices", ["R2", "S5"])
    report.write(tmp_path / "r.md", tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["verdict"] == "FAIL" and data["run"]["dataset"] == "bronze.data"
    assert data["run"]["rows"] == 60 and data["run"]["days_validated"] == 1
    r2 = next(row for row in data["summary"] if row["rule"] == "R2")
    assert (r2["checked"], r2["violations"], r2["percent"]) == (60, 30, 50.0)
    assert len(data["rules"]["R2"]["offending_rows"]) == MAX_OFFENDING_ROWS
    assert data["failing_days"] == {"2024-01-02": ["R2"]}
    markdown = (tmp_path / "r.md").read_text()
    assert "**Verdict: FAIL**" in markdown and "| R2 | positive_prices | error |" in markdown
    assert "allowed %" in markdown and "## Verdict rule" in markdown


def test_info_rules_never_change_the_verdict(validate: Validate) -> None:
    # 10:00 UTC is outside the XBOM session (03:45-10:00 UTC): S5 notes every row.
    frame = pl.DataFrame(
        {"ts": [at(i) for i in range(5)], "instrument": ["X"] * 5, "price": [1.0] * 5}
    )
    report = validate(frame, "prices", ["S5"], timezone="Asia/Kolkata")
    assert report.rule("S5").violations == 5 and report.rule("S5").status == "noted"
    assert report.verdict == "PASS"


def test_unknown_rule_and_parameter_typos_are_rejected(validate: Validate) -> None:
    frame = pl.DataFrame({"ts": [at(0)], "instrument": ["X"], "price": [1.0]})
    with pytest.raises(ValueError, match="unknown quality rule 'R99'"):
        validate(frame, "prices", ["R99"])
    with pytest.raises(ValueError, match="gap_factr"):
        validate(frame, "prices", ["R5.gaps"], {"R5.gaps": {"gap_factr": 3}}, dataset="b")


def _week(lake: Lake) -> None:
    """2024-01-05 (Fri) and a Saturday copy on 2024-01-06, NSE time zone."""
    start = datetime(2024, 1, 5, 3, 45, tzinfo=UTC)
    friday = pl.DataFrame(
        {
            "ts": [start + timedelta(seconds=30 * i) for i in range(750)],
            "instrument": ["X"] * 750,
            "price": [100.0 + 0.01 * i for i in range(750)],
        }
    )
    saturday = friday.with_columns(pl.col("ts") + timedelta(days=1))
    lake.write("idx", pl.concat([friday, saturday]), schema="prices", timezone="Asia/Kolkata")


def test_cli_validate_quarantines_and_promotes(lake: Lake, tmp_path: Path) -> None:
    _week(lake)
    runner = CliRunner()
    md, js = tmp_path / "idx.md", tmp_path / "idx.json"
    result = runner.invoke(
        app,
        [
            "validate",
            "idx",
            "--lake",
            str(lake.root),
            "--report",
            str(md),
            "--json",
            str(js),
            "--quarantine-failing",
            "--promote",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "verdict: FAIL" in result.output and "S2" in result.output
    # The lake keeps a copy where the dashboard lists reports; it equals the --json one.
    kept = list((lake.root / "reports" / "quality").glob("bronze.idx-*.json"))
    assert len(kept) == 1 and kept[0].read_text() == js.read_text()
    assert kept[0].with_suffix(".md").read_text() == md.read_text()
    held = quarantined_days(lake, "idx")
    assert list(held) == [date(2024, 1, 6)]
    assert held[date(2024, 1, 6)]["rules"] == ["S2", "S3"]
    assert held[date(2024, 1, 6)]["report"] == str(md)
    assert [p.date for p in lake.partitions("idx", layer="silver")] == [date(2024, 1, 5)]
    manifest = lake.partitions("idx", layer="silver")[0].manifest
    assert manifest is not None and manifest.lineage.sources[0].path.startswith("bronze/idx/")
    status = runner.invoke(app, ["status", "--lake", str(lake.root)])
    assert "quarantined days of idx" in status.output and "2024-01-06 (S2,S3)" in status.output
    # --force promotes the quarantined day as well
    forced = runner.invoke(
        app,
        [
            "validate",
            "bronze.idx",
            "--lake",
            str(lake.root),
            "--rules",
            "R2",
            "--promote",
            "--force",
        ],
    )
    assert forced.exit_code == 0, forced.output
    assert [p.date for p in lake.partitions("idx", layer="silver")] == [
        date(2024, 1, 5),
        date(2024, 1, 6),
    ]


def test_revalidation_releases_days_that_now_pass(lake: Lake) -> None:
    from ticklake.quality.quarantine import record_quarantine

    _week(lake)
    failing = validate_dataset(lake, "idx", rules=["S2"])
    record_quarantine(lake, failing)
    assert list(quarantined_days(lake, "idx")) == [date(2024, 1, 6)]
    passing = validate_dataset(lake, "idx", rules=["S2"], parameters={"S2": {"calendar": "24/7"}})
    record_quarantine(lake, passing)
    assert quarantined_days(lake, "idx") == {}


def test_process_executor_gives_the_same_report(lake: Lake) -> None:
    _week(lake)
    serial = validate_dataset(lake, "idx", rules=["R2", "S2", "S3", "P1"])
    spawned = validate_dataset(
        lake, "idx", rules=["R2", "S2", "S3", "P1"], executor="process", workers=2
    )
    assert spawned.executor == "process"
    assert [(r.id, r.checked, r.violations) for r in spawned.rules] == [
        (r.id, r.checked, r.violations) for r in serial.rules
    ]
