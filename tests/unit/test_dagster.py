"""ticklake.dagster: the plan in this venv, the Dagster tests in the Dagster venv.

Dagster is not in the main venv (its pins may fight Ray's); ``make install-dagster``
makes ``.venv/dagster-env`` with it and ticklake (editable). The real checks — Dagster
``materialize`` on a sample lake, the failing quality check, the no-op re-run, the
schedule, the webserver — are ``tests/dagster_env/``, run here with that venv's python.
They are skipped when that venv is missing, except under CI, where it fails.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

import ticklake
from ticklake.dagster import calendar_days, plan_assets

REPO = Path(__file__).resolve().parents[2]
DAGSTER_PYTHON = Path(
    os.environ.get("TICKLAKE_DAGSTER_PYTHON", REPO / ".venv" / "dagster-env" / "bin" / "python")
)


def test_partitions_follow_the_exchange_calendar_or_every_day() -> None:
    # NSE: 2024-01-13/14 are a weekend; 24/7 (UTC datasets): every day in between
    assert calendar_days("XBOM", {date(2024, 1, 12), date(2024, 1, 16)}) == [
        "2024-01-12", "2024-01-15", "2024-01-16",
    ]  # fmt: skip
    assert calendar_days("24/7", {date(2024, 1, 2), date(2024, 1, 4)}) == [
        "2024-01-02", "2024-01-03", "2024-01-04",
    ]  # fmt: skip
    # a day present off the calendar is kept; `until` extends the range
    assert calendar_days("XBOM", {date(2024, 1, 13)}, until=date(2024, 1, 15)) == [
        "2024-01-13", "2024-01-15",
    ]  # fmt: skip


def test_the_plan_needs_no_dagster(tmp_path: Path) -> None:
    lake = ticklake.init_lake(tmp_path / "lake")
    stamps = [datetime(2024, 1, d, 10, tzinfo=UTC) for d in (2, 4)]
    frame = pl.DataFrame({"ts": stamps, "instrument": ["X", "X"], "price": [1.0, 2.0]})
    lake.write("px", frame, schema="prices")
    lake.bars("px", "1h", out="px_1h")
    nodes = {n.key: n for n in plan_assets(lake)}
    assert nodes[("bronze", "px")].kind == "dataset" and nodes[("bronze", "px")].check
    bars = nodes[("silver", "px_1h")]
    assert (bars.kind, bars.deps, bars.calendar) == ("bars", [("bronze", "px")], "24/7")
    assert bars.params == {"source": "bronze.px", "interval": "1h", "out": "px_1h"}
    assert calendar_days("24/7", bars.days) == ["2024-01-02", "2024-01-03", "2024-01-04"]


@pytest.mark.skipif(
    importlib.util.find_spec("dagster") is not None, reason="Dagster is installed here"
)
def test_definitions_without_dagster_says_how_to_install_it(tmp_path: Path) -> None:
    from ticklake.dagster import definitions

    lake = ticklake.init_lake(tmp_path / "lake")
    with pytest.raises(ImportError, match=r"ticklake\[dagster\]"):
        definitions(lake)
    assert "dagster" not in sys.modules


def test_the_dagster_suite_passes_in_the_dagster_venv() -> None:
    if not DAGSTER_PYTHON.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{DAGSTER_PYTHON} is missing but CI is set: run `make install-dagster`")
        pytest.skip(f"no Dagster venv at {DAGSTER_PYTHON} (`make install-dagster`)")
    proc = subprocess.run(
        [str(DAGSTER_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/dagster_env"],
        cwd=REPO, capture_output=True, text=True, timeout=840,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
    )  # fmt: skip
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, tail
