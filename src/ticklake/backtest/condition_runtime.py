"""Evaluate compiled conditions on one loaded day.

:class:`DayMarket` builds, once per day task, the grid frames the metrics read and
caches every computed series, so the variants of a sweep share them:

- the **underlying** frame: ``ts``, ``price`` = ``spot`` (the day's underlying, from the
  spot dataset or parity), ``volume`` (per second, from the spot dataset when it has
  volume), ``session_date``; the previous day of the spot dataset is prepended as its
  own session so ``previous_close`` (and any cross-session metric) has its history;
- one frame per **contract**: ``ts``, ``price`` (as-of last traded price), ``volume``
  (per second), ``bid``, ``ask``, ``spot``, ``strike``, ``years_to_expiry``, ``is_call``,
  ``session_date``, ``expiry`` (the contract's expiry date) — a metric of a leg is
  computed over the contract's own history;
- the **selection** of each leg per second: the contract the leg's selector picks at
  ``t`` (entry conditions and day filters read that contract; exits read the held one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import time
from functools import partial
from typing import Any

import numba
import numpy as np
import polars as pl

from ticklake.backtest import kernel as k
from ticklake.backtest.conditions.plan import Atom, Plan
from ticklake.backtest.data import DayData
from ticklake.backtest.day_inputs import previous_underlying_day, underlying_grid
from ticklake.backtest.grid import entry_mask, grid_index_of
from ticklake.backtest.spec import LegSpec, StrategySpec, parse_hhmm
from ticklake.lake import Lake

SELECTOR_KINDS = {"atm": 0, "otm": 1, "itm": 2, "delta": 3, "premium": 4}


@numba.njit(cache=True)
def _selections(
    spot,
    strikes,
    is_call,
    bid,
    ask,
    age,
    years,
    seconds,
    call,
    kind,
    param,
    step,
    candidates,
    max_age,
):
    out = np.full(spot.shape[0], -1, np.int64)
    for t in seconds:
        c, why = k._select(
            spot,
            strikes,
            is_call,
            bid,
            ask,
            age,
            years,
            t,
            call,
            kind,
            param,
            step,
            candidates,
            max_age,
        )
        if why < 0:
            out[t] = c
    return out


def selector_key(leg: LegSpec) -> tuple[bool, int, float]:
    selector = leg.selector
    param = float(getattr(selector, "steps", None) or getattr(selector, "target", None) or 0.0)
    return leg.opt_type == "CE", SELECTOR_KINDS[selector.kind], param


def leg_selector(leg: LegSpec, position: int, data: DayData) -> tuple[bool, int, float]:
    """(is call, kernel selector kind, parameter) of the leg at ``position``: its
    :func:`selector_key`, or for an instrument leg its own contract row on the day."""
    if leg.instrument is None:
        return selector_key(leg)
    return False, k.INSTRUMENT, float(data.leg_contract[position])


def _nan_array(series: pl.Series) -> np.ndarray:
    return series.cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64, copy=False)


class DayMarket:
    """Per-day series for conditions, computed on demand and cached."""

    def __init__(self, lake: Lake, spec: StrategySpec, data: DayData) -> None:
        self.lake = lake
        self.spec = spec
        self.data = data
        self.seconds = data.seconds
        self._underlying_frame: pl.DataFrame | None = None
        self._history_rows = 0
        self._underlying: dict[str, np.ndarray] = {}
        self._contract: dict[tuple[str, int], np.ndarray] = {}
        self._selection: dict[tuple[Any, ...], np.ndarray] = {}
        # Finished condition columns (null for NaN), shared by every plan of the day that
        # reads the same series through the same selection (the variants of a sweep).
        self._columns: dict[tuple[Any, ...], pl.Series] = {}

    def column(self, key: tuple[Any, ...], name: str, make: Callable[[], np.ndarray]) -> pl.Series:
        """The Polars column ``name`` of ``make()`` with NaN as null, cached under ``key``."""
        found = self._columns.get(key)
        if found is None:
            found = pl.Series(make()).fill_nan(None)
            self._columns[key] = found
        return found.alias(name)

    # ------------------------------------------------------------------ underlying
    def underlying_frame(self) -> pl.DataFrame:
        if self._underlying_frame is None:
            data = self.data
            today = underlying_grid(self.lake, self.spec, data.day)
            volume = today[2] if today is not None else np.full(self.seconds, np.nan)
            frame = self._grid_frame(data.grid_ns, data.spot_paise, volume, data.day)
            previous_day = previous_underlying_day(self.lake, self.spec, data.day)
            previous = underlying_grid(self.lake, self.spec, previous_day) if previous_day else None
            if previous is not None and previous_day is not None:
                before = self._grid_frame(*previous, previous_day)
                self._history_rows = before.height
                frame = pl.concat([before, frame], how="vertical")
            self._underlying_frame = frame
        return self._underlying_frame

    @staticmethod
    def _grid_frame(
        grid: np.ndarray, price_paise: np.ndarray, volume: np.ndarray, day: Any
    ) -> pl.DataFrame:
        price = pl.Series(np.where(price_paise > 0, price_paise / 100.0, np.nan)).fill_nan(None)
        return pl.DataFrame(
            {
                "ts": pl.Series(grid).cast(pl.Datetime("ns", "UTC")),
                "price": price,
                "volume": pl.Series(volume).fill_nan(None),
                "session_date": [day] * grid.size,
            }
        ).with_columns(pl.col("price").alias("spot"))

    def underlying_values(self, atoms: Iterable[Atom]) -> dict[str, np.ndarray]:
        wanted = {a.column: a for a in atoms if a.source == "underlying"}
        missing = [a for c, a in wanted.items() if c not in self._underlying]
        if missing:
            frame = self.underlying_frame()
            out = frame.select([a.expression().alias(a.column) for a in missing])
            for atom in missing:
                self._underlying[atom.column] = _nan_array(out[atom.column])[self._history_rows :]
        return {c: self._underlying[c] for c in wanted}

    # ------------------------------------------------------------------ contracts
    def contract_frame(self, c: int) -> pl.LazyFrame:
        data = self.data
        if data.last_price is None or data.volume is None:
            raise RuntimeError("load_day(..., market_fields=True) is needed for leg conditions")

        option = data.is_option(c)
        strike = data.strikes_paise[c] / 100.0 if option else np.nan
        expiry = data.expiry if option else data.contract_expiry.get(c)

        def rupees(values: np.ndarray) -> pl.Series:
            return pl.Series(np.where(values > 0, values / 100.0, np.nan)).fill_nan(None)

        return pl.DataFrame(
            {
                "ts": pl.Series(data.grid_ns).cast(pl.Datetime("ns", "UTC")),
                "price": rupees(data.last_price[c]),
                "volume": pl.Series(data.volume[c]).fill_nan(None),
                "bid": rupees(data.bid[c]),
                "ask": rupees(data.ask[c]),
                "spot": rupees(data.spot_paise),
                # An instrument leg's row (a future, the underlying) has no strike, and its
                # own expiry if any; option metrics of it are then missing, never wrong.
                "strike": pl.Series(np.full(self.seconds, strike)).fill_nan(None),
                "years_to_expiry": data.years_to_expiry,
                "is_call": np.full(self.seconds, bool(data.is_call[c])),
                "session_date": [data.day] * self.seconds,
                # Every option of a day has the day's one expiry (the universe's choice).
                "expiry": pl.Series([expiry] * self.seconds, dtype=pl.Date),
            }
        ).lazy()

    def require_contracts(self, atoms: Iterable[Atom], contracts: Iterable[int]) -> None:
        """Compute the per-contract series of ``atoms`` for ``contracts`` (cached)."""
        by_output = {a.output: a for a in atoms if a.source not in ("underlying", "position")}
        jobs: list[tuple[int, list[Atom]]] = []
        for c in sorted(set(int(x) for x in contracts)):
            todo = [a for o, a in by_output.items() if (o, c) not in self._contract]
            if todo:
                jobs.append((c, todo))
        if not jobs:
            return
        frames = [
            self.contract_frame(c).select([a.expression().alias(a.output) for a in todo])
            for c, todo in jobs
        ]
        for (c, todo), out in zip(jobs, pl.collect_all(frames), strict=True):
            for atom in todo:
                self._contract[(atom.output, c)] = _nan_array(out[atom.output])

    def contract_series(self, output: str, c: int) -> np.ndarray:
        return self._contract[(output, c)]

    # ------------------------------------------------------------------ selection
    def _selector(self, leg: LegSpec) -> tuple[bool, int, float]:
        """``selector_key`` of an option leg; an instrument leg's own contract row."""
        position = next(i for i, other in enumerate(self.spec.legs) if other.name == leg.name)
        return leg_selector(leg, position, self.data)

    def selection(self, leg: LegSpec, seconds: np.ndarray) -> np.ndarray:
        """The contract the leg's selector picks at each of ``seconds`` (-1 elsewhere)."""
        seconds = np.asarray(seconds, dtype=np.int64)
        key = (*self._selector(leg), seconds.tobytes())
        found = self._selection.get(key)
        if found is None:
            data, spec = self.data, self.spec
            call, kind, param = self._selector(leg)
            found = _selections(
                data.spot_paise,
                data.strikes_paise,
                data.is_call,
                data.bid,
                data.ask,
                data.age,
                data.years_to_expiry,
                seconds,
                call,
                kind,
                param,
                round(data.rules.strike_step * 100),
                spec.universe.strike_candidates,
                spec.fills.max_quote_age_seconds,
            )
            self._selection[key] = found
        return found

    def possible_contracts(self, leg: LegSpec, from_second: int) -> np.ndarray:
        """Contracts the leg may hold from ``from_second`` on (exits read the held one)."""
        call, kind, param = self._selector(leg)
        if kind == k.INSTRUMENT:
            return np.array([int(param)], dtype=np.int64)
        if kind >= 3:  # delta / premium: any contract of the type may be chosen
            return np.flatnonzero(self.data.is_call == call)
        chosen = self.selection(leg, np.arange(from_second, self.seconds))
        return np.unique(chosen[chosen >= 0])


