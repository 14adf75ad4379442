"""One day of a backtest: load → kernel → fills with costs and exact P&L.

:func:`run_day` is a pure function of (spec, the day's input partitions): the same
inputs give the same frames, byte for byte, in any process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from ticklake.backtest import kernel as k
from ticklake.backtest.condition_runtime import (
    DayMarket,
    ExitArrays,
    condition_mask,
    evaluate_day_filter,
    exit_arrays,
    exit_from_second,
    leg_selector,
)
from ticklake.backtest.conditions import SpecPlans, compile_spec_conditions
from ticklake.backtest.costs import load_cost_table, order_costs_paise
from ticklake.backtest.data import DayData, DaySkip, load_day
from ticklake.backtest.grid import entry_mask, grid_index_of
from ticklake.backtest.spec import LegSpec, StrategySpec, parse_hhmm
from ticklake.errors import ExecutionError
from ticklake.lake import Lake

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Revision of the engine's trading rules, part of every day-cache key: a day computed
#: under older rules is never served to a run under newer ones. 2: one-sided quotes (a
#: buy needs the ask, a sell the bid) and marked end-of-day closes.
ENGINE_REVISION = 2

TRADE_SCHEMA = pl.Schema(
    {
        "date": pl.Date(),
        "fill_index": pl.Int64(),
        "ts": pl.Datetime("ns", "UTC"),
        "leg": pl.String(),
        "position_id": pl.Int64(),
        "symbol": pl.String(),
        "expiry": pl.Date(),
        "strike": pl.Float64(),
        "opt_type": pl.String(),
        "side": pl.String(),
        "lots": pl.Int64(),
        "quantity": pl.Int64(),
        "price_paise": pl.Int64(),
        "bid_paise": pl.Int64(),
        "ask_paise": pl.Int64(),
        "quote_age_seconds": pl.Int64(),
        "spot_paise": pl.Int64(),
        "underlying_source": pl.String(),
        "reason": pl.String(),
        "filled": pl.Boolean(),
        "cash_flow_paise": pl.Int64(),
        "costs_paise": pl.Int64(),
        "realized_pnl_paise": pl.Int64(),
    }
)

ATTEMPT_SCHEMA = pl.Schema(
    {
        "date": pl.Date(),
        "ts": pl.Datetime("ns", "UTC"),
        "leg": pl.String(),
        "reason": pl.String(),
    }
)
PNL_SCHEMA = pl.Schema(
    {
        "date": pl.Date(),
        "ts": pl.Datetime("ns", "UTC"),
        "pnl_paise": pl.Int64(),
        "in_position": pl.Boolean(),
    }
)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _is_ctrl_c(exc: BaseException) -> bool:
    """Is ``exc`` a KeyboardInterrupt, or an error raised because of one?"""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def ctrl_c_in_kernels(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Let a Ctrl+C that lands inside a compiled (Numba) function stop the day as Ctrl+C.

    Numba runs the signal handler while it converts the function's results back to Python
    objects, and CPython then reports ``SystemError: CPUDispatcher(...) returned a result
    with an exception set`` with the KeyboardInterrupt in its cause/context chain; this
    re-raises it as the KeyboardInterrupt it is (executors turn that into
    ``InterruptedRunError``, the ledger into ``interrupted``). Any other error is unchanged.
    """

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except SystemError as exc:
            if _is_ctrl_c(exc):
                raise KeyboardInterrupt from None
            raise

    return wrapper


@dataclass
class DayOutcome:
    day: date
    trades: pl.DataFrame
    attempts: pl.DataFrame
    summary: dict[str, Any]
    pnl_path: np.ndarray | None = None
    pnl_ts_ns: np.ndarray | None = None
    in_position: np.ndarray | None = None

    def pnl_frame(self) -> pl.DataFrame:
        """The day's per-second P&L path (empty when not kept or the day was skipped).

        ``pnl_paise`` is the day's gross P&L at the end of each second: realized cash
        flows plus open legs marked at their closing price, before costs (so the last
        value of a traded day is ``gross_pnl_paise``).
        """
        if self.pnl_path is None or self.pnl_ts_ns is None or self.in_position is None:
            return pl.DataFrame(schema=PNL_SCHEMA)
        return pl.DataFrame(
            {
                "date": pl.Series([self.day] * len(self.pnl_path), dtype=pl.Date),
                "ts": pl.Series(self.pnl_ts_ns).cast(pl.Datetime("ns", "UTC")),
                "pnl_paise": pl.Series(self.pnl_path, dtype=pl.Int64),
                "in_position": pl.Series(self.in_position, dtype=pl.Boolean),
            },
            schema=PNL_SCHEMA,
        )


