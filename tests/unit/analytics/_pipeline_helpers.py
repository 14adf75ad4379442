"""Shared helpers of the pipeline tests: realistic generated trades and the test metrics."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from ticklake.analytics import registry

HERE = Path(__file__).resolve().parent
METRICS_MODULE = "_pipeline_test_metrics"


@contextmanager
def registered_test_metrics() -> Iterator[None]:
    """Register the test metrics for one test, then restore the registry as it was."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    registry.load_plugins()
    metrics, aliases = dict(registry._METRICS), dict(registry._ALIASES)
    sys.modules.pop(METRICS_MODULE, None)
    importlib.import_module(METRICS_MODULE)
    try:
        yield
    finally:
        registry._METRICS.clear()
        registry._METRICS.update(metrics)
        registry._ALIASES.clear()
        registry._ALIASES.update(aliases)
        sys.modules.pop(METRICS_MODULE, None)


def make_trades(
    days: list[date],
    instruments: list[str],
    *,
    per_day: int = 400,
    seed: int = 7,
    session_utc: tuple[float, float] = (14.5, 21.0),
) -> pl.DataFrame:
    """Random-walk trades in a session (UTC hours), some exactly on minute boundaries."""
    rng = np.random.default_rng(seed)
    frames = []
    for day in days:
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for k, instrument in enumerate(instruments):
            seconds = rng.uniform(session_utc[0] * 3600, session_utc[1] * 3600, per_day)
            # A tenth of the trades land exactly on a minute: the right-closed rule matters.
            on_minute = rng.random(per_day) < 0.1
            seconds = np.where(on_minute, np.round(seconds / 60) * 60, seconds)
            micros = np.unique((seconds * 1e6).astype(np.int64))
            n = len(micros)
            price = 50.0 * (k + 1) + np.cumsum(rng.normal(0, 0.02, n))
            frames.append(
                pl.DataFrame(
                    {
                        "ts": [midnight + timedelta(microseconds=int(v)) for v in micros],
                        "instrument": instrument,
                        "trade_id": [f"{day}-{instrument}-{i}" for i in range(n)],
                        "price": np.round(price, 4),
                        "size": rng.integers(1, 500, n).astype(float),
                    }
                ).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
            )
    return pl.concat(frames).sort("ts", "instrument")
