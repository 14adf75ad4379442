"""The hot day cache: a day's aligned option chain, kept as memory-mapped Arrow files.

``load_day`` spends most of a day's time decoding Parquet and as-of joining every
contract to the 1-second grid. With the lake setting ``backtest.day_cache = true`` it keeps
the result under ``<lake>/cache/days/`` and later runs (another strategy, a new sweep, a
re-run after a spec edit) map it instead of reading Parquet:

- a **day entry** (``<key>.arrow``): the spot dataset's price on the grid and the
  expiries in the options partition, all that is needed to derive the strike band;
- **chain entries** per expiry: the contracts a run read (its pruned strike band, or the
  whole expiry) with their bid, ask and age rows (and last price and volume when a leg
  condition needs them), named ``<key>.<low>_<high>.arrow`` (the band in paise) or
  ``<key>.all.arrow``. A later run whose band lies inside an entry's takes its rows out
  of it; a wider band is a miss that reads its band from Parquet and keeps it too. So
  the first run costs about what an uncached run costs plus the write, not a read of
  the whole chain.

Keys are SHA-256 of what the arrays depend on and nothing else: the input partitions'
sha256 (from their manifests), the session grid (day, start, end, time zone), the as-of
tolerance, the expiry, the market fields, the ticklake version and
:data:`ALIGNMENT_REVISION`. The strategy is not in the key: selectors, costs and fills
only read the arrays. Re-ingesting a day changes its partition hash and so every key.

Files are uncompressed Arrow IPC (``pa.memory_map`` then gives zero-copy NumPy views;
only the band's rows are copied out, as writable int64 arrays), written to a temporary
name and renamed into place, so a reader sees a whole file or none and concurrent
writers of one key (process executors, sweeps) write the same bytes. A file that does
not open, has the wrong schema, key or sizes, or (with ``lake.verify_reads``, the
default) a CRC32 that does not match the rows served is deleted and the day is loaded
from Parquet and cached again: a bad file costs time, never a wrong number.

The cache is bounded by ``backtest.day_cache_max_gib``: after each write the least recently
used entries (a hit touches the file's mtime) are deleted until the total fits.
Nothing else refers to these files: ``rm -rf <lake>/cache`` is always safe, also
while a run is going (an entry that vanishes is a miss).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from ticklake._version import __version__
from ticklake.backtest.spec import StrategySpec
from ticklake.lake import Lake

#: Raise when the alignment (``option_chain._align_contracts``, the grid, the paise
#: rounding) changes what a cached array holds: older entries then miss.
ALIGNMENT_REVISION = 1
CACHE_SUBDIR = Path("cache") / "days"
_META = b"ticklake"
_ARRAYS = ("bid", "ask", "age")
_MARKET_ARRAYS = ("last", "volume")
_INT32_MAX = np.iinfo(np.int32).max
#: A temporary file older than this is a crashed writer's; eviction deletes it.
_STALE_TEMP_SECONDS = 3600.0


@dataclass(frozen=True)
class DayKey:
    """What a day's cached arrays depend on; ``digest`` names the day entry."""

    day: date
    options_hash: str
    spot_dataset: str | None
    spot_hash: str | None
    session_start: str
    session_end: str
    timezone: str
    grid_first_ns: int
    grid_seconds: int
    tolerance_seconds: int

    @classmethod
    def of(
        cls,
        spec: StrategySpec,
        day: date,
        grid: np.ndarray,
        options_hash: str,
        spot_hash: str | None,
    ) -> DayKey:
        return cls(
            day=day,
            options_hash=options_hash,
            spot_dataset=spec.universe.underlying_dataset if spot_hash else None,
            spot_hash=spot_hash,
            session_start=spec.time.session_start,
            session_end=spec.time.session_end,
            timezone=spec.time.timezone,
            grid_first_ns=int(grid[0]) if grid.size else 0,
            grid_seconds=int(grid.size),
            tolerance_seconds=spec.fills.as_of_tolerance_seconds,
        )

    def fields(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "day"}
        out["day"] = self.day.isoformat()
        out["format"] = ALIGNMENT_REVISION
        out["version"] = __version__
        return out

    @property
    def digest(self) -> str:
        return _sha({"entry": "day", **self.fields()})

    def chain_digest(self, expiry: date, market_fields: bool) -> str:
        fields = {"day_key": self.digest, "expiry": expiry.isoformat()}
        return _sha({"entry": "chain", "market_fields": market_fields, **fields})


