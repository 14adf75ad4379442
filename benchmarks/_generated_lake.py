"""A generated BANKNIFTY lake for the benchmarks, built once and reused.

``build_generated_lake`` generates ``days`` days of 1-second option snapshots with
:func:`ticklake.generate.generate_options`, ingests them (``nse_options``) and the
underlying (``nse_index``), and marks the directory ``READY``; a later call with the
same root returns the lake at once. Generation and ingest are never timed.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import date
from pathlib import Path


def build_generated_lake(
    root: Path,
    *,
    first_day: date,
    days: int,
    strikes_each_side: int,
    options_dataset: str,
    spot_dataset: str,
    keep_generated: bool = True,
) -> Path:
    """Generate and ingest once under ``root``; return the lake root (reused when READY)."""
    from ticklake.generate import generate_options
    from ticklake.ingest.pipeline import ingest_files
    from ticklake.ingest.readers.base import ReaderOptions
    from ticklake.lake import init_lake

    done = root / "READY"
    if done.is_file():
        return root / "lake"
    generated = root / "generated"
    began = time.perf_counter()
    summary = generate_options(
        "BANKNIFTY",
        start=first_day,
        days=days,
        out=generated,
        strikes_each_side=strikes_each_side,
        progress=lambda d, n: print(f"  generated day {d}/{n}", flush=True),
    )
    print(
        f"generated {summary.rows:,} rows in {summary.files:,} files "
        f"({time.perf_counter() - began:.0f} s)",
        flush=True,
    )
    if (root / "lake").exists():
        shutil.rmtree(root / "lake")
    lake = init_lake(root / "lake")
    began = time.perf_counter()
    ingest_files(lake, "nse_options", [generated / "options"], options_dataset)
    ingest_files(
        lake,
        "nse_index",
        [generated / "spot"],
        spot_dataset,
        options=ReaderOptions(instrument="BANKNIFTY"),
    )
    print(f"ingested into {root / 'lake'} ({time.perf_counter() - began:.0f} s)", flush=True)
    if not keep_generated:
        shutil.rmtree(generated)  # the lake holds everything the benchmark reads
    done.write_text(json.dumps({"rows": summary.rows, "days": [str(d) for d in summary.dates]}))
    return root / "lake"
