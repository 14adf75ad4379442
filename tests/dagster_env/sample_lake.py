"""A small real lake for the Dagster tests: two NSE trading days of a generated
BANKNIFTY chain and its spot, their 1-minute bars, the option-greeks pipeline, the
``nse`` SQL models, and a ``prices`` dataset whose second day is deliberately bad.

Also a command: ``python tests/dagster_env/sample_lake.py DIR`` builds it in DIR.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

import ticklake
from ticklake.generate import generate_options
from ticklake.ingest.readers import ReaderOptions

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "src" / "ticklake" / "analytics" / "examples" / "option_greeks.yml"
DAYS = [date(2024, 1, 10), date(2024, 1, 11)]
BAD_DAY = date(2024, 1, 3)


def build_sample_lake(folder: Path) -> Path:
    """Build the lake at ``folder/lake`` (bars and the pipeline are left to Dagster)."""
    lake = ticklake.init_lake(folder / "lake")
    generate_options(
        "BANKNIFTY", start=DAYS[0], days=len(DAYS), out=folder / "chain", seed=3,
        strikes_each_side=1, expiries=("weekly",), seconds_step=15,
    )  # fmt: skip
    lake.ingest([folder / "chain" / "options"], "banknifty_options", format="nse_options")
    lake.ingest(
        [folder / "chain" / "spot"], "banknifty_spot", format="nse_index",
        options=ReaderOptions(instrument="BANKNIFTY"),
    )  # fmt: skip
    # 1-minute bars of the spot exist already: Dagster finds them from their lineage.
    lake.bars("banknifty_spot", "1m", out="banknifty_spot_1m")
    lake.sql_init("nse")
    # a UTC prices dataset: 2024-01-02 is fine, 2024-01-03 has a negative price (R2 FAIL)
    stamps = [datetime(2024, 1, d, 10, s, tzinfo=UTC) for d in (2, 3) for s in range(3)]
    prices = [10.0, 10.5, 10.2, 10.1, -1.0, 10.3]
    frame = pl.DataFrame({"ts": stamps, "instrument": ["X"] * 6, "price": prices})
    # written straight to storage: an ingest would quarantine the bad row
    lake.write("px", frame, schema="prices")
    return lake.root


if __name__ == "__main__":
    print(build_sample_lake(Path(sys.argv[1])))
