"""The storage :class:`Lake`: open, create datasets, write (merge + atomic commit), scan, list.

This is the bottom layer: it knows layouts, manifests, locks and commits, and nothing of
the stages above it (ingest, quality, bars, analytics, backtest). The object users get
from :func:`ticklake.open_lake` is a :class:`ticklake.api.LakeSession`: this class plus
one method per stage.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import polars as pl

from ticklake._version import __version__
from ticklake.config import Settings, load_settings, render_toml
from ticklake.errors import (
    AmbiguousDatasetError,
    ConfigError,
    CorruptPartitionError,
    DatasetNotFoundError,
    LakeExistsError,
    LakeNotFoundError,
    SchemaMismatchError,
)
from ticklake.lake import commit, integrity
from ticklake.lake.days import as_day, as_utc, check_timezone, epoch_ns, trading_day_expr
from ticklake.lake.layout import (
    CONFIG_FILE,
    DATASET_FILE,
    LAYERS,
    LOCK_DIR,
    SOURCES_FILE,
    PartitionRef,
    check_dataset_name,
    check_layer,
    parse_partition_dirname,
    split_qualified,
)
from ticklake.lake.locking import file_lock
from ticklake.lake.manifest import DatasetInfo, Lineage, Manifest, SourceRef
from ticklake.lake.merge import (
    FrameLike,
    PartitionWrite,
    WriteResult,
    dedupe_input,
    drop_replaced,
    merge_rows,
    to_polars,
)
from ticklake.lake.records import write_record
from ticklake.schemas import DatasetSchema, get_schema

__all__ = [
    "Lake",
    "PartitionInfo",
    "PartitionWrite",
    "WriteResult",
    "default_lake_path",
    "init_lake",
    "open_lake",
]


def default_lake_path() -> Path:
    """``$TICKLAKE_LAKE`` if set, else ``./lake``."""
    return Path(os.environ.get("TICKLAKE_LAKE") or "lake")


@dataclass(frozen=True)
class PartitionInfo:
    layer: str
    dataset: str
    date: date
    path: Path
    manifest: Manifest | None

    @property
    def rows(self) -> int:
        return self.manifest.rows if self.manifest else 0

    @property
    def bytes(self) -> int:
        return self.manifest.file_bytes if self.manifest else 0


def init_lake(path: Path | str, *, exist_ok: bool = False) -> Lake:
    """Create a lake at ``path`` (a directory with ``ticklake.toml``) and open it."""
    root = Path(path)
    config = root / CONFIG_FILE
    if config.exists():
        if exist_ok:
            return Lake(root)
        raise LakeExistsError(
            f"a lake already exists at {root} ({config}); open it instead.", path=str(root)
        )
    root.mkdir(parents=True, exist_ok=True)
    for layer in LAYERS:
        (root / layer).mkdir(exist_ok=True)
    commit.write_text_atomic(config, render_toml(load_settings(None, env={})))
    return Lake(root)


def open_lake(path: Path | str | None = None, **overrides: Any) -> Lake:
    """Open an existing lake (``path``, else ``$TICKLAKE_LAKE``, else ``./lake``)."""
    return Lake(Path(path) if path is not None else default_lake_path(), overrides=overrides)


class Lake:
    """A directory of day-partitioned Parquet datasets in bronze / silver / gold layers.

    Examples:
        >>> import tempfile, polars as pl
        >>> from datetime import datetime, timezone
        >>> lake = init_lake(tempfile.mkdtemp() + "/lake")
        >>> df = pl.DataFrame({
        ...     "ts": [datetime(2024, 1, 2, 10, tzinfo=timezone.utc)],
        ...     "instrument": ["BTCUSDT"], "price": [42000.0],
        ... })
        >>> lake.write("btc", df, schema="prices").rows_added
        1
        >>> lake.scan("btc").select("price").collect().item()
        42000.0
    """

    def __init__(self, root: Path | str, *, overrides: dict[str, Any] | None = None) -> None:
        self.root = Path(root).absolute()
        config = self.root / CONFIG_FILE
        if not config.is_file():
            raise LakeNotFoundError(str(root))
        self.settings: Settings = load_settings(config, overrides=overrides or None)

    def __repr__(self) -> str:
        return f"Lake({str(self.root)!r})"

    # ----------------------------------------------------------------- datasets
    def _dataset_dir(self, layer: str, dataset: str) -> Path:
        return self.root / check_layer(layer) / check_dataset_name(dataset)

    def layers_of(self, dataset: str) -> list[str]:
        return [layer for layer in LAYERS if (self.root / layer / dataset / DATASET_FILE).is_file()]

    def resolve(self, dataset: str, layer: str | None = None) -> tuple[str, str]:
        """Return ``(layer, name)`` for ``"name"``, ``"layer.name"`` or an explicit layer."""
        qual_layer, name = split_qualified(dataset)
        layer = layer or qual_layer
        if layer is not None:
            check_layer(layer)
            if not (self.root / layer / name / DATASET_FILE).is_file():
                raise DatasetNotFoundError(f"{layer}.{name}", known=self.dataset_names())
            return layer, name
        layers = self.layers_of(name)
        if not layers:
            raise DatasetNotFoundError(name, known=self.dataset_names())
        if len(layers) > 1:
            raise AmbiguousDatasetError(name, layers)
        return layers[0], name

    def dataset_names(self) -> list[str]:
        return [f"{info.layer}.{info.name}" for info in self.datasets()]

    def datasets(self) -> list[DatasetInfo]:
        """Every readable dataset's descriptor, by layer then name.

        A dataset whose ``_dataset.json`` is unreadable is left out (the others keep
        working); :meth:`unreadable_datasets` lists it with its one-line error.
        """
        return [info for info in self._descriptors() if isinstance(info, DatasetInfo)]

    def unreadable_datasets(self) -> list[CorruptPartitionError]:
        """The errors of datasets whose descriptor cannot be read (``.dataset`` = layer.name)."""
        return [err for err in self._descriptors() if isinstance(err, CorruptPartitionError)]

    def _descriptors(self) -> list[DatasetInfo | CorruptPartitionError]:
        out: list[DatasetInfo | CorruptPartitionError] = []
        for layer in LAYERS:
            base = self.root / layer
            if not base.is_dir():
                continue
            for entry in sorted(base.iterdir()):
                if (entry / DATASET_FILE).is_file():
                    try:
                        out.append(DatasetInfo.read(entry / DATASET_FILE))
                    except CorruptPartitionError as exc:
                        exc.fields["dataset"] = f"{layer}.{entry.name}"
                        setattr(exc, "dataset", exc.fields["dataset"])  # noqa: B010
                        out.append(exc)
        return out

    def dataset_info(self, dataset: str, layer: str | None = None) -> DatasetInfo:
        layer, name = self.resolve(dataset, layer)
        return DatasetInfo.read(self._dataset_dir(layer, name) / DATASET_FILE)

    def create_dataset(
        self,
        dataset: str,
        schema: str | DatasetSchema,
        *,
        layer: str = "bronze",
        timezone: str | None = None,
        day_offset: str | None = None,
    ) -> DatasetInfo:
        """Create a dataset (or return the existing one if it has the same schema)."""
        directory = self._dataset_dir(layer, dataset)
        resolved = get_schema(schema) if isinstance(schema, str) else schema
        tz = timezone or self.settings.lake.default_timezone
        check_timezone(tz)
        lock = self.root / LOCK_DIR / layer / dataset / "_dataset.lock"
        with file_lock(lock, self.settings.lake.lock_timeout_seconds, f"{layer}.{dataset}"):
            path = directory / DATASET_FILE
            if path.is_file():
                info = DatasetInfo.read(path)
                existing = info.dataset_schema
                # A repack may have changed the sort; the layout that matters is the rest.
                if existing.fingerprint() != resolved.with_sort(existing.sort).fingerprint():
                    raise SchemaMismatchError(
                        f"dataset {layer}.{dataset} exists with schema {existing.name!r} "
                        f"({existing.fingerprint()}); the data has schema {resolved.name!r} "
                        f"({resolved.fingerprint()}). Write to a new dataset name instead.",
                        dataset=dataset,
                    )
                return info
            directory.mkdir(parents=True, exist_ok=True)
            info = DatasetInfo(
                layer=layer,
                name=dataset,
                schema_=resolved.to_dict(),
                timezone=tz,
                day_offset=day_offset,
                ticklake_version=__version__,
            )
            commit.write_text_atomic(path, info.to_json())
            return info

    # ------------------------------------------------------------------- write
    def write(
        self,
        dataset: str,
        frame: FrameLike,
        *,
        layer: str = "bronze",
        schema: str | DatasetSchema | None = None,
        timezone: str | None = None,
        day_offset: str | None = None,
        sources: Sequence[SourceRef] = (),
        spec_hash: str | None = None,
        progress: Callable[[str], None] | None = None,
        input_is_unique: bool = False,
        mode: Literal["merge", "replace"] = "merge",
        replace_by: Sequence[str] = (),
    ) -> WriteResult:
        """Merge ``frame`` into the dataset, one atomic commit per trading day.

        Rows are conformed to the dataset's schema, split by trading date (in the
        dataset's time zone), merged with the partition's existing rows (a row whose
        key already exists replaces the old one; identical rows change nothing),
        sorted, and committed atomically. The dataset is created on first write
        (``schema`` required then).

        ``mode="replace"`` rebuilds instead of merging: each trading day in ``frame``
        keeps none of its existing rows, only the new ones, so rows that a rebuild no
        longer produces disappear. ``replace_by`` narrows that to slices: with
        ``replace_by=("instrument",)`` only the existing rows of the instruments present
        in ``frame`` that day are dropped (a batch of a few instruments leaves the others
        alone). Days absent from ``frame`` are never touched.
        """
        check_dataset_name(dataset)
        check_layer(layer)
        if mode not in ("merge", "replace"):
            raise ConfigError(f"write mode must be 'merge' or 'replace', not {mode!r}")
        if replace_by and mode != "replace":
            raise ConfigError("replace_by only applies to mode='replace'")
        info_path = self._dataset_dir(layer, dataset) / DATASET_FILE
        if info_path.is_file():
            info = DatasetInfo.read(info_path)
            if timezone is not None and timezone != info.timezone:
                raise SchemaMismatchError(
                    f"dataset {layer}.{dataset} uses time zone {info.timezone!r}, not "
                    f"{timezone!r}; its partitions are trading days in {info.timezone}.",
                    dataset=dataset,
                )
            if schema is not None:
                wanted = get_schema(schema) if isinstance(schema, str) else schema
                current = info.dataset_schema
                if wanted.with_sort(current.sort).fingerprint() != current.fingerprint():
                    raise SchemaMismatchError(
                        f"dataset {layer}.{dataset} has schema {info.dataset_schema.name!r}; "
                        f"cannot write schema {wanted.name!r} into it.",
                        dataset=dataset,
                    )
        elif schema is None:
            raise DatasetNotFoundError(
                f"{layer}.{dataset} (pass schema=... to create it, e.g. schema='trades')",
                known=self.dataset_names(),
            )
        else:
            info = self.create_dataset(
                dataset, schema, layer=layer, timezone=timezone, day_offset=day_offset
            )
        dschema = info.dataset_schema
        unknown = [c for c in replace_by if c not in dschema.column_names]
        if unknown:
            raise ConfigError(
                f"replace_by columns {unknown} are not columns of {layer}.{dataset} "
                f"(columns: {', '.join(dschema.column_names)})",
                dataset=dataset,
            )
        data = dschema.conform(to_polars(frame), source=f"write to {layer}.{dataset}")
        result = WriteResult(dataset=dataset, layer=layer, rows_in=data.height)
        if data.height == 0:
            return result
        if not input_is_unique:
            # Callers that already resolved duplicates (the ingest pipeline) skip this
            # full-row pass; everyone else gets the checks.
            data, result.duplicates_in_input = dedupe_input(data, dschema, f"{layer}.{dataset}")
        days = data.select(trading_day_expr(dschema.ts_column, info).alias("__day"))["__day"]
        if days.null_count() == 0 and days.min() == days.max():
            # One trading day (every ingest commit): partition_by would copy every column.
            groups = [(days[0], data)]
        else:
            split = data.with_columns(days)
            groups = [
                (day, part.drop("__day"))
                for (day,), part in split.partition_by(
                    "__day", as_dict=True, maintain_order=True
                ).items()
            ]
        for day, part in groups:
            ref = PartitionRef(self.root, layer, dataset, day)
            result.partitions.append(
                self._commit_day(
                    ref,
                    part,
                    dschema,
                    sources,
                    spec_hash,
                    replace_by=tuple(replace_by) if mode == "replace" else None,
                )
            )
            if progress is not None:
                progress(ref.relative)
        return result

    def _commit_day(
        self,
        ref: PartitionRef,
        rows: pl.DataFrame,
        dschema: DatasetSchema,
        sources: Sequence[SourceRef],
        spec_hash: str | None,
        *,
        replace_by: tuple[str, ...] | None = None,
    ) -> PartitionWrite:
        """Commit one day; ``replace_by`` None merges, a tuple replaces (see ``write``)."""
        settings = self.settings.lake
        with file_lock(ref.lock_path, settings.lock_timeout_seconds, ref.relative):
            commit.recover_partition(ref)
            existing: pl.DataFrame | None = None
            old_manifest: Manifest | None = None
            if ref.data_path.exists():
                # Merging damaged rows would give them a fresh, valid hash: check first.
                integrity.check_partition(ref, lock_timeout=0, locked=True)
                existing = pl.read_parquet(ref.data_path)
                if ref.manifest_path.exists():
                    old_manifest = Manifest.read(ref.manifest_path)
            kept = existing
            if existing is not None and replace_by is not None:
                kept = drop_replaced(existing, rows, replace_by)
            merged = merge_rows(kept, rows, dschema)
            before = 0 if existing is None else existing.height
            old_sources = old_manifest.lineage.sources if old_manifest else ()
            if replace_by == ():
                old_sources = ()  # the whole day is rebuilt: its old lineage goes with it
            all_sources = tuple(dict.fromkeys([*old_sources, *sources]))
            if existing is not None and merged.equals(existing):
                if old_manifest is not None and set(all_sources) != set(old_sources):
                    # Same rows from another source: record the lineage, keep the file.
                    lineage = old_manifest.lineage.model_copy(update={"sources": all_sources})
                    updated = old_manifest.model_copy(update={"lineage": lineage})
                    commit.write_text_atomic(ref.manifest_path, updated.to_json())
                    write_record(ref, updated)
                return PartitionWrite(ref.relative, before, before, rows.height, changed=False)
            # Bounds as int64 ns: Series.min() on a datetime gives a Python datetime,
            # which has microsecond resolution and would truncate the nanoseconds.
            ts = merged[dschema.ts_column].dt.epoch("ns")

            def manifest_for(size: int, sha: str) -> Manifest:
                return Manifest(
                    layer=ref.layer,
                    dataset=ref.dataset,
                    date=ref.day,
                    rows=merged.height,
                    min_ts_ns=epoch_ns(ts.min()),
                    max_ts_ns=epoch_ns(ts.max()),
                    schema_fingerprint=dschema.fingerprint(),
                    file_bytes=size,
                    file_sha256=sha,
                    lineage=Lineage(
                        sources=all_sources,
                        spec_hash=spec_hash
                        or (old_manifest.lineage.spec_hash if old_manifest else None),
                        ticklake_version=__version__,
                    ),
                )

            commit.commit_partition(
                ref,
                merged,
                manifest_for,
                row_group_rows=dschema.row_group_rows or settings.row_group_rows,
                zstd_level=settings.compression_level,
                schema=dschema.arrow_schema(),
            )
            return PartitionWrite(ref.relative, before, merged.height, rows.height, changed=True)

    # -------------------------------------------------------------------- read
    def partitions(self, dataset: str, layer: str | None = None) -> list[PartitionInfo]:
        """List committed partitions (directories holding ``data.parquet``) by date."""
        layer, name = self.resolve(dataset, layer)
        base = self._dataset_dir(layer, name)
        out = []
        for entry in sorted(base.iterdir()):
            day = parse_partition_dirname(entry.name)
            if day is None or not (entry / "data.parquet").is_file():
                continue
            ref = PartitionRef(self.root, layer, name, day)
            manifest = integrity.committed_manifest(ref)  # None: missing or unreadable
            out.append(PartitionInfo(layer, name, day, ref.data_path, manifest))
        return out

    def partition_files(
        self,
        dataset: str,
        *,
        layer: str | None = None,
        start: date | datetime | str | None = None,
        end: date | datetime | str | None = None,
        verify: bool | None = None,
    ) -> list[Path]:
        """The data files of the partitions whose trading date lies in [start, end].

        ``verify`` (default: the ``lake.verify_reads`` setting, on) checks each file's
        sha256 against its commit on this process's first read of it
        (:mod:`ticklake.lake.integrity`) and raises :class:`CorruptPartitionError` for a
        damaged or misplaced partition.
        """
        layer, name = self.resolve(dataset, layer)
        # A datetime bound is an instant; its trading date depends on the dataset's time
        # zone, so take its UTC date (the bound's own local date can be two days off:
        # UTC+14 vs UTC-11), keep one day of slack and let the ts filter in scan() cut.
        first = as_day(as_utc(start) if isinstance(start, datetime) else start)
        last = as_day(as_utc(end) if isinstance(end, datetime) else end)
        if isinstance(start, datetime) and first is not None:
            first -= timedelta(days=1)
        if isinstance(end, datetime) and last is not None:
            last += timedelta(days=1)
        refs = []
        for entry in sorted(self._dataset_dir(layer, name).iterdir()):
            day = parse_partition_dirname(entry.name)
            if day is None or (first and day < first) or (last and day > last):
                continue
            if (entry / "data.parquet").is_file():
                refs.append(PartitionRef(self.root, layer, name, day))
        if self.settings.lake.verify_reads if verify is None else verify:
            timeout = self.settings.lake.lock_timeout_seconds
            integrity.check_partitions([(r, None) for r in refs], lock_timeout=timeout)
        return [ref.data_path for ref in refs]

    def check_partitions(self, parts: Iterable[PartitionInfo]) -> None:
        """Before a stage reads ``Lake.partitions(...)[i].path`` itself: the first-read
        sha256 check of :meth:`partition_files` (off with ``lake.verify_reads = false``)."""
        if self.settings.lake.verify_reads:
            timeout = self.settings.lake.lock_timeout_seconds
            integrity.check_listed(self.root, parts, lock_timeout=timeout)

    def scan(
        self,
        dataset: str,
        *,
        start: date | datetime | str | None = None,
        end: date | datetime | str | None = None,
        columns: Sequence[str] | None = None,
        filters: pl.Expr | Iterable[pl.Expr] | dict[str, Any] | None = None,
        layer: str | None = None,
        local_time: bool = False,
    ) -> pl.LazyFrame:
        """Scan a dataset lazily, reading only the partitions in the date range.

        ``start``/``end`` given as dates select whole trading days (inclusive); given as
        datetimes they also filter ``ts`` to ``[start, end)`` (naive datetimes are UTC).
        ``filters`` are Polars expressions or ``{column: value | [values]}``.
        ``local_time=True`` converts ``ts`` to the dataset's exchange time zone.
        """
        info = self.dataset_info(dataset, layer)
        dschema = info.dataset_schema
        files = self.partition_files(info.name, layer=info.layer, start=start, end=end)
        if files:
            lf = pl.scan_parquet(files, schema=dschema.polars_schema())
        else:
            lf = pl.LazyFrame(schema=dschema.polars_schema())
        ts = pl.col(dschema.ts_column)
        if isinstance(start, datetime):
            lf = lf.filter(ts >= as_utc(start))
        if isinstance(end, datetime):
            lf = lf.filter(ts < as_utc(end))
        for expr in _filter_exprs(filters):
            lf = lf.filter(expr)
        if local_time:
            lf = lf.with_columns(ts.dt.convert_time_zone(info.timezone))
        if columns is not None:
            unknown = [c for c in columns if c not in dschema.column_names]
            if unknown:
                raise SchemaMismatchError(
                    f"{info.layer}.{info.name} has no column(s) {unknown}; columns: "
                    f"{', '.join(dschema.column_names)}",
                    columns=unknown,
                )
            lf = lf.select(list(columns))
        return lf

    def read(self, dataset: str, **kwargs: Any) -> pl.DataFrame:
        """Eager :meth:`scan`."""
        return self.scan(dataset, **kwargs).collect()

    # ----------------------------------------------------------------- sources
    def ingested_sources(self, dataset: str, layer: str = "bronze") -> dict[str, dict[str, Any]]:
        """Completed ingests of a dataset, keyed by source sha256."""
        path = self._dataset_dir(layer, dataset) / SOURCES_FILE
        if not path.is_file():
            return {}
        out: dict[str, dict[str, Any]] = {}
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                earlier = out.get(record["sha256"])
                if earlier is not None:  # a re-ingest that restored days: keep every day
                    days = sorted({*earlier.get("days", []), *record.get("days", [])})
                    record = {**record, "days": days}
                out[record["sha256"]] = record
        return out

    def days_to_restore(
        self, dataset: str, days: Iterable[str], layer: str = "bronze"
    ) -> list[str]:
        """Those of ``days`` (ISO dates) whose partition is gone or not as recorded.

        A day counts as intact when its data file is there and its manifest names it
        with the sha256 of its partition record (no hashing here: a damaged file is
        found by the read check and ``lake verify``, which moves it aside).
        """
        out = []
        for text in days:
            ref = PartitionRef(self.root, layer, dataset, date.fromisoformat(text))
            if not integrity.looks_committed(ref):
                out.append(text)
        return out

    def record_source(self, dataset: str, record: dict[str, Any], layer: str = "bronze") -> None:
        """Append a completed ingest (after all its partitions committed)."""
        self.record_sources(dataset, [record], layer=layer)

    def record_sources(
        self, dataset: str, records: Sequence[dict[str, Any]], layer: str = "bronze"
    ) -> None:
        """Append completed ingests in one write and one fsync (many files, one run)."""
        if not records:
            return
        path = self._dataset_dir(layer, dataset) / SOURCES_FILE
        lock = self.root / LOCK_DIR / layer / dataset / "_sources.lock"
        timeout = self.settings.lake.lock_timeout_seconds
        with file_lock(lock, timeout, f"{layer}.{dataset}"), path.open("a") as fh:
            fh.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
            fh.flush()
            os.fsync(fh.fileno())


# ------------------------------------------------------------------- helpers
def _filter_exprs(filters: pl.Expr | Iterable[pl.Expr] | dict[str, Any] | None) -> list[pl.Expr]:
    if filters is None:
        return []
    if isinstance(filters, pl.Expr):
        return [filters]
    if isinstance(filters, dict):
        out = []
        for column, value in filters.items():
            if isinstance(value, list | tuple | set):
                out.append(pl.col(column).is_in(list(value)))
            else:
                out.append(pl.col(column) == value)
        return out
    return list(filters)
