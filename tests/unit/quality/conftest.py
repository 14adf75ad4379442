from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from _quality_helpers import NIFTY_DAYS, Validate

from ticklake.lake import Lake, init_lake
from ticklake.quality import ValidationReport, validate_dataset


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return init_lake(tmp_path / "lake")


@pytest.fixture
def validate(lake: Lake) -> Validate:
    """Write ``frame`` as ``dataset`` and validate it with the given rules."""

    def run(
        frame: pl.DataFrame,
        schema: str,
        rules: list[str],
        parameters: dict[str, Any] | None = None,
        timezone: str = "UTC",
        dataset: str = "data",
    ) -> ValidationReport:
        lake.write(dataset, frame, schema=schema, timezone=timezone)
        return validate_dataset(lake, dataset, rules=rules, parameters=parameters)

    return run


@pytest.fixture(scope="session")
def nifty_lake(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """Eleven real NIFTY 50 days (copies, outlier, partial day) ingested with ingest_files."""
    from ticklake.ingest.pipeline import ingest_files

    lake = init_lake(tmp_path_factory.mktemp("nifty") / "lake")
    folder = shared_data / "nse-nifty50-index-1s"
    files = [folder / f"{day}.csv.gz" for day in NIFTY_DAYS]
    ingest_files(lake, "nse_index", files, "nifty", executor="serial")
    return lake


@pytest.fixture(scope="session")
def nifty_report(nifty_lake: Lake) -> ValidationReport:
    return validate_dataset(nifty_lake, "nifty")
