"""``verify`` and ``vacuum``: find and fix what crashes, bit rot and outside edits leave.

Both take each partition's lock while they look at it, so a commit in flight is
never mistaken for damage, and a temp file being written is never deleted.

verify checks every partition against its manifest and the dataset's partition record
(:mod:`ticklake.lake.records`): file sha256, row count, schema, that the manifest names
this partition (layer, dataset, date) and that its ``ts`` range lies in the
directory's trading day; recorded days whose partition is gone; ingest staging left
behind; and run outputs against the sha256 in their ``run.json``.

``repair`` never blesses a file it cannot prove intact. A manifest is rebuilt only when
the data file's sha256 equals the partition record (the record then *is* the manifest,
lineage included), or, for a partition without any record (written before records
existed), when every page checksum, the row count and the trading day of every row
check out. Any other damaged or misplaced file is moved to
``<lake>/_corrupt/<layer>/<dataset>/date=…-<time>/`` with a ``NOTE.txt``, and the
report says which command rebuilds the day.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ticklake._version import __version__
from ticklake.errors import CorruptPartitionError
from ticklake.lake import commit
from ticklake.lake.advice import rebuild_advice
from ticklake.lake.days import trading_day_expr
from ticklake.lake.lake import Lake
from ticklake.lake.layout import (
    CORRUPT_DIR,
    DATA_FILE,
    DATASET_FILE,
    LAYERS,
    MANIFEST_FILE,
    PARTITIONS_DIR,
    PENDING_MANIFEST,
    SOURCES_FILE,
    PartitionRef,
    is_temp_file,
    parse_partition_dirname,
)
from ticklake.lake.locking import file_lock
from ticklake.lake.manifest import DatasetInfo, Lineage, Manifest, sha256_file
from ticklake.lake.outputs import check_runs, check_staging, remove_stale_staging
from ticklake.lake.owners import alive as _alive
from ticklake.lake.records import (
    matches,
    read_record,
    record_temps,
    recorded_days,
    write_record,
)

#: Kinds of problems, in the order they are reported.
KINDS = (
    "hash_mismatch",
    "unreadable_file",
    "misplaced_partition",
    "missing_partition",
    "rows_mismatch",
    "schema_mismatch",
    "missing_data",
    "missing_manifest",
    "record_mismatch",
    "unrecorded_partition",
    "pending_commit",
    "orphan_temp",
    "stray_file",
    "empty_partition",
    "missing_descriptor",
    "stale_staging",
    "run_output_missing",
    "run_output_changed",
)


@dataclass(frozen=True)
class Problem:
    kind: str
    path: str
    detail: str


@dataclass
class VerifyReport:
    partitions_checked: int = 0
    bytes_hashed: int = 0
    run_files_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    #: things that are fine but worth a line (staging of an ingest that is running)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, path: Path, detail: str) -> None:
        self.problems.append(Problem(kind, str(path), detail))


def _dataset_dirs(lake: Lake) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    for layer in LAYERS:
        base = lake.root / layer
        if base.is_dir():
            out.extend((layer, entry) for entry in sorted(base.iterdir()) if entry.is_dir())
    return out


# ------------------------------------------------------------------ proofs
def _day_of_ts(info: DatasetInfo, ns: int | None) -> date | None:
    if ns is None:
        return None
    ts = pl.Series("ts", [ns], dtype=pl.Int64).cast(pl.Datetime("ns", "UTC"))
    day: date | None = pl.DataFrame([ts]).select(trading_day_expr("ts", info)).item()
    return day


def _wrong_day(ref: PartitionRef, info: DatasetInfo, manifest: Manifest) -> str | None:
    """Why the manifest does not describe this partition (None when it does)."""
    if not matches(manifest, ref):
        return (
            f"its manifest describes {manifest.layer}/{manifest.dataset}/date={manifest.date}, "
            f"not {ref.relative}"
        )
    for what, ns in (("first", manifest.min_ts_ns), ("last", manifest.max_ts_ns)):
        day = _day_of_ts(info, ns)
        if day is not None and day != ref.day:
            return f"its {what} row is on trading day {day} ({info.timezone}), not {ref.day}"
    return None


def _proof_without_record(ref: PartitionRef, info: DatasetInfo) -> str | None:
    """Prove a file that has no partition record: page checksums, rows, trading day.

    Returns why it is not proven (None when it is).
    """
    try:
        meta = pq.read_metadata(ref.data_path)
        table = pq.read_table(ref.data_path, page_checksum_verification=True)
    except (OSError, ValueError) as exc:
        return f"a page checksum or the footer does not check out ({str(exc).splitlines()[0]})"
    if table.num_rows != meta.num_rows:
        return f"{table.num_rows} rows read, the footer says {meta.num_rows}"
    ts_col = info.dataset_schema.ts_column
    days = pl.from_arrow(table.select([ts_col])).select(trading_day_expr(ts_col, info))  # type: ignore[union-attr]
    other = days.filter(pl.col(ts_col) != ref.day).height if days.height else 0
    if other:
        return f"{other} of its rows are not on trading day {ref.day}"
    return None


def _rebuild_manifest(ref: PartitionRef, info: DatasetInfo) -> Manifest:
    meta = pq.read_metadata(ref.data_path)
    ts_col = info.dataset_schema.ts_column
    ts = pq.read_table(ref.data_path, columns=[ts_col]).column(ts_col)
    lo, hi = pc.min_max(ts.cast("int64")).values()
    return Manifest(
        layer=ref.layer,
        dataset=ref.dataset,
        date=ref.day,
        rows=meta.num_rows,
        min_ts_ns=lo.as_py(),
        max_ts_ns=hi.as_py(),
        schema_fingerprint=info.dataset_schema.fingerprint(),
        file_bytes=ref.data_path.stat().st_size,
        file_sha256=sha256_file(ref.data_path),
        lineage=Lineage(ticklake_version=__version__),
    )


def move_aside(lake: Lake, ref: PartitionRef, reason: str, advice: str) -> str:
    """Move the partition's files to ``_corrupt/`` with a note; return the report line."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = lake.root / CORRUPT_DIR / ref.layer / ref.dataset / f"{ref.directory.name}-{stamp}"
    target.mkdir(parents=True, exist_ok=True)
    for name in (DATA_FILE, MANIFEST_FILE, PENDING_MANIFEST):
        if (ref.directory / name).exists():
            shutil.move(str(ref.directory / name), str(target / name))
    (target / "NOTE.txt").write_text(
        f"moved aside by `ticklake lake verify --repair` (ticklake {__version__}) from "
        f"{ref.relative}\nwhy: {reason}\nrebuild the day: {advice}\n"
    )
    if ref.directory.is_dir() and not any(ref.directory.iterdir()):
        ref.directory.rmdir()
    commit.fsync_dir(ref.directory.parent)
    return f"{ref.relative}: moved the unproven files to {target} ({reason}); rebuild: {advice}"