def _thresholds(spec: StrategySpec) -> np.ndarray:
    out = np.zeros((5, 2), dtype=np.float64)
    exits = spec.exits
    for i, th in enumerate(
        (exits.leg_stop_loss, exits.leg_target, exits.stop_loss, exits.target, exits.trailing_stop)
    ):
        if th is None:
            continue
        if th.points is not None:
            out[i] = (1, th.points)
        elif th.pct is not None:
            out[i] = (2, th.pct)
        elif th.money is not None:
            out[i] = (3, th.money)
    return out


def simulate(
    spec: StrategySpec,
    data: DayData,
    mask: np.ndarray | None = None,
    exits: ExitArrays | None = None,
) -> tuple[Any, ...]:
    """Run the kernel on a loaded day (``mask`` overrides the entry windows; ``exits``
    carries a compiled ``exits.when`` condition)."""
    if exits is None:
        exits = ExitArrays.empty(data.seconds, data.strikes_paise.size)
    legs = spec.legs
    rules = data.rules
    if mask is None:
        mask = entry_mask(spec, data.day, data.seconds)
    exit_t = min(grid_index_of(data.day, spec, parse_hhmm(spec.time.exit_time)), data.seconds)
    calls, leg_kinds, params = zip(
        *(leg_selector(leg, i, data) for i, leg in enumerate(legs)), strict=True
    )
    # Quantities per leg (lots × the leg's lot size) with a kernel lot size of 1: an
    # instrument leg may have its own lot size.
    quantities = [leg.lots * leg_lot_size(leg, data) for leg in legs]
    rebalance = spec.rebalance
    fills = spec.fills
    return k.simulate_day(
        data.spot_paise,
        data.strikes_paise,
        data.is_call,
        data.bid,
        data.ask,
        data.age,
        data.years_to_expiry,
        mask,
        exit_t,
        round(rules.strike_step * 100),
        round(rules.tick_size * 100),
        1,
        np.array(calls, dtype=np.bool_),
        np.array([1 if leg.side == "buy" else -1 for leg in legs], dtype=np.int64),
        np.array(quantities, dtype=np.int64),
        np.array(leg_kinds, dtype=np.int64),
        np.array(params, dtype=np.float64),
        spec.universe.strike_candidates,
        {"none": 0, "every": 1, "underlying_move": 2}[rebalance.kind],
        (rebalance.minutes or 0) * 60,
        round((rebalance.points or 0) * 100),
        _thresholds(spec),
        {"cross": 0, "mid": 1, "mid_slippage": 2}[fills.mode],
        fills.base_ticks,
        fills.spread_alpha,
        fills.volatility_beta,
        fills.max_quote_age_seconds,
        spec.max_entries_per_day,
        exits.program,
        exits.constants,
        exits.series,
        exits.contract_values,
        exits.contract_slot,
    )


def leg_lot_size(leg: LegSpec, data: DayData) -> int:
    """Units per lot of a leg: an instrument's own lot size, else the day's F&O lot."""
    if leg.instrument is not None and leg.instrument.lot_size is not None:
        return leg.instrument.lot_size
    return int(data.rules.lot_size)


def _skipped(day: date, reason: str, status: str = "skipped") -> DayOutcome:
    return DayOutcome(
        day=day,
        trades=pl.DataFrame(schema=TRADE_SCHEMA),
        attempts=pl.DataFrame(schema=ATTEMPT_SCHEMA),
        summary=_summary(day, status, reason),
    )


def _summary(day: date, status: str, reason: str | None, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "date": day.isoformat(),
        "status": status,
        "skip_reason": reason,
        "fills": 0,
        "round_trips": 0,
        "gross_pnl_paise": 0,
        "costs_paise": 0,
        "net_pnl_paise": 0,
        "marked_closes": 0,
        "marked_pnl_paise": 0,
        "first_entry_ts": None,
        "last_exit_ts": None,
        "max_drawdown_paise": 0,
        "exposure_seconds": 0,
        "underlying_source": None,
        "expiry": None,
    }
    base.update(values)
    return base


