"""Where things live in a lake, and which names are allowed.

::

    <lake>/ticklake.toml
    <lake>/<layer>/<dataset>/_dataset.json                 schema, time zone, created
    <lake>/<layer>/<dataset>/_sources.jsonl                completed ingests (idempotency)
    <lake>/<layer>/<dataset>/date=YYYY-MM-DD/data.parquet
    <lake>/<layer>/<dataset>/date=YYYY-MM-DD/_manifest.json
    <lake>/<layer>/<dataset>/_partitions/date=YYYY-MM-DD.json  partition record (committed)
    <lake>/quarantine/<dataset>/date=YYYY-MM-DD/...
    <lake>/_locks/<layer>/<dataset>/<date>.lock           flock files (never deleted)
    <lake>/_staging/<ingest_id>/                          an ingest's spooled rows (owner.json)
    <lake>/_corrupt/<layer>/<dataset>/date=.../           files repair moved aside (NOTE.txt)
    <lake>/runs/<run_id>/run.json                         run ledgers (output sha256)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ticklake.errors import InvalidNameError

LAYERS: tuple[str, ...] = ("bronze", "silver", "gold")
CONFIG_FILE = "ticklake.toml"
DATA_FILE = "data.parquet"
MANIFEST_FILE = "_manifest.json"
PENDING_MANIFEST = "_manifest.json.pending"
DATASET_FILE = "_dataset.json"
SOURCES_FILE = "_sources.jsonl"
LOCK_DIR = "_locks"
QUARANTINE_DIR = "quarantine"
#: Per-dataset record of committed partitions (one manifest copy per day).
PARTITIONS_DIR = "_partitions"
STAGING_DIR = "_staging"
CORRUPT_DIR = "_corrupt"
RUNS_DIR = "runs"
TEMP_PREFIX = ".tmp-"
TEMP_SUFFIX = ".tmp"

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_PARTITION = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def check_dataset_name(name: str) -> str:
    """Return ``name`` if it is a valid dataset name, else raise.

    Examples:
        >>> check_dataset_name("bars_1m")
        'bars_1m'
    """
    if not _NAME.match(name):
        raise InvalidNameError(
            f"invalid dataset name {name!r}: use lower-case letters, digits and '_', "
            "starting with a letter (at most 63 characters), e.g. 'banknifty_options'.",
            dataset=name,
        )
    return name


def check_layer(layer: str) -> str:
    if layer not in LAYERS:
        raise InvalidNameError(
            f"invalid layer {layer!r}: use one of {', '.join(LAYERS)}", layer=layer
        )
    return layer


def split_qualified(name: str) -> tuple[str | None, str]:
    """Split ``"silver.bars_1m"`` into ``("silver", "bars_1m")``; plain names get ``None``."""
    if "." in name:
        layer, _, dataset = name.partition(".")
        return check_layer(layer), check_dataset_name(dataset)
    return None, check_dataset_name(name)


def partition_dirname(day: date) -> str:
    return f"date={day.isoformat()}"


def parse_partition_dirname(name: str) -> date | None:
    match = _PARTITION.match(name)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def is_temp_file(name: str) -> bool:
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


@dataclass(frozen=True)
class PartitionRef:
    """One partition: ``(layer, dataset, date)`` and its paths inside ``root``."""

    root: Path
    layer: str
    dataset: str
    day: date

    @property
    def directory(self) -> Path:
        return self.root / self.layer / self.dataset / partition_dirname(self.day)

    @property
    def data_path(self) -> Path:
        return self.directory / DATA_FILE

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_FILE

    @property
    def pending_manifest_path(self) -> Path:
        return self.directory / PENDING_MANIFEST

    @property
    def record_path(self) -> Path:
        """The dataset-level record of this partition's last commit (outside its directory)."""
        return (
            self.root
            / self.layer
            / self.dataset
            / PARTITIONS_DIR
            / f"{partition_dirname(self.day)}.json"
        )

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_DIR / self.layer / self.dataset / f"{self.day.isoformat()}.lock"

    @property
    def relative(self) -> str:
        return f"{self.layer}/{self.dataset}/{partition_dirname(self.day)}"
