"""Fake finished run directories, written by hand following docs/backtest-results.md."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from ticklake.backtest.spec import parse_spec, spec_hash

IST_OFFSET = dt.timedelta(hours=5, minutes=30)
LOT_SIZE = 15
SAMPLE_FILLS = 12

BASE_SPEC: dict[str, Any] = {
    "name": "atm_straddle",
    "description": "Sell the ATM straddle at 09:20, exit 15:20.",
    "universe": {
        "underlying": "BANKNIFTY",
        "options_dataset": "banknifty_options",
        "underlying_dataset": "banknifty_spot",
    },
    "time": {
        "start": "2024-01-01",
        "end": "2024-02-09",
        "entry_windows": ["09:20-09:25"],
        "exit_time": "15:20",
    },
    "legs": [
        {"name": "ce", "opt_type": "CE", "side": "sell"},
        {"name": "pe", "opt_type": "PE", "side": "sell"},
    ],
}

TRADES_SCHEMA = {
    "date": pl.Date,
    "fill_index": pl.Int64,
    "ts": pl.Datetime("ns", "UTC"),
    "leg": pl.String,
    "position_id": pl.Int64,
    "symbol": pl.String,
    "expiry": pl.Date,
    "strike": pl.Float64,
    "opt_type": pl.String,
    "side": pl.String,
    "lots": pl.Int64,
    "quantity": pl.Int64,
    "price_paise": pl.Int64,
    "bid_paise": pl.Int64,
    "ask_paise": pl.Int64,
    "quote_age_seconds": pl.Int64,
    "spot_paise": pl.Int64,
    "underlying_source": pl.String,
    "reason": pl.String,
    "cash_flow_paise": pl.Int64,
    "costs_paise": pl.Int64,
    "realized_pnl_paise": pl.Int64,
}

DAILY_SCHEMA = {
    "date": pl.Date,
    "status": pl.String,
    "skip_reason": pl.String,
    "fills": pl.Int64,
    "round_trips": pl.Int64,
    "gross_pnl_paise": pl.Int64,
    "costs_paise": pl.Int64,
    "net_pnl_paise": pl.Int64,
    "first_entry_ts": pl.Datetime("ns", "UTC"),
    "last_exit_ts": pl.Datetime("ns", "UTC"),
    "max_drawdown_paise": pl.Int64,
    "exposure_seconds": pl.Int64,
    "underlying_source": pl.String,
    "expiry": pl.Date,
}

SKIPPED = {
    dt.date(2024, 1, 9): "no option snapshots for the day",
    dt.date(2024, 1, 22): "exchange holiday",
    dt.date(2024, 1, 26): "exchange holiday",
    dt.date(2024, 2, 2): "no option snapshots for the day",
}
NO_TRADE = {
    dt.date(2024, 1, 16): "no quote within max_quote_age_seconds in the entry window",
    dt.date(2024, 2, 6): "no quote within max_quote_age_seconds in the entry window",
}
# Minutes after 09:20 IST of each day's first entry: spreads entries over several buckets.
ENTRY_OFFSETS_MINUTES = (0, 3, 12, 17, 29, 41, 55, 70)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(base))
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _utc(day: dt.date, hour: int, minute: int, second: int = 0) -> dt.datetime:
    local = dt.datetime.combine(day, dt.time(hour, minute, second))
    return (local - IST_OFFSET).replace(tzinfo=dt.UTC)


def _next_thursday(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=(3 - day.weekday()) % 7)


def build_fake_run(
    root: Path, run_id: str, *, seed: int, spec_overrides: dict[str, Any] | None = None
) -> Path:
    """Write a complete run directory: 30 weekdays, 4 skipped, 2 without a trade."""
    rng = random.Random(seed)
    spec = parse_spec(_merge(BASE_SPEC, spec_overrides or {})).model_dump(mode="json")
    days = []
    day = dt.date(2024, 1, 1)
    while len(days) < 30:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)

    trades: list[dict[str, Any]] = []
    daily: list[dict[str, Any]] = []
    for day in days:
        expiry = _next_thursday(day)
        if day in SKIPPED or day in NO_TRADE:
            skipped = day in SKIPPED
            daily.append(
                {
                    "date": day,
                    "status": "skipped" if skipped else "no_trade",
                    "skip_reason": SKIPPED.get(day) or NO_TRADE[day],
                    "fills": 0,
                    "round_trips": 0,
                    "gross_pnl_paise": 0,
                    "costs_paise": 0,
                    "net_pnl_paise": 0,
                    "first_entry_ts": None,
                    "last_exit_ts": None,
                    "max_drawdown_paise": 0,
                    "exposure_seconds": 0,
                    "underlying_source": None if skipped else "spot",
                    "expiry": None if skipped else expiry,
                }
            )
            continue
        spot = rng.randrange(4_500_000, 4_900_000)  # ₹45,000-49,000 in paise
        strike = round(spot / 10_000) * 100.0
        entries = rng.choice((1, 1, 2))
        first_offset = rng.choice(ENTRY_OFFSETS_MINUTES)
        day_fills: list[dict[str, Any]] = []
        exposure = 0
        position_id = 0
        for entry in range(entries):
            entry_minute = 20 + first_offset + entry * 90
            entry_ts = _utc(day, 9 + entry_minute // 60, entry_minute % 60)
            hold_seconds = rng.randrange(1_800, 15_000)
            exit_ts = entry_ts + dt.timedelta(seconds=hold_seconds)
            exposure += hold_seconds
            for leg, opt_type in (("ce", "CE"), ("pe", "PE")):
                entry_price = rng.randrange(15_000, 40_000)
                exit_price = max(5, entry_price + rng.randrange(-20_000, 16_000))
                reason = rng.choice(("exit_time", "leg_stop", "leg_target"))
                lots = rng.choice((1, 2))
                quantity = lots * LOT_SIZE
                entry_cash = quantity * entry_price  # a sell: cash comes in
                exit_cash = -quantity * exit_price
                for side, ts, price, cash, why, realized in (
                    ("sell", entry_ts, entry_price, entry_cash, "entry", 0),
                    ("buy", exit_ts, exit_price, exit_cash, reason, entry_cash + exit_cash),
                ):
                    day_fills.append(
                        {
                            "date": day,
                            "ts": ts,
                            "leg": leg,
                            "position_id": position_id,
                            "symbol": f"BANKNIFTY{expiry:%y%b}{int(strike)}{opt_type}".upper(),
                            "expiry": expiry,
                            "strike": strike,
                            "opt_type": opt_type,
                            "side": side,
                            "lots": lots,
                            "quantity": quantity,
                            "price_paise": price,
                            "bid_paise": price - 5 if side == "sell" else price - 10,
                            "ask_paise": price + 10 if side == "sell" else price,
                            "quote_age_seconds": rng.randrange(0, 4),
                            "spot_paise": spot + rng.randrange(-20_000, 20_000),
                            "underlying_source": "spot",
                            "reason": why,
                            "cash_flow_paise": cash,
                            "costs_paise": rng.randrange(2_000, 9_000),
                            "realized_pnl_paise": realized,
                        }
                    )
                position_id += 1
        day_fills.sort(key=lambda f: (f["ts"], f["position_id"], f["side"] == "buy"))
        for index, fill in enumerate(day_fills):
            fill["fill_index"] = index
        trades += day_fills
        gross = sum(f["cash_flow_paise"] for f in day_fills)
        costs = sum(f["costs_paise"] for f in day_fills)
        daily.append(
            {
                "date": day,
                "status": "traded",
                "skip_reason": None,
                "fills": len(day_fills),
                "round_trips": position_id,
                "gross_pnl_paise": gross,
                "costs_paise": costs,
                "net_pnl_paise": gross - costs,
                "first_entry_ts": min(f["ts"] for f in day_fills),
                "last_exit_ts": max(f["ts"] for f in day_fills),
                "max_drawdown_paise": rng.randrange(0, 300_000),
                "exposure_seconds": exposure,
                "underlying_source": "spot",
                "expiry": expiry,
            }
        )

    run_dir = root / "runs" / run_id
    run_dir.mkdir(parents=True)
    trades_frame = pl.DataFrame(trades, schema=TRADES_SCHEMA).sort("date", "ts", "fill_index")
    trades_frame.write_parquet(run_dir / "trades.parquet")
    pl.DataFrame(daily, schema=DAILY_SCHEMA).write_parquet(run_dir / "daily.parquet")
    trades_frame.head(SAMPLE_FILLS).with_columns(
        pl.lit("atm").alias("selector"),
        (pl.col("spot_paise") // 10_000 * 100).cast(pl.Float64).alias("atm_strike"),
    ).write_parquet(run_dir / "samples.parquet")
    (run_dir / "spec.json").write_text(json.dumps(spec, indent=2))
    run = {
        "run_id": run_id,
        "name": spec["name"],
        "spec_hash": spec_hash(parse_spec(spec)),
        "status": "complete",
        "created_at": "2024-03-01T10:00:00+00:00",
        "finished_at": "2024-03-01T10:02:31+00:00",
        "ticklake_version": "0.1.0",
        "git_sha": "abc1234",
        "executor": "process",
        "workers": 2,
        "machine": {"hostname": "test", "cpus": 2, "python": "3.11"},
        "lake": str(root),
        "data": {"options": {}, "underlying": {}},
        "days": {
            str(row["date"]): {
                "status": "skipped" if row["status"] == "skipped" else "done",
                "reason": row["skip_reason"],
                "fills": row["fills"],
                "net_pnl_paise": row["net_pnl_paise"],
            }
            for row in daily
        },
        "totals": {"net_pnl_paise": sum(row["net_pnl_paise"] for row in daily)},
    }
    (run_dir / "run.json").write_text(json.dumps(run, indent=2))
    return run_dir


@pytest.fixture
def fake_run_factory(tmp_path: Path) -> Callable[..., Path]:
    """Build fake run directories under one temporary lake: ``factory(run_id, seed=...)``."""

    def factory(
        run_id: str, *, seed: int = 7, spec_overrides: dict[str, Any] | None = None
    ) -> Path:
        return build_fake_run(tmp_path / "lake", run_id, seed=seed, spec_overrides=spec_overrides)

    return factory


@pytest.fixture
def fake_run_dir(fake_run_factory: Callable[..., Path]) -> Path:
    """One finished fake run: 30 weekdays of January-February 2024, seeded."""
    return fake_run_factory("20240301-atm_straddle-0001", seed=7)