# --------------------------------------------------------------- partitions
def _check_listing(ref: PartitionRef, report: VerifyReport) -> set[str]:
    directory = ref.directory
    names = {entry.name for entry in directory.iterdir()}
    for name in sorted(names):
        if is_temp_file(name):
            report.add("orphan_temp", directory / name, "temp file of an interrupted commit")
        elif name not in (DATA_FILE, MANIFEST_FILE, PENDING_MANIFEST):
            report.add("stray_file", directory / name, "not written by ticklake; move it out")
    if PENDING_MANIFEST in names:
        report.add("pending_commit", ref.pending_manifest_path, "interrupted commit")
    for temp in record_temps(ref):
        report.add("orphan_temp", temp, "temp file of an interrupted partition-record write")
    return names


def _check_partition(
    lake: Lake, ref: PartitionRef, info: DatasetInfo, report: VerifyReport, repair: bool
) -> None:
    directory = ref.directory
    names = _check_listing(ref, report)
    dirty = PENDING_MANIFEST in names or any(is_temp_file(n) for n in names)
    if repair and (dirty or record_temps(ref)):
        report.repaired.extend(commit.recover_partition(ref))
        names = {entry.name for entry in directory.iterdir()}
    try:
        record = read_record(ref)
    except CorruptPartitionError:
        report.add(
            "unreadable_file",
            ref.record_path,
            "partition record is unreadable; `--repair` rewrites it from the partition "
            "once its sha256 proves the manifest",
        )
        record = None
    if DATA_FILE not in names:
        if MANIFEST_FILE in names:
            advice = ""
            if record is not None:
                advice = "; rebuild: " + rebuild_advice(
                    lake, ref.layer, ref.dataset, ref.day, record.lineage
                )
            report.add("missing_data", ref.manifest_path, "manifest without its data file" + advice)
        elif not {n for n in names if not is_temp_file(n) and n != PENDING_MANIFEST}:
            report.add("empty_partition", directory, "partition directory holds no data")
            # A commit into a new partition that crashed before its rename leaves this.
            if repair and not any(directory.iterdir()):
                directory.rmdir()
                report.repaired.append(f"{ref.relative}: removed empty partition directory")
        return
    report.partitions_checked += 1
    manifest: Manifest | None = None
    if MANIFEST_FILE in names:
        try:
            manifest = Manifest.read(ref.manifest_path)
        except CorruptPartitionError:
            manifest = None
    sha = sha256_file(ref.data_path)
    report.bytes_hashed += ref.data_path.stat().st_size
    if manifest is not None and manifest.file_sha256 == sha:
        _check_committed(lake, ref, info, manifest, record, report, repair)
        return
    _check_damaged(lake, ref, info, manifest, record, sha, names, report, repair)


