"""Parse and format NSE F&O contract symbols.

Formats (NSE trading symbols, as brokers and vendors write them):

- monthly option ``BANKNIFTY24JAN48000CE``: underlying, ``YY``, ``MMM``, strike, type.
  The expiry is that month's monthly expiry by the market rules and the calendar.
- weekly option ``BANKNIFTY2411048000CE``: underlying, ``YY``, one month character
  (``1``-``9``, ``O``, ``N``, ``D``), ``DD``, strike, type.
- file names: the same in lower case with ``.parquet`` (``banknifty1941128500ce.parquet``).
- futures ``BANKNIFTY17JANFUT``.

Strikes are written without a decimal point when whole. NSE index options use whole
strikes; stock options have half-rupee strikes (``IDEA24JAN12.5CE``), so a decimal
strike parses and formats as written.

Examples:
    >>> contract = parse_symbol("banknifty1941128500ce.parquet")
    >>> contract.expiry, contract.strike, contract.opt_type, contract.weekly
    (datetime.date(2019, 4, 11), 28500.0, 'CE', True)
    >>> format_symbol(contract)
    'BANKNIFTY1941128500CE'
    >>> parse_symbol("BANKNIFTY24JAN48000PE").expiry
    datetime.date(2024, 1, 25)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from ticklake.errors import ConfigError
from ticklake.market.calendar import monthly_expiry
from ticklake.market.rules import known_underlyings

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
#: NSE's one-character month code in weekly symbols.
WEEKLY_MONTH_CODES = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "O", "N", "D")

OptionType = Literal["CE", "PE"]

_STRIKE = r"(?P<strike>\d+(?:\.\d+)?)"
_TYPE = r"(?P<opt_type>CE|PE)"
_MONTHLY_TAIL = re.compile(rf"(?P<yy>\d\d)(?P<mon>{'|'.join(MONTHS)}){_STRIKE}{_TYPE}")
_WEEKLY_TAIL = re.compile(rf"(?P<yy>\d\d)(?P<m>[1-9OND])(?P<dd>\d\d){_STRIKE}{_TYPE}")
_FUTURE_TAIL = re.compile(rf"(?P<yy>\d\d)(?P<mon>{'|'.join(MONTHS)})FUT")
_UNDERLYING_CHARS = re.compile(r"[A-Z&\-]+")


class SymbolError(ConfigError):
    """A contract symbol could not be parsed; the message names the failing part."""


@dataclass(frozen=True)
class OptionContract:
    """One option contract: underlying, expiry, strike, call/put, weekly or monthly."""

    underlying: str
    expiry: date
    strike: float
    opt_type: OptionType
    weekly: bool


@dataclass(frozen=True)
class FutureContract:
    """One futures contract (monthly expiry)."""

    underlying: str
    expiry: date


def format_strike(strike: float) -> str:
    """Write a strike as NSE does: no decimal point when whole.

    Examples:
        >>> format_strike(48000.0), format_strike(12.5)
        ('48000', '12.5')
    """
    if strike <= 0:
        raise SymbolError(f"strike must be positive, got {strike!r}", strike=strike)
    if float(strike).is_integer():
        return str(int(strike))
    return f"{strike:.4f}".rstrip("0").rstrip(".")


def format_symbol(contract: OptionContract) -> str:
    """Return the NSE trading symbol of ``contract`` (weekly or monthly form)."""
    if contract.opt_type not in ("CE", "PE"):
        raise SymbolError(
            f"option type must be 'CE' or 'PE', got {contract.opt_type!r}",
            opt_type=contract.opt_type,
        )
    expiry = contract.expiry
    yy = f"{expiry.year % 100:02d}"
    if contract.weekly:
        code = WEEKLY_MONTH_CODES[expiry.month - 1]
        when = f"{yy}{code}{expiry.day:02d}"
    else:
        when = f"{yy}{MONTHS[expiry.month - 1]}"
    return f"{contract.underlying.upper()}{when}{format_strike(contract.strike)}{contract.opt_type}"


def file_name(contract: OptionContract) -> str:
    """Return the vendor's per-contract file name: lower-case symbol + ``.parquet``."""
    return format_symbol(contract).lower() + ".parquet"


def format_future_symbol(contract: FutureContract) -> str:
    """Return the NSE futures symbol, e.g. ``BANKNIFTY17JANFUT``."""
    exp = contract.expiry
    return f"{contract.underlying.upper()}{exp.year % 100:02d}{MONTHS[exp.month - 1]}FUT"