@ctrl_c_in_kernels
def run_day(
    lake: Lake,
    spec: StrategySpec,
    day: date,
    *,
    keep_pnl_path: bool = False,
    prune: bool | None = None,
) -> DayOutcome:
    """Backtest one trading day (``prune``: see :func:`load_day`; None = the setting)."""
    if WEEKDAY_NAMES[day.weekday()] not in spec.time.weekdays:
        return _skipped(day, f"weekday {WEEKDAY_NAMES[day.weekday()]} not selected")
    plans = compile_spec_conditions(spec)
    loaded = load_day(lake, spec, day, market_fields=plans.needs_contracts, prune=prune)
    if isinstance(loaded, DaySkip):
        return _skipped(day, loaded.reason)
    if not plans.any:
        return outcome_from_kernel(
            spec, loaded, simulate(spec, loaded), keep_pnl_path=keep_pnl_path
        )
    return run_loaded_day(spec, loaded, DayMarket(lake, spec, loaded), plans, keep_pnl_path)


@ctrl_c_in_kernels
def run_loaded_day(
    spec: StrategySpec,
    data: DayData,
    market: DayMarket,
    plans: SpecPlans,
    keep_pnl_path: bool = False,
) -> DayOutcome:
    """Backtest a loaded day with its conditions (the day filter, entry and exit).

    ``market`` caches the day's metric series, so the variants of a sweep that share a
    day share one ``DayMarket``.
    """
    if plans.day_filter is not None:
        verdict = evaluate_day_filter(plans.day_filter, market, spec)
        if not verdict.passed:
            return _skipped(data.day, verdict.reason or "day_filter false")
    mask = entry_mask(spec, data.day, data.seconds)
    if plans.entry is not None:
        mask &= condition_mask(plans.entry, market, spec, np.flatnonzero(mask))
    exits = None
    if plans.exit is not None:
        exits = exit_arrays(plans.exit, market, spec, exit_from_second(spec, data))
    outcome = outcome_from_kernel(
        spec, data, simulate(spec, data, mask, exits), keep_pnl_path=keep_pnl_path
    )
    if plans.entry is not None and not mask.any() and outcome.summary["status"] == "no_trade":
        outcome.summary["skip_reason"] = "no entry: entry.when never held in the entry windows"
    return outcome


