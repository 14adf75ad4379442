"""``ticklake sql ...``: the warehouse's SQL files, migrations, models and shell."""

from __future__ import annotations

import typer

from ticklake.cli import sql_file_cmds, sql_model_cmds

sql_app = typer.Typer(
    help="The SQL warehouse (<lake>/warehouse.duckdb): SQL files, migrations, models, shell.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    sql_file_cmds.register(sql_app)
    sql_model_cmds.register(sql_app)
    app.add_typer(sql_app, name="sql")