def parse_symbol(symbol: str, rules_path: Path | str | None = None) -> OptionContract:
    """Parse an NSE option symbol or vendor file name into an :class:`OptionContract`.

    Accepts upper or lower case, with or without a ``.parquet`` suffix or a directory.
    Raises :class:`SymbolError` naming the part that failed.
    """
    text = _clean(symbol)
    underlying, tail = _split_underlying(symbol, text, rules_path)
    weekly_match = _WEEKLY_TAIL.fullmatch(tail)
    monthly_match = _MONTHLY_TAIL.fullmatch(tail)
    if weekly_match is not None:
        year = 2000 + int(weekly_match["yy"])
        month = WEEKLY_MONTH_CODES.index(weekly_match["m"]) + 1
        try:
            expiry = date(year, month, int(weekly_match["dd"]))
        except ValueError:
            raise SymbolError(
                f"symbol {symbol!r}: weekly expiry part {tail[:5]!r} is not a date "
                f"(YY={weekly_match['yy']}, month code={weekly_match['m']}, "
                f"DD={weekly_match['dd']})",
                symbol=symbol,
                part="expiry",
            ) from None
        match, weekly = weekly_match, True
    elif monthly_match is not None:
        year = 2000 + int(monthly_match["yy"])
        month = MONTHS.index(monthly_match["mon"]) + 1
        try:
            expiry = monthly_expiry(underlying, year, month, rules_path)
        except ConfigError as exc:
            raise SymbolError(
                f"symbol {symbol!r}: cannot date the monthly expiry {monthly_match['mon']} "
                f"20{monthly_match['yy']} of {underlying}: {exc}",
                symbol=symbol,
                part="expiry",
            ) from exc
        match, weekly = monthly_match, False
    else:
        raise SymbolError(_explain_tail(symbol, underlying, tail), symbol=symbol, part="tail")
    strike = float(match["strike"])
    if strike <= 0:
        raise SymbolError(f"symbol {symbol!r}: strike must be positive", symbol=symbol)
    opt_type: OptionType = "CE" if match["opt_type"] == "CE" else "PE"
    return OptionContract(underlying, expiry, strike, opt_type, weekly)


def parse_future_symbol(symbol: str, rules_path: Path | str | None = None) -> FutureContract:
    """Parse an NSE futures symbol such as ``BANKNIFTY17JANFUT``."""
    text = _clean(symbol)
    underlying, tail = _split_underlying(symbol, text, rules_path)
    match = _FUTURE_TAIL.fullmatch(tail)
    if match is None:
        raise SymbolError(
            f"symbol {symbol!r}: after the underlying {underlying!r} expected YYMMMFUT "
            f"(e.g. 17JANFUT), got {tail!r}",
            symbol=symbol,
            part="tail",
        )
    year, month = 2000 + int(match["yy"]), MONTHS.index(match["mon"]) + 1
    return FutureContract(underlying, monthly_expiry(underlying, year, month, rules_path))


def _clean(symbol: str) -> str:
    if not isinstance(symbol, str) or not symbol.strip():
        raise SymbolError(f"symbol must be a non-empty string, got {symbol!r}", symbol=symbol)
    name = Path(symbol.strip()).name
    if name.lower().endswith(".parquet"):
        name = name[: -len(".parquet")]
    return name.upper()


def _split_underlying(symbol: str, text: str, rules_path: Path | str | None) -> tuple[str, str]:
    # Known underlyings first, longest first, so names with digits (NIFTYNXT50) and
    # prefixes of others (NIFTY vs NIFTYIT) split correctly.
    for name in sorted(known_underlyings(rules_path), key=len, reverse=True):
        if text.startswith(name) and text[len(name) : len(name) + 2].isdigit():
            return name, text[len(name) :]
    match = _UNDERLYING_CHARS.match(text)
    if match is None:
        raise SymbolError(
            f"symbol {symbol!r}: no underlying name at the start (expected letters such as "
            "BANKNIFTY)",
            symbol=symbol,
            part="underlying",
        )
    return match.group(0), text[match.end() :]


def _explain_tail(symbol: str, underlying: str, tail: str) -> str:
    base = f"symbol {symbol!r}: after the underlying {underlying!r}"
    if not tail.endswith(("CE", "PE")):
        return f"{base} the option type must end the symbol as CE or PE, got {tail[-2:]!r}"
    if len(tail) < 3 or not tail[:2].isdigit():
        return f"{base} expected a two-digit year, got {tail[:2]!r}"
    rest = tail[2:-2]
    if rest[:1].isalpha() and rest[:3] not in MONTHS and rest[:1] not in "OND":
        return f"{base} expected a month (JAN..DEC or a weekly code 1-9/O/N/D), got {rest[:3]!r}"
    return (
        f"{base} expected YYMMM<strike> (monthly, e.g. 24JAN48000) or YYMDD<strike> "
        f"(weekly, e.g. 2411048000) before CE/PE; the strike part of {tail!r} is not a number"
    )
