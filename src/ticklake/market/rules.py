"""Contract rules of Indian index derivatives, read from an editable CSV keyed by date.

The rules file (``data/market_rules.csv`` by default) holds one row per
``(underlying, valid_from[, valid_to])`` with the lot size, strike step, tick size and
expiry weekdays in force for the *nearest-expiry contracts traded on that date*. NSE
changes lot sizes contract by contract (far months first), so on a transition date a
far-month contract may already carry the next row's lot size: the file records when the
near contract switched. ``data/README.md`` says where each value comes from.

Examples:
    >>> rules = market_rules("BANKNIFTY", date(2024, 1, 10))
    >>> rules.lot_size, rules.strike_step, rules.weekly_expiry_weekday
    (15, 100.0, 2)
    >>> market_rules("NIFTY", date(2018, 6, 1)).weekly_expiry_weekday is None
    True
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

from ticklake.errors import ConfigError

#: The rules file shipped with ticklake; users may pass their own path instead.
DEFAULT_RULES_PATH = Path(__file__).resolve().parent / "data" / "market_rules.csv"

WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")

_COLUMNS = (
    "underlying",
    "valid_from",
    "valid_to",
    "lot_size",
    "strike_step",
    "tick_size",
    "weekly_expiry_weekday",
    "monthly_expiry_weekday",
    "source",
)


@dataclass(frozen=True)
class MarketRules:
    """Contract rules for one underlying on one date.

    Weekdays are Python's numbering (Monday = 0); ``weekly_expiry_weekday`` is ``None``
    while the underlying has no weekly contracts.
    """

    underlying: str
    valid_from: date
    valid_to: date | None
    lot_size: int
    strike_step: float
    tick_size: float
    weekly_expiry_weekday: int | None
    monthly_expiry_weekday: int
    source: str = ""


def market_rules(underlying: str, on: date, rules_path: Path | str | None = None) -> MarketRules:
    """Return the rules in force for ``underlying`` on the trading date ``on``."""
    path = _resolve(rules_path)
    table = load_rules(path)
    name = underlying.upper()
    rows = table.get(name)
    if rows is None:
        raise ConfigError(
            f"no market rules for underlying {name!r} in {path}; known underlyings: "
            f"{', '.join(sorted(table)) or '(none)'}. Add rows for it to that file.",
            underlying=name,
            path=str(path),
        )
    for row in rows:
        if row.valid_from <= on and (row.valid_to is None or on <= row.valid_to):
            return row
    first, last = rows[0].valid_from, rows[-1].valid_to
    covered = f"{first} .. {last or 'open end'}"
    raise ConfigError(
        f"no market rules for {name} on {on.isoformat()} in {path} (rows cover {covered}, "
        "with gaps where valid_to and the next valid_from do not meet). Add or extend a "
        "row in that file.",
        underlying=name,
        date=on.isoformat(),
        path=str(path),
    )


def known_underlyings(rules_path: Path | str | None = None) -> list[str]:
    """List the underlyings the rules file covers."""
    return sorted(load_rules(_resolve(rules_path)))


def rules_history(underlying: str, rules_path: Path | str | None = None) -> list[MarketRules]:
    """Return every rules row of ``underlying``, oldest first."""
    path = _resolve(rules_path)
    rows = load_rules(path).get(underlying.upper())
    if rows is None:
        raise ConfigError(
            f"no market rules for underlying {underlying.upper()!r} in {path}. "
            "Add rows for it to that file.",
            underlying=underlying.upper(),
            path=str(path),
        )
    return list(rows)


def load_rules(path: Path) -> dict[str, tuple[MarketRules, ...]]:
    """Parse and validate a rules file (cached by path and modification time)."""
    path = Path(path)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise ConfigError(
            f"market rules file {path} cannot be read ({exc.strerror or exc}); pass an "
            f"existing CSV or use the default {DEFAULT_RULES_PATH}.",
            path=str(path),
        ) from exc
    return _load_rules_cached(str(path), mtime)


def _resolve(rules_path: Path | str | None) -> Path:
    return DEFAULT_RULES_PATH if rules_path is None else Path(rules_path)


@lru_cache(maxsize=16)
def _load_rules_cached(path_text: str, mtime_ns: int) -> dict[str, tuple[MarketRules, ...]]:
    path = Path(path_text)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(
                f"{path}: missing column(s) {missing}; the header must be {','.join(_COLUMNS)}",
                path=path_text,
            )
        by_underlying: dict[str, list[MarketRules]] = {}
        for line_no, raw in enumerate(reader, start=2):
            row = _parse_row(path, line_no, raw)
            by_underlying.setdefault(row.underlying, []).append(row)
    table: dict[str, tuple[MarketRules, ...]] = {}
    for name, rows in by_underlying.items():
        rows.sort(key=lambda r: r.valid_from)
        for before, after in itertools.pairwise(rows):
            if before.valid_to is None or before.valid_to >= after.valid_from:
                raise ConfigError(
                    f"{path}: rows for {name} overlap: one valid from {before.valid_from} to "
                    f"{before.valid_to or 'open end'}, the next from {after.valid_from}. "
                    "Set valid_to of the earlier row before the later valid_from.",
                    path=path_text,
                    underlying=name,
                )
        table[name] = tuple(rows)
    return table


def _parse_row(path: Path, line_no: int, raw: dict[str, str]) -> MarketRules:
    def fail(column: str, why: str) -> ConfigError:
        return ConfigError(
            f"{path}, line {line_no}, column {column!r}: {why} (got {raw.get(column)!r}). "
            "Fix that cell.",
            path=str(path),
            row=line_no,
            column=column,
        )

    def parse_date(column: str, optional: bool) -> date | None:
        text = (raw.get(column) or "").strip()
        if not text and optional:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise fail(column, "expected a YYYY-MM-DD date") from None

    def parse_weekday(column: str, optional: bool) -> int | None:
        text = (raw.get(column) or "").strip().upper()
        if not text and optional:
            return None
        if text[:3] in WEEKDAYS and len(text) >= 3:
            return WEEKDAYS.index(text[:3])
        raise fail(column, f"expected one of {', '.join(WEEKDAYS)}" + (" or empty" * optional))

    def parse_number(column: str) -> float:
        try:
            value = float((raw.get(column) or "").strip())
        except ValueError:
            raise fail(column, "expected a number") from None
        if value <= 0:
            raise fail(column, "must be positive")
        return value

    underlying = (raw.get("underlying") or "").strip().upper()
    if not underlying:
        raise fail("underlying", "must not be empty")
    valid_from = parse_date("valid_from", optional=False)
    assert valid_from is not None
    valid_to = parse_date("valid_to", optional=True)
    if valid_to is not None and valid_to < valid_from:
        raise fail("valid_to", f"is before valid_from {valid_from}")
    lot = parse_number("lot_size")
    if lot != int(lot):
        raise fail("lot_size", "must be a whole number")
    monthly = parse_weekday("monthly_expiry_weekday", optional=False)
    assert monthly is not None
    return MarketRules(
        underlying=underlying,
        valid_from=valid_from,
        valid_to=valid_to,
        lot_size=int(lot),
        strike_step=parse_number("strike_step"),
        tick_size=parse_number("tick_size"),
        weekly_expiry_weekday=parse_weekday("weekly_expiry_weekday", optional=True),
        monthly_expiry_weekday=monthly,
        source=(raw.get("source") or "").strip(),
    )
