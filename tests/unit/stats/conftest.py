from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ticklake.lake import Lake, init_lake

#: Three generated weeks: Mondays 2024-01-01, 01-08 and 01-15.
GENERATED_START = date(2024, 1, 1)
GENERATED_DAYS = 15


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return init_lake(tmp_path / "lake")


@pytest.fixture(scope="session")
def nifty_folder(shared_data: Path) -> Path:
    return shared_data / "nse-nifty50-index-1s"


@pytest.fixture(scope="session")
def nifty_lake(nifty_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """All 76 real NIFTY 50 files (weekend copies, partial days) ingested with nse_index."""
    from ticklake.ingest.pipeline import ingest_files

    lake = init_lake(tmp_path_factory.mktemp("nifty") / "lake")
    files = sorted(nifty_folder.glob("*.csv.gz"))
    ingest_files(lake, "nse_index", files, "nifty", executor="serial")
    return lake


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, Path]:
    """Three weeks of generate_options' 1 s spot series, ingested with nse_index."""
    from ticklake.generate.options import generate_options
    from ticklake.ingest.pipeline import ingest_files

    out = tmp_path_factory.mktemp("generated")
    # A low start price keeps the chain to a few strikes: only the spot series is used.
    generate_options(
        "NIFTY", start=GENERATED_START, days=GENERATED_DAYS, out=out / "chain", seed=3,
        strikes_each_side=0, expiries=("weekly",), start_price=1500.0,
    )  # fmt: skip
    lake = init_lake(out / "lake")
    spot = out / "chain" / "spot"
    ingest_files(lake, "nse_index", sorted(spot.glob("*.csv")), "spot", executor="serial")
    return lake, spot
