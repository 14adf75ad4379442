"""The partition record: what each dataset committed, kept outside the partition directories.

``<layer>/<dataset>/_partitions/date=YYYY-MM-DD.json`` is a copy of the manifest of the
day's last commit (rows, min/max ``ts``, file size and sha256, lineage). Deleting,
renaming or overwriting a partition directory leaves its record behind, so
``ticklake lake verify`` can say which days are gone and how to rebuild them, and a
re-ingest knows which days it must restore.

Each record is its own file, written atomically (temp in the same directory, fsync,
rename, fsync) under the partition's lock as the last step of the commit protocol
(:data:`ticklake.lake.commit.STEPS`, step ``record``): it can be stale, never torn. A
crash between the data rename and the record leaves a record that lags the manifest;
:func:`ticklake.lake.commit.recover_partition` rolls it forward once the data file's
sha256 proves the manifest. A record temp file is named after its day, so the day's
lock holder can remove a crashed writer's temp without touching another day's.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from datetime import date
from pathlib import Path

from ticklake.errors import CorruptPartitionError
from ticklake.lake.layout import (
    PARTITIONS_DIR,
    TEMP_PREFIX,
    TEMP_SUFFIX,
    PartitionRef,
    parse_partition_dirname,
    partition_dirname,
)
from ticklake.lake.manifest import Manifest


def _temp_prefix(ref: PartitionRef) -> str:
    return f"{TEMP_PREFIX}{partition_dirname(ref.day)}-"


def write_record(ref: PartitionRef, manifest: Manifest) -> None:
    """Record ``manifest`` as the day's committed partition (atomic; hold the day's lock)."""
    path = ref.record_path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{_temp_prefix(ref)}{uuid.uuid4().hex}{TEMP_SUFFIX}"
    try:
        with tmp.open("w") as fh:
            fh.write(manifest.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def read_record(ref: PartitionRef) -> Manifest | None:
    """The day's record, or None when there is none; raises when it is unreadable."""
    path = ref.record_path
    if not path.is_file():
        return None
    return Manifest.read(path)


def try_read_record(ref: PartitionRef) -> Manifest | None:
    """Like :func:`read_record`, with an unreadable record taken as no record."""
    try:
        return read_record(ref)
    except CorruptPartitionError:
        return None


def record_temps(ref: PartitionRef) -> list[Path]:
    """Temp files of interrupted record writes of this day."""
    directory = ref.record_path.parent
    if not directory.is_dir():
        return []
    prefix = _temp_prefix(ref)
    return [
        p for p in directory.iterdir() if p.name.startswith(prefix) and p.name.endswith(TEMP_SUFFIX)
    ]


def recorded_days(dataset_dir: Path) -> list[date]:
    """Every day the dataset has a record for, in date order."""
    directory = dataset_dir / PARTITIONS_DIR
    if not directory.is_dir():
        return []
    days = []
    for entry in directory.iterdir():
        if entry.suffix == ".json":
            day = parse_partition_dirname(entry.stem)
            if day is not None:
                days.append(day)
    return sorted(days)


def matches(manifest: Manifest, ref: PartitionRef) -> bool:
    """Whether a manifest (or record) describes this partition: its layer, dataset, date."""
    return (manifest.layer, manifest.dataset, manifest.date) == (ref.layer, ref.dataset, ref.day)
