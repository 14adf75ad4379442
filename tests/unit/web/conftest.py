"""Lakes and clients for the web tests.

The lake is the backtest tests' generated one (three real-length BANKNIFTY days, 2 s
snapshots, built once per session by ``_engine_fixtures``), copied so jobs may write
into it. ``finished_lake`` also holds one ATM straddle run made with the library
directly (the oracle side of the API tests), its HTML report and a validation report.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backtest"))

from _engine_fixtures import SPOT, copy_lake, generated_lake_path
from _web_fixtures import BASE_RUN, make_client, straddle_spec_data


@pytest.fixture(scope="session")
def pristine_lake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_lake_path(tmp_path_factory.getbasetemp().parent / "ticklake-engine")


@pytest.fixture(scope="session")
def finished_lake_root(pristine_lake_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake with one finished straddle run (``straddle-base``) and a quality report."""
    from ticklake.backtest.report import write_report
    from ticklake.backtest.runner import run_backtest
    from ticklake.backtest.spec import parse_spec
    from ticklake.quality import validate_dataset
    from ticklake.quality.report import QUALITY_REPORTS_DIR

    root = tmp_path_factory.mktemp("web-finished") / "lake"
    lake = copy_lake(pristine_lake_root, root)
    result = run_backtest(
        lake, parse_spec(straddle_spec_data()), run_id=BASE_RUN, executor="serial", use_cache=False
    )
    write_report(result.run_dir)
    report = validate_dataset(lake, SPOT, executor="serial")
    report_id = f"{report.layer}.{report.dataset}-{report.run_id}"
    report.write(
        root / QUALITY_REPORTS_DIR / f"{report_id}.md",
        root / QUALITY_REPORTS_DIR / f"{report_id}.json",
    )
    return root


@pytest.fixture
def lake_copy(finished_lake_root: Path, tmp_path: Path) -> Path:
    """A private copy of the finished lake (runs included) that a test may write into."""
    target = tmp_path / "lake"
    shutil.copytree(finished_lake_root, target, ignore=shutil.ignore_patterns("cache", "jobs"))
    return target


@pytest.fixture
def client(finished_lake_root: Path) -> Iterator[Any]:
    """A client over the shared finished lake (read-only tests)."""
    test_client = make_client(finished_lake_root)
    yield test_client
    test_client.app.state.jobs.shutdown()


@pytest.fixture
def writable_client(lake_copy: Path) -> Iterator[Any]:
    """A client over a private lake copy (tests that submit jobs)."""
    test_client = make_client(lake_copy, executor="serial")
    yield test_client
    test_client.app.state.jobs.shutdown()
