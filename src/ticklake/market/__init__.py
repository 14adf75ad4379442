"""Indian F&O market facts: contract rules by date, NSE calendar and expiries, symbols."""

from ticklake.market.calendar import (
    EXCHANGE_TIMEZONE,
    SESSION_CLOSE,
    SESSION_OPEN,
    expiries,
    is_trading_day,
    monthly_expiry,
    session_bounds,
    trading_days,
)
from ticklake.market.nse_symbols import (
    FutureContract,
    OptionContract,
    SymbolError,
    file_name,
    format_future_symbol,
    format_symbol,
    parse_future_symbol,
    parse_symbol,
)
from ticklake.market.rules import DEFAULT_RULES_PATH, MarketRules, market_rules

__all__ = [
    "DEFAULT_RULES_PATH",
    "EXCHANGE_TIMEZONE",
    "SESSION_CLOSE",
    "SESSION_OPEN",
    "FutureContract",
    "MarketRules",
    "OptionContract",
    "SymbolError",
    "expiries",
    "file_name",
    "format_future_symbol",
    "format_symbol",
    "is_trading_day",
    "market_rules",
    "monthly_expiry",
    "parse_future_symbol",
    "parse_symbol",
    "session_bounds",
    "trading_days",
]
