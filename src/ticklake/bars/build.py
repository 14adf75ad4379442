"""Build and roll up bar datasets in the lake, one trading day per task.

``build_bars`` reads a source dataset (``trades``, ``option_snapshots[_full]`` or
``prices``) partition by partition and writes ``silver.bars_<interval>`` (or ``out``)
with the source's exchange time zone and trading-day rule, so a bar's partition is the
trading day of its open. ``rollup_bars`` does the same from a ``bars`` dataset.

Each output partition records in its manifest the sha256 of every source partition
it was computed from (``SourceRef``) and the hash of the bar spec. A day whose
manifest already has this spec hash and these source hashes is skipped; a day built
with another spec is refused rather than merged (the lake merges by key, so bars of
two specs would mix): write to another ``out`` name instead.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict

from ticklake.bars.aggregate import (
    FILL_MODES,
    FillMode,
    count_filled,
    prices_to_bars,
    rollup,
    snapshots_to_bars,
    trades_to_bars,
)
from ticklake.bars.alignment import BarGrid, parse_anchor, parse_interval
from ticklake.errors import ConfigError, SchemaMismatchError
from ticklake.execution import get_executor
from ticklake.lake import DatasetInfo, Lake, PartitionInfo, SourceRef
from ticklake.lake.manifest import sha256_file

SourceKind = Literal["trades", "option_snapshots", "prices", "bars"]
_KINDS: dict[str, SourceKind] = {
    "trades": "trades",
    "option_snapshots": "option_snapshots",
    "option_snapshots_full": "option_snapshots",
    "prices": "prices",
    "bars": "bars",
}
ProgressFn = Callable[[str, int, int], None]


class BarSpec(BaseModel):
    """What a bar dataset is computed from and how; its hash goes into each manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: SourceKind
    source: str
    interval: str
    anchor: str | None = None
    quotes: str | None = None
    fill: FillMode = "none"

    def spec_hash(self) -> str:
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def grid(self, info: DatasetInfo) -> BarGrid:
        return BarGrid.create(
            self.interval, timezone=info.timezone, day_offset=info.day_offset, anchor=self.anchor
        )


@dataclass(frozen=True)
class BarsDay:
    """What happened to one trading day."""

    day: str
    status: str  # "built" | "unchanged" (same spec and sources: skipped)
    rows_in: int = 0
    bars: int = 0
    bars_filled: int = 0
    rows_added: int = 0


@dataclass
class BarsSummary:
    """Summary of a build or roll-up; ``line()`` is what the CLI prints."""

    dataset: str
    source: str
    interval: str
    spec_hash: str
    days: list[BarsDay] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def days_built(self) -> list[str]:
        return [d.day for d in self.days if d.status == "built"]

    @property
    def rows_in(self) -> int:
        return sum(d.rows_in for d in self.days)

    @property
    def bars(self) -> int:
        return sum(d.bars for d in self.days)

    @property
    def bars_filled(self) -> int:
        return sum(d.bars_filled for d in self.days)

    def line(self) -> str:
        skipped = len(self.days) - len(self.days_built)
        filled = f" ({self.bars_filled:,} forward-filled)" if self.bars_filled else ""
        return (
            f"{self.dataset}: {self.bars:,} {self.interval} bars{filled} from {self.rows_in:,} "
            f"rows of {self.source}, {len(self.days_built)} day(s) built, {skipped} unchanged "
            f"(spec {self.spec_hash}), {self.seconds:.1f} s"
        )


@dataclass(frozen=True)
class _DayTask:
    lake_root: str
    spec_json: str
    out: str
    day: str
    files: tuple[tuple[str, str], ...]  # (path relative to the lake, sha256)
    quote_files: tuple[tuple[str, str], ...] = ()


