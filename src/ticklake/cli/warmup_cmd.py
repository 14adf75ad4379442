"""``ticklake warmup``: compile the Numba kernels once, so the first backtest does not.

Every kernel is ``@numba.njit(cache=True)``: compiled on its first call with a new type
signature and written to Numba's cache (``__pycache__`` beside the installed module, or
``$NUMBA_CACHE_DIR``); later processes load it from there. A wheel from pip cannot run
code at install, so without this command the first backtest after an install (or an
upgrade, which invalidates the cache) pays 12-20 s of compiling inside its first day.

``warmup`` builds a tiny synthetic lake in a temporary directory (generated BANKNIFTY
days: a Friday, the Monday after, and the weekly expiry), then runs the engine's real
code paths over it, so the cache receives exactly the specialisations a run uses:

* every shipped strategy template (sweeps included), which between them reach every
  selector kind, fill, day filter, entry and exit condition of the engine;
* the option analytics kernels (the ``option_greeks`` example pipeline).

The bars kernels (trade datasets) and the L3 order-book kernels are not on a backtest's
path and still compile on their first use.

Each group prints one line: how many kernel specialisations it compiled now and how
many it found already cached. Running it again compiles nothing and takes a few seconds.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from ticklake.cli._common import console, handle_errors, progress_bars

#: The synthetic days: Friday 2024-01-05 (a previous close for gap filters), then
#: Monday 8th to the weekly expiry on Wednesday 10th (expiry-day strategies trade).
WARMUP_START = date(2024, 1, 5)
WARMUP_DAYS = 4
#: One snapshot every 15 s: the same columns and dtypes (so the same specialisations)
#: as a real 1-second day, at a tenth of the generate + ingest cost.
WARMUP_STEP_SECONDS = 15


def register(app: typer.Typer) -> None:
    app.command("warmup")(warmup_cmd)


def kernel_counts() -> tuple[int, int]:
    """(compiled in this process, loaded from the cache) over ticklake's Numba kernels."""
    from numba.core.dispatcher import Dispatcher

    compiled = loaded = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("ticklake.") or module is None:
            continue
        for value in vars(module).values():
            if isinstance(value, Dispatcher) and value.__module__ == name:
                stats = value.stats
                compiled += sum(stats.cache_misses.values())
                loaded += sum(stats.cache_hits.values())
    return compiled, loaded


def cache_location() -> str:
    """Where Numba writes ticklake's kernels (``$NUMBA_CACHE_DIR`` or ``__pycache__``)."""
    from numba.core import config

    cache_dir = getattr(config, "CACHE_DIR", "")  # set from the environment at import
    if cache_dir:
        return str(cache_dir)
    from ticklake.backtest import kernel

    return str(Path(kernel.__file__).parent / "__pycache__") + " (beside each module)"


@contextmanager
def _group(name: str, report: Callable[[str], None]) -> Iterator[None]:
    before = kernel_counts()
    started = time.process_time()
    yield
    compiled, loaded = (now - then for now, then in zip(kernel_counts(), before, strict=True))
    report(
        f"[green]✓[/] {name}: {compiled} kernel specialisation(s) compiled, {loaded} loaded "
        f"from the cache ({time.process_time() - started:.1f} s CPU)"
    )


def _synthetic_lake(root: Path) -> Any:
    from ticklake.api import init_lake
    from ticklake.generate import generate_options
    from ticklake.ingest.readers import ReaderOptions

    lake = init_lake(root / "lake")
    raw = root / "vendor"
    generate_options(
        "BANKNIFTY", start=WARMUP_START, days=WARMUP_DAYS, out=raw, seed=7,
        strikes_each_side=1, expiries=("weekly",), seconds_step=WARMUP_STEP_SECONDS,
    )  # fmt: skip
    lake.ingest([raw / "options"], "banknifty_options", format="nse_options")
    lake.ingest(
        [raw / "spot"], "banknifty_spot", format="nse_index",
        options=ReaderOptions(instrument="BANKNIFTY"),
    )  # fmt: skip
    return lake


def _run_template(lake: Any, name: str, start: date, end: date) -> None:
    from ticklake.strategies import template_data

    data = template_data(name)
    data["time"] = {**(data.get("time") or {}), "start": start.isoformat(), "end": end.isoformat()}
    if data.get("sweep"):
        lake.sweep(data, executor="serial", use_cache=False)
    else:
        lake.backtest(data, executor="serial", use_cache=False)


def _analytics(lake: Any, start: date, end: date) -> None:
    from ticklake.demo import EXAMPLES_DIR

    lake.analytics(EXAMPLES_DIR / "option_greeks.yml", start=start, end=end, executor="serial")


@handle_errors
def warmup_cmd(
    keep: Annotated[
        Path | None,
        typer.Option("--keep", help="Build the synthetic lake here and keep it (for debugging)."),
    ] = None,
) -> None:
    """Compile the Numba kernels into Numba's cache, so the first backtest does not."""
    from ticklake.strategies import template_names

    work = Path(tempfile.mkdtemp(prefix="ticklake-warmup-")) if keep is None else keep
    templates = template_names()
    report = console.print
    try:
        with progress_bars() as bars:
            setup = bars.add("synthetic lake", total=1)
            lake = _synthetic_lake(work)
            setup.advance()
            report(f"[green]✓[/] synthetic lake: {WARMUP_DAYS} generated days in {work}")
            days = sorted(part.date for part in lake.partitions("banknifty_options"))
            start, end = days[0], days[-1]
            engine = bars.add("backtest engine", total=len(templates))
            with _group(f"backtest engine ({len(templates)} templates)", report):
                for name in templates:
                    engine.advance(note=name)
                    _run_template(lake, name, start, end)
            analytics = bars.add("option analytics", total=1)
            with _group("option analytics", report):
                _analytics(lake, start, end)
                analytics.advance(note="option_greeks")
        compiled, loaded = kernel_counts()
        report(
            f"warmup done: {compiled} compiled, {loaded} loaded; Numba cache: {cache_location()}"
        )
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
