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

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from ticklake.backtest.spec import StrategySpec, parse_hhmm
from ticklake.errors import DatasetNotFoundError
from ticklake.lake import Lake
from ticklake.market.calendar import monthly_expiry
from ticklake.market.rules import MarketRules, market_rules

NS = 1_000_000_000
MISSING = np.int64(-1)
OPTION_COLUMNS = ("ts", "strike", "opt_type", "expiry", "symbol", "bid_price_0", "ask_price_0")
#: Loaded as well when a condition reads a leg's market data (last price, volume).
MARKET_COLUMNS = ("last_price", "volume")


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

    @property
    def seconds(self) -> int:
        return int(self.grid_ns.size)


@dataclass(frozen=True)
class DaySkip:
    day: date
    reason: str


def session_grid(day: date, spec: StrategySpec) -> np.ndarray:
    """UTC ns of every second of the session, [session_start, session_end)."""
    tz = ZoneInfo(spec.time.timezone)
    start = datetime.combine(day, parse_hhmm(spec.time.session_start), tzinfo=tz)
    end = datetime.combine(day, parse_hhmm(spec.time.session_end), tzinfo=tz)
    first = int(start.timestamp()) * NS
    count = int((end - start).total_seconds())
    return first + np.arange(count, dtype=np.int64) * NS


def grid_index_of(day: date, spec: StrategySpec, clock: time) -> int:
    """Grid position of a wall-clock time (clamped to the session)."""
    tz = ZoneInfo(spec.time.timezone)
    start = datetime.combine(day, parse_hhmm(spec.time.session_start), tzinfo=tz)
    at = datetime.combine(day, clock, tzinfo=tz)
    return int((at - start).total_seconds())


def choose_expiry(spec: StrategySpec, day: date, available: list[date]) -> date | None:
    """Pick the expiry the spec asks for among those present in the day's data."""
    floor = day + timedelta(days=spec.universe.min_days_to_expiry)
    candidates = sorted(d for d in available if d >= floor)
    if not candidates:
        return None
    underlying = spec.universe.underlying

    def is_monthly(expiry: date) -> bool:
        return monthly_expiry(underlying, expiry.year, expiry.month) == expiry

    kind = spec.universe.expiry
    if kind in ("nearest_monthly", "next_monthly"):
        candidates = [d for d in candidates if is_monthly(d)]
    elif kind in ("nearest_weekly", "next_weekly"):
        candidates = [d for d in candidates if not is_monthly(d)] or []
        # In a monthly-expiry week the monthly contract is that week's weekly.
        weekly_or_monthly = sorted(d for d in available if d >= floor)
        if weekly_or_monthly and is_monthly(weekly_or_monthly[0]):
            candidates = [weekly_or_monthly[0], *candidates]
    index = 1 if kind.startswith("next") else 0
    return candidates[index] if len(candidates) > index else None