def _check_committed(
    lake: Lake,
    ref: PartitionRef,
    info: DatasetInfo,
    manifest: Manifest,
    record: Manifest | None,
    report: VerifyReport,
    repair: bool,
) -> None:
    """The data file is what its manifest says: check the manifest names this partition."""
    wrong = _wrong_day(ref, info, manifest)
    if wrong is not None:
        advice = rebuild_advice(lake, ref.layer, ref.dataset, ref.day, _lineage(record))
        report.add(
            "misplaced_partition",
            ref.directory,
            f"{wrong}: the directory was renamed or another day's files were copied in, so "
            f"queries would show those rows under {ref.day}. `--repair` moves the files to "
            f"{CORRUPT_DIR}/ (move them back to their own day if it is missing); rebuild "
            f"{ref.day}: {advice}",
        )
        if repair:
            report.repaired.append(move_aside(lake, ref, wrong, advice))
        return
    try:
        meta = pq.read_metadata(ref.data_path)
    except (OSError, ValueError) as exc:
        report.add("unreadable_file", ref.data_path, f"Parquet footer unreadable: {exc}")
        return
    if meta.num_rows != manifest.rows:
        report.add(
            "rows_mismatch", ref.data_path, f"{meta.num_rows} rows, manifest says {manifest.rows}"
        )
    if manifest.schema_fingerprint != info.dataset_schema.fingerprint():
        report.add(
            "schema_mismatch",
            ref.manifest_path,
            f"schema {manifest.schema_fingerprint} differs from the dataset's "
            f"{info.dataset_schema.fingerprint()}",
        )
    if record == manifest:
        return
    if record is None and not ref.record_path.exists():
        report.add(
            "unrecorded_partition",
            ref.directory,
            "not in the dataset's partition record (written by an older ticklake, or the "
            "record was deleted); `--repair` records it (its sha256 matches its manifest)",
        )
    elif record is not None:
        report.add(
            "record_mismatch",
            ref.record_path,
            f"the record names sha256 {record.file_sha256[:12]}… ({record.rows:,} rows), the "
            f"partition holds {manifest.file_sha256[:12]}… ({manifest.rows:,} rows) as its "
            "manifest says: a commit interrupted before its last step, or the partition was "
            "replaced by a copy; `--repair` records what the partition holds",
        )
    if repair:
        write_record(ref, manifest)
        report.repaired.append(
            f"{ref.relative}: recorded the partition (sha256 matches its manifest)"
        )


def _lineage(manifest: Manifest | None) -> Lineage | None:
    return manifest.lineage if manifest is not None else None


def _check_damaged(
    lake: Lake,
    ref: PartitionRef,
    info: DatasetInfo,
    manifest: Manifest | None,
    record: Manifest | None,
    sha: str,
    names: set[str],
    report: VerifyReport,
    repair: bool,
) -> None:
    """The data file does not match a readable manifest: prove it by the record, or not."""
    proven = record is not None and record.file_sha256 == sha and matches(record, ref)
    advice = rebuild_advice(lake, ref.layer, ref.dataset, ref.day, _lineage(record or manifest))
    if MANIFEST_FILE not in names:
        kind, path = "missing_manifest", ref.data_path
        detail = "data file without a manifest"
    elif manifest is None:
        kind, path = "unreadable_file", ref.manifest_path
        detail = "manifest is not a valid ticklake manifest (bit rot or an outside edit)"
    else:
        kind, path = "hash_mismatch", ref.data_path
        detail = f"sha256 {sha[:12]}… differs from the manifest's {manifest.file_sha256[:12]}…"
        if proven:
            detail += " but equals the partition record's: the manifest was altered"
        else:
            detail += ": the file changed after commit (bit rot or an outside edit)"
    if proven:
        detail += (
            "; `ticklake lake verify --repair` restores the manifest from the partition record"
        )
    elif record is None and manifest is None:
        detail += (
            "; `ticklake lake verify --repair` rebuilds it from the data file if every page "
            "checksum, the row count and the rows' trading day check out, else moves it aside"
        )
    else:
        detail += (
            f"; `ticklake lake verify --repair` moves it to {CORRUPT_DIR}/ (it cannot be "
            f"proven intact); rebuild the day: {advice}"
        )
    report.add(kind, path, detail)
    if not repair:
        return
    if proven:
        assert record is not None
        commit.write_text_atomic(ref.manifest_path, record.to_json())
        report.repaired.append(
            f"{ref.relative}: restored the manifest from the partition record (sha256 matches)"
        )
        return
    if record is None and manifest is None:
        why_not = _proof_without_record(ref, info)
        if why_not is None:
            rebuilt = _rebuild_manifest(ref, info)
            commit.write_text_atomic(ref.manifest_path, rebuilt.to_json())
            write_record(ref, rebuilt)
            report.repaired.append(
                f"{ref.relative}: rebuilt the manifest from the data file (no partition "
                "record; every page checksum, the row count and the trading day check out)"
            )
            return
        reason = f"no partition record, and {why_not}"
    elif record is not None and record.file_sha256 != sha:
        reason = f"its sha256 {sha[:12]}… is not the recorded {record.file_sha256[:12]}…"
    else:
        reason = "its sha256 matches neither its manifest nor a partition record"
    report.repaired.append(move_aside(lake, ref, reason, advice))


