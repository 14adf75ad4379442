"""``ticklake collect``: live collectors (``binance``) and their ``status``."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ticklake.cli._common import console, handle_errors
from ticklake.errors import ConfigError

collect_app = typer.Typer(
    help="Collect live market data from an exchange into raw parts.", no_args_is_help=True
)


backfill_app = typer.Typer(
    help="Fetch history from an exchange's REST API into raw parts (and the lake).",
    no_args_is_help=True,
)


fetch_app = typer.Typer(
    help="Download published archives (checksum-verified) and ingest them.",
    no_args_is_help=True,
)


def run_sync(coroutine: Any) -> Any:
    """:func:`ticklake.collect.rest.run_sync`, imported on use (it loads httpx)."""
    from ticklake.collect.rest import run_sync as run

    return run(coroutine)


def register(app: typer.Typer) -> None:
    app.add_typer(collect_app, name="collect")
    app.add_typer(backfill_app, name="backfill")
    app.add_typer(fetch_app, name="fetch")
    app.command("orchestrate")(orchestrate_cmd)
    app.command("health")(health_cmd)


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _config(config_file: Path | None, flags: dict[str, Any]) -> Any:
    from pydantic import ValidationError

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
    from ticklake.collect.logs import rotating_log
    from ticklake.collect.rawfile import venue_dir

    rotating_log(venue_dir(out, market), "collector.log")


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
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, collector.stop)
        await collector.run(duration=duration)

    started = time.monotonic()
    run_sync(main())
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


@backfill_app.command("binance")
@handle_errors
def backfill_cmd(
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols, e.g. BTCUSDT.")],
    kind: Annotated[str, typer.Option(help="klines, aggTrades, fundingRate or openInterest.")],
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD) or instant (UTC).")],
    end: Annotated[str, typer.Option(help="Last day (inclusive) or instant (UTC).")],
    out: Annotated[Path, typer.Option(help="RAW_DIR: where the raw parts go.")],
    interval: Annotated[
        str | None,
        typer.Option(help="Kline interval (1m, 5m, 1h...), openInterest period (5m..1d)."),
    ] = None,
    market: Annotated[str, typer.Option(help="spot or usdm.")] = "spot",
    rest_url: Annotated[str | None, typer.Option(help="REST base URL (a mirror).")] = None,
    lake_path: Annotated[
        Path | None, typer.Option("--lake", help="Also route the parts into this lake.")
    ] = None,
    prefix: Annotated[str, typer.Option("--dataset", "-d", help="Dataset prefix.")] = "binance",
) -> None:
    """Fetch klines or aggTrades for a range (resumable; re-runs fetch only what is new)."""
    from datetime import date, datetime

    from pydantic import ValidationError

    from ticklake.collect.backfill import BackfillSpec, run_backfill

    def when(text: str) -> date | datetime:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)

    try:
        spec = BackfillSpec(
            market=market, symbols=_split(symbols) or [], kind=kind,
            interval=interval or ("5m" if kind == "openInterest" else "1m"),
            start=when(start), end=when(end), out=out, rest_url=rest_url,
        )  # fmt: skip
    except (ValidationError, ValueError) as exc:
        raise ConfigError(f"backfill settings: {str(exc).splitlines()[0]}") from None
    summary = run_sync(run_backfill(spec))
    resumed = (
        f" (resumed: {', '.join(f'{s} from {v}' for s, v in summary.resumed_from.items())})"
        if summary.resumed_from
        else ""
    )
    console.print(
        f"fetched {sum(summary.lines.values()):,} {kind} line(s) in {summary.pages} page(s), "
        f"{summary.retries} retr(ies), {summary.waited_seconds:.1f} s waiting for limits, "
        f"{summary.seconds:.1f} s{resumed}",
        highlight=False,
    )
    if lake_path is not None:
        from ticklake.cli._common import get_lake

        routed = get_lake(lake_path).ingest_raw(out, prefix)
        if not routed.datasets:
            console.print(
                f"nothing new to route: {routed.parts_skipped} raw part(s) already routed",
                highlight=False,
            )
        for name in sorted(routed.datasets):
            console.print(
                f"bronze.{name}: {routed.rows_read(name):,} read, "
                f"{routed.rows_added(name):,} added, {routed.rows_quarantined(name):,} "
                "quarantined",
                highlight=False,
            )


@backfill_app.command("http")
@handle_errors
def backfill_http_cmd(
    source: Annotated[Path, typer.Option(help="SOURCE.toml describing the HTTP provider.")],
    symbols: Annotated[str, typer.Option(help="Comma-separated instruments, e.g. SPY,EURUSD.")],
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD) or instant (UTC).")],
    end: Annotated[str, typer.Option(help="Last day (inclusive) or last bar's open (UTC).")],
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Bronze dataset (schema bars).")
    ] = "macro_1m",
    base_url: Annotated[
        str | None, typer.Option(help="Overrides the source file's base_url.")
    ] = None,
    lake_path: Annotated[Path | None, typer.Option("--lake", help="The lake.")] = None,
) -> None:
    """Fetch minute bars from any HTTP provider (a mapping in SOURCE.toml) into the lake
    (resumable; re-runs add nothing)."""
    from datetime import date, datetime

    from ticklake.cli._common import get_lake, progress_bars
    from ticklake.collect.http_source import load_source, range_bounds, run_http_backfill

    def when(text: str) -> date | datetime:
        try:
            return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"{text!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)") from None

    config = load_source(source, base_url=base_url)
    first_day, last_day = when(start), when(end)
    first, last = range_bounds(first_day, last_day, config.interval_ns)
    names = _split(symbols) or []
    lake = get_lake(lake_path)
    with progress_bars() as bars:
        tasks = {n: bars.add(n, total=(last - first) // config.interval_ns + 1) for n in names}

        def on_page(instrument: str, position: int, rows: int) -> None:
            done = (min(position, last + config.interval_ns) - first) // config.interval_ns
            tasks[instrument].update(completed=done, note=f"+{rows} bars")

        summary = run_sync(
            run_http_backfill(
                lake, config, names, first_day, last_day, dataset=dataset, on_page=on_page
            )
        )
    resumed = f" (resumed: {', '.join(summary.resumed_from)})" if summary.resumed_from else ""
    console.print(
        f"bronze.{dataset}: {sum(summary.rows.values()):,} bar(s) received, "
        f"{sum(summary.added.values()):,} added, in {summary.pages} page(s); "
        f"{summary.retries} retr(ies), {summary.waited_seconds:.1f} s waiting for limits, "
        f"{summary.seconds:.1f} s{resumed}",
        highlight=False,
    )
    if summary.outside_range:
        console.print(
            f"{summary.outside_range} row(s) the provider sent outside --start/--end were "
            "not written",
            highlight=False,
        )


@fetch_app.command("binance-vision")
@handle_errors
def vision_cmd(
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols, e.g. BTCUSDT.")],
    kind: Annotated[str, typer.Option(help="trades, aggTrades, klines or bookTicker.")],
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last day (inclusive), YYYY-MM-DD.")],
    out: Annotated[Path, typer.Option(help="Where the zips go (the archive's layout).")],
    market: Annotated[str, typer.Option(help="spot or usdm.")] = "spot",
    interval: Annotated[str, typer.Option(help="Kline interval.")] = "1m",
    base_url: Annotated[
        str | None, typer.Option(help="Archive base URL (a mirror); default data.binance.vision.")
    ] = None,
    parallel: Annotated[int, typer.Option(help="Downloads at a time.")] = 4,
    period: Annotated[
        str,
        typer.Option(
            help="daily | monthly | auto (monthly zips for whole months in the range, daily "
            "for the rest and for months not published yet)."
        ),
    ] = "auto",
    lake_path: Annotated[
        Path | None, typer.Option("--lake", help="Ingest the verified zips into this lake.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Target dataset (with --lake).")
    ] = None,
) -> None:
    """Fetch daily/monthly archives, verify each against its .CHECKSUM, optionally ingest."""
    from datetime import date

    from ticklake.cli._common import get_lake, progress_bars
    from ticklake.collect.rest import CollectError
    from ticklake.collect.vision import KINDS, READER, fetch_vision

    if kind not in KINDS:
        raise ConfigError(f"unknown --kind {kind!r}; known: {', '.join(KINDS)}")
    if period not in ("daily", "monthly", "auto"):
        raise ConfigError(f"unknown --period {period!r}; use daily, monthly or auto")
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        raise ConfigError(f"--start/--end: {exc} (use YYYY-MM-DD)") from None
    with progress_bars() as bars:
        task = bars.add("downloading archives")

        def on_progress(done: int, total: int) -> None:
            task.update(completed=done, total=total)

        summary = run_sync(
            fetch_vision(
                symbols=_split(symbols) or [], kind=kind, start=first, end=last, out=out,  # type: ignore[arg-type]
                market=market, interval=interval, base_url=base_url, parallel=parallel,
                period=period, progress=on_progress,  # type: ignore[arg-type]
            )
        )  # fmt: skip
    counts = {k: list(summary.status.values()).count(k) for k in ("fetched", "present", "missing")}
    console.print(
        f"{counts['fetched']} fetched ({summary.bytes_fetched / 1e6:.1f} MB), "
        f"{counts['present']} already present, {counts['missing']} not published, "
        f"{len(summary.failed)} refused"
        + (
            f"; {len(summary.monthly_fallbacks)} month(s) not published as a whole, "
            "fetched day by day"
            if summary.monthly_fallbacks
            else ""
        ),
        highlight=False,
    )
    for reason in summary.failed.values():
        console.print(f"[bold red]refused[/] {reason}", highlight=False, soft_wrap=True)
    verified = summary.verified(out)
    if lake_path is not None and verified:
        lake = get_lake(lake_path)
        name = dataset or f"binance_{kind.lower()}"
        result = lake.ingest([str(p) for p in verified], name, format=READER[kind],
                             on_failure="return")  # fmt: skip
        console.print(result.line(), highlight=False, soft_wrap=True)
    if summary.failed:
        raise typer.Exit(CollectError.exit_code)


@handle_errors
def orchestrate_cmd(
    config: Annotated[Path, typer.Argument(help="CONFIG.toml: lake, [[collectors]], [[jobs]].")],
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until stopped).")
    ] = None,
) -> None:
    """Run collectors and scheduled jobs (route, bars, validate, backfill, prune) with a
    heartbeat in <lake>/health/ until Ctrl+C / SIGTERM."""
    from ticklake.collect.orchestrate import Orchestrator, load_config, log_to_file

    settings = load_config(config)
    orchestrator = Orchestrator(settings)
    log_to_file(orchestrator.lake.root)
    for collector in settings.collectors:
        _log_to_file(collector.out, collector.market)
    console.print(
        f"orchestrating {len(settings.collectors)} collector(s) and {len(settings.jobs)} "
        f"job(s) on {orchestrator.lake.root}; health: ticklake health --lake "
        f"{orchestrator.lake.root}",
        highlight=False,
    )

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, orchestrator.stop)
        return await orchestrator.run(duration=duration)

    beat = run_sync(main())
    jobs = ", ".join(f"{n}: {j['last_result']}" for n, j in beat["jobs"].items()) or "no jobs"
    console.print(f"stopped; {jobs}", highlight=False, soft_wrap=True)


@handle_errors
def health_cmd(
    lake_path: Annotated[Path | None, typer.Option("--lake", help="The lake.")] = None,
) -> None:
    """Print <lake>/health/health.md; exit 0 HEALTHY, 20 DEGRADED, 21 ERROR, 22 STOPPED
    or stale, 23 no heartbeat (for a monitoring probe)."""
    from ticklake.cli._common import get_lake
    from ticklake.collect.health import EXIT_CODES, HEALTH_DIR, read_health

    lake = get_lake(lake_path)
    status, beat = read_health(lake.root)
    if beat is None:
        console.print(
            f"no heartbeat in {lake.root / HEALTH_DIR}: is `ticklake orchestrate` running?",
            highlight=False,
        )
    else:
        text = (lake.root / HEALTH_DIR / "health.md").read_text()
        console.print(text, highlight=False, markup=False)
        if status == "STALE":
            console.print(
                f"the heartbeat is stale (written {beat['written_at']}, every "
                f"{beat['heartbeat_seconds']:g} s): the orchestrator is not running",
                highlight=False,
            )
    raise typer.Exit(EXIT_CODES[status])
