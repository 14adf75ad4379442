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

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numba
import numpy as np
import polars as pl

from ticklake.backtest.spec import StrategySpec, parse_hhmm
from ticklake.errors import ConfigError, DatasetNotFoundError
from ticklake.lake import Lake, Manifest
from ticklake.lake.layout import MANIFEST_FILE
from ticklake.market.calendar import monthly_expiry
from ticklake.market.nse_symbols import parse_future_symbol
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
    if kind == "by_days_to_expiry":
        target = spec.universe.target_days_to_expiry or 0
        return min(candidates, key=lambda d: (abs((d - day).days - target), d))
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


def _asof_indices(
    row_ts: np.ndarray, grid: np.ndarray, tolerance_ns: int
) -> tuple[np.ndarray, np.ndarray]:
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


# From here on a price × 100 does not fit an int64: like NaN or ±inf, no price.
_PAISE_LIMIT = float(2**63)
#: ``kind`` of an option type other than CE (0) and PE (1).
OTHER_KIND = 2


@numba.njit(cache=True)
def _price_paise(value: float) -> int:
    """One price in rupees as integer paise, 0 for a missing or non-positive price."""
    if not math.isfinite(value):
        return 0
    paise = np.rint(value * 100.0)
    if paise <= 0.0 or paise >= _PAISE_LIMIT:
        return 0
    return int(paise)


@numba.njit(cache=True)
def _contract_order(kind: np.ndarray, strike: np.ndarray, ts: np.ndarray) -> bool:
    """True when rows are in (kind, strike, ts) order, ts non-decreasing per contract."""
    for i in range(1, kind.shape[0]):
        if kind[i] != kind[i - 1]:
            if kind[i] < kind[i - 1]:
                return False
        elif strike[i] != strike[i - 1]:
            # ``not >`` rather than ``<`` so that a NaN strike also fails the check.
            if not strike[i] > strike[i - 1]:
                return False
        elif ts[i] < ts[i - 1]:
            return False
    return True


@numba.njit(cache=True)
def _align_contracts(
    starts: np.ndarray,
    row_ts: np.ndarray,
    row_bid: np.ndarray,
    row_ask: np.ndarray,
    row_last: np.ndarray,
    row_cumulative: np.ndarray,
    grid: np.ndarray,
    tolerance_ns: int,
    bid: np.ndarray,
    ask: np.ndarray,
    age: np.ndarray,
    last: np.ndarray,
    volume: np.ndarray,
) -> None:
    """Backward as-of join of every contract's rows to the grid, in one pass.

    Contract ``c`` owns rows ``starts[c]:starts[c + 1]`` (ts non-decreasing). Writes
    ``bid``/``ask`` (paise, 0 = none) and ``age`` (seconds, -1 = none) at [c, g]; with
    market fields (``last.shape[0] > 0``) also the as-of last price and the volume traded
    in each second. Each row is read at most once per contract; nothing after ``g``.
    """
    market = last.shape[0] > 0
    for c in range(starts.shape[0] - 1):
        lo, hi = starts[c], starts[c + 1]
        after = lo  # first row with ts > the current grid second
        row_bid_paise = 0
        row_ask_paise = 0
        row_last_paise = 0
        previous_cumulative = math.nan
        for g in range(grid.shape[0]):
            now = grid[g]
            moved = False
            while after < hi and row_ts[after] <= now:
                after += 1
                moved = True
            cumulative = math.nan
            if after > lo:
                row = after - 1
                if moved:
                    row_bid_paise = _price_paise(row_bid[row])
                    row_ask_paise = _price_paise(row_ask[row])
                    if market:
                        row_last_paise = _price_paise(row_last[row])
                age_ns = now - row_ts[row]
                if age_ns <= tolerance_ns:
                    bid[c, g] = row_bid_paise
                    ask[c, g] = row_ask_paise
                    age[c, g] = age_ns // NS
                    if market:
                        last[c, g] = row_last_paise
                        cumulative = row_cumulative[row]
            if market:
                # Traded in this second = cumulative now minus a second ago (a reset or a
                # missing second before counts from zero; a decrease is a vendor glitch: 0).
                before = 0.0 if math.isnan(previous_cumulative) else previous_cumulative
                if not math.isnan(cumulative):
                    volume[c, g] = max(cumulative - before, 0.0)
                previous_cumulative = cumulative


