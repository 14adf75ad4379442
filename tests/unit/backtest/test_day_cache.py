"""The hot day cache: a second strategy over the same days maps aligned arrays instead of
decoding Parquet, and a cached day gives exactly the trades of an uncached one.

The oracle is the engine with the cache off (``backtest.day_cache = false``, the path the
pruning, alignment and pandas-oracle tests pin): every fill, attempt, P&L path and summary
must be equal on a cold run (which writes the cache), a warm run (which reads it) and
across strategies of every selector kind sharing one entry. Then what a cache must
survive: a flipped byte, a re-ingested day, another as-of tolerance, the size bound, a
deleted cache directory.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import test_pruning as pruning  # the generated two-day lake and strategies of every kind

import ticklake.backtest.data as data_module
from ticklake.backtest.data import DayData, load_day
from ticklake.backtest.day_cache import CACHE_SUBDIR, DayCache
from ticklake.backtest.engine import DayOutcome, run_day
from ticklake.lake import Lake, open_lake

DAYS = pruning.DAYS


lake = pruning.lake  # the pruning tests' generated lake, built once per session


@pytest.fixture
def lake_root(lake: Lake, tmp_path: Path) -> Path:
    """A private copy: the cache writes under the lake, and lakes are shared by tests."""
    root = tmp_path / "lake"
    shutil.copytree(lake.root, root, ignore=shutil.ignore_patterns("cache"))
    return root


def _cached(root: Path, **settings: object) -> Lake:
    return open_lake(root, backtest={"day_cache": True, **settings})


def _uncached(root: Path) -> Lake:
    return open_lake(root, backtest={"day_cache": False})


def _entries(root: Path) -> list[Path]:
    return sorted((root / CACHE_SUBDIR).glob("*/*.arrow"))


def _assert_same(got: DayOutcome, want: DayOutcome) -> None:
    assert got.summary == want.summary
    assert got.trades.equals(want.trades, null_equal=True)
    assert got.attempts.equals(want.attempts, null_equal=True)
    assert got.pnl_path is not None and want.pnl_path is not None
    assert np.array_equal(got.pnl_path, want.pnl_path)
    assert np.array_equal(got.in_position, want.in_position)


class _NoParquet:
    """Replaces the chain reader: a warm day must not decode the option Parquet."""

    calls = 0

    def __call__(self, *args: object, **kwargs: object) -> None:
        type(self).calls += 1
        raise AssertionError("the option chain was read from Parquet on a warm day")


def test_every_selector_kind_trades_identically_cold_and_warm(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached, plain = _cached(lake_root), _uncached(lake_root)
    names = sorted(pruning.STRATEGIES)
    want = {
        (n, d): run_day(plain, pruning._spec(**pruning.STRATEGIES[n]), d, keep_pnl_path=True)
        for n in names
        for d in DAYS
    }
    assert sum(o.trades.height for o in want.values()) > 0
    assert not _entries(lake_root)
    # Cold: the first strategies write the entries (a day entry, a chain per expiry and
    # per market-field need); every outcome equals the uncached engine's.
    for (n, d), outcome in want.items():
        spec = pruning._spec(**pruning.STRATEGIES[n])
        _assert_same(run_day(cached, spec, d, keep_pnl_path=True), outcome)
    written = _entries(lake_root)
    assert written, "a cold run with backtest.day_cache = true wrote nothing"
    stamps = {p: p.stat().st_mtime_ns for p in written}
    # Warm: nothing is read from Parquet and nothing is rewritten.
    monkeypatch.setattr(data_module, "_aligned_chain", _NoParquet())
    for (n, d), outcome in want.items():
        spec = pruning._spec(**pruning.STRATEGIES[n])
        _assert_same(run_day(cached, spec, d, keep_pnl_path=True), outcome)
    assert _NoParquet.calls == 0
    assert _entries(lake_root) == written
    assert all(p.stat().st_mtime_ns >= stamps[p] for p in written)


def _day(lake: Lake, day: date, **overrides: object) -> DayData:
    loaded = load_day(lake, pruning._spec(**overrides), day)
    assert isinstance(loaded, DayData)
    return loaded


def test_a_warm_day_equals_the_uncached_arrays_bit_for_bit(lake_root: Path) -> None:
    cold = _day(_cached(lake_root), DAYS[0])
    warm = _day(_cached(lake_root), DAYS[0])
    want = _day(_uncached(lake_root), DAYS[0])
    for got in (cold, warm):
        for name in ("spot_paise", "strikes_paise", "is_call", "bid", "ask", "age"):
            a, b = getattr(got, name), getattr(want, name)
            assert a.dtype == b.dtype and np.array_equal(a, b), name
        assert got.symbols == want.symbols and got.spot_source == want.spot_source
        assert got.expiry == want.expiry and got.input_hashes == want.input_hashes
        assert got.bid.flags.writeable  # the kernel may get owned arrays, never the map


def _bid_offset(path: Path, strike: float, second: int) -> int:
    """The file offset of the bid of the first contract at ``strike`` at grid ``second``."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    source = pa.memory_map(str(path), "r")
    base = source.read_buffer().address
    source.seek(0)
    batch = ipc.open_file(source).get_batch(0)
    row = batch.column("strike").to_pylist().index(strike)
    values = batch.column("bid").values
    width = values.type.bit_width // 8
    seconds = batch.column("bid").type.list_size
    address = values.buffers()[1].address + (values.offset + row * seconds + second) * width
    return int(address - base)


