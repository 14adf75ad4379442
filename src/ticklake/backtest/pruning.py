"""What a strategy can touch on one day, derived from its spec before the chain is read.

:func:`candidate_contracts` returns a :class:`Band`: the expiry the legs can select, the
strike band the underlying's path of the day can reach, and the columns fills and
conditions read. ``load_day`` reads only those rows and columns (partitions are sorted
by expiry, opt_type, strike, ts, so Parquet row-group statistics skip the rest) and
aligns only those contracts.

The band is derived from what the kernel does, never guessed:

- one expiry per day: the universe's choice (``choose_expiry``) among the day's expiries;
- a strike band per selector, from ATM = spot rounded half up to the strike step: ``atm``
  reaches 0 steps from ATM, ``otm``/``itm`` their ``steps``, ``delta``/``premium`` scan
  ATM ± ``strike_candidates`` steps (the kernel looks no further). The band is the day's
  intraday spot range, ± the furthest leg's reach, widened by one step each side (the
  half-step rounding of ATM, ties rounded up); every second's spot is inside the range,
  so every re-targeting, however late and at whatever extreme, stays inside the band;
- columns: the quote columns, plus last price and volume when a condition reads a leg.

The whole chain of the expiry is read instead (with the reason) when the spot is not
known before the chain is read: without an underlying dataset the spot *is* derived from
the chain (put-call parity over every strike). Pruning is switched off entirely with the
lake setting ``backtest.prune = false`` (or ``load_day(..., prune=False)``).

One case is not proven equivalent: a spot dataset that misses seconds of the grid has
them filled by parity over the *loaded* strikes (the loader's behaviour before this
module, which the alignment tests pin). The band is then derived from the known seconds
and the band's ``reason`` says how many seconds take parity from it; where the whole
chain's best parity pair lies outside the band those seconds (and trades) can differ
from ``prune = false``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from ticklake.backtest.option_chain import (
    MARKET_COLUMNS,
    OPTION_COLUMNS,
    choose_expiry,
    strike_reach_steps,
)
from ticklake.backtest.spec import StrategySpec


@dataclass(frozen=True)
class SpotPathSummary:
    """The underlying's path of a day on the grid, summarised before the chain is read.

    ``low_paise``/``high_paise`` are the smallest and largest known spot (0 when none is
    known); ``missing_seconds`` counts grid seconds with no spot (0 = complete path).
    ``source`` is ``"spot"`` for an underlying dataset, ``"parity"`` for none.
    """

    low_paise: int
    high_paise: int
    missing_seconds: int
    source: str

    @classmethod
    def from_grid(cls, spot_paise: np.ndarray, source: str) -> SpotPathSummary:
        known = spot_paise[spot_paise > 0]
        if known.size == 0:
            return cls(0, 0, int(spot_paise.size), source)
        return cls(int(known.min()), int(known.max()), int(spot_paise.size - known.size), source)


@dataclass(frozen=True)
class ChainIndex:
    """What is known of the day's chain before its rows are read."""

    expiries: tuple[date, ...]  # every expiry present in the day's partition
    strike_step_paise: int  # the underlying's strike step on the day (market rules)


@dataclass(frozen=True)
class Band:
    """The contracts a strategy can touch on a day.

    ``expiry`` None = no expiry the spec can select (the day is skipped). ``whole_chain``
    = every strike of the expiry, for ``reason``; otherwise strikes in
    ``[strike_low_paise, strike_high_paise]`` (inclusive). ``reach_steps`` is the
    furthest a leg reaches from ATM, in strike steps, before the one-step widening.
    """

    expiry: date | None
    columns: tuple[str, ...]
    whole_chain: bool
    reason: str
    strike_low_paise: int = 0
    strike_high_paise: int = 0
    reach_steps: int = 0

    def strike_range_rupees(self) -> tuple[float, float] | None:
        """``(low, high)`` in rupees for a Parquet filter; None = every strike."""
        if self.whole_chain:
            return None
        return self.strike_low_paise / 100.0, self.strike_high_paise / 100.0


def leg_reach_steps(spec: StrategySpec) -> int:
    """The furthest any option leg's selector reaches from ATM, in strike steps."""
    return strike_reach_steps(spec) - 1


def option_columns(market_fields: bool) -> tuple[str, ...]:
    """Columns of the option partition that fills (and leg conditions) read."""
    return OPTION_COLUMNS + (MARKET_COLUMNS if market_fields else ())


def candidate_contracts(
    spec: StrategySpec,
    day: date,
    spot_path_summary: SpotPathSummary,
    chain_index: ChainIndex,
    *,
    market_fields: bool = False,
    reach_steps: int | None = None,
    prune: bool = True,
) -> Band:
    """Derive the expiry, strike band and columns ``spec`` can touch on ``day``.

    ``reach_steps`` overrides :func:`leg_reach_steps` (a sweep sharing one load between
    variants passes the largest of theirs); ``prune=False`` always gives the whole chain.
    """
    columns = option_columns(market_fields)
    expiry = choose_expiry(spec, day, list(chain_index.expiries))
    reach = leg_reach_steps(spec) if reach_steps is None else reach_steps

    def whole(reason: str) -> Band:
        return Band(expiry, columns, True, reason, reach_steps=reach)

    if not prune:
        return whole("pruning switched off (backtest.prune = false)")
    if expiry is None:
        return whole("no expiry the spec can select")
    summary = spot_path_summary
    if summary.source != "spot":
        return whole("no underlying dataset: the spot is derived from the whole chain by parity")
    if summary.high_paise <= 0:
        return whole("the underlying dataset has no price on this day's grid")
    step = chain_index.strike_step_paise
    if step <= 0:
        return whole(f"no strike step for the underlying on {day} (got {step})")
    # ATM is within half a step of spot and a leg is ``reach`` steps from ATM, so
    # ``reach + 1`` steps beyond the range hold every strike any second can select.
    widened = (reach + 1) * step
    low = summary.low_paise - widened
    high = summary.high_paise + widened
    gaps = ""
    if summary.missing_seconds:
        gaps = (
            f"; {summary.missing_seconds} grid seconds without spot take parity from "
            "these strikes only"
        )
    return Band(
        expiry,
        columns,
        False,
        f"spot {summary.low_paise / 100:.2f}-{summary.high_paise / 100:.2f} ± "
        f"({reach} + 1) strike steps{gaps}",
        strike_low_paise=max(low, 0),
        strike_high_paise=high,
        reach_steps=reach,
    )


__all__ = [
    "Band",
    "ChainIndex",
    "SpotPathSummary",
    "candidate_contracts",
    "leg_reach_steps",
    "option_columns",
]
