"""Live endpoints: the latest candles of a dataset, the heartbeat, recorded gaps.

The live page polls these. Candles come from the lake (what the orchestrator's ``route``
job has committed), for the last ``minutes`` before the dataset's newest row: OHLC,
volume split by bar direction, the spread (from a quotes dataset when one is given),
and per bar the seconds with no row at all (the "missing seconds" strip). Gaps come from
the gap logs of the collectors the heartbeat names.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import polars as pl
from fastapi import APIRouter, Depends, Query, Response

from ticklake.api import LakeSession
from ticklake.collect.binance import KLINE_MS
from ticklake.errors import ConfigError, SchemaMismatchError
from ticklake.web.api.deps import get_lake
from ticklake.web.errors import json_safe
from ticklake.web.local_time import zone_fields

router = APIRouter(tags=["live"])
LakeDep = Annotated[LakeSession, Depends(get_lake)]
Interval = Annotated[str, Query(pattern=r"^(1s|1m|5m|15m|1h)$")]
MAX_MINUTES = 24 * 60


def _newest(lake: LakeSession, layer: str, name: str) -> datetime | None:
    parts = lake.partitions(name, layer=layer)
    for part in reversed(parts):
        if part.manifest is not None and part.manifest.max_ts_ns is not None:
            return datetime.fromtimestamp(part.manifest.max_ts_ns / 1e9, tz=UTC)
    return None


def live_candles(
    lake: LakeSession,
    dataset: str,
    instrument: str,
    interval: str = "1m",
    minutes: int = 60,
    quotes: str | None = None,
) -> dict[str, Any]:
    """Bars of the last ``minutes`` of ``dataset`` (see the module text)."""
    from ticklake.bars import BarGrid, trades_to_bars

    if not 1 <= minutes <= MAX_MINUTES:
        raise ConfigError(f"minutes must be 1..{MAX_MINUTES}, got {minutes}")
    info = lake.dataset_info(dataset)
    if info.dataset_schema.name != "trades":
        raise SchemaMismatchError(
            f"{info.layer}.{info.name} holds {info.dataset_schema.name}; the live page draws "
            "trades datasets (e.g. binance_agg_trades)",
            dataset=dataset,
        )
    newest = _newest(lake, info.layer, info.name)
    base = {"dataset": f"{info.layer}.{info.name}", "instrument": instrument,
            "interval": interval, "minutes": minutes, **zone_fields(info.timezone)}  # fmt: skip
    if newest is None:
        return {**base, "newest": None, "bars": []}
    start = newest - timedelta(minutes=minutes)
    end = newest + timedelta(microseconds=1)
    trades = (
        lake.scan(info.name, layer=info.layer, start=start, end=end)
        .filter(pl.col("instrument") == instrument)
        .collect()
    )
    quote_frame = None
    if quotes:
        quote_info = lake.dataset_info(quotes)
        quote_frame = (
            lake.scan(quote_info.name, layer=quote_info.layer, start=start - timedelta(minutes=5),
                      end=end)
            .filter(pl.col("instrument") == instrument)
            .collect()
        )  # fmt: skip
    grid = BarGrid.create(interval, timezone=info.timezone, day_offset=info.day_offset)
    bars = trades_to_bars(trades, grid, quotes=quote_frame).sort("ts")
    covered = (
        trades.select(pl.col("ts").dt.truncate(interval).alias("bar"),
                      pl.col("ts").dt.truncate("1s").alias("second"))
        .group_by("bar").agg(pl.col("second").n_unique().alias("seconds_with_data"))
    )  # fmt: skip
    bars = bars.join(covered, left_on="ts", right_on="bar", how="left")
    width = KLINE_MS[interval] // 1000  # seconds in one bar
    local = bars["ts"].dt.convert_time_zone(info.timezone).dt.strftime("%Y-%m-%d %H:%M:%S")
    rows = []
    for i, row in enumerate(bars.iter_rows(named=True)):
        has_quote = row.get("ask_price") is not None and row.get("bid_price") is not None
        rows.append({
            "ts": row["ts"], "ts_local": local[i], "open": row["open"], "high": row["high"],
            "low": row["low"], "close": row["close"], "volume": row["volume"],
            "direction": "up" if (row["close"] or 0) >= (row["open"] or 0) else "down",
            "trade_count": row["trade_count"],
            "spread": row["ask_price"] - row["bid_price"] if has_quote else None,
            "missing_seconds": width - int(row["seconds_with_data"] or 0),
        })  # fmt: skip
    return json_safe({**base, "newest": newest, "bars": rows})


def read_gaps(beat: dict[str, Any] | None, since_ns: int) -> list[dict[str, Any]]:
    """Gaps recorded since ``since_ns`` in the gap logs the heartbeat names."""
    out: list[dict[str, Any]] = []
    for collector in (beat or {}).get("collectors", []):
        path = Path(collector["gaps_file"])
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            if line.strip():
                gap = json.loads(line)
                if gap["recorded_ns"] >= since_ns:
                    out.append({**gap, "market": collector["market"]})
    return out[-500:]


def _requested_candles(
    lake: LakeDep,
    dataset: Annotated[str, Query(min_length=1, max_length=140)],
    instrument: Annotated[str, Query(min_length=1, max_length=200)],
    interval: Interval = "1m",
    minutes: Annotated[int, Query(ge=1, le=MAX_MINUTES)] = 60,
    quotes: Annotated[str | None, Query(max_length=140)] = None,
) -> dict[str, Any]:
    """The bars a request's query asks for (shared by the JSON and the CSV endpoint)."""
    return live_candles(lake, dataset, instrument, interval, minutes, quotes)


Candles = Annotated[dict[str, Any], Depends(_requested_candles)]


@router.get("/live/candles", summary="The latest bars of a trades dataset (live page)")
def candles_endpoint(data: Candles) -> dict[str, Any]:
    return data


@router.get("/live/candles.csv", summary="The bars shown, as CSV (exchange time, UTC too)")
def candles_csv(data: Candles) -> Response:
    buffer = io.StringIO()
    columns = ["ts_local", "ts", "open", "high", "low", "close", "volume", "trade_count",
               "spread", "missing_seconds"]  # fmt: skip
    writer = csv.writer(buffer)
    writer.writerow([f"ts ({data['timezone_abbreviation']})", "ts (UTC)", *columns[2:]])
    for bar in data["bars"]:
        writer.writerow(["" if bar[c] is None else bar[c] for c in columns])
    name = f"{data['instrument']}-{data['interval']}-last{data['minutes']}m.csv"
    return Response(buffer.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip


@router.get("/live/status", summary="The orchestrator's heartbeat and today's gaps")
def live_status(lake: LakeDep) -> dict[str, Any]:
    from ticklake.collect.health import read_health

    status, beat = read_health(lake.root)
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    gaps = read_gaps(beat, int(midnight.timestamp() * 1e9))
    verdicts = {
        name: job["last_result"]
        for name, job in (beat or {}).get("jobs", {}).items()
        if job["kind"] == "validate"
    }
    return json_safe({"status": status, "heartbeat": beat, "gaps": gaps, "verdicts": verdicts})
