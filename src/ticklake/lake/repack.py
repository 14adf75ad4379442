"""``repack``: rewrite partitions in a chosen sort order and row-group size, atomically.

A partition's layout decides how much of it a selective query reads: Parquet keeps
min/max statistics per row group, and a reader skips every row group whose range
misses the filter. Option snapshots sorted by ``(expiry, opt_type, strike, ts)`` in
row groups of a few ten thousand rows put each strike in a handful of row groups, so
a strike-range filter reads those and skips the rest; sorted by time, every row group
holds every strike and nothing can be skipped.

Each partition is rewritten under its lock through the normal commit protocol
(:func:`ticklake.lake.commit.commit_partition`), so readers see the old file or the
new one. Before the new file replaces the old one, its rows are read back and
compared with the old file's rows as a multiset (a digest of the sorted row hashes):
a repack never changes content, and refuses if it would.

Changing the sort changes the dataset's schema fingerprint. The descriptor
(``_dataset.json``) is updated first, then every partition is rewritten with a
manifest carrying the new fingerprint; if the run is interrupted in between,
``ticklake lake verify`` reports the partitions not yet rewritten as
``schema_mismatch`` and running the same repack again finishes the job.

Examples:
    >>> import tempfile, polars as pl
    >>> from datetime import datetime, timezone
    >>> from ticklake.lake import init_lake
    >>> lake = init_lake(tempfile.mkdtemp() + "/lake")
    >>> df = pl.DataFrame({
    ...     "ts": [datetime(2024, 1, 2, 10, m, tzinfo=timezone.utc) for m in (2, 1)],
    ...     "instrument": ["B", "A"], "trade_id": ["1", "2"],
    ...     "price": [1.0, 2.0], "size": [1.0, 1.0]})
    >>> _ = lake.write("trades", df, schema="trades")
    >>> report = repack(lake, "trades", sort=("instrument", "ts"))
    >>> report.sort_after, report.rows
    (('instrument', 'ts'), 2)
    >>> lake.read("trades")["instrument"].to_list()
    ['A', 'B']
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from ticklake.errors import ConfigError, CorruptPartitionError, SchemaMismatchError
from ticklake.lake import commit
from ticklake.lake.days import as_day as _as_day
from ticklake.lake.lake import Lake
from ticklake.lake.layout import DATASET_FILE, LOCK_DIR, PartitionRef, is_temp_file
from ticklake.lake.locking import file_lock
from ticklake.lake.manifest import DatasetInfo, Manifest, sha256_file, utc_now_iso
from ticklake.lake.merge import sort_order as _order
from ticklake.schemas import DatasetSchema

#: The smallest row group repack writes (the same floor as ``lake.row_group_rows``).
MIN_ROW_GROUP_ROWS = 1_024
#: Timed runs of the probe query per file; the best one is reported.
PROBE_RUNS = 3

RepackProgress = Callable[[int, int, str], None]


# ----------------------------------------------------------------------- probe
@dataclass(frozen=True)
class ProbeRange:
    """``low <= column <= high`` (equality when ``low == high``); ts bounds are UTC ns."""

    column: str
    low: Any
    high: Any


@dataclass(frozen=True)
class ProbeQuery:
    """A selective filter used to measure what a file layout buys a typical query."""

    ranges: tuple[ProbeRange, ...]
    timestamp_columns: frozenset[str] = frozenset()

    def describe(self) -> str:
        parts = []
        for r in self.ranges:
            low, high = (_show(r.low, r.column, self), _show(r.high, r.column, self))
            parts.append(
                f"{r.column} = {low}" if r.low == r.high else f"{low} ≤ {r.column} ≤ {high}"
            )
        return " and ".join(parts) or "(all rows)"

    def expression(self) -> pl.Expr:
        expr = pl.lit(True)
        for r in self.ranges:
            low, high = pl.lit(r.low), pl.lit(r.high)
            if r.column in self.timestamp_columns:
                low = low.cast(pl.Datetime("ns", "UTC"))
                high = high.cast(pl.Datetime("ns", "UTC"))
            expr = expr & pl.col(r.column).is_between(low, high)
        return expr

    def row_groups_skipped(self, metadata: pq.FileMetaData) -> int:
        """Count row groups whose min/max statistics rule the filter out."""
        index = {metadata.schema.column(i).name: i for i in range(metadata.num_columns)}
        skipped = 0
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            for r in self.ranges:
                if r.column not in index:
                    continue
                stats = row_group.column(index[r.column]).statistics
                if stats is None or not stats.has_min_max:
                    continue
                if r.column in self.timestamp_columns:
                    # Raw int64 ns: the logical values are pandas Timestamps or datetimes.
                    low_stat, high_stat = stats.min_raw, stats.max_raw
                else:
                    low_stat, high_stat = stats.min, stats.max
                if high_stat < r.low or low_stat > r.high:
                    skipped += 1
                    break
        return skipped


def _show(value: Any, column: str, probe: ProbeQuery) -> str:
    if column in probe.timestamp_columns:
        stamp = pl.Series([value]).cast(pl.Datetime("ns", "UTC")).dt.strftime("%H:%M:%S")[0]
        return f"{stamp} UTC"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def default_probe(frame: pl.DataFrame, dataset_schema: DatasetSchema) -> ProbeQuery:
    """Pick a typical selective query for a partition's rows.

    Option chains: the nearest expiry and the middle tenth of its strikes (at least
    one). Other data: the first instrument (if any) in the middle tenth of the day.
    """
    ts_column = dataset_schema.ts_column
    stamps = frozenset({ts_column})
    columns = set(frame.columns)
    if frame.height == 0:
        return ProbeQuery(())
    if {"expiry", "strike"} <= columns:
        expiry = frame["expiry"].drop_nulls().min()
        strikes = frame.filter(pl.col("expiry") == expiry)["strike"].drop_nulls().unique().sort()
        count = max(1, strikes.len() // 10)
        first = (strikes.len() - count) // 2
        chosen = strikes.slice(first, count)
        return ProbeQuery(
            (
                ProbeRange("expiry", expiry, expiry),
                ProbeRange("strike", chosen.min(), chosen.max()),
            ),
            stamps,
        )
    ts = frame[ts_column].dt.epoch("ns")
    low, high = int(ts.min()), int(ts.max())  # type: ignore[arg-type]
    span = high - low
    window = ProbeRange(ts_column, low + span * 45 // 100, low + span * 55 // 100)
    if "instrument" in columns:
        instrument = frame["instrument"].drop_nulls().min()
        return ProbeQuery((ProbeRange("instrument", instrument, instrument), window), stamps)
    return ProbeQuery((window,), stamps)


def time_probe(path: Path, probe: ProbeQuery, runs: int = PROBE_RUNS) -> tuple[float, int]:
    """Best-of-``runs`` seconds of ``scan_parquet(path).filter(probe).collect()``, and its rows."""
    best, rows = float("inf"), 0
    expr = probe.expression()
    for _ in range(runs):
        started = time.perf_counter()
        rows = pl.scan_parquet(path).filter(expr).collect().height
        best = min(best, time.perf_counter() - started)
    return best, rows


# ---------------------------------------------------------------------- report
@dataclass(frozen=True)
class PartitionRepack:
    """What repacking one partition changed, and what it bought the probe query."""

    partition: str
    day: date
    rows: int
    bytes_before: int
    bytes_after: int
    row_groups_before: int
    row_groups_after: int
    probe: str
    probe_rows: int
    row_groups_skipped_before: int
    row_groups_skipped_after: int
    scan_seconds_before: float
    scan_seconds_after: float
    changed: bool

    @property
    def scan_speedup(self) -> float:
        return (
            self.scan_seconds_before / self.scan_seconds_after if self.scan_seconds_after else 0.0
        )


@dataclass
class RepackReport:
    """Per-partition results of :func:`repack` and their totals."""

    dataset: str
    layer: str
    sort_before: tuple[str, ...]
    sort_after: tuple[str, ...]
    row_group_rows: int
    partitions: list[PartitionRepack] = field(default_factory=list)

    @property
    def sort_changed(self) -> bool:
        return self.sort_before != self.sort_after

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions)

    @property
    def bytes_before(self) -> int:
        return sum(p.bytes_before for p in self.partitions)

    @property
    def bytes_after(self) -> int:
        return sum(p.bytes_after for p in self.partitions)

    @property
    def row_groups_before(self) -> int:
        return sum(p.row_groups_before for p in self.partitions)

    @property
    def row_groups_after(self) -> int:
        return sum(p.row_groups_after for p in self.partitions)

    @property
    def row_groups_skipped_before(self) -> int:
        return sum(p.row_groups_skipped_before for p in self.partitions)

    @property
    def row_groups_skipped_after(self) -> int:
        return sum(p.row_groups_skipped_after for p in self.partitions)

    @property
    def scan_seconds_before(self) -> float:
        return sum(p.scan_seconds_before for p in self.partitions)

    @property
    def scan_seconds_after(self) -> float:
        return sum(p.scan_seconds_after for p in self.partitions)


# ---------------------------------------------------------------------- repack
def repack(
    lake: Lake,
    dataset: str,
    *,
    layer: str | None = None,
    sort: Sequence[str] | None = None,
    row_group_rows: int | None = None,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    progress: RepackProgress | None = None,
    probe: ProbeQuery | None = None,
) -> RepackReport:
    """Rewrite a dataset's partitions sorted by ``sort`` in row groups of ``row_group_rows``.

    ``sort`` defaults to the dataset's declared sort; a different one becomes the
    declared sort (later merges keep it) and then every partition is rewritten, so
    ``start``/``end`` (trading days, inclusive) are refused with it. ``row_group_rows``
    defaults to the dataset's own (``DatasetSchema.row_group_rows``, 65,536 for option
    snapshots), else ``lake.row_group_rows``. ``probe`` is the query timed before and after
    on each partition (default: :func:`default_probe`). ``progress(done, total,
    partition)`` is called after each partition.
    """
    info = lake.dataset_info(dataset, layer)
    current = info.dataset_schema
    target = current if sort is None else _with_sort(info, tuple(sort))
    default_rows = current.row_group_rows or lake.settings.lake.row_group_rows
    rows_per_group = default_rows if row_group_rows is None else row_group_rows
    if rows_per_group < MIN_ROW_GROUP_ROWS:
        raise ConfigError(
            f"row_group_rows must be at least {MIN_ROW_GROUP_ROWS:,}, got {rows_per_group:,}; "
            "smaller row groups cost more in footers than they save in skipped reads.",
            row_group_rows=rows_per_group,
        )
    qualified = f"{info.layer}.{info.name}"
    if target.sort != current.sort:
        if start is not None or end is not None:
            raise ConfigError(
                f"{qualified}: changing the sort from {', '.join(current.sort)} to "
                f"{', '.join(target.sort)} rewrites every partition (the sort is part of the "
                "dataset's schema); drop --start/--end.",
                dataset=qualified,
            )
        info = _write_descriptor(lake, info, target)
    if (
        row_group_rows is not None
        and row_group_rows != current.row_group_rows
        and not (start or end)
    ):
        # A whole-dataset repack to another group size makes it the dataset's own, so
        # later writes (ingest, merges) keep cutting the files that way.
        target = dataclasses.replace(target, row_group_rows=row_group_rows)
        info = _write_descriptor(lake, info, target)
    first, last = _as_day(start), _as_day(end)
    parts = [
        p
        for p in lake.partitions(info.name, layer=info.layer)
        if (first is None or p.date >= first) and (last is None or p.date <= last)
    ]
    report = RepackReport(
        dataset=info.name,
        layer=info.layer,
        sort_before=current.sort,
        sort_after=target.sort,
        row_group_rows=rows_per_group,
    )
    for done, part in enumerate(parts, start=1):
        ref = PartitionRef(lake.root, info.layer, info.name, part.date)
        result = _repack_partition(lake, ref, target, rows_per_group, probe)
        if result is not None:
            report.partitions.append(result)
        if progress is not None:
            progress(done, len(parts), ref.relative)
    return report


def _with_sort(info: DatasetInfo, sort: tuple[str, ...]) -> DatasetSchema:
    schema = info.dataset_schema
    qualified = f"{info.layer}.{info.name}"
    unknown = [c for c in sort if c not in schema.column_names]
    if not sort or unknown:
        raise SchemaMismatchError(
            f"{qualified}: cannot sort by {', '.join(unknown) or '(nothing)'}: name columns of "
            f"the dataset ({', '.join(schema.column_names)}), e.g. "
            f"--sort {','.join(schema.sort)}.",
            dataset=qualified,
            columns=unknown,
        )
    repeated = sorted({c for c in sort if sort.count(c) > 1})
    if repeated:
        raise SchemaMismatchError(
            f"{qualified}: the sort names {', '.join(repeated)} more than once.",
            dataset=qualified,
            columns=repeated,
        )
    return schema.with_sort(sort)


def _write_descriptor(lake: Lake, info: DatasetInfo, target: DatasetSchema) -> DatasetInfo:
    """Make ``target`` the dataset's declared schema (under the dataset lock)."""
    lock = lake.root / LOCK_DIR / info.layer / info.name / "_dataset.lock"
    path = lake.root / info.layer / info.name / DATASET_FILE
    qualified = f"{info.layer}.{info.name}"
    with file_lock(lock, lake.settings.lake.lock_timeout_seconds, qualified):
        latest = DatasetInfo.read(path)
        if latest.dataset_schema.fingerprint() != info.dataset_schema.fingerprint():
            raise SchemaMismatchError(
                f"{qualified}: its schema changed while repack started "
                f"({latest.dataset_schema.fingerprint()}); run the repack again.",
                dataset=qualified,
            )
        updated = latest.model_copy(update={"schema_": target.to_dict()})
        commit.write_text_atomic(path, updated.to_json())
    return updated