# ---------------------------------------------------------------------- evaluation
def _legs(spec: StrategySpec) -> dict[str, LegSpec]:
    return {leg.name: leg for leg in spec.legs}


def _one_second_later(values: np.ndarray) -> np.ndarray:
    """``values`` shifted one second later: at ``t`` the value of ``t - 1`` (NaN at 0)."""
    return np.concatenate([[np.nan], values[:-1]])


def _held(market: DayMarket, chosen: np.ndarray, output: str, previous: bool = False) -> np.ndarray:
    """The series ``output`` of the contract ``chosen`` at each second (NaN where none);
    with ``previous``, its value one second earlier: the previous second of the *same*
    contract, so a change of the selected contract is not a crossing."""
    out = np.full(market.seconds, np.nan)
    for c in np.unique(chosen[chosen >= 0]):
        at = np.flatnonzero(chosen == c)
        values = market.contract_series(output, int(c))
        if previous:
            at = at[at > 0]
            out[at] = values[at - 1]
        else:
            out[at] = values[at]
    return out


def _frame(plan: Plan, market: DayMarket, spec: StrategySpec, seconds: np.ndarray) -> pl.DataFrame:
    """Atom columns (and ``@prev`` columns) at every grid second (NaN → null)."""
    columns: list[pl.Series] = []
    for column, values in market.underlying_values(plan.atoms).items():
        columns.append(market.column(("underlying", column), column, partial(np.asarray, values)))
        if column in plan.prev_columns:
            columns.append(
                market.column(
                    ("underlying@prev", column),
                    f"{column}@prev",
                    partial(_one_second_later, values),
                )
            )
    legs = _legs(spec)
    leg_atoms = [a for a in plan.atoms if a.source not in ("underlying", "position")]
    if leg_atoms:
        seconds = np.asarray(seconds, dtype=np.int64)
        selections = {
            name: market.selection(legs[name], seconds) for name in {a.source for a in leg_atoms}
        }
        contracts = np.unique(np.concatenate([s[s >= 0] for s in selections.values()]))
        market.require_contracts(leg_atoms, contracts)
        seconds_key = seconds.tobytes()
        for atom in leg_atoms:
            chosen = selections[atom.source]
            key = ("leg", atom.output, selector_key(legs[atom.source]), seconds_key)
            now = market.column(key, atom.column, partial(_held, market, chosen, atom.output))
            columns.append(now)
            if atom.column in plan.prev_columns:
                columns.append(
                    market.column(
                        (*key, "@prev"),
                        f"{atom.column}@prev",
                        partial(_held, market, chosen, atom.output, previous=True),
                    )
                )
    return pl.DataFrame({c.name: c for c in columns})


