"""Lakes for the backtest engine tests: hand-built tiny chains and a small generated lake.

Imported explicitly by the engine test modules (``from _engine_fixtures import ...``:
pytest puts each test folder on ``sys.path``; the integration tests add this folder).

Hand-built chains use a 15-minute session (09:15-09:30 IST) so every expected number
can be worked out by hand; the generated lake is three real-length days of a BANKNIFTY
weekly chain, generated and ingested once per test session.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

IST = timedelta(hours=5, minutes=30)
HAND_DAY = date(2024, 1, 8)  # a Monday; nearest weekly BANKNIFTY expiry 2024-01-10
HAND_EXPIRY = date(2024, 1, 10)
SESSION_START = time(9, 15)
SESSION_SECONDS = 15 * 60  # 09:15:00-09:29:59
LOT = 15  # BANKNIFTY lot size in January 2024

GENERATED_DAYS = (date(2024, 1, 8), date(2024, 1, 9), date(2024, 1, 10))
OPTIONS = "banknifty_options"
SPOT = "banknifty_spot"


def ist(clock: str, day: date = HAND_DAY) -> datetime:
    """UTC datetime of an IST wall-clock time ``HH:MM:SS`` on ``day``."""
    hour, minute, second = (int(x) for x in clock.split(":"))
    local = datetime.combine(day, time(hour, minute, second))
    return (local - IST).replace(tzinfo=UTC)


def second_of(clock: str) -> int:
    """Grid index of ``HH:MM:SS`` in the hand-built session."""
    hour, minute, second = (int(x) for x in clock.split(":"))
    return (hour * 3600 + minute * 60 + second) - (9 * 3600 + 15 * 60)


# --------------------------------------------------------------------- hand chains
@dataclass
class HandChain:
    """Per-second quotes (rupees; NaN = no row that second) of a few contracts."""

    day: date = HAND_DAY
    expiry: date = HAND_EXPIRY
    quotes: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    spot: np.ndarray = field(default_factory=lambda: np.full(SESSION_SECONDS, np.nan))

    def contract(self, strike: int, opt_type: str, bid: float, ask: float) -> None:
        """Add a contract quoted ``bid``/``ask`` at every second of the session."""
        self.quotes[(strike, opt_type)] = (
            np.full(SESSION_SECONDS, float(bid)),
            np.full(SESSION_SECONDS, float(ask)),
        )

    def set_quote(
        self, strike: int, opt_type: str, start: str, bid: float, ask: float, end: str | None = None
    ) -> None:
        """From ``start`` (to ``end`` exclusive, else to the session end) quote bid/ask."""
        lo = second_of(start)
        hi = second_of(end) if end else SESSION_SECONDS
        bids, asks = self.quotes[(strike, opt_type)]
        bids[lo:hi] = bid
        asks[lo:hi] = ask

    def drop_rows(self, strike: int, opt_type: str, start: str, end: str | None = None) -> None:
        """No snapshot rows for the contract from ``start`` to ``end`` (exclusive)."""
        self.set_quote(strike, opt_type, start, np.nan, np.nan, end)

    def set_spot(self, start: str, value: float, end: str | None = None) -> None:
        lo = second_of(start)
        hi = second_of(end) if end else SESSION_SECONDS
        self.spot[lo:hi] = value

    def option_frame(self) -> pl.DataFrame:
        base = ist("09:15:00", self.day)
        rows: dict[str, list[Any]] = {
            k: []
            for k in (
                "ts",
                "symbol",
                "underlying",
                "expiry",
                "strike",
                "opt_type",
                "bid_price_0",
                "ask_price_0",
            )
        }
        for (strike, opt_type), (bids, asks) in sorted(self.quotes.items()):
            symbol = f"BANKNIFTY{self.expiry:%y}1{self.expiry:%d}{strike}{opt_type}"
            for second in np.flatnonzero(~np.isnan(bids)):
                rows["ts"].append(base + timedelta(seconds=int(second)))
                rows["symbol"].append(symbol)
                rows["underlying"].append("BANKNIFTY")
                rows["expiry"].append(self.expiry)
                rows["strike"].append(float(strike))
                rows["opt_type"].append(opt_type)
                rows["bid_price_0"].append(float(bids[second]))
                rows["ask_price_0"].append(float(asks[second]))
        return pl.DataFrame(rows).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))

    def spot_frame(self) -> pl.DataFrame:
        base = ist("09:15:00", self.day)
        seconds = np.flatnonzero(~np.isnan(self.spot))
        return pl.DataFrame(
            {
                "ts": [base + timedelta(seconds=int(s)) for s in seconds],
                "instrument": ["BANKNIFTY"] * len(seconds),
                "price": [float(self.spot[s]) for s in seconds],
            }
        ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))


def write_hand_lake(root: Path, chain: HandChain) -> Any:
    """A new lake holding the chain (``banknifty_options``) and its spot (``banknifty_spot``)."""
    from ticklake.lake import init_lake

    lake = init_lake(root)
    lake.write(OPTIONS, chain.option_frame(), schema="option_snapshots", timezone="Asia/Kolkata")
    if not np.isnan(chain.spot).all():
        lake.write(SPOT, chain.spot_frame(), schema="prices", timezone="Asia/Kolkata")
    return lake


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(base))
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


HAND_SPEC: dict[str, Any] = {
    "name": "hand",
    "universe": {"underlying": "BANKNIFTY", "options_dataset": OPTIONS, "underlying_dataset": SPOT},
    "time": {
        "start": HAND_DAY.isoformat(),
        "end": HAND_DAY.isoformat(),
        "entry_windows": ["09:16-09:20"],
        "exit_time": "09:25",
        "session_start": "09:15",
        "session_end": "09:30",
    },
    "legs": [
        {"name": "ce", "opt_type": "CE", "side": "sell"},
        {"name": "pe", "opt_type": "PE", "side": "sell"},
    ],
}


def hand_spec(**overrides: Any) -> Any:
    from ticklake.backtest.spec import parse_spec

    return parse_spec(merge(HAND_SPEC, overrides))


# --------------------------------------------------------------------- hand costs
def _half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def hand_costs_paise(buying: bool, premium_paise: int) -> int:
    """Costs of one option order under the NSE F&O rates of 2023-04-01..2024-09-30.

    Brokerage ₹20; STT 0.0625 % of premium on sells; exchange 0.053 %; SEBI ₹10/crore;
    stamp duty 0.003 % on buys; GST 18 % on brokerage + exchange + SEBI.
    """
    return hand_order_costs_paise(
        buying, premium_paise, stt="0.000625", exchange="0.00053", stamp="0.00003"
    )


def hand_order_costs_paise(
    buying: bool, value_paise: int, *, stt: str, exchange: str, stamp: str
) -> int:
    """One order's costs by hand: brokerage ₹20, STT (``stt`` × value, sells), exchange
    (``exchange`` × value), SEBI ₹10/crore, stamp duty (``stamp`` × value, buys), GST 18 %
    on brokerage + exchange + SEBI. Each component is rounded half-up to the paisa, then
    summed."""
    value = Decimal(value_paise)
    brokerage = 2000
    stt_paise = 0 if buying else _half_up(value * Decimal(stt))
    exchange_paise = _half_up(value * Decimal(exchange))
    sebi = _half_up(value * Decimal("0.000001"))
    stamp_paise = _half_up(value * Decimal(stamp)) if buying else 0
    gst = _half_up(Decimal(brokerage + exchange_paise + sebi) * Decimal("0.18"))
    return brokerage + stt_paise + exchange_paise + sebi + stamp_paise + gst


# --------------------------------------------------------------------- generated lake
def _build_generated(target: Path) -> None:
    from ticklake.generate import generate_options
    from ticklake.ingest.pipeline import ingest_files
    from ticklake.ingest.readers.base import ReaderOptions
    from ticklake.lake import init_lake

    work = target.with_name(target.name + ".building")
    shutil.rmtree(work, ignore_errors=True)
    out = work / "out"
    # 2-second snapshots keep the lake small; quotes are then 0-1 s old on the 1 s grid.
    generate_options(
        "BANKNIFTY",
        start=GENERATED_DAYS[0],
        days=len(GENERATED_DAYS),
        out=out,
        seed=3,
        strikes_each_side=2,
        expiries=("weekly",),
        seconds_step=2,
    )
    lake = init_lake(work / "lake")
    ingest_files(lake, "nse_options", [out / "options"], OPTIONS)
    ingest_files(
        lake, "nse_index", [out / "spot"], SPOT, options=ReaderOptions(instrument="BANKNIFTY")
    )
    shutil.rmtree(out)
    (work / "lake").rename(target)
    shutil.rmtree(work, ignore_errors=True)


def generated_lake_path(base: Path) -> Path:
    """Build (once per session, also across modules and xdist workers) the generated lake."""
    target = base / "engine_generated_lake"
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "engine_generated_lake.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "ticklake.toml").is_file():
            _build_generated(target)
    return target


@pytest.fixture(scope="session")
def generated_lake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine 3-day generated lake; copy it (``copy_lake``) before writing runs into it."""
    return generated_lake_path(tmp_path_factory.getbasetemp().parent / "ticklake-engine")


def copy_lake(source: Path, target: Path) -> Any:
    """A private copy of a lake (runs and the day cache of the copy start empty)."""
    from ticklake.lake import open_lake

    shutil.copytree(source, target, ignore=shutil.ignore_patterns("runs", "cache"))
    return open_lake(target)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