@numba.njit(cache=True)
def _parity_from_pairs(
    pair_put: np.ndarray,
    pair_call: np.ndarray,
    pair_strike: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    age: np.ndarray,
    max_age: int,
) -> np.ndarray:
    """Per second, ``K + C − P`` at the pair with the smallest |call mid − put mid|."""
    seconds = bid.shape[1]
    spot = np.zeros(seconds, np.int64)
    for t in range(seconds):
        best = np.iinfo(np.int64).max
        for p in range(pair_put.shape[0]):
            put, call = pair_put[p], pair_call[p]
            if not (bid[call, t] > 0 and ask[call, t] > 0 and 0 <= age[call, t] <= max_age):
                continue
            if not (bid[put, t] > 0 and ask[put, t] > 0 and 0 <= age[put, t] <= max_age):
                continue
            call_mid = (bid[call, t] + ask[call, t]) // 2
            put_mid = (bid[put, t] + ask[put, t]) // 2
            gap = abs(call_mid - put_mid)
            if gap < best:  # strictly: on a tie the first pair in load order wins
                best = gap
                spot[t] = pair_strike[p] + call_mid - put_mid
    return spot


def strike_reach_steps(spec: StrategySpec) -> int:
    """Strike steps beyond the day's spot range that ``load_day`` keeps.

    Enough for every selector: the ATM strike is within half a step of spot, ``delta``
    and ``premium`` scan ATM ± ``strike_candidates`` steps and ``otm``/``itm`` move
    ``steps`` from ATM, so ``max(strike_candidates, largest steps) + 1`` covers any
    strike a leg can choose from spot(t) at any second of the day.
    """
    steps = [getattr(leg.selector, "steps", 0) for leg in spec.legs]
    return max(spec.universe.strike_candidates, *steps) + 1


def partition_hash(lake: Lake, dataset: str, day: date) -> str | None:
    # One manifest read (listing every partition's manifest grows with the lake's age).
    files = lake.partition_files(dataset, start=day, end=day)
    if not files:
        return None
    manifest = files[0].with_name(MANIFEST_FILE)
    return Manifest.read(manifest).file_sha256 if manifest.is_file() else "no-manifest"


def _sorted_rows(lake: Lake, dataset: str, day: date, columns: list[str]) -> pl.DataFrame:
    """The day's rows of a time series, in ts order (sorted only when they are not)."""
    return _in_time_order(lake.scan(dataset, start=day, end=day, columns=columns).collect())