def condition_mask(
    plan: Plan, market: DayMarket, spec: StrategySpec, seconds: np.ndarray
) -> np.ndarray:
    """Where an entry condition holds (null = unknown = false), at ``seconds`` only."""
    assert plan.expression is not None
    frame = _frame(plan, market, spec, seconds)
    values = frame.select(plan.expression.fill_null(False).alias("hit"))["hit"].to_numpy()
    mask = np.zeros(market.seconds, dtype=np.bool_)
    mask[seconds] = values[seconds]
    return mask


def day_filter_second(spec: StrategySpec, data: DayData) -> int:
    """The grid second a day filter is evaluated at: one second before the first entry
    window opens (09:19:59 for 09:20-09:25), or the session's first second."""
    first: time = min(start for start, _ in spec.time.windows())
    return max(grid_index_of(data.day, spec, first) - 1, 0)


@dataclass(frozen=True)
class DayFilterResult:
    passed: bool
    reason: str | None
    second: int
    values: dict[str, float | None]


def evaluate_day_filter(plan: Plan, market: DayMarket, spec: StrategySpec) -> DayFilterResult:
    second = day_filter_second(spec, market.data)
    at = np.array([second], dtype=np.int64)
    assert plan.expression is not None
    frame = _frame(plan, market, spec, at)
    row = frame.row(second, named=True)
    hit = frame.select(plan.expression.alias("hit"))["hit"][second]
    values = {a.column: row.get(a.column) for a in plan.atoms}
    if hit is None:
        return DayFilterResult(False, "day_filter unknown (missing data)", second, values)
    return DayFilterResult(bool(hit), None if hit else "day_filter false", second, values)