def test_a_flipped_byte_is_a_miss_never_a_wrong_number(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = pruning._spec()
    want = run_day(_uncached(lake_root), spec, DAYS[0], keep_pnl_path=True)
    run_day(_cached(lake_root), spec, DAYS[0], keep_pnl_path=True)
    served = _day(_uncached(lake_root), DAYS[0])
    chain = max(_entries(lake_root), key=lambda p: p.stat().st_size)  # the chain entry
    offset = _bid_offset(chain, served.strikes_paise[0] / 100, served.seconds // 2)
    raw = bytearray(chain.read_bytes())
    # A bit of a served contract's bid: the Arrow file still opens, its CRC does not match.
    raw[offset] ^= 0x04
    chain.write_bytes(bytes(raw))
    calls: list[int] = []
    real = data_module._aligned_chain

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(data_module, "_aligned_chain", counting)
    _assert_same(run_day(_cached(lake_root), spec, DAYS[0], keep_pnl_path=True), want)
    assert calls == [1], "the corrupt entry was served instead of re-read from Parquet"
    assert chain.is_file() and chain.read_bytes() != bytes(raw)  # rewritten, intact
    _assert_same(run_day(_cached(lake_root), spec, DAYS[0], keep_pnl_path=True), want)
    assert calls == [1]


def test_the_key_follows_the_inputs_and_the_alignment(lake_root: Path) -> None:
    lake = _cached(lake_root)
    _day(lake, DAYS[0])
    first = set(_entries(lake_root))
    _day(lake, DAYS[0])
    assert set(_entries(lake_root)) == first
    # Another as-of tolerance aligns differently: new entries, the old ones stay.
    _day(lake, DAYS[0], fills={"as_of_tolerance_seconds": 2})
    second = set(_entries(lake_root))
    assert first < second
    # Another day, another key.
    _day(lake, DAYS[1])
    assert second < set(_entries(lake_root))
    # The strategy is not in the key, only its band: a narrower band is served by a
    # wider entry (nothing written, nothing read from Parquet); a wider one reads and
    # keeps its own entry, and the narrow one is then served by the narrowest cover.
    before = set(_entries(lake_root))
    _day(lake, DAYS[1], legs=[{"name": "pe", "opt_type": "PE", "side": "buy"}])
    assert set(_entries(lake_root)) == before
    wide_legs = [
        {
            "name": "pe",
            "opt_type": "PE",
            "side": "buy",
            "selector": {"kind": "delta", "target": 0.1},
        }
    ]
    wide = _day(lake, DAYS[1], legs=wide_legs)
    after = set(_entries(lake_root))
    assert len(after - before) == 1
    (new_entry,) = after - before
    assert new_entry.stat().st_size > max(p.stat().st_size for p in before if ".all." not in p.name)
    narrow = _day(lake, DAYS[1])
    assert set(_entries(lake_root)) == after
    assert set(narrow.strikes_paise) < set(wide.strikes_paise)


def test_a_narrow_band_is_served_from_a_wider_entry(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = _cached(lake_root)
    wide = {
        "universe": {"strike_candidates": 6},
        "legs": [
            {
                "name": "ce",
                "opt_type": "CE",
                "side": "sell",
                "selector": {"kind": "delta", "target": 0.3},
            }
        ],
    }
    spec = pruning._spec(**wide)
    run_day(lake, spec, DAYS[0])
    monkeypatch.setattr(data_module, "_aligned_chain", _NoParquet())
    for name in ("atm_straddle", "otm_strangle_retargeted_on_move"):
        narrow = pruning._spec(**pruning.STRATEGIES[name])
        got = run_day(lake, narrow, DAYS[0], keep_pnl_path=True)
        monkeypatch.undo()
        want = run_day(_uncached(lake_root), narrow, DAYS[0], keep_pnl_path=True)
        monkeypatch.setattr(data_module, "_aligned_chain", _NoParquet())
        _assert_same(got, want)
        assert got.trades.height > 0


def test_a_reingested_day_misses(lake_root: Path) -> None:
    from ticklake.backtest.day_inputs import partition_hash

    lake = _cached(lake_root)
    spec = pruning._spec()
    _day(lake, DAYS[0])
    entries = set(_entries(lake_root))
    old_hash = partition_hash(lake, pruning.OPTIONS, DAYS[0])
    # Rewrite the day's partition with one contract's bid raised by 5 rupees, as a
    # corrected re-ingest would: the partition hash and so every key changes.
    import polars as pl

    frame = lake.scan(pruning.OPTIONS, start=DAYS[0], end=DAYS[0]).collect()
    atm = _day(_uncached(lake_root), DAYS[0])
    symbol = atm.symbols[0]
    changed = frame.with_columns(
        pl.when(pl.col("symbol") == symbol)
        .then(pl.col("bid_price_0") + 5)
        .otherwise(pl.col("bid_price_0"))
        .alias("bid_price_0")
    )
    lake.write(pruning.OPTIONS, changed, mode="replace")
    assert partition_hash(lake, pruning.OPTIONS, DAYS[0]) != old_hash
    got = _day(_cached(lake_root), DAYS[0])
    want = _day(_uncached(lake_root), DAYS[0])
    assert np.array_equal(got.bid, want.bid)
    assert not np.array_equal(got.bid, atm.bid)  # the stale entry was not served
    assert set(_entries(lake_root)) > entries
    assert (
        run_day(_cached(lake_root), spec, DAYS[0]).summary
        == run_day(_uncached(lake_root), spec, DAYS[0]).summary
    )


def test_the_size_bound_evicts_the_least_recently_used(lake_root: Path) -> None:
    lake = _cached(lake_root)
    _day(lake, DAYS[0])
    _day(lake, DAYS[1])
    entries = _entries(lake_root)
    sizes = {p: p.stat().st_size for p in entries}
    total = sum(sizes.values())
    # Age every entry, then use day 1's again: day 0's are the least recently used.
    past = time.time() - 600
    for p in entries:
        os.utime(p, (past, past))
    _day(lake, DAYS[1])
    used = {p for p in entries if p.stat().st_mtime > past + 1}
    assert used and len(used) < len(entries)
    cache = DayCache(lake_root / CACHE_SUBDIR, max_bytes=sum(sizes[p] for p in used))
    removed = cache.evict()
    assert set(removed) == set(entries) - used
    assert set(_entries(lake_root)) == used
    # Exactly at the bound nothing more goes.
    assert cache.evict() == [] and cache.status().bytes == sum(sizes[p] for p in used)
    assert cache.status().bytes < total
    # An expiry larger than the whole bound is not cached at all (and still trades).
    tiny = _cached(lake_root, day_cache_max_gib=1e-6)
    shutil.rmtree(lake_root / "cache")
    got = _day(tiny, DAYS[0])
    assert all(p.stat().st_size < 2 * 1024 for p in _entries(lake_root))
    assert np.array_equal(got.bid, _day(_uncached(lake_root), DAYS[0]).bid)


def test_deleting_the_cache_is_always_safe(lake_root: Path) -> None:
    lake = _cached(lake_root)
    spec = pruning._spec()
    want = run_day(_uncached(lake_root), spec, DAYS[0]).summary
    assert run_day(lake, spec, DAYS[0]).summary == want
    shutil.rmtree(lake_root / "cache")
    assert run_day(lake, spec, DAYS[0]).summary == want
    assert _entries(lake_root)


def test_market_fields_entries(lake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = _cached(lake_root)
    want = load_day(_uncached(lake_root), pruning._spec(), DAYS[0], market_fields=True)
    with_market = load_day(lake, pruning._spec(), DAYS[0], market_fields=True)
    assert isinstance(with_market, DayData) and with_market.last_price is not None
    # A quotes-only request is served by the entry with market fields (dropped).
    monkeypatch.setattr(data_module, "_aligned_chain", _NoParquet())
    quotes = load_day(lake, pruning._spec(), DAYS[0])
    assert isinstance(quotes, DayData) and quotes.last_price is None
    assert isinstance(want, DayData) and want.last_price is not None and want.volume is not None
    assert np.array_equal(with_market.last_price, want.last_price)
    assert with_market.volume is not None
    assert np.array_equal(with_market.volume, want.volume, equal_nan=True)
    assert np.array_equal(quotes.bid, want.bid)


def test_the_cli_shows_and_clears_the_cache(lake_root: Path) -> None:
    from typer.testing import CliRunner

    from ticklake.cli import app

    _day(_cached(lake_root), DAYS[0])
    entries = _entries(lake_root)
    size = sum(p.stat().st_size for p in entries)
    runner = CliRunner()
    shown = runner.invoke(app, ["backtest", "day-cache", "--lake", str(lake_root)])
    assert shown.exit_code == 0, shown.output
    assert f"{len(entries)} entries" in shown.output and "off" in shown.output
    assert f"{size / 2**20:,.1f} MiB" in shown.output
    cleared = runner.invoke(app, ["backtest", "day-cache", "--clear", "--lake", str(lake_root)])
    assert cleared.exit_code == 0 and "0 entries" in cleared.output
    assert _entries(lake_root) == []
