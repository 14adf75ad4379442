"""A small lake for the warehouse tests: trades of two instruments over three UTC days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

DAYS = [date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)]


def trades(days: list[date] = DAYS, per_day: int = 50, seed: int = 3) -> pl.DataFrame:
    """Deterministic trades: ``per_day`` a day per instrument between 10:00 and 16:00 UTC."""
    rng = np.random.default_rng(seed)
    rows = []
    for day in days:
        start = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
        for k, instrument in enumerate(["AAA", "BBB"]):
            seconds = np.sort(rng.choice(6 * 3600, per_day, replace=False))
            for i, second in enumerate(seconds):
                rows.append(
                    {
                        "ts": start + timedelta(seconds=int(second)),
                        "instrument": instrument,
                        "trade_id": f"{day}-{instrument}-{i}",
                        "price": round(100.0 * (k + 1) + float(rng.normal(0, 1)), 2),
                        "size": float(rng.integers(1, 100)),
                    }
                )
    return pl.DataFrame(rows).with_columns(pl.col("ts").dt.cast_time_unit("ns"))


def write_model(project: Path, name: str, text: str) -> Path:
    path = project / "models" / f"{name}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
