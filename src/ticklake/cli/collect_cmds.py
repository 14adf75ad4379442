"""``ticklake collect``: live collectors (``binance``) and their ``status``."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import signal
import time
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from ticklake.cli._common import console, handle_errors
from ticklake.errors import ConfigError

collect_app = typer.Typer(
    help="Collect live market data from an exchange into raw parts.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(collect_app, name="collect")


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _config(config_file: Path | None, flags: dict[str, Any]) -> Any:
    from ticklake.collect.binance import CollectorConfig

    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            raw = tomllib.loads(config_file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{config_file}: cannot read it as TOML ({exc})") from None
        data = dict(raw.get("collect", {}).get("binance", raw.get("collect", raw)))
    data.update({k: v for k, v in flags.items() if v is not None})
    try:
        return CollectorConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        where = f" ({config_file})" if config_file else ""
        raise ConfigError(f"collector settings{where}: {problems}") from None


def _log_to_file(out: Path, market: str) -> None:
    """A rotating log beside the raw parts (10 MB x 5), as well as the console."""
    directory = out / f"binance-{market}"
    directory.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        directory / "collector.log", maxBytes=10 * 1024 * 1024, backupCount=5
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("ticklake.collect")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


@collect_app.command("binance")
@handle_errors
def binance_cmd(
    symbols: Annotated[
        str | None, typer.Option(help="Comma-separated symbols, e.g. BTCUSDT,ETHUSDT.")
    ] = None,
    market: Annotated[str | None, typer.Option(help="spot or usdm (USD-M futures).")] = None,
    streams: Annotated[
        str | None,
        typer.Option(help="Comma-separated: trade, aggTrade, bookTicker, depth, markPrice."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="RAW_DIR: where raw parts go.")] = None,
    ws_url: Annotated[
        str | None, typer.Option(help="Websocket base URL (mirror, testnet).")
    ] = None,
    rest_url: Annotated[str | None, typer.Option(help="REST base URL.")] = None,
    part_seconds: Annotated[float | None, typer.Option(help="Seconds per raw part.")] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML file with a [collect.binance] table.")
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds (default: run until stopped)."),
    ] = None,
) -> None:
    """Collect Binance streams into RAW_DIR until Ctrl+C / SIGTERM (or --duration)."""
    from ticklake.collect.binance import BinanceCollector

    settings = _config(
        config,
        {
            "symbols": _split(symbols),
            "market": market,
            "streams": _split(streams),
            "out": out,
            "ws_url": ws_url,
            "rest_url": rest_url,
            "part_seconds": part_seconds,
        },
    )
    settings.stream_names()  # refuse a stream the market does not have, before connecting
    _log_to_file(settings.out, settings.market)
    collector = BinanceCollector(settings)
    console.print(
        f"collecting {', '.join(settings.stream_names())} from {collector.ws_url} into "
        f"{collector.dir} (Ctrl+C stops; status: ticklake collect status {settings.out})",
        highlight=False,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, collector.stop)
        await collector.run(duration=duration)

    started = time.monotonic()
    asyncio.run(main())
    snap = collector.stats.snapshot()
    written = sum(s["written"] for s in snap["streams"].values())
    gaps = sum(s["gaps"] for s in snap["streams"].values())
    lost = sum(s["gaps_unrecovered"] for s in snap["streams"].values())
    console.print(
        f"stopped after {time.monotonic() - started:.0f} s: {written:,} lines written, "
        f"{snap['reconnects']} reconnect(s), {gaps} gap(s) ({lost} not recoverable, see "
        f"{collector.gaps.path})",
        highlight=False,
    )


@collect_app.command("status")
@handle_errors
def status_cmd(
    out: Annotated[Path, typer.Argument(help="RAW_DIR of the collector.")],
    market: Annotated[str, typer.Option(help="spot or usdm.")] = "spot",
) -> None:
    """Per stream: rate, latency p50/p95/p99, gaps; and the collector's reconnects."""
    from ticklake.collect.rawfile import venue_dir
    from ticklake.collect.stats import read_status

    status = read_status(venue_dir(out, market))
    if status is None:
        raise ConfigError(
            f"{venue_dir(out, market)}/status.json does not exist: no collector has run "
            f"with --out {out} --market {market}"
        )
    age = (time.time_ns() - status["written_ns"]) / 1e9
    console.print(
        f"{status['market']} collector (pid {status['pid']}): {status['state']}, status "
        f"{age:.0f} s old; {status['reconnects']} reconnect(s), {status['stalls']} stall(s), "
        f"{status['rest_retries']} REST retr(ies), {status['slow_writes']} slow write(s)",
        highlight=False,
    )
    table = Table("stream", "msg/s", "messages", "written", "dupes", "from REST", "gaps",
                  "lost", "p50 ms", "p95 ms", "p99 ms")  # fmt: skip
    for name, s in status["streams"].items():
        lat = s["latency_ms"]
        table.add_row(
            name, f"{s['rate_per_second']:.1f}", f"{s['messages']:,}", f"{s['written']:,}",
            str(s["duplicates_skipped"]), str(s["recovered_from_rest"]), str(s["gaps"]),
            str(s["gaps_unrecovered"]),
            *("-" if lat[k] is None else f"{lat[k]:.1f}" for k in ("p50", "p95", "p99")),
        )  # fmt: skip
    console.print(table)