def _asof_indices(row_ts: np.ndarray, grid: np.ndarray, tolerance_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Backward as-of: index of the last row with ts <= g, and its age in seconds."""
    idx = np.searchsorted(row_ts, grid, side="right") - 1
    valid = idx >= 0
    age_ns = np.where(valid, grid - row_ts[np.clip(idx, 0, None)], -1)
    valid &= age_ns <= tolerance_ns
    age = np.where(valid, age_ns // NS, MISSING)
    return np.where(valid, idx, -1), age


def _to_paise(values: np.ndarray) -> np.ndarray:
    out = np.rint(np.nan_to_num(values, nan=0.0) * 100.0).astype(np.int64)
    return np.where(out > 0, out, 0)


def _partition_hash(lake: Lake, dataset: str, day: date) -> str | None:
    for part in lake.partitions(dataset):
        if part.date == day:
            return part.manifest.file_sha256 if part.manifest else "no-manifest"
    return None


def load_day(
    lake: Lake, spec: StrategySpec, day: date, *, market_fields: bool = False
) -> DayData | DaySkip:
    """Load and align one trading day, or say why it cannot be traded.

    ``market_fields`` also loads each contract's last price and volume (conditions on
    legs read them); they are aligned with the same as-of rule and tolerance.
    """
    universe = spec.universe
    try:
        rules = market_rules(universe.underlying, day)
    except Exception as exc:  # noqa: BLE001 - reported as the day's skip reason
        return DaySkip(day, f"no market rules: {exc}")
    options_hash = _partition_hash(lake, universe.options_dataset, day)
    if options_hash is None:
        return DaySkip(day, "no option data for this day")
    hashes = {f"{universe.options_dataset}/{day}": options_hash}
    grid = session_grid(day, spec)
    tolerance_ns = spec.fills.as_of_tolerance_seconds * NS

    spot_paise = np.zeros(grid.size, dtype=np.int64)
    source = "parity"
    if universe.underlying_dataset:
        try:
            spot_hash = _partition_hash(lake, universe.underlying_dataset, day)
        except DatasetNotFoundError:
            spot_hash = None
        if spot_hash is not None:
            hashes[f"{universe.underlying_dataset}/{day}"] = spot_hash
            spot = (
                lake.scan(universe.underlying_dataset, start=day, end=day, columns=["ts", "price"])
                .sort("ts")
                .collect()
            )
            ts = spot["ts"].dt.epoch("ns").to_numpy()
            idx, _ = _asof_indices(ts, grid, tolerance_ns)
            prices = _to_paise(spot["price"].to_numpy())
            spot_paise = np.where(idx >= 0, prices[np.clip(idx, 0, None)], 0)
            source = "spot"

    columns = list(OPTION_COLUMNS) + (list(MARKET_COLUMNS) if market_fields else [])
    options = lake.scan(universe.options_dataset, start=day, end=day, columns=columns)
    expiries = (
        options.select(pl.col("expiry").unique()).collect()["expiry"].drop_nulls().to_list()
    )
    expiry = choose_expiry(spec, day, expiries)
    if expiry is None:
        return DaySkip(day, f"no {universe.expiry.replace('_', ' ')} expiry in the data")
    frame = options.filter(pl.col("expiry") == expiry)
    if source == "spot" and spot_paise.any():
        # Only strikes the underlying can reach today, plus the selectors' candidates.
        step = rules.strike_step
        reach = universe.strike_candidates * step + step
        known = spot_paise[spot_paise > 0] / 100.0
        lo, hi = float(known.min()) - reach, float(known.max()) + reach
        frame = frame.filter(pl.col("strike").is_between(lo, hi))
    frame = frame.sort(["opt_type", "strike", "ts"]).collect()
    if frame.height == 0:
        return DaySkip(day, f"no option rows for expiry {expiry}")

    contracts = frame.select("opt_type", "strike", "symbol").unique(
        subset=["opt_type", "strike"], keep="first", maintain_order=True
    )
    count = contracts.height
    bid = np.zeros((count, grid.size), dtype=np.int64)
    ask = np.zeros((count, grid.size), dtype=np.int64)
    age = np.full((count, grid.size), MISSING, dtype=np.int64)
    last = np.zeros((count, grid.size), dtype=np.int64) if market_fields else None
    volume = np.full((count, grid.size), np.nan) if market_fields else None
    if market_fields:
        lasts_all = _to_paise(frame["last_price"].cast(pl.Float64).to_numpy())
        cumulative_all = frame["volume"].cast(pl.Float64).to_numpy()
    ts_all = frame["ts"].dt.epoch("ns").to_numpy()
    bids_all = _to_paise(frame["bid_price_0"].to_numpy())
    asks_all = _to_paise(frame["ask_price_0"].to_numpy())
    keys = frame.select("opt_type", "strike")
    bounds = keys.with_row_index().group_by(["opt_type", "strike"], maintain_order=True).agg(
        pl.col("index").min().alias("lo"), pl.col("index").max().alias("hi")
    )
    for c, (lo_i, hi_i) in enumerate(zip(bounds["lo"], bounds["hi"], strict=True)):
        row_ts = ts_all[lo_i : hi_i + 1]
        idx, a = _asof_indices(row_ts, grid, tolerance_ns)
        ok = idx >= 0
        take = np.clip(idx, 0, None) + lo_i
        bid[c] = np.where(ok, bids_all[take], 0)
        ask[c] = np.where(ok, asks_all[take], 0)
        age[c] = a
        if last is not None and volume is not None:
            last[c] = np.where(ok, lasts_all[take], 0)
            cumulative = np.where(ok, cumulative_all[take], np.nan)
            before = np.concatenate([[0.0], cumulative[:-1]])
            # Traded in this second = cumulative now minus a second ago (a reset or a
            # missing second before counts from zero; a decrease is a vendor glitch: 0).
            before = np.where(np.isnan(before), 0.0, before)
            volume[c] = np.clip(cumulative - before, 0.0, None)
    strikes = np.rint(contracts["strike"].to_numpy() * 100).astype(np.int64)
    is_call = (contracts["opt_type"] == "CE").to_numpy()

    parity = _parity_spot(strikes, is_call, bid, ask, age, spec.fills.max_quote_age_seconds)
    if source == "spot":
        missing = spot_paise == 0
        if missing.any() and (parity[missing] > 0).any():
            spot_paise = np.where(missing, parity, spot_paise)
            source = "spot+parity"
    else:
        spot_paise = parity

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
        symbols=contracts["symbol"].to_list(),
        bid=bid,
        ask=ask,
        age=age,
        years_to_expiry=np.maximum(years, 1e-6),
        input_hashes=hashes,
        last_price=last,
        volume=volume,
    )


def _parity_spot(
    strikes: np.ndarray,
    is_call: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    age: np.ndarray,
    max_age: int,
) -> np.ndarray:
    """Underlying from put-call parity, per second (0 where no strike has both quotes)."""
    T = bid.shape[1]
    best = np.full(T, np.iinfo(np.int64).max, dtype=np.int64)
    spot = np.zeros(T, dtype=np.int64)
    ok = (bid > 0) & (ask > 0) & (age >= 0) & (age <= max_age)
    mid = (bid + ask) // 2
    calls = {int(k): i for i, k in enumerate(strikes) if is_call[i]}
    for j, strike in enumerate(strikes):
        if is_call[j]:
            continue
        i = calls.get(int(strike))
        if i is None:
            continue
        both = ok[i] & ok[j]
        gap = np.abs(mid[i] - mid[j])
        better = both & (gap < best)
        best = np.where(better, gap, best)
        spot = np.where(better, strike + mid[i] - mid[j], spot)
    return spot


def previous_underlying_day(lake: Lake, spec: StrategySpec, day: date) -> date | None:
    """The last date before ``day`` with a partition of the underlying dataset."""
    dataset = spec.universe.underlying_dataset
    if not dataset:
        return None
    try:
        earlier = [p.date for p in lake.partitions(dataset) if p.date < day]
    except DatasetNotFoundError:
        return None
    return max(earlier) if earlier else None


def underlying_grid(
    lake: Lake, spec: StrategySpec, day: date
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The underlying dataset's day on the grid: (grid ns, price paise, volume per second).

    Price is as-of joined like ``load_day`` (0 = none); volume per second sums the
    dataset's ``volume`` of the rows in ``(g - 1 s, g]`` (NaN when it has none).
    """
    dataset = spec.universe.underlying_dataset
    if not dataset:
        return None
    grid = session_grid(day, spec)
    rows = (
        lake.scan(dataset, start=day, end=day, columns=["ts", "price", "volume"])
        .sort("ts")
        .collect()
    )
    if rows.height == 0:
        return None
    ts = rows["ts"].dt.epoch("ns").to_numpy()
    idx, _ = _asof_indices(ts, grid, spec.fills.as_of_tolerance_seconds * NS)
    prices = _to_paise(rows["price"].to_numpy())
    price = np.where(idx >= 0, prices[np.clip(idx, 0, None)], 0)
    volumes = rows["volume"].cast(pl.Float64)
    if volumes.null_count() == rows.height:
        return grid, price, np.full(grid.size, np.nan)
    cumulative = np.concatenate([[0.0], np.cumsum(volumes.fill_null(0.0).to_numpy())])
    upper = np.searchsorted(ts, grid, side="right")
    lower = np.searchsorted(ts, grid - NS, side="right")
    return grid, price, cumulative[upper] - cumulative[lower]
