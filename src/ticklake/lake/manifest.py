"""Partition manifests and dataset descriptors (JSON files beside the data)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ticklake.errors import CorruptPartitionError
from ticklake.schemas import DatasetSchema

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _one_line(exc: Exception) -> str:
    """What is wrong with a JSON file, in one line (pydantic's text spans several)."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "the document"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{where}: {first.get('msg', 'invalid')}{more}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceRef(_Model):
    """A source file that contributed rows, identified by content hash."""

    path: str
    sha256: str


class Lineage(_Model):
    sources: tuple[SourceRef, ...] = ()
    spec_hash: str | None = None
    ticklake_version: str


class Manifest(_Model):
    """What a committed partition holds; written after the data file is in place."""

    format: int = 1
    layer: str
    dataset: str
    date: date
    rows: int
    min_ts_ns: int | None
    max_ts_ns: int | None
    schema_fingerprint: str
    file_bytes: int
    file_sha256: str
    lineage: Lineage
    #: xxh3-128 of the data file (hex): the fast check of a read (``lake.integrity``);
    #: None in manifests written before it, which are checked by sha256.
    file_xxh3_128: str | None = None
    written_at: str = Field(default_factory=utc_now_iso)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            return cls.model_validate_json(path.read_text())
        except (ValueError, OSError) as exc:
            raise CorruptPartitionError(
                f"{path}: manifest is unreadable ({_one_line(exc)}). Run "
                "`ticklake lake verify --repair`.",
                path=str(path),
            ) from exc


class DatasetInfo(_Model):
    """A dataset's descriptor: schema, exchange time zone and trading-day rule."""

    format: int = 1
    layer: str
    name: str
    schema_: dict[str, Any] = Field(alias="schema")
    timezone: str = "UTC"
    #: added to local time before taking the date, e.g. "7h" for CME (day starts 17:00 CT)
    day_offset: str | None = None
    created_at: str = Field(default_factory=utc_now_iso)
    ticklake_version: str = ""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def dataset_schema(self) -> DatasetSchema:
        return DatasetSchema.from_dict(self.schema_)

    def to_json(self) -> str:
        data = self.model_dump(mode="json", by_alias=True)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, path: Path) -> DatasetInfo:
        try:
            return cls.model_validate_json(path.read_text())
        except (ValueError, OSError) as exc:
            raise CorruptPartitionError(
                f"{path}: dataset descriptor is unreadable ({_one_line(exc)}); the other "
                "datasets are not affected. Fix: restore this file from a backup, or move "
                f"{path.parent} aside and re-run the command that created the dataset.",
                path=str(path),
            ) from exc
