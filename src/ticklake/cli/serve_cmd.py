"""``ticklake serve``: the REST API and the dashboard in one local process."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ticklake.cli._common import LakeOption, console, get_lake, handle_errors


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)


@handle_errors
def serve_cmd(
    host: Annotated[
        str, typer.Option(help="Address to listen on; anything but loopback needs TICKLAKE_TOKEN.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    jobs: Annotated[int, typer.Option(help="Jobs (backtests, validations...) run at once.")] = 1,
    executor: Annotated[
        str | None, typer.Option(help="serial | process | ray (default: the lake's setting).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel day tasks per job.")] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option("--allow-host", help="Extra Host header names to accept (e.g. a DNS name)."),
    ] = None,
    allow_sql_writes: Annotated[
        bool,
        typer.Option(
            "--allow-sql-writes",
            help="Let the SQL page write to the warehouse (off: its box is read-only).",
        ),
    ] = False,
    lake_path: LakeOption = None,
) -> None:
    """Serve the REST API (/api/v1, OpenAPI at /docs) and the dashboard."""
    import uvicorn

    from ticklake.web.app import create_app
    from ticklake.web.security import TOKEN_ENV, check_bind

    token = os.environ.get(TOKEN_ENV) or None
    check_bind(host, token)
    lake = get_lake(lake_path)
    app = create_app(
        lake.root,
        token,
        bound_host=host,
        allowed_hosts=allow_host or (),
        job_workers=jobs,
        executor=executor,
        executor_workers=workers,
        allow_sql_writes=allow_sql_writes,
    )
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"ticklake serving {lake.root} at http://{shown}:{port}/ (API docs: /docs)"
        + (" — token required" if token else "")
        + (" — the SQL page may write to the warehouse" if allow_sql_writes else ""),
        highlight=False,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)
