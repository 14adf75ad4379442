"""Strategy specs: Pydantic models loaded from YAML or JSON, exported as JSON Schema.

Every model is frozen and rejects unknown keys, so a typo in a strategy file is an error
that names the key, never a silently ignored setting.

Examples:
    >>> spec = StrategySpec.model_validate({
    ...     "name": "atm_straddle",
    ...     "universe": {"underlying": "BANKNIFTY", "options_dataset": "banknifty_options",
    ...                  "underlying_dataset": "banknifty_spot"},
    ...     "time": {"start": "2024-01-08", "end": "2024-01-12",
    ...              "entry_windows": ["09:20-09:25"], "exit_time": "15:20"},
    ...     "legs": [{"name": "ce", "opt_type": "CE", "side": "sell"},
    ...              {"name": "pe", "opt_type": "PE", "side": "sell"}],
    ... })
    >>> spec.legs[0].selector.kind, spec.fills.mode, len(spec_hash(spec))
    ('atm', 'cross', 16)
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ticklake.backtest.conditions.compile import compile_conditions
from ticklake.errors import ConfigError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_HHMM = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2}))?$")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_hhmm(text: str) -> time:
    match = _HHMM.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a time of day as HH:MM (e.g. 15:20)")
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"{text!r} is not a valid time of day")
    return time(hour, minute, second)


class UniverseSpec(_Spec):
    """What to trade: the underlying, which expiry, and where the data is."""

    underlying: str = Field(description="e.g. BANKNIFTY or NIFTY")
    options_dataset: str = Field(description="lake dataset of option snapshots")
    underlying_dataset: str | None = Field(
        None, description="lake dataset of the underlying (prices); none = put-call parity"
    )
    expiry: Literal[
        "nearest",
        "next",
        "nearest_weekly",
        "nearest_monthly",
        "next_weekly",
        "next_monthly",
        "by_days_to_expiry",
    ] = Field(
        "nearest",
        description="which expiry's contracts; 'nearest' = weekly or monthly; "
        "'by_days_to_expiry' = the one closest to target_days_to_expiry",
    )
    target_days_to_expiry: int | None = Field(
        None,
        ge=0,
        description="with expiry 'by_days_to_expiry': the expiry closest to this many "
        "calendar days after the trading day (a tie goes to the nearer expiry)",
    )
    min_days_to_expiry: int = Field(
        0, ge=0, description="skip expiries closer than this many days (0 = expiry day allowed)"
    )

    @model_validator(mode="after")
    def _target_days(self) -> UniverseSpec:
        by_days = self.expiry == "by_days_to_expiry"
        if by_days and self.target_days_to_expiry is None:
            raise ValueError("expiry 'by_days_to_expiry' needs target_days_to_expiry (e.g. 30)")
        if not by_days and self.target_days_to_expiry is not None:
            raise ValueError(
                "target_days_to_expiry applies only to expiry: by_days_to_expiry "
                f"(expiry is {self.expiry!r})"
            )
        return self

    strike_candidates: int = Field(
        20, ge=1, le=200, description="strikes each side of ATM a selector may look at"
    )


class TimeSpec(_Spec):
    """When to trade, in the exchange's time zone."""

    start: date
    end: date
    weekdays: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = (
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
    )
    entry_windows: tuple[str, ...] = ("09:20-09:25",)
    exit_time: str = "15:20"
    timezone: str = "Asia/Kolkata"
    session_start: str = "09:15"
    session_end: str = "15:30"

    @field_validator("entry_windows")
    @classmethod
    def _windows(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("give at least one entry window, e.g. ['09:20-09:25']")
        for window in value:
            match = _WINDOW.match(window.strip())
            if not match:
                raise ValueError(f"entry window {window!r} must look like HH:MM-HH:MM")
            start = parse_hhmm(window[:5])
            end = parse_hhmm(window[6:])
            if end <= start:
                raise ValueError(f"entry window {window!r} ends before it starts")
        return value

    @field_validator("exit_time", "session_start", "session_end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        parse_hhmm(value)
        return value

    @model_validator(mode="after")
    def _order(self) -> TimeSpec:
        if self.end < self.start:
            raise ValueError(f"time.end {self.end} is before time.start {self.start}")
        return self

    def windows(self) -> list[tuple[time, time]]:
        return [(parse_hhmm(w[:5]), parse_hhmm(w[6:])) for w in self.entry_windows]


class AtmSelector(_Spec):
    kind: Literal["atm"] = "atm"


class OffsetSelector(_Spec):
    """``steps`` strikes out of the money (``otm``) or in the money (``itm``) from ATM."""

    kind: Literal["otm", "itm"]
    steps: int = Field(ge=0, le=100)


class DeltaSelector(_Spec):
    """The strike whose |delta| is closest to ``target`` (Black–Scholes on the mid)."""

    kind: Literal["delta"] = "delta"
    target: float = Field(gt=0, lt=1)


class PremiumSelector(_Spec):
    """The strike whose mid price is closest to ``target`` (in rupees)."""

    kind: Literal["premium"] = "premium"
    target: float = Field(gt=0)


Selector = Annotated[
    AtmSelector | OffsetSelector | DeltaSelector | PremiumSelector, Field(discriminator="kind")
]


class InstrumentSpec(_Spec):
    """A plain instrument traded as a leg: the underlying, a future, a stock, a coin.

    Its quotes come from ``dataset`` (default: the universe's ``underlying_dataset``):
    best bid/ask when the dataset has them (``bid_price``/``ask_price`` or
    ``bid_price_0``/``ask_price_0``), else its ``price`` on both sides (a last-price fill:
    say so in your results). ``symbol`` picks one instrument of a dataset holding several
    (the ``instrument`` or ``symbol`` column); without it a dataset with an ``expiry``
    column gives its nearest expiry that has not passed (the front-month future), and a
    dataset of one instrument gives that one.
    """

    dataset: str | None = Field(
        None, description="lake dataset; none = universe.underlying_dataset"
    )
    symbol: str | None = Field(None, description="instrument to trade; none = see above")
    lot_size: int | None = Field(
        None, ge=1, description="units per lot; none = the underlying's F&O lot size on the day"
    )
    cost_segment: str = Field(
        "futures", description="cost-table rows that apply (the table's segment column)"
    )


class LegSpec(_Spec):
    """One leg: an option (``opt_type`` CE/PE with a strike ``selector``) or a plain
    ``instrument`` (the underlying, a future, ...), buy or sell, lots."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    opt_type: Literal["CE", "PE"] | None = Field(
        None, description="CE or PE for an option leg; leave out for an instrument leg"
    )
    side: Literal["buy", "sell"]
    lots: int = Field(1, ge=1, le=10_000)
    selector: Selector = AtmSelector()
    instrument: InstrumentSpec | None = Field(
        None,
        description="a plain instrument instead of an option; 'underlying' = the "
        "universe's underlying_dataset",
    )

    @field_validator("instrument", mode="before")
    @classmethod
    def _instrument_shorthand(cls, value: Any) -> Any:
        if value == "underlying":
            return {}
        if isinstance(value, str):
            raise ValueError(
                f"instrument {value!r}: write 'underlying' or a mapping "
                "{dataset: ..., symbol: ..., lot_size: ...}"
            )
        return value

    @model_validator(mode="after")
    def _option_or_instrument(self) -> LegSpec:
        if self.instrument is None and self.opt_type is None:
            raise ValueError(
                f"leg {self.name!r}: give opt_type (CE or PE) for an option, or "
                "instrument (e.g. instrument: underlying) for a plain instrument"
            )
        if self.instrument is not None:
            if self.opt_type is not None:
                raise ValueError(
                    f"leg {self.name!r}: an instrument leg has no opt_type "
                    f"(got {self.opt_type!r}); remove one of the two"
                )
            if self.selector.kind != "atm":
                raise ValueError(
                    f"leg {self.name!r}: a selector ({self.selector.kind}) chooses option "
                    "strikes; an instrument leg has none"
                )
        return self

    @property
    def is_option(self) -> bool:
        return self.instrument is None


class RebalanceSpec(_Spec):
    """Re-target legs: never, every N minutes after entry, or when the underlying moves."""

    kind: Literal["none", "every", "underlying_move"] = "none"
    minutes: int | None = Field(None, ge=1)
    points: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _params(self) -> RebalanceSpec:
        if self.kind == "every" and self.minutes is None:
            raise ValueError("rebalance kind 'every' needs minutes, e.g. minutes: 60")
        if self.kind == "underlying_move" and self.points is None:
            raise ValueError("rebalance kind 'underlying_move' needs points, e.g. points: 100")
        return self


class Threshold(_Spec):
    """A stop or target: ``points`` of premium, ``pct`` of entry premium, or ``money`` (₹)."""

    points: float | None = Field(None, gt=0)
    pct: float | None = Field(None, gt=0)
    money: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> Threshold:
        given = [k for k in ("points", "pct", "money") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of points, pct or money")
        return self


ConditionInput = str | dict[str, Any]
"""A condition: text (``ema(1) > ema(5)``) or its JSON tree (see docs/conditions.md)."""


class EntrySpec(_Spec):
    """Extra entry rule: enter only at seconds of an entry window where ``when`` holds."""

    when: ConditionInput | None = Field(
        None, description="condition AND-ed with the entry windows, e.g. 'ema(1) > ema(5)'"
    )


class ExitSpec(_Spec):
    """Exits besides the time exit. Leg thresholds apply to each leg's own premium."""

    leg_stop_loss: Threshold | None = None
    leg_target: Threshold | None = None
    stop_loss: Threshold | None = Field(None, description="on the combined position")
    target: Threshold | None = Field(None, description="on the combined position")
    trailing_stop: Threshold | None = Field(
        None, description="combined P&L falling this far from its peak"
    )
    when: ConditionInput | None = Field(
        None,
        description="close everything when this holds, e.g. 'position.pnl < -3000 or "
        "ce.ltp > 2 * ce.open_of_day'",
    )


class FillSpec(_Spec):
    """How orders fill, and when a quote is too old to trade on."""

    mode: Literal["cross", "mid", "mid_slippage"] = "cross"
    base_ticks: int = Field(0, ge=0, description="mid_slippage: fixed ticks against us")
    spread_alpha: float = Field(0.0, ge=0, description="mid_slippage: × spread against us")
    volatility_beta: float = Field(
        0.0, ge=0, description="mid_slippage: × 60 s realised move of the contract's mid"
    )
    as_of_tolerance_seconds: int = Field(
        5, ge=0, description="an as-of join looks back at most this far for a quote"
    )
    max_quote_age_seconds: int = Field(
        5, ge=0, description="a quote older than this is stale: not tradeable"
    )


class CostSpec(_Spec):
    """Costs: a named table (``nse_fo`` shipped) or a CSV path, plus optional overrides."""

    table: str = "nse_fo"
    per_order: float | None = Field(None, ge=0, description="₹ per order (overrides brokerage)")
    per_lot: float | None = Field(None, ge=0, description="₹ per lot, added")
    enabled: bool = True


class SamplingSpec(_Spec):
    first_n_trades: int = Field(100, ge=0, description="keep this many fills with their inputs")


class StrategySpec(_Spec):
    """A complete options strategy (option legs, optionally hedged with plain instruments)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    universe: UniverseSpec
    time: TimeSpec
    legs: tuple[LegSpec, ...] = Field(min_length=1, max_length=16)
    entry: EntrySpec = EntrySpec()
    day_filter: ConditionInput | None = Field(
        None,
        description="trade the day only if this holds one second before the first entry "
        "window, e.g. 'open_of_day > previous_close'",
    )
    rebalance: RebalanceSpec = RebalanceSpec()
    exits: ExitSpec = ExitSpec()
    fills: FillSpec = FillSpec()
    costs: CostSpec = CostSpec()
    sampling: SamplingSpec = SamplingSpec()
    max_entries_per_day: int = Field(1, ge=1, le=100)

    @field_validator("legs")
    @classmethod
    def _unique_legs(cls, legs: tuple[LegSpec, ...]) -> tuple[LegSpec, ...]:
        names = [leg.name for leg in legs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"leg names must be unique, repeated: {dupes}")
        return legs

    @model_validator(mode="after")
    def _instrument_datasets(self) -> StrategySpec:
        for leg in self.legs:
            if leg.instrument and not (leg.instrument.dataset or self.universe.underlying_dataset):
                raise ValueError(
                    f"leg {leg.name!r} trades the underlying but universe.underlying_dataset "
                    "is not set: set it, or give the leg instrument.dataset"
                )
        return self

    def instrument_dataset(self, leg: LegSpec) -> str:
        """The dataset an instrument leg trades (its own, else the underlying's)."""
        assert leg.instrument is not None
        dataset = leg.instrument.dataset or self.universe.underlying_dataset
        assert dataset is not None  # checked when the spec was validated
        return dataset

    @model_validator(mode="after")
    def _conditions(self) -> StrategySpec:
        if self.entry.when is None and self.exits.when is None and self.day_filter is None:
            return self
        # Compile now so a bad condition fails when the spec is loaded, naming its key.
        compile_conditions(
            self.entry.when,
            self.exits.when,
            self.day_filter,
            tuple(leg.name for leg in self.legs),
        )
        return self


def spec_document(spec: StrategySpec) -> dict[str, Any]:
    """The spec as plain JSON data, as ledgers store it and :func:`spec_hash` hashes it.

    An option leg is written without its (absent) ``instrument`` key, so specs written
    before instrument legs existed keep their hash and their cached day results.
    """
    data = spec.model_dump(mode="json")
    for leg in data.get("legs", ()):
        if leg.get("instrument") is None:
            leg.pop("instrument", None)
        elif leg.get("opt_type") is None:
            leg.pop("opt_type", None)
    return data


def spec_hash(spec: StrategySpec) -> str:
    """A stable hash of everything that can change results."""
    body = json.dumps(spec_document(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def load_spec(path: Path | str, *, overrides: dict[str, Any] | None = None) -> StrategySpec:
    """Load a strategy from YAML or JSON (``yaml.safe_load``), with dotted overrides."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read strategy ({exc})", path=str(path)) from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid YAML/JSON ({exc})", path=str(path)) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a strategy file must be a mapping", path=str(path))
    for dotted, value in (overrides or {}).items():
        target = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            target = target.setdefault(key, {})
        target[leaf] = value
    return parse_spec(data, source=str(path))


def parse_spec(data: dict[str, Any], *, source: str = "strategy") -> StrategySpec:
    """Validate plain data as a :class:`StrategySpec`; errors name the key path."""
    try:
        return StrategySpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        errors = exc.errors()
        failed_items = {str(e["loc"][0]) for e in errors if len(e["loc"]) > 1}
        for err in errors:
            loc = ".".join(str(p) for p in err["loc"])
            if err["type"] == "too_short" and loc in failed_items:
                continue  # "at least 1 item" only because an item above failed
            if err["type"] == "extra_forbidden":
                problems.append(f"{loc}: unknown key")
            elif err["type"] == "value_error" and not loc:
                # Condition errors already name their key and carry a caret line.
                problems.append(str(err["ctx"]["error"]) if "ctx" in err else err["msg"])
            else:
                problems.append(f"{loc}: {err['msg']}")
        raise ConfigError(
            f"{source}: invalid strategy: " + "; ".join(problems), problems=problems
        ) from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a strategy file (the dashboard's form builder uses it)."""
    return StrategySpec.model_json_schema()
