"""Generate a realistic 1-second NSE option chain in the users' 52-column vendor format.

No public 1-second Indian option depth data exists, so demos, tests and benchmarks use
this generator. It writes exactly what the vendor writes:

- ``OUT/options/YYYY-MM-DD/<lower-case symbol>.parquet``, one file per contract per
  day (``banknifty24jan48000ce.parquet`` monthly, ``banknifty2411048000ce.parquet``
  weekly) with the 52 columns of :data:`VENDOR_COLUMNS`, in that order, types
  :data:`VENDOR_SCHEMA`;
- ``OUT/spot/YYYY-MM-DD.csv``: the underlying on the same grid, no header,
  ``YYYY-MM-DD HH:MM:SS,value`` in IST (the NIFTY 50 sample's format).

Column types (``VENDOR_SCHEMA``): the three times are naive ``timestamp[ns]`` holding IST
wall-clock time, as the vendor writes them: ``ts`` is the 1-second snapshot time,
``timestamp`` the capture time (``ts`` plus 5–950 ms of jitter), ``lastTradeTime`` the
last trade's snapshot second (null before the contract's first trade of the day).
Prices are ``float64`` on the 0.05 grid (0 = none: no trade yet, no bid, no level);
quantities, order counts, volume and OI are ``int64``; ``symbol``/``opt_type`` strings;
``strike`` ``float64``; ``year``/``month`` ``int64`` of the **expiry**. ``close`` is the
previous session's close and ``changeper`` the change from it in percent.

Model: the underlying follows :mod:`ticklake.generate.underlying` (GBM with a U-shaped
intraday volatility, jumps and overnight gaps, or a real series rescaled); option
values are Black–Scholes with a skewed smile and a short-expiry term premium
(:mod:`ticklake.generate.pricing`); the book, trades, OI and staleness follow
:mod:`ticklake.generate.book`. Illiquid far strikes have stretches with no rows.

The output is deterministic: the same arguments give byte-identical files. Each
contract's random stream is seeded by ``(seed, date, symbol)`` so adding strikes does
not change the others.

Examples:
    >>> import tempfile
    >>> summary = generate_options(  # doctest: +SKIP
    ...     "BANKNIFTY", start=date(2024, 1, 8), days=1, out=Path(tempfile.mkdtemp()),
    ...     strikes_each_side=2, seconds_step=60)
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ticklake.errors import ConfigError
from ticklake.generate.book import ContractSpec, simulate_book
from ticklake.generate.pricing import SECONDS_PER_YEAR
from ticklake.generate.underlying import (
    SESSION_OPEN_SECOND,
    SESSION_SECONDS,
    PathConfig,
    list_spot_files,
    load_real_session,
    overnight_open,
    round_to_tick,
    simulate_session,
)
from ticklake.market.calendar import expiries as list_expiries
from ticklake.market.calendar import next_trading_day, previous_trading_day
from ticklake.market.nse_symbols import OptionContract, OptionType, file_name, format_symbol
from ticklake.market.rules import market_rules

_LEVEL_FIELDS = tuple(
    f"{side}{what}{i}" for side in ("b", "s") for i in range(5) for what in ("q", "p", "o")
)

#: The vendor's 52 columns, in the vendor's order.
VENDOR_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "price",
    "qty",
    "avgPrice",
    "volume",
    "bQty",
    "sQty",
    "open",
    "high",
    "low",
    "close",
    "changeper",
    "lastTradeTime",
    "oi",
    "oiHigh",
    "oiLow",
    *_LEVEL_FIELDS,
    "ts",
    "symbol",
    "opt_type",
    "strike",
    "year",
    "month",
)

_NAIVE_TIME = pa.timestamp("ns")
_FLOAT_FIELDS = {"price", "avgPrice", "open", "high", "low", "close", "changeper", "strike"}
_TIME_FIELDS = {"timestamp", "lastTradeTime", "ts"}
_STRING_FIELDS = {"symbol", "opt_type"}

#: Arrow types of the vendor columns (see the module docstring).
VENDOR_SCHEMA = pa.schema(
    [
        pa.field(
            name,
            _NAIVE_TIME
            if name in _TIME_FIELDS
            else pa.string()
            if name in _STRING_FIELDS
            else pa.float64()
            if name in _FLOAT_FIELDS or (name[:2] in ("bp", "sp") and name[2:].isdigit())
            else pa.int64(),
        )
        for name in VENDOR_COLUMNS
    ]
)

#: Default starting level and annual volatility of each underlying.
_DEFAULT_LEVELS = {"BANKNIFTY": (48_000.0, 0.16), "NIFTY": (22_000.0, 0.13)}
_FALLBACK_LEVEL = (20_000.0, 0.15)

ProgressCallback = Callable[[int, int], None]
_OPTION_TYPES: tuple[OptionType, ...] = ("CE", "PE")


@dataclass(frozen=True)
class GenerateSummary:
    """What one :func:`generate_options` call wrote.

    ``seconds`` counts grid seconds simulated (days × grid points); ``elapsed_seconds``
    is the wall-clock time the call took.
    """

    files: int
    rows: int
    days: int
    seconds: int
    elapsed_seconds: float
    out: Path
    dates: tuple[date, ...]


def generate_options(
    underlying: str = "BANKNIFTY",
    start: date | None = None,
    days: int = 1,
    out: Path | str = Path("generated"),
    seed: int = 0,
    strikes_each_side: int = 10,
    expiries: Sequence[str] = ("weekly", "monthly"),
    spot_path: Path | str | None = None,
    seconds_step: int = 1,
    progress: ProgressCallback | None = None,
    start_price: float | None = None,
    rules_path: Path | str | None = None,
) -> GenerateSummary:
    """Write ``days`` NSE trading days of option-chain snapshots from ``start`` on.

    ``start`` is rolled forward to a trading day. Each day covers the nearest expiry
    of each kind in ``expiries`` and the strikes the underlying reaches that day plus
    ``strikes_each_side`` strike steps on each side. ``spot_path`` (a NIFTY 50
    1-second file or folder) replaces the simulated underlying with a real one,
    rescaled; ``progress(done_days, total_days)`` is called after every day.
    """
    began = time.perf_counter()
    underlying = underlying.upper()
    if start is None:
        raise ConfigError("generate_options needs a start date, e.g. start=date(2024, 1, 8)")
    if days < 1:
        raise ConfigError(f"days must be at least 1, got {days}", days=days)
    if strikes_each_side < 0:
        raise ConfigError(f"strikes_each_side must be >= 0, got {strikes_each_side}")
    if not 1 <= seconds_step <= SESSION_SECONDS:
        raise ConfigError(f"seconds_step must be 1..{SESSION_SECONDS}, got {seconds_step}")
    unknown = [k for k in expiries if k not in ("weekly", "monthly")]
    if unknown or not expiries:
        raise ConfigError(f"expiries must name 'weekly' and/or 'monthly', got {list(expiries)}")
    out = Path(out)
    default_level, annual_volatility = _DEFAULT_LEVELS.get(underlying, _FALLBACK_LEVEL)
    level = float(start_price) if start_price is not None else default_level
    path_config = PathConfig(annual_volatility=annual_volatility)
    spot_files = list_spot_files(Path(spot_path)) if spot_path is not None else []
    seconds = np.arange(0, SESSION_SECONDS, seconds_step, dtype=np.int64)

    day = start if _is_trading(start) else next_trading_day(start)
    previous_close = level
    files = rows = 0
    dates: list[date] = []
    for index in range(days):
        day_rng = np.random.default_rng([seed, day.toordinal(), 0])
        open_price = level if index == 0 else overnight_open(day_rng, previous_close, path_config)
        if spot_files:
            _, real = load_real_session(spot_files[index % len(spot_files)], seconds)
            spot = round_to_tick(real * (open_price / real[0]))
        else:
            spot = simulate_session(day_rng, open_price, path_config, seconds)
        day_files, day_rows = _write_day(
            underlying=underlying,
            day=day,
            spot=spot,
            seconds=seconds,
            previous_close=previous_close if index else float(spot[0]),
            base_volatility=annual_volatility * float(np.exp(day_rng.normal(0.0, 0.08))),
            seed=seed,
            strikes_each_side=strikes_each_side,
            kinds=tuple(expiries),
            out=out,
            rules_path=rules_path,
        )
        files += day_files
        rows += day_rows
        dates.append(day)
        previous_close = float(spot[-1])
        if progress is not None:
            progress(index + 1, days)
        day = next_trading_day(day)
    return GenerateSummary(
        files=files,
        rows=rows,
        days=days,
        seconds=days * int(seconds.size),
        elapsed_seconds=time.perf_counter() - began,
        out=out,
        dates=tuple(dates),
    )


def day_contracts(
    underlying: str,
    day: date,
    spot_low: float,
    spot_high: float,
    strikes_each_side: int,
    kinds: Sequence[str] = ("weekly", "monthly"),
    rules_path: Path | str | None = None,
) -> list[OptionContract]:
    """List the contracts generated on ``day`` for a spot range (calls and puts)."""
    rules = market_rules(underlying, day, rules_path)
    step = rules.strike_step
    low = (np.floor(spot_low / step) - strikes_each_side) * step
    high = (np.ceil(spot_high / step) + strikes_each_side) * step
    strikes = [float(k) for k in np.arange(low, high + step / 2, step) if k > 0]
    monthly = list_expiries(underlying, day, day + timedelta(days=70), "monthly", rules_path)
    chosen: list[date] = []
    for kind in kinds:
        if kind == "monthly":
            candidates = monthly
        else:
            candidates = list_expiries(
                underlying, day, day + timedelta(days=21), "weekly", rules_path
            )
        if candidates and candidates[0] not in chosen:
            chosen.append(candidates[0])
    monthly_set = set(monthly)
    return [
        OptionContract(underlying, expiry, strike, opt_type, expiry not in monthly_set)
        for expiry in sorted(chosen)
        for opt_type in _OPTION_TYPES
        for strike in strikes
    ]


def _is_trading(day: date) -> bool:
    return previous_trading_day(day) == day


def _write_day(
    *,
    underlying: str,
    day: date,
    spot: np.ndarray,
    seconds: np.ndarray,
    previous_close: float,
    base_volatility: float,
    seed: int,
    strikes_each_side: int,
    kinds: tuple[str, ...],
    out: Path,
    rules_path: Path | str | None,
) -> tuple[int, int]:
    rules = market_rules(underlying, day, rules_path)
    contracts = day_contracts(
        underlying,
        day,
        float(spot.min()),
        float(spot.max()),
        strikes_each_side,
        kinds,
        rules_path,
    )
    midnight = np.datetime64(day.isoformat(), "ns")
    ts = midnight + (SESSION_OPEN_SECOND + seconds).astype("timedelta64[s]").astype(
        "timedelta64[ns]"
    )
    _write_spot(out / "spot" / f"{day.isoformat()}.csv", ts, spot)
    day_dir = out / "options" / day.isoformat()
    day_dir.mkdir(parents=True, exist_ok=True)
    now_seconds = SESSION_OPEN_SECOND + seconds.astype(np.float64)
    previous_session = previous_trading_day(day - timedelta(days=1))
    rows = 0
    for contract in contracts:
        symbol = format_symbol(contract)
        rng = np.random.default_rng([seed, day.toordinal(), zlib.crc32(symbol.encode())])
        expiry_close = (contract.expiry - day).days * 86_400.0 + 15.5 * 3600.0
        years = (expiry_close - now_seconds) / SECONDS_PER_YEAR
        previous_years = ((contract.expiry - previous_session).days * 86_400.0) / SECONDS_PER_YEAR
        spec = ContractSpec(
            strike=contract.strike,
            opt_type=contract.opt_type,
            lot_size=rules.lot_size,
            years_to_expiry=years,
            previous_close_years=previous_years,
            monthly=not contract.weekly,
        )
        book = simulate_book(rng, spec, spot, seconds, base_volatility, previous_close)
        table = _vendor_table(book, ts, rng, symbol, contract)
        pq.write_table(table, day_dir / file_name(contract))
        rows += table.num_rows
    return len(contracts), rows


def _vendor_table(
    book: dict[str, np.ndarray],
    ts: np.ndarray,
    rng: np.random.Generator,
    symbol: str,
    contract: OptionContract,
) -> pa.Table:
    present = book["present"]
    n_rows = int(present.sum())
    # Capture jitter with microsecond resolution, like the vendor's clock.
    jitter_ns = (rng.integers(5_000, 950_000, size=ts.size) * 1_000).astype("timedelta64[ns]")
    last_index = book["last_trade_index"]
    last_trade_time = ts[np.maximum(last_index, 0)]
    arrays: dict[str, pa.Array] = {
        "timestamp": pa.array((ts + jitter_ns)[present], _NAIVE_TIME),
        "lastTradeTime": pa.array(
            last_trade_time[present], _NAIVE_TIME, mask=(last_index < 0)[present]
        ),
        "ts": pa.array(ts[present], _NAIVE_TIME),
        "symbol": pa.array([symbol] * n_rows, pa.string()),
        "opt_type": pa.array([contract.opt_type] * n_rows, pa.string()),
        "strike": pa.array(np.full(n_rows, contract.strike), pa.float64()),
        "year": pa.array(np.full(n_rows, contract.expiry.year, np.int64), pa.int64()),
        "month": pa.array(np.full(n_rows, contract.expiry.month, np.int64), pa.int64()),
    }
    for field in VENDOR_SCHEMA:
        if field.name not in arrays:
            arrays[field.name] = pa.array(book[field.name][present], field.type)
    return pa.Table.from_arrays([arrays[name] for name in VENDOR_COLUMNS], schema=VENDOR_SCHEMA)


def _write_spot(path: Path, ts: np.ndarray, spot: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    stamps = np.datetime_as_string(ts.astype("datetime64[s]"), unit="s")
    lines = [
        f"{stamp.replace('T', ' ')},{value:.2f}" for stamp, value in zip(stamps, spot, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def session_timestamps(day: date, seconds_step: int = 1) -> list[datetime]:
    """Return the naive IST snapshot times of one generated session."""
    start = datetime.combine(day, datetime.min.time()) + timedelta(seconds=SESSION_OPEN_SECOND)
    return [start + timedelta(seconds=int(s)) for s in range(0, SESSION_SECONDS, seconds_step)]
