"""REST API v1 routers, one module per area; mounted under ``/api/v1`` by the app."""

from __future__ import annotations

from fastapi import APIRouter

from ticklake.web.api import catalog, jobs, lake, live, runs


def api_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    for module in (lake, catalog, jobs, runs, live):
        router.include_router(module.router)
    return router