def _check_missing(lake: Lake, ref: PartitionRef, report: VerifyReport, reported: set[str]) -> None:
    """A recorded day whose partition has no data file any more."""
    if ref.data_path.is_file() or str(ref.manifest_path) in reported:
        return
    try:
        record = read_record(ref)
    except CorruptPartitionError:
        return  # reported with the partition directory, or below as unreadable
    if record is None:
        return
    advice = rebuild_advice(lake, ref.layer, ref.dataset, ref.day, record.lineage)
    report.add(
        "missing_partition",
        ref.directory,
        f"committed {record.rows:,} rows (sha256 {record.file_sha256[:12]}…, written "
        f"{record.written_at}) but the partition is gone (deleted, renamed or moved aside). "
        f"Restore {ref.day}: {advice}. To drop the day for good instead, delete "
        f"{ref.record_path}",
    )


def verify_lake(lake: Lake, *, repair: bool = False) -> VerifyReport:
    """Check every partition, the partition records, staging and run outputs."""
    report = VerifyReport()
    timeout = lake.settings.lake.lock_timeout_seconds
    for layer, dataset_dir in _dataset_dirs(lake):
        descriptor = dataset_dir / DATASET_FILE
        if not descriptor.is_file():
            report.add("missing_descriptor", dataset_dir, f"no {DATASET_FILE}: not a dataset")
            continue
        try:
            info = DatasetInfo.read(descriptor)
        except CorruptPartitionError:
            report.add(
                "unreadable_file",
                descriptor,
                "dataset descriptor is unreadable (bit rot or an outside edit); restore it "
                "from a backup or re-create the dataset with the same schema",
            )
            continue
        for entry in sorted(dataset_dir.iterdir()):
            if entry.name in (DATASET_FILE, SOURCES_FILE, PARTITIONS_DIR):
                continue
            day = parse_partition_dirname(entry.name)
            if day is None or not entry.is_dir():
                report.add("stray_file", entry, "not a partition directory")
                continue
            ref = PartitionRef(lake.root, layer, dataset_dir.name, day)
            with file_lock(ref.lock_path, timeout, ref.relative):
                _check_partition(lake, ref, info, report, repair)
        reported = {p.path for p in report.problems}
        for day in recorded_days(dataset_dir):
            ref = PartitionRef(lake.root, layer, dataset_dir.name, day)
            with file_lock(ref.lock_path, timeout, ref.relative):
                _check_missing(lake, ref, report, reported)
    report.notes.extend(check_staging(lake.root, report.add))
    report.run_files_checked = check_runs(lake.root, report.add)
    report.problems.sort(key=lambda p: (KINDS.index(p.kind), p.path))
    return report


def vacuum_lake(lake: Lake) -> list[str]:
    """Remove orphan temp files, pending records, empty partition directories, staging
    and SQL snapshots whose owner process is gone."""
    actions: list[str] = []
    timeout = lake.settings.lake.lock_timeout_seconds
    for layer, dataset_dir in _dataset_dirs(lake):
        for entry in sorted(dataset_dir.iterdir()):
            day = parse_partition_dirname(entry.name)
            if day is None or not entry.is_dir():
                continue
            ref = PartitionRef(lake.root, layer, dataset_dir.name, day)
            with file_lock(ref.lock_path, timeout, ref.relative):
                actions.extend(commit.recover_partition(ref))
                if not any(entry.iterdir()):
                    entry.rmdir()
                    actions.append(f"{ref.relative}: removed empty partition directory")
    actions.extend(remove_stale_staging(lake.root))
    snapshots = lake.root / "cache" / "sql"
    if snapshots.is_dir():
        for entry in sorted(snapshots.iterdir()):
            pid_text = entry.name.split("-", 1)[0]
            if pid_text.isdigit() and not _alive(int(pid_text)):
                shutil.rmtree(entry, ignore_errors=True)
                actions.append(f"removed SQL snapshot {entry.name} of a reader that is gone")
    stale = lake.root / "warehouse.duckdb.tmp"
    if stale.exists():
        stale.unlink()
        actions.append("removed stale warehouse.duckdb.tmp")
    return actions
