"""Lake endpoints: status, datasets, partitions, preview, read-only SQL, chain, candles."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any

import polars as pl
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ticklake.api import LakeSession
from ticklake.backtest.runner import RUNS_DIR
from ticklake.errors import ResultTooLargeError
from ticklake.lake import Lake
from ticklake.lake.layout import QUARANTINE_DIR
from ticklake.web.api.deps import get_jobs, get_lake
from ticklake.web.errors import ResourceNotFoundError, json_safe
from ticklake.web.jobs import JobManager
from ticklake.web.local_time import zone_fields
from ticklake.web.market import candles, instruments, option_chain, parse_clock

router = APIRouter(tags=["lake"])
LakeDep = Annotated[LakeSession, Depends(get_lake)]
DatasetName = Annotated[str, Query(min_length=1, max_length=140, description="name or layer.name")]


def dataset_summary(lake: Lake, layer: str, name: str) -> dict[str, Any]:
    info = lake.dataset_info(name, layer)
    parts = lake.partitions(name, layer=layer)
    last = max((p.manifest.written_at for p in parts if p.manifest), default=None)
    return {
        "name": f"{layer}.{name}",
        "layer": layer,
        "dataset": name,
        "schema": info.dataset_schema.name,
        "timezone": info.timezone,
        "days": len(parts),
        "rows": sum(p.rows for p in parts),
        "bytes": sum(p.bytes for p in parts),
        "first_day": parts[0].date.isoformat() if parts else None,
        "last_day": parts[-1].date.isoformat() if parts else None,
        "last_write": last,
    }


def lake_status(lake: Lake) -> dict[str, Any]:
    """What ``ticklake status`` shows, as data."""
    from ticklake.quality.quarantine import quarantined_days

    datasets = [dataset_summary(lake, i.layer, i.name) for i in lake.datasets()]
    quarantine = lake.root / QUARANTINE_DIR
    held: dict[str, list[str]] = {}
    if quarantine.is_dir():
        for days_file in sorted(quarantine.glob("*/_days.json")):
            days = quarantined_days(lake, days_file.parent.name)
            if days:
                held[days_file.parent.name] = [str(d) for d in days]
    runs = sorted((lake.root / RUNS_DIR).glob("*/run.json"))
    # One broken dataset stays one: listed with its one-line error, the others work.
    unreadable = [
        {"name": err.fields.get("dataset"), "path": err.fields.get("path"), "error": err.message}
        for err in lake.unreadable_datasets()
    ]
    return {
        "root": str(lake.root),
        "datasets": datasets,
        "unreadable_datasets": unreadable,
        "totals": {
            "datasets": len(datasets),
            "rows": sum(d["rows"] for d in datasets),
            "bytes": sum(d["bytes"] for d in datasets),
            "runs": len(runs),
        },
        "quarantined_days": held,
    }


@router.get("/lake/status", summary="Lake status: datasets, rows, bytes, date ranges")
def status(lake: LakeDep, jobs: Annotated[JobManager, Depends(get_jobs)]) -> dict[str, Any]:
    out = lake_status(lake)
    out["totals"]["jobs"] = len(jobs.list(limit=100_000))
    return out


@router.get("/datasets", summary="Every dataset with its schema, time zone and size")
def datasets(lake: LakeDep) -> list[dict[str, Any]]:
    return [dataset_summary(lake, i.layer, i.name) for i in lake.datasets()]


@router.get("/datasets/{dataset}", summary="One dataset: columns, key, sort, time zone")
def dataset_detail(lake: LakeDep, dataset: str) -> dict[str, Any]:
    layer, name = lake.resolve(dataset)
    info = lake.dataset_info(name, layer)
    schema = info.dataset_schema
    return {
        **dataset_summary(lake, layer, name),
        "key": list(schema.key),
        "sort": list(schema.sort),
        "day_offset": info.day_offset,
        "columns": [
            {"name": c.name, "type": c.type, "nullable": c.nullable, "description": c.description}
            for c in schema.columns
        ],
    }


@router.get("/datasets/{dataset}/partitions", summary="A dataset's day partitions")
def partitions(lake: LakeDep, dataset: str) -> list[dict[str, Any]]:
    layer, name = lake.resolve(dataset)
    out = []
    for part in lake.partitions(name, layer=layer):
        manifest = part.manifest
        out.append(
            {
                "date": part.date.isoformat(),
                "rows": part.rows,
                "bytes": part.bytes,
                "min_ts_ns": manifest.min_ts_ns if manifest else None,
                "max_ts_ns": manifest.max_ts_ns if manifest else None,
                "sha256": manifest.file_sha256 if manifest else None,
                "written_at": manifest.written_at if manifest else None,
            }
        )
    return out


@router.get("/datasets/{dataset}/preview", summary="Rows of one day of a dataset, paged")
def preview(
    lake: LakeDep,
    dataset: str,
    day: Annotated[date | None, Query(alias="date", description="default: the last day")] = None,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    local_time: bool = True,
) -> dict[str, Any]:
    layer, name = lake.resolve(dataset)
    parts = lake.partitions(name, layer=layer)
    if day is None:
        if not parts:
            return {"dataset": f"{layer}.{name}", "date": None, "columns": [], "rows": []}
        day = parts[-1].date
    elif day not in {p.date for p in parts}:
        raise ResourceNotFoundError(f"{layer}.{name} has no partition for {day}", day=str(day))
    lf = lake.scan(name, layer=layer, start=day, end=day, local_time=local_time)
    frame = lf.slice(offset, limit).collect()
    rows_in_day = next(p.rows for p in parts if p.date == day)
    info = lake.dataset_info(name, layer)
    # The rows' time columns are in the exchange's zone (local_time) or UTC: say which.
    zone = zone_fields(info.timezone if local_time else "UTC", day.year)
    columns = []
    for n, t in frame.schema.items():
        column = {"name": n, "type": str(t)}
        if isinstance(t, pl.Datetime) and t.time_zone is not None:
            column["label"] = f"{n} ({zone['timezone_abbreviation']})"
        columns.append(column)
    return {
        "dataset": f"{layer}.{name}",
        "date": day.isoformat(),
        "offset": offset,
        "limit": limit,
        "total": rows_in_day,
        **zone,
        "columns": columns,
        "rows": json_safe(frame.to_dicts()),
    }


class SqlRequest(BaseModel):
    """One read-only SELECT over the lake's views (``bronze.trades``, ``silver.bars_1m``...).

    ``max_rows`` above the lake's ``query.max_rows`` is capped there (the answer says the
    cap it used and whether rows were cut).
    """

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=20_000)
    max_rows: int | None = Field(None, ge=1, le=100_000)


#: Default cap on the JSON bytes of the SQL box's ``rows`` array (``create_app`` sets it).
SQL_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_ENCODE_CHUNK_ROWS = 1000


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _too_large(max_bytes: int, rows_done: int, rows_total: int) -> ResultTooLargeError:
    return ResultTooLargeError(
        f"result too large: its rows pass {max_bytes:,} bytes of JSON after {rows_done:,} of "
        f"{rows_total:,} rows; narrow it (fewer or shorter columns, a LIMIT, an aggregate) or "
        "download it with `ticklake query --untrusted SQL --format parquet --output FILE`",
        max_bytes=max_bytes,
        rows=rows_total,
    )


def encode_rows(frame: pl.DataFrame, max_bytes: int) -> str:
    """The JSON array of ``frame``'s rows, refused once it would pass ``max_bytes``.

    Rows are encoded a chunk at a time and counted as they are built, so a huge result
    stops at the cap instead of being serialised whole. Before a chunk becomes Python
    objects, the UTF-8 bytes of its text columns (a lower bound of their JSON) are
    checked against what is left.

    Examples:
        >>> encode_rows(pl.DataFrame({"s": ["x", "y"]}), 21)  # exactly its 21 bytes
        '[{"s":"x"},{"s":"y"}]'
    """
    parts: list[str] = []
    size = 2  # the brackets
    text_columns = [n for n, t in frame.schema.items() if t == pl.String]
    for start in range(0, frame.height, _ENCODE_CHUNK_ROWS):
        chunk = frame.slice(start, _ENCODE_CHUNK_ROWS)
        if text_columns:
            floor = chunk.select(
                pl.sum_horizontal(pl.col(text_columns).str.len_bytes().sum())
            ).item()
            if size + int(floor or 0) > max_bytes:
                raise _too_large(max_bytes, start, frame.height)
        for offset, row in enumerate(chunk.to_dicts()):
            text = _dumps(json_safe(row))
            size += len(text.encode()) + (1 if parts else 0)
            if size > max_bytes:
                raise _too_large(max_bytes, start + offset, frame.height)
            parts.append(text)
    return "[" + ",".join(parts) + "]"


@router.post(
    "/sql",
    summary="Run one read-only SELECT (row cap, byte cap, time limit, lake only)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}, 413: {"description": "too large"}},
)
def sql(request: Request, lake: LakeDep, body: SqlRequest) -> Response:
    cap = lake.settings.query.max_rows
    max_rows = min(body.max_rows or cap, cap)
    max_bytes = getattr(request.app.state, "sql_max_response_bytes", SQL_MAX_RESPONSE_BYTES)
    # JSON takes at least a quarter of the Arrow bytes of any column type we hold (an
    # int64 0 is 8 bytes in Arrow and `"a":0,` in JSON), so a result past 4x the JSON cap
    # in memory could never be sent: DuckDB stops there instead of materialising it.
    memory_cap = min(lake.settings.query.max_result_mib * 1024 * 1024, 4 * max_bytes)
    try:
        result = lake.query_untrusted(body.query, max_rows=max_rows, max_bytes=memory_cap)
    except ResultTooLargeError as exc:
        raise ResultTooLargeError(
            f"result too large: its rows pass {max_bytes:,} bytes of JSON (stopped after "
            f"{exc.fields.get('rows', 0):,} rows); narrow it (fewer or shorter columns, a "
            "LIMIT, an aggregate) or download it with `ticklake query --untrusted SQL "
            "--format parquet --output FILE`",
            max_bytes=max_bytes,
            rows=exc.fields.get("rows", 0),
        ) from None
    frame = result.frame
    rows = encode_rows(frame, max_bytes)
    columns = [{"name": n, "type": str(t)} for n, t in frame.schema.items()]
    tail = {
        "row_count": frame.height,
        "truncated": result.truncated,
        "max_rows": max_rows,
        "elapsed_seconds": round(result.elapsed_seconds, 4),
    }
    text = '{"columns":' + _dumps(columns) + ',"rows":' + rows + "," + _dumps(tail)[1:]
    return Response(text, media_type="application/json")


@router.get("/chain", summary="The option chain as it stood at one second (as-of, backward)")
def chain(
    lake: LakeDep,
    dataset: DatasetName,
    day: Annotated[date, Query(alias="date")],
    at: Annotated[str, Query(alias="time", max_length=8, description="HH:MM or HH:MM:SS")],
    expiry: date | None = None,
    underlying: Annotated[str | None, Query(max_length=140)] = None,
    stale_after_seconds: Annotated[int, Query(ge=0, le=86_400)] = 5,
) -> dict[str, Any]:
    return option_chain(
        lake,
        dataset,
        day,
        parse_clock(at),
        expiry=expiry,
        underlying_dataset=underlying or None,
        stale_after_seconds=stale_after_seconds,
    )


@router.get("/instruments", summary="Instruments (or contract symbols) of a dataset")
def instrument_names(
    lake: LakeDep, dataset: DatasetName, day: Annotated[date | None, Query(alias="date")] = None
) -> list[str]:
    return instruments(lake, dataset, day)


@router.get("/candles", summary="OHLC, volume and spread bars of one instrument")
def candle_bars(
    lake: LakeDep,
    dataset: DatasetName,
    instrument: Annotated[str, Query(min_length=1, max_length=200)],
    start: date,
    end: date | None = None,
    interval: Annotated[str, Query(pattern=r"^[0-9]{1,4}(s|m|h|d)$")] = "1m",
) -> dict[str, Any]:
    return candles(lake, dataset, instrument, start, end or start, interval)
