"""The FastAPI application: REST API v1 under ``/api/v1``, dashboard pages, static files.

Examples:
    >>> import tempfile
    >>> from ticklake.lake import init_lake
    >>> root = init_lake(tempfile.mkdtemp() + "/lake").root
    >>> app = create_app(root)
    >>> app.state.lake.root == root
    True
    >>> app.state.jobs.shutdown()
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ticklake._version import __version__
from ticklake.api import open_lake
from ticklake.errors import TicklakeError
from ticklake.web.api import api_router
from ticklake.web.api import sql as sql_api
from ticklake.web.api.lake import SQL_MAX_RESPONSE_BYTES
from ticklake.web.errors import (
    ERROR_ENVELOPE_SCHEMA,
    error_body,
    status_for,
    validation_error_body,
)
from ticklake.web.jobs import JobManager
from ticklake.web.pages import pages_router
from ticklake.web.security import (
    DEFAULT_MAX_BODY_BYTES,
    SecurityConfig,
    SecurityMiddleware,
)

STATIC_DIR = Path(__file__).resolve().parent / "static"


def plotly_js_path() -> Path:
    """``plotly.min.js`` as shipped inside the ``plotly`` Python package (no CDN, no Node)."""
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def create_app(
    lake_root: Path | str,
    token: str | None = None,
    *,
    bound_host: str = "127.0.0.1",
    allowed_hosts: Iterable[str] = (),
    job_workers: int = 1,
    executor: str | None = None,
    executor_workers: int | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    sql_max_response_bytes: int = SQL_MAX_RESPONSE_BYTES,
    allow_sql_writes: bool = False,
) -> FastAPI:
    """Build the app over the lake at ``lake_root``.

    ``token`` (default ``$TICKLAKE_TOKEN``) is required on every request when set;
    ``bound_host`` and ``allowed_hosts`` are accepted in the ``Host`` header besides
    localhost; jobs run ``job_workers`` at a time with ``executor`` (default: the
    lake's setting). The SQL box's ``rows`` are at most ``sql_max_response_bytes`` of JSON;
    the SQL page writes to the warehouse only with ``allow_sql_writes``
    (``ticklake serve --allow-sql-writes``), else it is read-only.
    """
    lake = open_lake(lake_root)
    token = token if token is not None else (os.environ.get("TICKLAKE_TOKEN") or None)
    jobs = JobManager(
        lake, workers=job_workers, executor=executor, executor_workers=executor_workers
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.shutdown(wait=False)

    app = FastAPI(
        title="ticklake",
        version=__version__,
        description="REST API of a ticklake lake: data, SQL, quality, metrics, strategies, "
        "jobs and backtest runs. State-changing requests need the CSRF header or a token "
        "(see docs/web.md).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.lake = lake
    app.state.jobs = jobs
    app.state.token_required = token is not None
    app.state.sql_max_response_bytes = sql_max_response_bytes
    app.state.allow_sql_writes = allow_sql_writes

    @app.exception_handler(TicklakeError)
    async def ticklake_error(request: Request, exc: TicklakeError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_error_body(exc.errors()), status_code=422)

    def openapi() -> dict[str, Any]:
        # The 422 answers are the error envelope, not FastAPI's {"detail": [...]}.
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            schemas = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = ERROR_ENVELOPE_SCHEMA
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.include_router(api_router())
    app.include_router(sql_api.router, prefix="/api/v1")
    app.include_router(pages_router())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(
            plotly_js_path(),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    import swagger_ui_bundle

    app.mount(
        "/vendor/swagger",
        StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
        name="swagger",
    )

    @app.get("/docs", include_in_schema=False)
    def swagger_docs() -> HTMLResponse:
        # Served from the swagger-ui-bundle-v2 wheel: OpenAPI docs work without internet.
        return HTMLResponse(
            "<!doctype html><html><head><meta charset='utf-8'><title>ticklake API</title>"
            "<link rel='stylesheet' href='/vendor/swagger/swagger-ui.css'></head><body>"
            "<div id='swagger-ui'></div>"
            "<script src='/vendor/swagger/swagger-ui-bundle.js'></script>"
            "<script src='/static/swagger-init.js'></script></body></html>"
        )

    @app.get("/api/v1/health", tags=["lake"], summary="Liveness and version")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "lake": str(lake.root)}

    config = SecurityConfig(
        token=token,
        bound_host=bound_host,
        extra_hosts=allowed_hosts,
        max_body_bytes=max_body_bytes,
    )
    app.add_middleware(SecurityMiddleware, config=config)
    return app