def _sha(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class CachedDay:
    """The day entry: the spot dataset on the grid (0 = none) and the chain's expiries."""

    spot_paise: np.ndarray  # int64 [T]
    source: str  # "spot" (from the underlying dataset) or "parity" (none)
    expiries: tuple[date, ...]


@dataclass(frozen=True)
class AlignedChain:
    """Contracts of one expiry on the grid, in load order (opt_type, strike).

    ``strikes`` are the stored float rupees, so a band filter here compares exactly what
    the Parquet filter compares. ``last``/``volume`` are None without market fields.
    """

    strikes: np.ndarray  # float64 [C]
    opt_types: list[str | None]
    symbols: list[str]
    bid: np.ndarray  # int64 [C, T]
    ask: np.ndarray
    age: np.ndarray
    last: np.ndarray | None = None
    volume: np.ndarray | None = None

    @property
    def count(self) -> int:
        return int(self.strikes.size)

    @property
    def is_call(self) -> np.ndarray:
        return np.array([t == "CE" for t in self.opt_types], dtype=np.bool_)

    def in_band(self, strike_range: tuple[float, float] | None) -> AlignedChain:
        """The contracts whose strike is in ``[low, high]`` (None: all), as Polars'
        ``is_between`` keeps them (both ends included; NaN never)."""
        if strike_range is None:
            return self
        rows = _band_rows(self.strikes, strike_range)

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        bid, ask, age = (a[rows] for a in (self.bid, self.ask, self.age))
        return AlignedChain(
            self.strikes[rows],
            [self.opt_types[r] for r in rows],
            [self.symbols[r] for r in rows],
            bid,
            ask,
            age,
            take(self.last),
            take(self.volume),
        )


def _band_rows(strikes: np.ndarray, strike_range: tuple[float, float] | None) -> np.ndarray:
    if strike_range is None:
        return np.arange(strikes.size)
    low, high = strike_range
    return np.flatnonzero((strikes >= low) & (strikes <= high))


class CorruptEntryError(ValueError):
    """A cache file that cannot be trusted (internal: the entry is dropped and reloaded)."""


@dataclass(frozen=True)
class CacheStatus:
    root: Path
    entries: int
    bytes: int
    max_bytes: int
    oldest: float | None  # mtime (last use) of the least recently used entry
    newest: float | None


class DayCache:
    """The hot day cache of one lake (see the module docstring)."""

    def __init__(self, root: Path, *, max_bytes: int, verify: bool = True) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.verify = verify

    @classmethod
    def of(cls, lake: Lake, *, enabled: bool | None = None) -> DayCache | None:
        """The lake's cache, or None when ``backtest.day_cache`` is off (``enabled`` overrides)."""
        settings = lake.settings
        if not (settings.backtest.day_cache if enabled is None else enabled):
            return None
        return cls(
            lake.root / CACHE_SUBDIR,
            max_bytes=int(settings.backtest.day_cache_max_gib * 2**30),
            verify=settings.lake.verify_reads,
        )

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.arrow"

    # ------------------------------------------------------------------ reads
    def day(self, key: DayKey) -> CachedDay | None:
        """The day entry, or None (missing or bad: a bad file is deleted)."""
        out = None
        with _Mapped(self, self.path(key.digest), key.digest, "day") as entry:
            if entry.batch is None:
                return None
            meta, batch = entry.meta, entry.batch
            spot = _column_numpy(batch, "spot_paise", np.int64)
            if spot.size != key.grid_seconds or batch.num_rows != key.grid_seconds:
                raise CorruptEntryError("spot length is not the grid's")
            if self.verify and zlib.crc32(spot.data) != meta["crc32"]:
                raise CorruptEntryError("spot CRC32 mismatch")
            expiries = tuple(date.fromisoformat(d) for d in meta["expiries"])
            out = CachedDay(spot.copy(), str(meta["spot_source"]), expiries)
        return out

    def chain(
        self,
        key: DayKey,
        expiry: date,
        market_fields: bool,
        strike_range: tuple[float, float] | None,
    ) -> AlignedChain | None:
        """The band's contracts of a cached expiry, or None (missing or bad).

        Any entry whose strike range covers ``strike_range`` serves (the narrowest
        first; ``None`` needs a whole-expiry entry). Without ``market_fields`` an entry
        that has them serves too (they are dropped).
        """
        wanted = (market_fields,) if market_fields else (False, True)
        for with_market in wanted:
            digest = key.chain_digest(expiry, with_market)
            for path, covered in self._covering(digest, strike_range):
                with _Mapped(self, path, digest, "chain") as entry:
                    if entry.batch is not None:
                        if _stored_range(entry.meta) != covered:
                            raise CorruptEntryError("strike range differs from the file name")
                        return self._band(entry.meta, entry.batch, key, strike_range, market_fields)
        return None

    def _covering(
        self, digest: str, strike_range: tuple[float, float] | None
    ) -> list[tuple[Path, tuple[float, float] | None]]:
        """Entries of ``digest`` whose range covers ``strike_range``, narrowest first."""
        found: list[tuple[float, Path, tuple[float, float] | None]] = []
        for path in (self.root / digest[:2]).glob(f"{digest}.*.arrow"):
            ours, stored = _parse_range(path.name[len(digest) + 1 : -len(".arrow")])
            if not ours:
                continue
            if stored is None:
                found.append((float("inf"), path, None))
            elif strike_range is not None and (
                stored[0] <= strike_range[0] and strike_range[1] <= stored[1]
            ):
                found.append((stored[1] - stored[0], path, stored))
        return [(path, stored) for _, path, stored in sorted(found, key=lambda f: f[:2])]

    def _band(
        self,
        meta: dict[str, Any],
        batch: pa.RecordBatch,
        key: DayKey,
        strike_range: tuple[float, float] | None,
        market_fields: bool,
    ) -> AlignedChain:
        seconds, contracts = key.grid_seconds, batch.num_rows
        if meta["seconds"] != seconds or meta["contracts"] != contracts:
            raise CorruptEntryError("sizes differ from the header")
        names = _ARRAYS + (_MARKET_ARRAYS if meta["market_fields"] else ())
        views = {}
        for name in names:
            column = batch.column(name)
            if not pa.types.is_fixed_size_list(column.type) or column.type.list_size != seconds:
                raise CorruptEntryError(f"column {name} is not [contracts, {seconds}]")
            views[name] = column.flatten().to_numpy(zero_copy_only=True).reshape(contracts, -1)
        strikes = _column_numpy(batch, "strike", np.float64)
        crc = _column_numpy(batch, "crc32", np.uint32)
        rows = _band_rows(strikes, strike_range)
        served = names if market_fields else _ARRAYS
        out = {
            n: np.empty((rows.size, seconds), np.float64 if n == "volume" else np.int64)
            for n in served
        }
        for i, r in enumerate(rows):
            if self.verify and _row_crc(views, names, r) != crc[r]:
                raise CorruptEntryError(f"CRC32 mismatch in contract row {r}")
            for n in served:
                out[n][i] = views[n][r]
        opt_types = batch.column("opt_type").to_pylist()
        symbols = batch.column("symbol").to_pylist()
        return AlignedChain(
            strikes[rows].copy(),
            [opt_types[r] for r in rows],
            [symbols[r] for r in rows],
            out["bid"],
            out["ask"],
            out["age"],
            out.get("last"),
            out.get("volume"),
        )

    # ----------------------------------------------------------------- writes
    def put_day(self, key: DayKey, entry: CachedDay) -> None:
        spot = np.ascontiguousarray(entry.spot_paise, dtype=np.int64)
        meta = {
            "spot_source": entry.source,
            "expiries": sorted(d.isoformat() for d in entry.expiries),
            "crc32": zlib.crc32(spot.data),
            "seconds": int(spot.size),
            "key_fields": key.fields(),
        }
        self._write(key.digest, "day", pa.record_batch({"spot_paise": pa.array(spot)}), meta)

    def put_chain(
        self,
        key: DayKey,
        expiry: date,
        market_fields: bool,
        chain: AlignedChain,
        strike_range: tuple[float, float] | None,
    ) -> None:
        """Cache the contracts of an expiry read for ``strike_range`` (None: all of them).

        Skipped when the entry alone exceeds the bound.
        """
        names = _ARRAYS + (_MARKET_ARRAYS if market_fields else ())
        seconds = key.grid_seconds
        stored: dict[str, np.ndarray] = {}
        for name in names:
            values = getattr(chain, name)
            assert values is not None, f"put_chain(market_fields=True) without {name}"
            stored[name] = np.ascontiguousarray(_narrow(values))
        if sum(a.nbytes for a in stored.values()) > self.max_bytes:
            return
        crc = np.array([_row_crc(stored, names, r) for r in range(chain.count)], np.uint32)
        columns: dict[str, pa.Array] = {
            "strike": pa.array(chain.strikes, pa.float64()),
            "opt_type": pa.array(chain.opt_types, pa.string()),
            "symbol": pa.array(chain.symbols, pa.string()),
            "crc32": pa.array(crc),
        }
        for name, values in stored.items():
            columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), seconds)
        meta = {
            "expiry": expiry.isoformat(),
            "strike_range": None if strike_range is None else list(strike_range),
            "market_fields": market_fields,
            "contracts": chain.count,
            "seconds": seconds,
            "dtypes": {n: str(a.dtype) for n, a in stored.items()},
            "key_fields": key.fields(),
        }
        digest = key.chain_digest(expiry, market_fields)
        path = self.path(digest).with_name(f"{digest}.{_range_tag(strike_range)}.arrow")
        self._write(digest, "chain", pa.record_batch(columns), meta, path)

    def _write(
        self,
        digest: str,
        kind: str,
        batch: pa.RecordBatch,
        meta: dict[str, Any],
        path: Path | None = None,
    ) -> None:
        header = {"kind": kind, "key": digest, "format": ALIGNMENT_REVISION, **meta}
        header["created"] = datetime.now(UTC).isoformat(timespec="seconds")
        schema = batch.schema.with_metadata({_META: json.dumps(header, sort_keys=True)})
        path = path or self.path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}.arrow")
        try:
            with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, schema) as writer:
                writer.write_batch(batch)
            # Same key, same bytes: a concurrent writer's rename is as good as ours.
            os.replace(tmp, path)
        except OSError:
            return  # the cache was deleted while writing, or the disk is full: a miss
        finally:
            tmp.unlink(missing_ok=True)
        self.evict()

    # ------------------------------------------------------------ maintenance
    def _entries(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of every entry; deletes crashed writers' temp files."""
        out: list[tuple[float, int, Path]] = []
        now = time.time()
        for path in self.root.glob("*/*.arrow"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # evicted by another process meanwhile
            if path.name.startswith(".tmp-"):
                if now - stat.st_mtime > _STALE_TEMP_SECONDS:
                    path.unlink(missing_ok=True)
                continue
            out.append((stat.st_mtime, stat.st_size, path))
        return out

    def evict(self) -> list[Path]:
        """Delete least recently used entries until the total is at most ``max_bytes``."""
        entries = sorted(self._entries(), key=lambda e: (e[0], e[2].name))
        total = sum(size for _, size, _ in entries)
        removed = []
        for _, size, path in entries:
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed.append(path)
        return removed

    def status(self) -> CacheStatus:
        entries = self._entries()
        times = [mtime for mtime, _, _ in entries]
        return CacheStatus(
            self.root,
            len(entries),
            sum(size for _, size, _ in entries),
            self.max_bytes,
            min(times) if times else None,
            max(times) if times else None,
        )

    def clear(self) -> int:
        """Delete every entry (and temp file); returns how many entries there were."""
        count = 0
        for path in self.root.glob("*/*.arrow"):
            count += not path.name.startswith(".tmp-")
            path.unlink(missing_ok=True)
        return count


class _Mapped:
    """Open an entry memory-mapped and check its header; a bad file is deleted.

    ``batch`` is None for a miss. Inside the ``with`` block a :class:`CorruptEntryError`
    (or an Arrow/decoding error) also deletes the file and is swallowed: ``batch`` views
    are only valid inside the block. A hit touches the file (LRU).
    """

    def __init__(self, cache: DayCache, path: Path, digest: str, kind: str) -> None:
        self.cache, self.path, self.digest, self.kind = cache, path, digest, kind
        self.batch: pa.RecordBatch | None = None
        self.meta: dict[str, Any] = {}

    def __enter__(self) -> _Mapped:
        try:
            source = pa.memory_map(str(self.path), "r")
        except FileNotFoundError:
            return self
        except OSError:
            self._drop()
            return self
        try:
            reader = ipc.open_file(source)
            metadata = reader.schema.metadata or {}
            meta = json.loads(metadata[_META])
            if meta.get("key") != self.digest or meta.get("kind") != self.kind:
                raise CorruptEntryError("key or kind differs from the file name")
            if meta.get("format") != ALIGNMENT_REVISION or reader.num_record_batches != 1:
                raise CorruptEntryError("unexpected format or batch count")
            batch = reader.get_batch(0)
            batch.validate()
        except (CorruptEntryError, pa.ArrowException, KeyError, ValueError, TypeError):
            self._drop()
            return self
        self.batch, self.meta = batch, meta
        with contextlib.suppress(FileNotFoundError):  # evicted meanwhile: still mapped
            os.utime(self.path)  # last use, for the LRU bound
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        self.batch = None
        if exc is not None and isinstance(
            exc, (CorruptEntryError, pa.ArrowException, KeyError, ValueError, TypeError)
        ):
            self._drop()
            return True  # a miss: the caller loads from Parquet
        return False

    def _drop(self) -> None:
        self.path.unlink(missing_ok=True)


def _range_tag(strike_range: tuple[float, float] | None) -> str:
    """The file-name part of a chain entry's strike range: ``all`` or ``LOW_HIGH`` (paise).

    Bands are whole paise (``Band.strike_range_rupees`` divides paise by 100), so the
    paise name round-trips to the same floats; the header keeps the floats as well.
    """
    if strike_range is None:
        return "all"
    low, high = (round(x * 100) for x in strike_range)
    return f"{low}_{high}"


def _parse_range(tag: str) -> tuple[bool, tuple[float, float] | None]:
    """(whether the tag is ours, the range it names: None = all)."""
    if tag == "all":
        return True, None
    low, sep, high = tag.partition("_")
    if not sep or not low.lstrip("-").isdigit() or not high.lstrip("-").isdigit():
        return False, None
    return True, (int(low) / 100.0, int(high) / 100.0)


def _stored_range(meta: dict[str, Any]) -> tuple[float, float] | None:
    stored = meta.get("strike_range")
    return None if stored is None else (float(stored[0]), float(stored[1]))


def _column_numpy(batch: pa.RecordBatch, name: str, dtype: type[np.generic]) -> np.ndarray:
    values = batch.column(name).to_numpy(zero_copy_only=True)
    if values.dtype != dtype:
        raise CorruptEntryError(f"column {name} is {values.dtype}, not {np.dtype(dtype)}")
    return values


def _narrow(values: np.ndarray) -> np.ndarray:
    """int64 arrays whose values fit as int32 (paise of option prices, ages in seconds)."""
    if (
        values.dtype == np.int64
        and values.size
        and values.min() >= -1
        and values.max() <= _INT32_MAX
    ):
        return values.astype(np.int32)
    return values


def _row_crc(arrays: dict[str, np.ndarray], names: tuple[str, ...], row: int) -> int:
    crc = 0
    for name in names:
        crc = zlib.crc32(np.ascontiguousarray(arrays[name][row]).data, crc)
    return crc


__all__ = [
    "ALIGNMENT_REVISION",
    "CACHE_SUBDIR",
    "AlignedChain",
    "CacheStatus",
    "CachedDay",
    "CorruptEntryError",
    "DayCache",
    "DayKey",
]