@dataclass
class ExitArrays:
    """The kernel's exit-condition inputs (empty arrays when there is no condition)."""

    program: np.ndarray
    constants: np.ndarray
    series: np.ndarray
    contract_values: np.ndarray
    contract_slot: np.ndarray

    @classmethod
    def empty(cls, seconds: int, contracts: int) -> ExitArrays:
        return cls(
            np.zeros((0, 4), np.int64),
            np.zeros(0, np.float64),
            np.zeros((0, seconds), np.float64),
            np.zeros((0, 0, seconds), np.float64),
            np.full(contracts, -1, np.int64),
        )


def exit_arrays(plan: Plan, market: DayMarket, spec: StrategySpec, from_second: int) -> ExitArrays:
    T = market.seconds
    data = market.data
    values = market.underlying_values(plan.atoms)
    series = (
        np.stack([values[c] for c in plan.series_columns])
        if plan.series_columns
        else np.zeros((0, T))
    )
    slot = np.full(data.strikes_paise.size, -1, np.int64)
    contract_values = np.zeros((len(plan.contract_outputs), 0, T))
    if plan.contract_outputs:
        legs = _legs(spec)
        used = {a.source for a in plan.atoms if a.source not in ("underlying", "position")}
        contracts = np.unique(
            np.concatenate([market.possible_contracts(legs[name], from_second) for name in used])
        ).astype(np.int64)
        atoms = plan.contract_atoms()
        market.require_contracts(atoms.values(), contracts)
        slot[contracts] = np.arange(contracts.size)
        contract_values = np.full((len(plan.contract_outputs), contracts.size, T), np.nan)
        for p, output in enumerate(plan.contract_outputs):
            for j, c in enumerate(contracts):
                contract_values[p, j] = market.contract_series(output, int(c))
    return ExitArrays(
        plan.program,
        plan.constants,
        np.ascontiguousarray(series, dtype=np.float64),
        contract_values,
        slot,
    )


def entry_window_seconds(spec: StrategySpec, data: DayData) -> np.ndarray:
    """Grid seconds inside the entry windows (the only ones an entry condition needs)."""
    return np.flatnonzero(entry_mask(spec, data.day, data.seconds))


def exit_from_second(spec: StrategySpec, data: DayData) -> int:
    first = min(start for start, _ in spec.time.windows())
    return max(grid_index_of(data.day, spec, first), 0)


__all__ = [
    "DayFilterResult",
    "DayMarket",
    "ExitArrays",
    "condition_mask",
    "day_filter_second",
    "entry_window_seconds",
    "evaluate_day_filter",
    "exit_arrays",
    "exit_from_second",
    "parse_hhmm",
]
