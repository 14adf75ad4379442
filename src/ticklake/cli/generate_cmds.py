"""``ticklake generate options``: write a realistic NSE option chain in the vendor format."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from ticklake.cli._common import console, handle_errors, progress_bar

generate_app = typer.Typer(help="Generate realistic market data.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(generate_app, name="generate")


@generate_app.command("options")
@handle_errors
def options_cmd(
    out: Annotated[Path, typer.Option("--out", help="Output directory.")],
    underlying: Annotated[str, typer.Option(help="BANKNIFTY or NIFTY.")] = "BANKNIFTY",
    start: Annotated[str, typer.Option(help="First day (rolled to a trading day).")] = "2024-01-08",
    days: Annotated[int, typer.Option(help="Trading days to write.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 0,
    strikes_each_side: Annotated[int, typer.Option(help="Strikes beyond the day's range.")] = 10,
    expiries: Annotated[str, typer.Option(help="weekly,monthly")] = "weekly,monthly",
    spot_path: Annotated[
        Path | None, typer.Option(help="A real 1 s index file/folder to rescale as the path.")
    ] = None,
    seconds_step: Annotated[int, typer.Option(help="Grid step in seconds (1 = full).")] = 1,
) -> None:
    """Write per-contract 52-column option files and the matching spot series."""
    from ticklake.generate import generate_options

    with progress_bar("generating days", days) as advance:
        summary = generate_options(
            underlying,
            start=date.fromisoformat(start),
            days=days,
            out=out,
            seed=seed,
            strikes_each_side=strikes_each_side,
            expiries=tuple(e.strip() for e in expiries.split(",") if e.strip()),
            spot_path=spot_path,
            seconds_step=seconds_step,
            progress=lambda done, total: advance(),
        )
    console.print(
        f"wrote {summary.files:,} option files ({summary.rows:,} rows) for {summary.days} day(s) "
        f"{summary.dates[0]}..{summary.dates[-1]} to {out / 'options'} and the spot series to "
        f"{out / 'spot'} in {summary.elapsed_seconds:.1f} s",
        highlight=False,
    )