# ------------------------------------------------------------------ public
def build_bars(
    lake: Lake,
    dataset: str,
    interval: str,
    *,
    out: str | None = None,
    start: date | str | None = None,
    end: date | str | None = None,
    quotes: str | None = None,
    fill: FillMode = "none",
    anchor: str | None = None,
    executor: str | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> BarsSummary:
    """Build ``interval`` bars from a trades, option-snapshot or prices dataset.

    A ``bars`` source is rolled up instead (see :func:`rollup_bars`). ``quotes`` names
    a quotes dataset for the last bid/ask at each bar's close; ``fill="forward"``
    inserts empty bars within each trading day; ``anchor`` (``HH:MM`` exchange time)
    moves the grid's origin, e.g. ``09:15`` for NSE hourly bars.
    """
    info = lake.dataset_info(dataset)
    kind = source_kind(info)
    if kind == "bars":
        if quotes is not None:
            raise ConfigError(
                f"{info.layer}.{info.name} already holds bars; --quotes applies to trades only",
                dataset=dataset,
            )
        return rollup_bars(
            lake, dataset, interval, out=out, start=start, end=end, fill=fill, anchor=anchor,
            executor=executor, workers=workers, progress=progress,
        )  # fmt: skip
    if quotes is not None:
        if kind != "trades":
            raise ConfigError(
                f"--quotes applies to a trades source; {info.layer}.{info.name} holds {kind}",
                dataset=dataset,
            )
        quote_info = lake.dataset_info(quotes)
        if quote_info.dataset_schema.name != "quotes":
            raise SchemaMismatchError(
                f"{quote_info.layer}.{quote_info.name} has schema "
                f"{quote_info.dataset_schema.name!r}, not 'quotes'; pass a quotes dataset",
                dataset=quotes,
            )
        quotes = f"{quote_info.layer}.{quote_info.name}"
    spec = _spec(kind, info, interval, anchor, fill, quotes)
    return _run(lake, spec, info, out, start, end, executor, workers, progress)


def rollup_bars(
    lake: Lake,
    dataset: str,
    interval: str,
    *,
    out: str | None = None,
    start: date | str | None = None,
    end: date | str | None = None,
    fill: FillMode = "none",
    anchor: str | None = None,
    executor: str | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> BarsSummary:
    """Roll a ``bars`` dataset up to larger ``interval`` bars (open-time labels both sides)."""
    info = lake.dataset_info(dataset)
    if source_kind(info) != "bars":
        raise SchemaMismatchError(
            f"{info.layer}.{info.name} has schema {info.dataset_schema.name!r}; roll-ups read "
            "a bars dataset. Build bars from it with `ticklake bars build` first.",
            dataset=dataset,
        )
    spec = _spec("bars", info, interval, anchor, fill, None)
    return _run(lake, spec, info, out, start, end, executor, workers, progress)


# ----------------------------------------------------------------- driver
def source_kind(info: DatasetInfo) -> SourceKind:
    """Which bar kernel reads a dataset: trades, option_snapshots, prices or bars."""
    name = info.dataset_schema.name
    if name not in _KINDS:
        raise SchemaMismatchError(
            f"cannot build bars from {info.layer}.{info.name} (schema {name!r}); bars come "
            "from trades, option_snapshots, prices or bars datasets",
            dataset=info.name,
        )
    return _KINDS[name]


def _spec(
    kind: SourceKind,
    info: DatasetInfo,
    interval: str,
    anchor: str | None,
    fill: str,
    quotes: str | None,
) -> BarSpec:
    if fill not in FILL_MODES:
        raise ConfigError(f"--fill must be one of {', '.join(FILL_MODES)}, got {fill!r}", fill=fill)
    resolved_anchor = parse_anchor(anchor)
    return BarSpec(
        kind=kind,
        source=f"{info.layer}.{info.name}",
        interval=parse_interval(interval).label,
        anchor=None if resolved_anchor is None else resolved_anchor.isoformat(),
        quotes=quotes,
        fill=fill,
    )


def _run(
    lake: Lake,
    spec: BarSpec,
    info: DatasetInfo,
    out: str | None,
    start: date | str | None,
    end: date | str | None,
    executor: str | None,
    workers: int | None,
    progress: ProgressFn | None,
) -> BarsSummary:
    started = time.perf_counter()
    out = out or parse_interval(spec.interval).dataset_name()
    if f"silver.{out}" == spec.source:
        raise ConfigError(
            f"the output silver.{out} is the source itself; pass another --out name", out=out
        )
    _ensure_output(lake, out, info)
    summary = BarsSummary(f"silver.{out}", spec.source, spec.interval, spec.spec_hash())
    first, last = _as_day(start), _as_day(end)
    partitions = [
        p
        for p in lake.partitions(info.name, layer=info.layer)
        if (first is None or p.date >= first) and (last is None or p.date <= last)
    ]
    quote_parts = lake.partitions(spec.quotes) if spec.quotes else []
    grid = spec.grid(info)
    existing = {p.date: p for p in lake.partitions(out, layer="silver")}
    day_quotes = {p.date: _quote_partitions(quote_parts, p.date, grid) for p in partitions}
    # The workers read these files by path: check them against their commits first.
    lake.check_partitions(
        [*partitions, *{q.path: q for qs in day_quotes.values() for q in qs}.values()]
    )
    tasks: list[_DayTask] = []
    for part in partitions:
        sources = (_source_ref(lake, part),)
        quote_refs = tuple(_source_ref(lake, q) for q in day_quotes[part.date])
        done = existing.get(part.date)
        if done is not None and done.manifest is not None:
            recorded = done.manifest.lineage
            if recorded.spec_hash not in (None, spec.spec_hash()):
                raise ConfigError(
                    f"silver.{out} day {part.date} was built with another bar spec "
                    f"({recorded.spec_hash}; this build is {spec.spec_hash()}: "
                    f"{spec.model_dump()}). "
                    "The lake merges by key, so the two would mix; write to a new --out name "
                    f"or delete silver/{out} first.",
                    dataset=out,
                )
            recorded_shas = {s.sha256 for s in recorded.sources}
            if {s[1] for s in sources + quote_refs} <= recorded_shas:
                summary.days.append(BarsDay(str(part.date), "unchanged"))
                continue
        tasks.append(
            _DayTask(
                str(lake.root), spec.model_dump_json(), out, str(part.date), sources, quote_refs
            )
        )
    run = get_executor(
        executor or lake.settings.execution.executor,
        workers=workers or lake.settings.execution.workers,
        fresh_worker_per_task=False,
    )

    def on_result(index: int, result: BarsDay) -> None:
        if progress is not None:
            progress(result.day, index, len(tasks))

    summary.days.extend(run.map(build_day, tasks, on_result=on_result))
    summary.days.sort(key=lambda d: d.day)
    summary.seconds = time.perf_counter() - started
    return summary


def build_day(task: _DayTask) -> BarsDay:
    """Compute and commit one trading day of bars (a pure task: inputs are files + spec)."""
    from ticklake.lake import Lake

    lake = Lake(task.lake_root)
    spec = BarSpec.model_validate_json(task.spec_json)
    layer, name = spec.source.split(".", 1)
    info = lake.dataset_info(name, layer)
    grid = spec.grid(info)
    frame = pl.read_parquet(
        [lake.root / path for path, _ in task.files], schema=info.dataset_schema.polars_schema()
    )
    if spec.kind == "trades":
        quotes = None
        if spec.quotes:
            quote_layer, quote_name = spec.quotes.split(".", 1)
            quote_schema = lake.dataset_info(quote_name, quote_layer).dataset_schema
            quotes = (
                pl.read_parquet(
                    [lake.root / path for path, _ in task.quote_files],
                    schema=quote_schema.polars_schema(),
                )
                if task.quote_files
                else pl.DataFrame(schema=quote_schema.polars_schema())
            )
        bars = trades_to_bars(frame, grid, quotes=quotes, fill=spec.fill)
    elif spec.kind == "option_snapshots":
        bars = snapshots_to_bars(frame, grid, fill=spec.fill)
    elif spec.kind == "prices":
        bars = prices_to_bars(frame, grid, fill=spec.fill)
    else:
        bars = rollup(frame, grid, fill=spec.fill)
    sources = [SourceRef(path=path, sha256=sha) for path, sha in task.files + task.quote_files]
    result = lake.write(
        task.out,
        bars,
        layer="silver",
        schema="bars",
        timezone=info.timezone,
        day_offset=info.day_offset,
        sources=sources,
        spec_hash=spec.spec_hash(),
        input_is_unique=True,
    )
    filled = count_filled(bars) if spec.fill == "forward" else 0
    return BarsDay(task.day, "built", frame.height, bars.height, filled, result.rows_added)


# ---------------------------------------------------------------- helpers
def _ensure_output(lake: Lake, out: str, info: DatasetInfo) -> None:
    """Create ``silver.<out>`` with the source's time zone, or check an existing one."""
    if "silver" in lake.layers_of(out):
        existing = lake.dataset_info(out, "silver")
        if existing.dataset_schema.name != "bars":
            raise SchemaMismatchError(
                f"silver.{out} exists with schema {existing.dataset_schema.name!r}; pass another "
                "--out name",
                dataset=out,
            )
        if (existing.timezone, existing.day_offset) != (info.timezone, info.day_offset):
            raise SchemaMismatchError(
                f"silver.{out} uses time zone {existing.timezone} (day offset "
                f"{existing.day_offset}) but {info.layer}.{info.name} uses {info.timezone} "
                f"({info.day_offset}); their trading days differ. Pass another --out name.",
                dataset=out,
            )
        return
    lake.create_dataset(
        out, "bars", layer="silver", timezone=info.timezone, day_offset=info.day_offset
    )


def _source_ref(lake: Lake, part: PartitionInfo) -> tuple[str, str]:
    relative = part.path.relative_to(lake.root).as_posix()
    sha = part.manifest.file_sha256 if part.manifest is not None else sha256_file(part.path)
    return relative, sha


def _quote_partitions(parts: list[PartitionInfo], day: date, grid: BarGrid) -> list[PartitionInfo]:
    """Quote partitions that can hold the last quote before any bar close of ``day``.

    Everything starting before the day ends, but of the partitions wholly before the
    day only the latest (it holds the quote in force at the day's first bar).
    """
    day_start = grid.day_start_ns(day)
    day_end = grid.day_start_ns(day + timedelta(days=1))
    chosen: list[PartitionInfo] = []
    before: PartitionInfo | None = None
    for part in parts:
        bounds = part.manifest
        low = bounds.min_ts_ns if bounds is not None else None
        high = bounds.max_ts_ns if bounds is not None else None
        if low is None or high is None:
            chosen.append(part)  # no manifest bounds: read it rather than miss quotes
        elif high < day_start:
            before = part
        elif low < day_end:
            chosen.append(part)
    return ([before] if before is not None else []) + chosen


def _as_day(value: date | str | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
