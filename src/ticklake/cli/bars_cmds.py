"""``ticklake bars build | rollup`` and ``ticklake slice``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ticklake.cli._common import LakeOption, console, get_lake, handle_errors, progress_bar
from ticklake.errors import ConfigError

if TYPE_CHECKING:
    from ticklake.lake import Lake

bars_app = typer.Typer(help="Build bars from ticks and roll them up.", no_args_is_help=True)

_ANCHOR_HELP = "Grid origin in exchange local time, HH:MM (e.g. 09:15 for NSE hourly bars)."
_FILL_HELP = "none: empty intervals have no bar; forward: insert them (close carried, volume 0)."


def register(app: typer.Typer) -> None:
    app.add_typer(bars_app, name="bars")
    app.command("slice")(slice_cmd)


@bars_app.command("build")
@handle_errors
def build_cmd(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Source: trades, option snapshots or prices.")
    ],
    interval: Annotated[str, typer.Option(help="Bar length: 1s, 5s, 1m, 5m, 1h, 1d, ...")],
    out: Annotated[
        str | None, typer.Option(help="Silver dataset to write (default: bars_<interval>).")
    ] = None,
    start: Annotated[str | None, typer.Option(help="First trading day, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option(help="Last trading day, YYYY-MM-DD.")] = None,
    quotes: Annotated[
        str | None, typer.Option(help="Quotes dataset for the last bid/ask at each bar close.")
    ] = None,
    fill: Annotated[str, typer.Option(help=_FILL_HELP)] = "none",
    anchor: Annotated[str | None, typer.Option(help=_ANCHOR_HELP)] = None,
    executor: Annotated[
        str | None, typer.Option(help="serial | process (default: lake setting).")
    ] = None,
    lake_path: LakeOption = None,
) -> None:
    """Build bars from a trades, option-snapshot or prices dataset into silver."""
    lake = get_lake(lake_path)
    days = len(lake.partitions(dataset))
    with progress_bar("bars", days) as advance:
        summary = lake.bars(
            dataset, interval, out=out, start=start, end=end, quotes=quotes,
            fill=fill, anchor=anchor, executor=executor,
            progress=lambda day, _i, _n: advance(note=day),
        )  # fmt: skip
    console.print(summary.line(), highlight=False)


@bars_app.command("rollup")
@handle_errors
def rollup_cmd(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Source bars dataset.")],
    interval: Annotated[str, typer.Option(help="Larger bar length: 5m, 30m, 1h, 1d, ...")],
    out: Annotated[
        str | None, typer.Option(help="Silver dataset to write (default: bars_<interval>).")
    ] = None,
    start: Annotated[str | None, typer.Option(help="First trading day, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option(help="Last trading day, YYYY-MM-DD.")] = None,
    fill: Annotated[str, typer.Option(help=_FILL_HELP)] = "none",
    anchor: Annotated[str | None, typer.Option(help=_ANCHOR_HELP)] = None,
    executor: Annotated[
        str | None, typer.Option(help="serial | process (default: lake setting).")
    ] = None,
    lake_path: LakeOption = None,
) -> None:
    """Roll bars up to larger bars (open = first open, close = last close, VWAP = Σqv/Σv)."""
    lake = get_lake(lake_path)
    days = len(lake.partitions(dataset))
    with progress_bar("roll-up", days) as advance:
        summary = lake.rollup(
            dataset, interval, out=out, start=start, end=end, fill=fill,
            anchor=anchor, executor=executor,
            progress=lambda day, _i, _n: advance(note=day),
        )  # fmt: skip
    console.print(summary.line(), highlight=False)


@handle_errors
def slice_cmd(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset to cut.")],
    out: Annotated[Path, typer.Option(help="Output file.")],
    symbols: Annotated[
        str | None, typer.Option(help="Comma-separated symbols (default: all).")
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD (trading day) or YYYY-MM-DDTHH:MM (UTC).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD (inclusive day) or an instant (exclusive).")
    ] = None,
    tf: Annotated[
        str | None, typer.Option("--tf", help="Aggregate to bars of this length (e.g. 1m).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="parquet | csv.")] = "parquet",
    anchor: Annotated[str | None, typer.Option(help=_ANCHOR_HELP)] = None,
    fill: Annotated[str, typer.Option(help=_FILL_HELP)] = "none",
    lake_path: LakeOption = None,
) -> None:
    """Export a time box of a dataset (rows, or bars with --tf) to Parquet or CSV."""
    lake = get_lake(lake_path)
    wanted = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
    if wanted:
        _check_symbols(lake, dataset, wanted)
    result = lake.export_slice(
        dataset, out, format=fmt, symbols=wanted, start=start, end=end,
        timeframe=tf, anchor=anchor, fill=fill,
    )  # fmt: skip
    console.print(f"wrote {result.rows:,} rows to {result.path}", highlight=False)


def _check_symbols(lake: Lake, dataset: str, wanted: list[str]) -> None:
    """Refuse symbols the dataset never holds (a typo would export an empty file)."""
    info = lake.dataset_info(dataset)
    column = "symbol" if "symbol" in info.dataset_schema.column_names else "instrument"
    known = (
        lake.scan(info.name, layer=info.layer, columns=[column])
        .unique()
        .collect()[column]
        .sort()
        .to_list()
    )
    unknown = [symbol for symbol in wanted if symbol not in set(known)]
    if unknown:
        shown = ", ".join(known[:12]) + (f", … ({len(known)} in all)" if len(known) > 12 else "")
        raise ConfigError(
            f"{info.layer}.{info.name} has no rows for --symbols {', '.join(unknown)} "
            f"(symbols are matched exactly, on {column}); it holds: {shown or 'no rows'}"
        )
