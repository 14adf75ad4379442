"""The SQL page's endpoints: the warehouse's schema tree, running SQL, downloads.

Everything runs through the locked untrusted path (:func:`ticklake.lake.sql.run_untrusted_sql`:
one SELECT, lake files only, time/row/byte caps), which also sees the user's warehouse
views and tables, read-only. Only a server started with ``ticklake serve
--allow-sql-writes`` (``create_app(allow_sql_writes=True)``) accepts ``write: true``,
and that request goes through :meth:`ticklake.api.LakeSession.sql_run` (statements in
one transaction on ``warehouse.duckdb``). Like every POST, these need the CSRF header.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import duckdb
import polars as pl
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ticklake.api import LakeSession
from ticklake.errors import QueryRejectedError, TicklakeError
from ticklake.web.api import lake as lake_api
from ticklake.web.api.deps import get_lake
from ticklake.web.errors import json_safe

router = APIRouter(tags=["sql"])
LakeDep = Annotated[LakeSession, Depends(get_lake)]
_CHUNK = 64 * 1024


class SqlWritesDisabledError(QueryRejectedError):
    """A write was asked of a server that runs the SQL box read-only (a 400)."""


def writes_allowed(request: Request) -> bool:
    return bool(getattr(request.app.state, "allow_sql_writes", False))


# ------------------------------------------------------------------------- schema tree
def _lake_layers(lake: LakeSession) -> list[dict[str, Any]]:
    infos = lake.datasets()
    counts: dict[str, int] = {}
    for info in infos:
        counts[info.name] = counts.get(info.name, 0) + 1
    layers: dict[str, list[dict[str, Any]]] = {}
    for info in sorted(infos, key=lambda i: (i.layer, i.name)):
        columns = [{"name": c.name, "type": c.type} for c in info.dataset_schema.columns]
        if all(c["name"] != "date" for c in columns):
            columns.append({"name": "date", "type": "date32"})  # the Hive partition column
        layers.setdefault(info.layer, []).append(
            {
                "name": info.name,
                "qualified": f"{info.layer}.{info.name}",
                "bare": counts[info.name] == 1,
                "schema": info.dataset_schema.name,
                "columns": columns,
            }
        )
    return [{"layer": layer, "datasets": items} for layer, items in layers.items()]


def _warehouse_objects(lake: LakeSession) -> tuple[list[dict[str, Any]], str | None]:
    """The user's views and tables of ``warehouse.duckdb`` by schema, and why not, if not.

    Opened read-only without waiting: a page must not hang on a writer holding the file,
    and viewing it must not create the file.
    """
    from ticklake.warehouse.db import WAREHOUSE_FILE, Warehouse

    path = lake.root / WAREHOUSE_FILE
    if not path.is_file():
        return [], None
    try:
        con = duckdb.connect(
            str(path),
            read_only=True,
            config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
        )
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        return [], f"the warehouse's own objects are not listed (busy or unreadable): {first}"
    try:
        objects = Warehouse(lake).objects(con)
    except duckdb.Error as exc:
        return [], f"the warehouse's objects could not be listed: {str(exc).splitlines()[0]}"
    finally:
        con.close()
    schemas: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        if obj.generated:
            continue
        schemas.setdefault(obj.schema, []).append(
            {
                "name": obj.name,
                "qualified": obj.name if obj.schema == "main" else obj.qualified,
                "kind": obj.kind,
                "columns": [{"name": n, "type": t} for n, t in obj.columns],
            }
        )
    return [{"schema": s, "objects": items} for s, items in sorted(schemas.items())], None


@router.get("/sql/schema", summary="The SQL page's tree: lake datasets and the user's objects")
def schema_tree(request: Request, lake: LakeDep) -> dict[str, Any]:
    warehouse, problem = _warehouse_objects(lake)
    return {
        "writes_allowed": writes_allowed(request),
        "layers": _lake_layers(lake),
        "warehouse": warehouse,
        "warehouse_error": problem,
    }


# ------------------------------------------------------------------------------ running
class SqlRunRequest(BaseModel):
    """SQL from the SQL page: one SELECT, or (``write``) statements for the warehouse."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=20_000)
    max_rows: int | None = Field(None, ge=1, le=100_000)
    write: bool = Field(False, description="run on the warehouse (needs --allow-sql-writes)")