def outcome_from_kernel(
    spec: StrategySpec, data: DayData, result: tuple[Any, ...], *, keep_pnl_path: bool = False
) -> DayOutcome:
    """Turn kernel arrays into the day's trades, attempts and summary (with costs)."""
    (
        f_t,
        f_leg,
        f_c,
        f_side,
        f_qty,
        f_price,
        f_reason,
        f_pos,
        f_lag,
        a_t,
        a_leg,
        a_reason,
        pnl,
        in_pos,
        overflow,
    ) = result
    day = data.day
    if overflow:
        raise ExecutionError(
            f"{day}: more than {k.MAX_FILLS} fills in one day; the strategy re-targets or "
            "re-enters too often for a day task",
            day=str(day),
        )
    legs = spec.legs
    leg_lots = np.array([leg_lot_size(leg, data) for leg in legs], dtype=np.int64)
    segments = [leg.instrument.cost_segment if leg.instrument else "options" for leg in legs]
    table = load_cost_table(spec.costs.table) if spec.costs.enabled else ()
    n = len(f_t)
    fill_lots = f_qty // leg_lots[f_leg] if n else np.zeros(0, dtype=np.int64)
    costs = np.zeros(n, dtype=np.int64)
    filled = f_lag >= 0  # a marked close (lag -1) is no order: no costs
    for i in range(n):
        if not table:
            break
        if not filled[i]:
            continue
        costs[i] = order_costs_paise(
            table,
            day,
            buying=bool(f_side[i] > 0),
            premium_paise=int(f_qty[i] * f_price[i]),
            lots=int(fill_lots[i]),
            per_order_override=spec.costs.per_order,
            per_lot_extra=spec.costs.per_lot,
            segment=segments[int(f_leg[i])],
        )
    cash = -f_side * f_qty * f_price
    realized = np.zeros(n, dtype=np.int64)
    open_cash: dict[int, int] = {}
    for i in range(n):
        pos = int(f_pos[i])
        if pos in open_cash:
            realized[i] = open_cash.pop(pos) + int(cash[i])
        else:
            open_cash[pos] = int(cash[i])
    if open_cash:
        raise ExecutionError(f"{day}: positions left open at the end of the day: {open_cash}")
    grid = data.grid_ns
    is_option = np.array([data.is_option(int(c)) for c in f_c], dtype=np.bool_)
    # The quote a fill traded against: that second's, or for a forced close priced by an
    # earlier quote still within max_age, that one (its age then counted to the fill).
    quote_t = f_t - np.maximum(f_lag, 0)
    trades = pl.DataFrame(
        {
            "date": [day] * n,
            "fill_index": np.arange(n, dtype=np.int64),
            "ts": pl.Series(grid[f_t]).cast(pl.Datetime("ns", "UTC")),
            "leg": [legs[int(i)].name for i in f_leg],
            "position_id": f_pos,
            "symbol": [data.symbols[int(c)] for c in f_c],
            "expiry": [
                data.expiry if option else data.contract_expiry.get(int(c))
                for c, option in zip(f_c, is_option, strict=True)
            ],
            "strike": pl.Series(
                np.where(is_option, data.strikes_paise[f_c] / 100.0, np.nan)
            ).fill_nan(None),
            "opt_type": [
                ("CE" if data.is_call[int(c)] else "PE") if option else None
                for c, option in zip(f_c, is_option, strict=True)
            ],
            "side": np.where(f_side > 0, "buy", "sell"),
            "lots": fill_lots,
            "quantity": f_qty,
            "price_paise": f_price,
            "bid_paise": data.bid[f_c, quote_t],
            "ask_paise": data.ask[f_c, quote_t],
            "quote_age_seconds": np.where(
                data.age[f_c, quote_t] >= 0, data.age[f_c, quote_t] + (f_t - quote_t), -1
            ),
            "spot_paise": data.spot_paise[f_t],
            "underlying_source": [data.spot_source] * n,
            "reason": [k.REASONS[int(r)] for r in f_reason],
            "filled": filled,
            "cash_flow_paise": cash,
            "costs_paise": costs,
            "realized_pnl_paise": realized,
        },
        schema=TRADE_SCHEMA,
    )
    attempts = pl.DataFrame(
        {
            "date": [day] * len(a_t),
            "ts": pl.Series(grid[a_t]).cast(pl.Datetime("ns", "UTC")),
            "leg": [legs[int(i)].name for i in a_leg],
            "reason": [k.ATTEMPT_REASONS[int(r)] for r in a_reason],
        },
        schema=ATTEMPT_SCHEMA,
    )
    gross = int(cash.sum())
    total_costs = int(costs.sum())
    running_peak = np.maximum.accumulate(np.concatenate([[0], pnl]))[1:]
    drawdown = int((running_peak - pnl).max()) if pnl.size else 0
    entries = trades.filter(pl.col("reason") == "entry")["ts"]
    status = "traded" if n else "no_trade"
    reason = None
    if not n:
        seen = sorted(set(attempts["reason"].to_list()))
        reason = "no entry: " + (", ".join(seen) if seen else "entry window never opened")
    summary = _summary(
        day,
        status,
        reason,
        fills=int(filled.sum()),
        round_trips=len({int(p) for p in f_pos}),
        gross_pnl_paise=gross,
        costs_paise=total_costs,
        net_pnl_paise=gross - total_costs,
        marked_closes=int((~filled).sum()),
        # The gross P&L of the round trips closed at a mark rather than by a fill.
        marked_pnl_paise=int(realized[~filled].sum()),
        first_entry_ts=_iso(entries.min()) if n else None,
        last_exit_ts=_iso(trades["ts"].max()) if n else None,
        max_drawdown_paise=drawdown,
        exposure_seconds=int(in_pos.sum()),
        underlying_source=data.spot_source,
        expiry=data.expiry.isoformat(),
    )
    if not keep_pnl_path:
        return DayOutcome(day, trades, attempts, summary)
    return DayOutcome(day, trades, attempts, summary, pnl, grid, np.asarray(in_pos, dtype=bool))


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(ZoneInfo("UTC")).isoformat().replace("+00:00", "Z")
    return str(value)