def _row_digest(frame: pl.DataFrame) -> str:
    """A digest of the rows as a multiset: the same rows in any order give the same digest."""
    hashes = np.sort(frame.hash_rows(seed=0).to_numpy())
    digest = hashlib.sha256(hashes.tobytes())
    digest.update(str(frame.schema).encode())
    return digest.hexdigest()


def _staged_file(ref: PartitionRef) -> Path:
    # recover_partition() removed every temp file under this lock, so the one temp file
    # present while commit_partition builds the manifest is the new data file.
    temps = [entry for entry in ref.directory.iterdir() if is_temp_file(entry.name)]
    if len(temps) != 1:
        raise CorruptPartitionError(
            f"{ref.relative}: expected one new temp file during repack, found {len(temps)}; "
            "is another process writing without the partition lock?",
            partition=ref.relative,
        )
    return temps[0]


def _repack_partition(
    lake: Lake,
    ref: PartitionRef,
    target: DatasetSchema,
    row_group_rows: int,
    probe: ProbeQuery | None,
) -> PartitionRepack | None:
    settings = lake.settings.lake
    with file_lock(ref.lock_path, settings.lock_timeout_seconds, ref.relative):
        commit.recover_partition(ref)
        if not ref.data_path.is_file():
            return None  # removed since it was listed
        if not ref.manifest_path.is_file():
            raise CorruptPartitionError(
                f"{ref.relative}: data file without a manifest; run `ticklake lake verify "
                "--repair` first, then repack.",
                partition=ref.relative,
            )
        manifest = Manifest.read(ref.manifest_path)
        sha_before = sha256_file(ref.data_path)
        if sha_before != manifest.file_sha256:
            # Rewriting would give damaged bytes a fresh, valid hash.
            raise CorruptPartitionError(
                f"{ref.relative}: the data file's sha256 differs from its manifest (bit rot or "
                "an outside edit); repack refuses to rewrite it. Re-ingest that day, then "
                "repack.",
                partition=ref.relative,
            )
        bytes_before = ref.data_path.stat().st_size
        meta_before = pq.read_metadata(ref.data_path)
        old = pl.read_parquet(ref.data_path)
        query = probe or default_probe(old, target)
        seconds_before, probe_rows = time_probe(ref.data_path, query)
        expected = _row_digest(old)
        table = old.sort(_order(target), maintain_order=True).to_arrow()
        table = table.cast(target.arrow_schema())
        del old

        def manifest_for(size: int, sha: str) -> Manifest:
            written = pl.read_parquet(_staged_file(ref))
            if written.height != manifest.rows or _row_digest(written) != expected:
                raise CorruptPartitionError(
                    f"{ref.relative}: the repacked file does not hold the same rows as the "
                    f"old one ({written.height:,} rows vs {manifest.rows:,}, or different "
                    "values); nothing was replaced. Report this as a bug.",
                    partition=ref.relative,
                )
            return manifest.model_copy(
                update={
                    "schema_fingerprint": target.fingerprint(),
                    "file_bytes": size,
                    "file_sha256": sha,
                    "written_at": utc_now_iso(),
                }
            )

        try:
            new_manifest = commit.commit_partition(
                ref,
                table,
                manifest_for,
                row_group_rows=row_group_rows,
                zstd_level=settings.compression_level,
            )
        except CorruptPartitionError:
            commit.recover_partition(ref)  # drop the rejected temp file; old data untouched
            raise
        meta_after = pq.read_metadata(ref.data_path)
        seconds_after, probe_rows_after = time_probe(ref.data_path, query)
        if probe_rows_after != probe_rows:
            raise CorruptPartitionError(
                f"{ref.relative}: the probe query {query.describe()} found {probe_rows:,} rows "
                f"before the repack and {probe_rows_after:,} after. Report this as a bug.",
                partition=ref.relative,
            )
        return PartitionRepack(
            partition=ref.relative,
            day=ref.day,
            rows=manifest.rows,
            bytes_before=bytes_before,
            bytes_after=new_manifest.file_bytes,
            row_groups_before=meta_before.num_row_groups,
            row_groups_after=meta_after.num_row_groups,
            probe=query.describe(),
            probe_rows=probe_rows,
            row_groups_skipped_before=query.row_groups_skipped(meta_before),
            row_groups_skipped_after=query.row_groups_skipped(meta_after),
            scan_seconds_before=seconds_before,
            scan_seconds_after=seconds_after,
            changed=new_manifest.file_sha256 != sha_before,
        )
