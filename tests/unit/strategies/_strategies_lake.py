"""A generated lake for the template tests: Friday 2024-01-05 to Wednesday 2024-01-10.

The engine tests' lake (``tests/unit/backtest/_engine_fixtures.py``) starts on a Monday,
so a Monday there has no previous close and a gap filter is always unknown. This lake
is built the same way (the generator, then the ``nse_options`` / ``nse_index`` readers
through the ingest pipeline) from the Friday before: Friday, Monday, Tuesday and the
weekly expiry Wednesday 2024-01-10, with three strikes beyond each day's range so
wings three strikes out exist.
"""

from __future__ import annotations

import shutil
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backtest"))
from _engine_fixtures import OPTIONS, SPOT  # type: ignore[import-not-found]

DAYS = (date(2024, 1, 5), date(2024, 1, 8), date(2024, 1, 9), date(2024, 1, 10))
EXPIRY = date(2024, 1, 10)
LAKE_VERSION = "v1"  # bump when the generation below changes: the lake is reused across runs


def build_lake(target: Path) -> None:
    from ticklake.generate import generate_options
    from ticklake.ingest.pipeline import ingest_files
    from ticklake.ingest.readers.base import ReaderOptions
    from ticklake.lake import init_lake

    work = target.with_name(target.name + ".building")
    shutil.rmtree(work, ignore_errors=True)
    out = work / "out"
    # 2-second snapshots keep the lake small; quotes are then 0-1 s old on the 1 s grid.
    generate_options(
        "BANKNIFTY",
        start=DAYS[0],
        days=len(DAYS),
        out=out,
        seed=3,
        strikes_each_side=3,
        expiries=("weekly",),
        seconds_step=2,
    )
    lake = init_lake(work / "lake")
    ingest_files(lake, "nse_options", [out / "options"], OPTIONS)
    ingest_files(
        lake, "nse_index", [out / "spot"], SPOT, options=ReaderOptions(instrument="BANKNIFTY")
    )
    shutil.rmtree(out)
    (work / "lake").rename(target)
    shutil.rmtree(work, ignore_errors=True)