def _with_fields(response: Response, **fields: Any) -> Response:
    """``response`` (a JSON object) with ``fields`` added at its end."""
    body = bytes(response.body)
    extra = json.dumps(fields, separators=(",", ":"))[1:]
    return Response(body[:-1] + b"," + extra.encode(), media_type="application/json")


@router.post(
    "/sql/run",
    summary="Run the SQL page's query: read-only, or on the warehouse when writes are allowed",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}, 413: {"description": "too large"}},
)
def run(request: Request, lake: LakeDep, body: SqlRunRequest) -> Response:
    with _one_line():
        return _run(request, lake, body)


@contextmanager
def _one_line() -> Iterator[None]:
    """Errors as the one line the page shows (DuckDB's caret and hints go to ``detail``)."""
    try:
        yield
    except TicklakeError as exc:
        lines = [line for line in exc.message.splitlines() if line.strip()]
        if len(lines) > 1:
            exc.fields.setdefault("detail", exc.message)
            exc.message = lines[0]
        raise


def _run(request: Request, lake: LakeSession, body: SqlRunRequest) -> Response:
    if not body.write:
        answer = lake_api.sql(
            request, lake, lake_api.SqlRequest(query=body.query, max_rows=body.max_rows)
        )
        return _with_fields(answer, mode="read-only")
    if not writes_allowed(request):
        raise SqlWritesDisabledError(
            "writes are off: this server runs the SQL box read-only; start it with "
            "`ticklake serve --allow-sql-writes` to write to the warehouse",
            query=body.query,
        )
    return _write(request, lake, body)


def _write(request: Request, lake: LakeSession, body: SqlRunRequest) -> Response:
    started = time.monotonic()
    result = lake.sql_run(body.query, source="the SQL page")
    elapsed = time.monotonic() - started
    frame = result.frame if result.frame is not None else pl.DataFrame()
    cap = lake.settings.query.max_rows
    max_rows = min(body.max_rows or cap, cap)
    max_bytes = getattr(
        request.app.state, "sql_max_response_bytes", lake_api.SQL_MAX_RESPONSE_BYTES
    )
    rows = lake_api.encode_rows(frame.head(max_rows), max_bytes)
    columns = [{"name": n, "type": str(t)} for n, t in frame.schema.items()]
    tail = {
        "row_count": min(frame.height, max_rows),
        "truncated": frame.height > max_rows,
        "max_rows": max_rows,
        "elapsed_seconds": round(elapsed, 4),
        "mode": "write",
        "statements": result.statements,
        "changes": result.summary(),
    }
    text = (
        '{"columns":'
        + json.dumps(columns)
        + ',"rows":'
        + rows
        + ","
        + json.dumps(json_safe(tail), separators=(",", ":"))[1:]
    )
    return Response(text, media_type="application/json")


# ---------------------------------------------------------------------------- downloads
class SqlDownloadRequest(BaseModel):
    """One SELECT to download; it is run again through the locked path with its caps."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=20_000)
    format: Literal["csv", "parquet"] = "csv"


def _chunks(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), _CHUNK):
        yield data[start : start + _CHUNK]


@router.post(
    "/sql/download",
    summary="Download a read-only SELECT's result as CSV or Parquet (same caps as the box)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
)
def download(lake: LakeDep, body: SqlDownloadRequest) -> StreamingResponse:
    settings = lake.settings.query
    with _one_line():
        result = lake.query_untrusted(
            body.query,
            max_rows=settings.max_rows,
            max_bytes=settings.max_result_mib * 1024 * 1024,
        )
    buffer = io.BytesIO()
    if body.format == "csv":
        result.frame.write_csv(buffer)
        media = "text/csv; charset=utf-8"
    else:
        result.frame.write_parquet(buffer)
        media = "application/vnd.apache.parquet"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"ticklake-query-{stamp}.{body.format}"
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Ticklake-Rows": str(result.frame.height),
        "X-Ticklake-Truncated": "true" if result.truncated else "false",
    }
    return StreamingResponse(_chunks(buffer.getvalue()), media_type=media, headers=headers)
