"""Load one trading day for a backtest and align it to the session's 1-second grid.

What a day needs and nothing more: the option rows of one expiry, only the columns the
engine reads, only the strikes the underlying can reach that day (Parquet statistics
skip the rest), and the underlying series.

Alignment is a backward as-of join: the value at grid second ``g`` is the latest row
with ``ts <= g`` (a snapshot stamped ``g`` is known at ``g``), no older than
``as_of_tolerance_seconds``; its age ``g - ts`` is carried so the kernel can refuse
quotes older than ``max_quote_age_seconds``. Nothing after ``g`` is ever used for ``g``.

The underlying comes from the spot dataset when the spec names one (as-of joined the
same way); otherwise, or for seconds the spot series does not cover, it is derived
from the chain by put-call parity at the strike where |call mid − put mid| is smallest:
``S = K + C − P`` (zero rates, stated in the output as ``underlying_source``).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from ticklake.backtest.day_cache import AlignedChain, CachedDay, DayCache, DayKey
from ticklake.backtest.day_inputs import (
    _sorted_rows,
    partition_hash,
    previous_underlying_day,
    underlying_grid,
)
from ticklake.backtest.grid import (
    MISSING,
    NS,
    _asof_indices,
    _paise_on_grid,
    grid_index_of,
    session_grid,
)
from ticklake.backtest.instruments import _instrument_rows
from ticklake.backtest.option_chain import (
    MARKET_COLUMNS,
    OPTION_COLUMNS,
    OTHER_KIND,
    _align_contracts,
    _contract_order,
    _option_rows,
    _parity_spot,
    choose_expiry,
    strike_reach_steps,
)
from ticklake.backtest.pruning import ChainIndex, SpotPathSummary, candidate_contracts
from ticklake.backtest.spec import StrategySpec, parse_hhmm
from ticklake.errors import DatasetNotFoundError
from ticklake.lake import Lake
from ticklake.market.rules import MarketRules, market_rules


@dataclass
class DayData:
    """A day on the grid; prices are integer paise, 0 where there is no quote."""

    day: date
    expiry: date
    rules: MarketRules
    grid_ns: np.ndarray  # int64 [T] UTC ns of each grid second
    spot_paise: np.ndarray  # int64 [T], 0 = unknown
    spot_source: str  # "spot", "parity" or "spot+parity"
    strikes_paise: np.ndarray  # int64 [C]
    is_call: np.ndarray  # bool [C]
    symbols: list[str]
    bid: np.ndarray  # int64 [C, T]
    ask: np.ndarray  # int64 [C, T]
    age: np.ndarray  # int64 [C, T] seconds, -1 = no quote within tolerance
    years_to_expiry: np.ndarray  # float64 [T]
    input_hashes: dict[str, str] = field(default_factory=dict)
    # With ``market_fields``: as-of last traded price (paise, 0 = none) and the volume
    # traded in each grid second (the as-of cumulative day volume differenced; NaN = none).
    last_price: np.ndarray | None = None  # int64 [C, T]
    volume: np.ndarray | None = None  # float64 [C, T]
    # Instrument legs: rows ``option_count:`` of the contract arrays are plain
    # instruments (strike -1, never a selector's choice); ``leg_contract[leg]`` is the
    # row an instrument leg trades (-1 for an option leg), ``contract_expiry`` the
    # expiry of each such row (a future's; None for an instrument without one).
    option_count: int = -1  # -1 = every row is an option
    leg_contract: tuple[int, ...] = ()
    contract_expiry: dict[int, date | None] = field(default_factory=dict)

    @property
    def seconds(self) -> int:
        return int(self.grid_ns.size)

    def is_option(self, c: int) -> bool:
        return self.option_count < 0 or c < self.option_count


@dataclass(frozen=True)
class DaySkip:
    day: date
    reason: str


def load_day(
    lake: Lake,
    spec: StrategySpec,
    day: date,
    *,
    market_fields: bool = False,
    reach_steps: int | None = None,
    prune: bool | None = None,
) -> DayData | DaySkip:
    """Load and align one trading day, or say why it cannot be traded.

    ``market_fields`` also loads each contract's last price and volume (conditions on
    legs read them); they are aligned with the same as-of rule and tolerance.
    ``reach_steps`` overrides :func:`strike_reach_steps` (a sweep loading one day for
    several variants passes the largest of theirs; loading more strikes changes nothing).
    ``prune`` (default: the lake setting ``backtest.prune``) reads only the contracts
    :func:`~ticklake.backtest.pruning.candidate_contracts` derives; False reads the
    whole expiry (the trades are identical either way).
    """
    universe = spec.universe
    try:
        rules = market_rules(universe.underlying, day)
    except Exception as exc:  # reported as the day's skip reason
        return DaySkip(day, f"no market rules: {exc}")
    options_hash = partition_hash(lake, universe.options_dataset, day)
    if options_hash is None:
        return DaySkip(day, "no option data for this day")
    hashes = {f"{universe.options_dataset}/{day}": options_hash}
    grid = session_grid(day, spec)
    tolerance_ns = spec.fills.as_of_tolerance_seconds * NS

    cache = DayCache.of(lake)
    spot_hash = None
    if universe.underlying_dataset:
        with contextlib.suppress(DatasetNotFoundError):
            spot_hash = partition_hash(lake, universe.underlying_dataset, day)
        if spot_hash is not None:
            hashes[f"{universe.underlying_dataset}/{day}"] = spot_hash
    key = DayKey.of(spec, day, grid, options_hash, spot_hash)
    cached_day = cache.day(key) if cache is not None else None
    # Opened only when the chain is read (a scan checks the file on its first read in
    # this process, which a day served from the cache does not need), and once.
    options = functools.cache(lambda: lake.scan(universe.options_dataset, start=day, end=day))

    if cached_day is not None:
        spot_paise, source = cached_day.spot_paise, cached_day.source
        expiries = list(cached_day.expiries)
    else:
        spot_paise = np.zeros(grid.size, dtype=np.int64)
        source = "parity"
        if spot_hash is not None and universe.underlying_dataset:
            spot = _sorted_rows(lake, universe.underlying_dataset, day, ["ts", "price"])
            ts = spot["ts"].dt.epoch("ns").to_numpy()
            idx, _ = _asof_indices(ts, grid, tolerance_ns)
            spot_paise = _paise_on_grid(spot, "price", idx)
            source = "spot"
        expiries = (
            options().select(pl.col("expiry").unique()).collect()["expiry"].drop_nulls().to_list()
        )
        if cache is not None:
            cache.put_day(key, CachedDay(spot_paise, source, tuple(expiries)))

    band = candidate_contracts(
        spec,
        day,
        SpotPathSummary.from_grid(spot_paise, source),
        ChainIndex(tuple(expiries), round(rules.strike_step * 100)),
        market_fields=market_fields,
        reach_steps=None if reach_steps is None else reach_steps - 1,
        prune=lake.settings.backtest.prune if prune is None else prune,
    )
    expiry = band.expiry
    if expiry is None:
        return DaySkip(day, f"no {universe.expiry.replace('_', ' ')} expiry in the data")
    strike_range = band.strike_range_rupees()
    if cache is not None:
        chain = cache.chain(key, expiry, market_fields, strike_range)
        if chain is None:
            # A miss reads the band like an uncached run and keeps it: a later strategy
            # whose band lies inside this one hits (a wider one reads and keeps its own).
            chain = _aligned_chain(
                options(), expiry, strike_range, market_fields, grid, tolerance_ns
            )
            if chain.count:
                cache.put_chain(key, expiry, market_fields, chain, strike_range)
    else:
        chain = _aligned_chain(options(), expiry, strike_range, market_fields, grid, tolerance_ns)
    if chain.count == 0:
        return DaySkip(day, f"no option rows for expiry {expiry}")
    count = chain.count
    strikes = np.rint(chain.strikes * 100).astype(np.int64)
    is_call = chain.is_call

    plain = _instrument_rows(lake, spec, day, grid, tolerance_ns)
    bid, ask, age = chain.bid, chain.ask, chain.age
    empty = np.zeros((0, 0), dtype=np.int64)
    last = chain.last if market_fields and chain.last is not None else empty
    volume = chain.volume if market_fields and chain.volume is not None else np.full((0, 0), np.nan)
    if plain:
        extra = (len(plain), grid.size)
        bid = np.concatenate([bid, np.zeros(extra, dtype=np.int64)])
        ask = np.concatenate([ask, np.zeros(extra, dtype=np.int64)])
        age = np.concatenate([age, np.full(extra, MISSING, dtype=np.int64)])
        if market_fields:
            last = np.concatenate([last, np.zeros(extra, dtype=np.int64)])
            volume = np.concatenate([volume, np.full(extra, np.nan)])

    max_age = spec.fills.max_quote_age_seconds
    if source == "spot":
        missing = spot_paise == 0
        if missing.any():
            parity = _parity_spot(strikes, is_call, bid[:count], ask[:count], age[:count], max_age)
            if (parity[missing] > 0).any():
                spot_paise = np.where(missing, parity, spot_paise)
                source = "spot+parity"
    else:
        spot_paise = _parity_spot(strikes, is_call, bid[:count], ask[:count], age[:count], max_age)

    symbols = list(chain.symbols)
    leg_contract = [-1] * len(spec.legs)
    contract_expiry: dict[int, date | None] = {}
    for offset, row in enumerate(plain):
        c = count + offset
        bid[c], ask[c], age[c] = row.bid, row.ask, row.age
        if market_fields:
            last[c], volume[c] = row.last, row.volume
        symbols.append(row.symbol)
        contract_expiry[c] = row.expiry
        for leg in row.legs:
            leg_contract[leg] = c
        if row.input_hash is not None:
            hashes[f"{row.dataset}/{day}"] = row.input_hash
    if plain:
        strikes = np.concatenate([strikes, np.full(len(plain), -1, dtype=np.int64)])
        is_call = np.concatenate([is_call, np.zeros(len(plain), dtype=np.bool_)])

    tz = ZoneInfo(spec.time.timezone)
    expiry_close = datetime.combine(expiry, parse_hhmm(spec.time.session_end), tzinfo=tz)
    years = (int(expiry_close.timestamp()) * NS - grid) / (365.0 * 86_400 * NS)
    return DayData(
        day=day,
        expiry=expiry,
        rules=rules,
        grid_ns=grid,
        spot_paise=spot_paise.astype(np.int64),
        spot_source=source,
        strikes_paise=strikes,
        is_call=is_call,
        symbols=symbols,
        bid=bid,
        ask=ask,
        age=age,
        years_to_expiry=np.maximum(years, 1e-6),
        input_hashes=hashes,
        last_price=last if market_fields else None,
        volume=volume if market_fields else None,
        option_count=count if plain else -1,
        leg_contract=tuple(leg_contract),
        contract_expiry=contract_expiry,
    )


def _aligned_chain(
    options: pl.LazyFrame,
    expiry: date,
    strike_range: tuple[float, float] | None,
    market_fields: bool,
    grid: np.ndarray,
    tolerance_ns: int,
) -> AlignedChain:
    """Read one expiry's contracts (those in ``strike_range``; None: all) and align them."""
    wanted = pl.col("expiry") == expiry
    if strike_range is not None:
        # Only strikes a selector can reach from some spot of the day (Parquet row-group
        # statistics skip the rest: partitions are sorted by expiry, opt_type, strike).
        wanted &= pl.col("strike").is_between(*strike_range)
    frame = _option_rows(options.filter(wanted), market_fields)
    kind = frame["kind"].to_numpy()
    row_strike = frame["strike"].to_numpy()
    row_ts = frame["ts"].to_numpy()
    if (kind == OTHER_KIND).any() or not _contract_order(kind, row_strike, row_ts):
        # Stored partitions are sorted (underlying, expiry, opt_type, strike, ts), so this
        # only runs for a lake written in another order (or odd option types); a stable
        # sort keeps rows with equal keys in stored order.
        frame = frame.sort(["opt_type", "strike", "ts"], maintain_order=True).with_columns(
            pl.col("opt_type").rank("dense").cast(pl.Int64).alias("kind")
        )
        kind = frame["kind"].to_numpy()
        row_strike = frame["strike"].to_numpy()
        row_ts = frame["ts"].to_numpy()
    if frame.height == 0:
        first_rows = np.zeros(0, dtype=np.int64)
    else:
        boundary = np.flatnonzero((kind[1:] != kind[:-1]) | (row_strike[1:] != row_strike[:-1]))
        first_rows = np.concatenate([[0], boundary + 1]).astype(np.int64)
    starts = np.append(first_rows, np.int64(frame.height))
    count = first_rows.size
    bid = np.zeros((count, grid.size), dtype=np.int64)
    ask = np.zeros((count, grid.size), dtype=np.int64)
    age = np.full((count, grid.size), MISSING, dtype=np.int64)
    shape = (count, grid.size) if market_fields else (0, 0)
    last = np.zeros(shape, dtype=np.int64)
    volume = np.full(shape, np.nan)
    no_rows = np.zeros(0, dtype=np.float64)
    _align_contracts(
        starts,
        row_ts,
        frame["bid_price_0"].to_numpy(),
        frame["ask_price_0"].to_numpy(),
        frame["last_price"].to_numpy() if market_fields else no_rows,
        frame["volume"].to_numpy() if market_fields else no_rows,
        grid,
        tolerance_ns,
        bid,
        ask,
        age,
        last,
        volume,
    )
    contracts = frame.select("opt_type", "strike", "symbol")[first_rows]
    return AlignedChain(
        contracts["strike"].cast(pl.Float64).to_numpy(),
        contracts["opt_type"].to_list(),
        contracts["symbol"].to_list(),
        bid,
        ask,
        age,
        last if market_fields else None,
        volume if market_fields else None,
    )


__all__ = [
    "MARKET_COLUMNS",
    "MISSING",
    "NS",
    "OPTION_COLUMNS",
    "OTHER_KIND",
    "DayData",
    "DaySkip",
    "choose_expiry",
    "grid_index_of",
    "load_day",
    "partition_hash",
    "previous_underlying_day",
    "session_grid",
    "strike_reach_steps",
    "underlying_grid",
]