def _in_time_order(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` in ts order: as they are when already sorted, else a stable sort."""
    ts = rows["ts"].dt.epoch("ns").to_numpy()
    if ts.size > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
        rows = rows.sort("ts", maintain_order=True)
    return rows


def load_day(
    lake: Lake,
    spec: StrategySpec,
    day: date,
    *,
    market_fields: bool = False,
    reach_steps: int | None = None,
) -> DayData | DaySkip:
    """Load and align one trading day, or say why it cannot be traded.

    ``market_fields`` also loads each contract's last price and volume (conditions on
    legs read them); they are aligned with the same as-of rule and tolerance.
    ``reach_steps`` overrides :func:`strike_reach_steps` (a sweep loading one day for
    several variants passes the largest of theirs; loading more strikes changes nothing).
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

    spot_paise = np.zeros(grid.size, dtype=np.int64)
    source = "parity"
    if universe.underlying_dataset:
        try:
            spot_hash = partition_hash(lake, universe.underlying_dataset, day)
        except DatasetNotFoundError:
            spot_hash = None
        if spot_hash is not None:
            hashes[f"{universe.underlying_dataset}/{day}"] = spot_hash
            spot = _sorted_rows(lake, universe.underlying_dataset, day, ["ts", "price"])
            ts = spot["ts"].dt.epoch("ns").to_numpy()
            idx, _ = _asof_indices(ts, grid, tolerance_ns)
            spot_paise = _paise_on_grid(spot, "price", idx)
            source = "spot"

    options = lake.scan(universe.options_dataset, start=day, end=day)
    expiries = options.select(pl.col("expiry").unique()).collect()["expiry"].drop_nulls().to_list()
    expiry = choose_expiry(spec, day, expiries)
    if expiry is None:
        return DaySkip(day, f"no {universe.expiry.replace('_', ' ')} expiry in the data")
    wanted = pl.col("expiry") == expiry
    if source == "spot" and spot_paise.any():
        # Only strikes a selector can reach from some spot of the day (Parquet row-group
        # statistics skip the rest: partitions are sorted by expiry, opt_type, strike).
        step = rules.strike_step
        reach = (strike_reach_steps(spec) if reach_steps is None else reach_steps) * step
        known = spot_paise[spot_paise > 0] / 100.0
        lo, hi = float(known.min()) - reach, float(known.max()) + reach
        wanted &= pl.col("strike").is_between(lo, hi)
    frame = _option_rows(options.filter(wanted), market_fields)
    if frame.height == 0:
        return DaySkip(day, f"no option rows for expiry {expiry}")

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
    boundary = np.flatnonzero((kind[1:] != kind[:-1]) | (row_strike[1:] != row_strike[:-1]))
    first_rows = np.concatenate([[0], boundary + 1]).astype(np.int64)
    starts = np.append(first_rows, np.int64(frame.height))
    count = first_rows.size

    plain = _instrument_rows(lake, spec, day, grid, tolerance_ns)
    rows_total = count + len(plain)
    bid = np.zeros((rows_total, grid.size), dtype=np.int64)
    ask = np.zeros((rows_total, grid.size), dtype=np.int64)
    age = np.full((rows_total, grid.size), MISSING, dtype=np.int64)
    shape = (rows_total, grid.size) if market_fields else (0, 0)
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
    strikes = np.rint(contracts["strike"].to_numpy() * 100).astype(np.int64)
    is_call = (contracts["opt_type"] == "CE").to_numpy()

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

    symbols = contracts["symbol"].to_list()
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


@dataclass
class _InstrumentRow:
    """One plain instrument on the grid (paise; age -1 = no quote within tolerance)."""

    dataset: str
    symbol: str
    expiry: date | None
    legs: list[int]
    bid: np.ndarray
    ask: np.ndarray
    age: np.ndarray
    last: np.ndarray
    volume: np.ndarray
    input_hash: str | None


def _paise_on_grid(frame: pl.DataFrame, column: str, idx: np.ndarray) -> np.ndarray:
    """A price column as-of on the grid (``idx`` from ``_asof_indices``), paise, 0 = none."""
    if column not in frame.columns or frame.height == 0:
        return np.zeros(idx.size, np.int64)
    values = _to_paise(frame[column].cast(pl.Float64).to_numpy())
    return np.where(idx >= 0, values[np.clip(idx, 0, None)], 0)


def _volume_per_second(frame: pl.DataFrame, ts: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The sum of ``volume`` over the rows in ``(g - 1 s, g]`` per grid second ``g`` (NaN
    everywhere when the frame has no volume)."""
    if "volume" not in frame.columns or frame["volume"].null_count() == frame.height:
        return np.full(grid.size, np.nan)
    volumes = frame["volume"].cast(pl.Float64).fill_null(0.0).to_numpy()
    cumulative = np.concatenate([[0.0], np.cumsum(volumes)])
    upper = np.searchsorted(ts, grid, side="right")
    lower = np.searchsorted(ts, grid - NS, side="right")
    return cumulative[upper] - cumulative[lower]


def _first_present(names: list[str], *candidates: str) -> str | None:
    return next((c for c in candidates if c in names), None)


def _instrument_rows(
    lake: Lake, spec: StrategySpec, day: date, grid: np.ndarray, tolerance_ns: int
) -> list[_InstrumentRow]:
    """The day's plain instruments that instrument legs trade, as-of joined to the grid
    like the options (one row per distinct dataset and symbol, shared by its legs).

    An instrument with no rows on the day gets an all-missing row: its legs then record
    ``missing_quote`` attempts instead of trading (never a silent skip)."""
    wanted: dict[tuple[str, str | None], list[int]] = {}
    for i, leg in enumerate(spec.legs):
        if leg.instrument is not None:
            key = (spec.instrument_dataset(leg), leg.instrument.symbol)
            wanted.setdefault(key, []).append(i)
    out: list[_InstrumentRow] = []
    for (dataset, symbol), legs in wanted.items():
        try:
            input_hash = partition_hash(lake, dataset, day)
        except DatasetNotFoundError as exc:
            names = ", ".join(spec.legs[i].name for i in legs)
            raise ConfigError(
                f"leg {names}: instrument dataset {dataset!r} is not in the lake; set the "
                f"leg's instrument.dataset to one that is ({exc})",
                dataset=dataset,
            ) from exc
        frame, chosen, expiry = _instrument_frame(lake, dataset, symbol, day, input_hash)
        ts = frame["ts"].dt.epoch("ns").to_numpy()
        idx, age = _asof_indices(ts, grid, tolerance_ns)
        # Quotes when the day has any (a bars dataset's bid/ask columns may be empty).
        quoted = [c for c in frame.columns if frame[c].null_count() < frame.height]
        bid_col = _first_present(quoted, "bid_price", "bid_price_0") or "price"
        ask_col = _first_present(quoted, "ask_price", "ask_price_0") or "price"
        bid, ask = _paise_on_grid(frame, bid_col, idx), _paise_on_grid(frame, ask_col, idx)
        last = _paise_on_grid(frame, "price", idx)
        volume = _volume_per_second(frame, ts, grid)
        out.append(
            _InstrumentRow(dataset, chosen, expiry, legs, bid, ask, age, last, volume, input_hash)
        )
    return out


def _instrument_frame(
    lake: Lake,
    dataset: str,
    symbol: str | None,
    day: date,
    input_hash: str | None,
) -> tuple[pl.DataFrame, str, date | None]:
    """The rows of one instrument on ``day`` in time order, its symbol and its expiry.

    Columns: ``ts`` (when the row is known), ``price`` and/or ``bid_price``/``ask_price``,
    ``volume`` when present. A bars dataset is read at each bar's close time ``ts_end``
    with its ``close`` as the price: a bar is not known before it closes.
    """
    if input_hash is None:  # no partition that day: an all-missing instrument
        empty = pl.DataFrame({"ts": pl.Series([], dtype=pl.Datetime("ns", "UTC"))})
        return empty, symbol or dataset, _future_expiry(symbol)
    scan = lake.scan(dataset, start=day, end=day)
    names = scan.collect_schema().names()
    symbol_col = _first_present(names, "instrument", "symbol")
    if "price" not in names and {"close", "ts_end"} <= set(names):
        scan = scan.drop("ts", "price", strict=False).rename({"ts_end": "ts", "close": "price"})
        names = scan.collect_schema().names()
    if not {"price", "bid_price", "bid_price_0"} & set(names):
        raise ConfigError(
            f"instrument dataset {dataset!r} has no price, bid/ask or bar close column "
            f"(columns: {', '.join(names)}); point the leg at a prices, quotes, L2 or bars "
            "dataset",
            dataset=dataset,
        )
    if symbol is None and symbol_col is not None:
        present = sorted(
            scan.select(pl.col(symbol_col).unique()).collect()[symbol_col].drop_nulls().to_list()
        )
        if len(present) == 1:
            symbol = present[0]
        elif present:
            symbol = _front_future(present, day)
            if symbol is None:
                listed = ", ".join(present[:10]) + (", ..." if len(present) > 10 else "")
                raise ConfigError(
                    f"instrument dataset {dataset!r} holds {len(present)} instruments on "
                    f"{day} ({listed}) and they are not NSE futures (e.g. BANKNIFTY24JANFUT) "
                    "to take the front month of: set the leg's instrument.symbol",
                    dataset=dataset,
                )
    if symbol is not None:
        if symbol_col is None:
            raise ConfigError(
                f"instrument dataset {dataset!r} has no instrument/symbol column to pick "
                f"{symbol!r} from; leave instrument.symbol out for a one-instrument dataset",
                dataset=dataset,
            )
        scan = scan.filter(pl.col(symbol_col) == symbol)
    columns = [
        c
        for c in ("ts", "price", "volume", "bid_price", "ask_price", "bid_price_0", "ask_price_0")
        if c in names
    ]
    frame = _in_time_order(scan.select(columns).collect())
    return frame, symbol or dataset, _future_expiry(symbol)


def _future_expiry(symbol: str | None) -> date | None:
    """The expiry of an NSE futures symbol (``BANKNIFTY24JANFUT``), else None."""
    if not symbol:
        return None
    try:
        return parse_future_symbol(symbol).expiry
    except Exception:  # not an NSE future: an instrument without an expiry
        return None


def _front_future(symbols: list[str], day: date) -> str | None:
    """The NSE future with the nearest expiry on or after ``day`` (None when the symbols
    are not all NSE futures or every one has expired)."""
    expiries = {s: _future_expiry(s) for s in symbols}
    if any(e is None for e in expiries.values()):
        return None
    live = sorted((e, s) for s, e in expiries.items() if e is not None and e >= day)
    return live[0][1] if live else None


def _option_rows(options: pl.LazyFrame, market_fields: bool) -> pl.DataFrame:
    """Read the filtered option rows: only the columns the engine uses, typed for NumPy.

    ``kind`` orders the option types as a sort by ``opt_type`` would (CE 0 < PE 1; any
    other type is ``OTHER_KIND`` and makes ``load_day`` sort explicitly).
    """
    opt_type = pl.col("opt_type")
    columns = [
        pl.col("ts").dt.epoch("ns"),
        pl.col("strike"),
        opt_type,
        pl.when(opt_type == "CE")
        .then(0)
        .when(opt_type == "PE")
        .then(1)
        .otherwise(OTHER_KIND)
        .cast(pl.Int64)
        .alias("kind"),
        pl.col("symbol"),
        pl.col("bid_price_0").cast(pl.Float64),
        pl.col("ask_price_0").cast(pl.Float64),
    ]
    if market_fields:
        columns += [pl.col("last_price").cast(pl.Float64), pl.col("volume").cast(pl.Float64)]
    return options.select(columns).collect()


def _parity_spot(
    strikes: np.ndarray,
    is_call: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    age: np.ndarray,
    max_age: int,
) -> np.ndarray:
    """Underlying from put-call parity, per second (0 where no strike has both quotes)."""
    calls = {int(k): i for i, k in enumerate(strikes) if is_call[i]}
    pairs = [
        (j, calls[int(k)], int(k))
        for j, k in enumerate(strikes)
        if not is_call[j] and int(k) in calls
    ]
    table = np.array(pairs, dtype=np.int64).reshape(-1, 3)
    return _parity_from_pairs(table[:, 0], table[:, 1], table[:, 2], bid, ask, age, max_age)


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
    rows = _sorted_rows(lake, dataset, day, ["ts", "price", "volume"])
    if rows.height == 0:
        return None
    ts = rows["ts"].dt.epoch("ns").to_numpy()
    idx, _ = _asof_indices(ts, grid, spec.fills.as_of_tolerance_seconds * NS)
    return grid, _paise_on_grid(rows, "price", idx), _volume_per_second(rows, ts, grid)
