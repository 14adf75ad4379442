"""Expand ingest inputs (files, directories, globs, archives) into source files, safely.

``.gz`` and ``.zst`` files are passed to readers as they are (readers decompress while
streaming). ``.zip`` archives are unpacked into a staging directory unless the reader
reads zips itself (LOBSTER): member names are checked against zip-slip (absolute
paths, ``..``, drive letters) and sizes against zip bombs (a per-member and a total
limit, and a maximum compression ratio), before a single byte is written.
"""

from __future__ import annotations

import glob
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ticklake.errors import IngestError

MAX_MEMBER_BYTES = 8 * 1024**3
MAX_TOTAL_BYTES = 64 * 1024**3
MAX_RATIO = 200.0
_COMPRESSION_SUFFIXES = (".gz", ".zst")


@dataclass(frozen=True)
class SourceFile:
    """A file to read: ``path`` on disk, ``label`` as the user named it (for messages)."""

    path: Path
    label: str


def logical_suffix(path: Path) -> str:
    """The suffix that says the format, after ``.gz``/``.zst`` (``x.csv.gz`` → ``.csv``)."""
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def _matches(path: Path, suffixes: tuple[str, ...]) -> bool:
    return not suffixes or logical_suffix(path) in suffixes or path.suffix.lower() in suffixes


def check_zip(archive: Path) -> list[zipfile.ZipInfo]:
    """Return the archive's file members after the zip-slip and zip-bomb checks."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise IngestError(
            f"{archive}: not a readable zip archive ({exc})", path=str(archive)
        ) from exc
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        total = 0
        for member in members:
            name = member.filename
            pure = PurePosixPath(name.replace("\\", "/"))
            if pure.is_absolute() or ".." in pure.parts or (len(name) > 1 and name[1] == ":"):
                raise IngestError(
                    f"{archive}: member {name!r} would be written outside the target directory "
                    "(zip-slip); refusing the whole archive",
                    path=str(archive),
                    member=name,
                )
            if member.file_size > MAX_MEMBER_BYTES:
                raise IngestError(
                    f"{archive}: member {name!r} unpacks to {member.file_size:,} bytes, over the "
                    f"{MAX_MEMBER_BYTES:,}-byte limit; unpack it yourself if it is genuine",
                    path=str(archive),
                    member=name,
                )
            ratio = member.file_size / max(member.compress_size, 1)
            if member.file_size > 1_000_000 and ratio > MAX_RATIO:
                raise IngestError(
                    f"{archive}: member {name!r} has a compression ratio of {ratio:,.0f}:1 "
                    f"(limit {MAX_RATIO:.0f}:1), typical of a zip bomb; refusing the archive",
                    path=str(archive),
                    member=name,
                )
            total += member.file_size
        if total > MAX_TOTAL_BYTES:
            raise IngestError(
                f"{archive}: unpacks to {total:,} bytes in total, over the {MAX_TOTAL_BYTES:,}-"
                "byte limit",
                path=str(archive),
            )
        return members


def unpack_zip(archive: Path, target: Path) -> list[tuple[Path, str]]:
    """Unpack a checked archive's files into ``target``; return (path, member name) pairs."""
    members = check_zip(archive)
    out = []
    with zipfile.ZipFile(archive) as zf:
        for index, member in enumerate(members):
            # Never trust the archive's directory structure: one numbered directory per
            # member, holding the member under its own base name (readers take the
            # instrument / date / kind from the name, e.g. BTCUSDT-trades-2024-01-01.csv).
            dest = target / f"{index:05d}" / PurePosixPath(member.filename.replace("\\", "/")).name
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, dest.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            if dest.stat().st_size != member.file_size:
                raise IngestError(
                    f"{archive}: member {member.filename!r} is truncated", path=str(archive)
                )
            out.append((dest, member.filename))
    return out


def user_text(message: str, source: SourceFile) -> str:
    """``message`` with the file's on-disk path replaced by the name the user gave.

    A zip member is read from the ingest's staging directory; a message must name the
    user's archive and member (``data.zip!BTCUSDT-trades-2024-01-01.csv``), never the
    internal staging path.
    """
    path = str(source.path)
    return message.replace(path, source.label) if path != source.label else message


def expand_inputs(
    inputs: list[str | Path],
    *,
    suffixes: tuple[str, ...],
    reads_zip: bool,
    staging: Path,
) -> list[SourceFile]:
    """Turn files, directories and globs into a sorted list of source files."""
    found: list[SourceFile] = []
    for raw in inputs:
        text = str(raw)
        if any(ch in text for ch in "*?["):
            matches = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
            if not matches:
                raise IngestError(f"no file matches {text!r}", path=text)
        else:
            path = Path(text)
            if not path.exists():
                raise IngestError(f"{text}: no such file or directory", path=text)
            matches = [path]
        for match in matches:
            if match.is_dir():
                files = sorted(p for p in match.rglob("*") if p.is_file())
                files = [p for p in files if not p.name.startswith(".")]
            else:
                files = [match]
            for file in files:
                if file.suffix.lower() == ".zip" and not reads_zip:
                    target = staging / "unzipped" / f"{len(found):06d}"
                    for member, name in unpack_zip(file, target):
                        if _matches(member, suffixes):
                            found.append(SourceFile(member, f"{file}!{name}"))
                elif _matches(file, suffixes) or not match.is_dir():
                    found.append(SourceFile(file, str(file)))
    seen: set[Path] = set()
    unique = []
    for source in found:
        resolved = source.path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(source)
    return unique
