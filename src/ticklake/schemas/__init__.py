"""Canonical dataset schemas and their registry.

``get_schema("trades")`` returns the canonical :class:`DatasetSchema`; parameterised
schemas take arguments in the name (``"l2_10"`` is L2 with 10 levels).

Examples:
    >>> get_schema("l2_5").name
    'l2_5'
    >>> "trades" in schema_names()
    True
"""

from __future__ import annotations

from collections.abc import Callable

from ticklake.errors import SchemaMismatchError
from ticklake.schemas import canonical
from ticklake.schemas.base import TIMESTAMP, Column, DatasetSchema, schema_from_frame

_REGISTRY: dict[str, Callable[[], DatasetSchema]] = {
    "trades": canonical.trades,
    "quotes": canonical.quotes,
    "l3": canonical.l3,
    "book_updates": canonical.book_updates,
    "prices": canonical.prices,
    "funding": canonical.funding,
    "open_interest": canonical.open_interest,
    "bars": canonical.bars,
    "option_snapshots": canonical.option_snapshots,
    "option_snapshots_full": lambda: canonical.option_snapshots(full=True),
    # Results as datasets (``ticklake backtest publish``).
    "orders": canonical.orders,
    "fills": canonical.fills,
    "positions": canonical.positions,
    "pnl": canonical.pnl,
    "portfolio_snapshots": canonical.portfolio_snapshots,
}


def schema_names() -> list[str]:
    """List the canonical schema names (``l2_N`` accepts any N ≥ 1)."""
    return sorted([*_REGISTRY, "l2_N"])


def get_schema(name: str) -> DatasetSchema:
    """Return the canonical schema called ``name``."""
    if name in _REGISTRY:
        return _REGISTRY[name]()
    if name.startswith("l2_") and name[3:].isdigit() and int(name[3:]) >= 1:
        return canonical.l2(int(name[3:]))
    raise SchemaMismatchError(
        f"unknown schema {name!r}; canonical schemas are {', '.join(schema_names())}",
        schema=name,
    )


__all__ = [
    "TIMESTAMP",
    "Column",
    "DatasetSchema",
    "get_schema",
    "schema_from_frame",
    "schema_names",
]
