"""ticklake: a local-first tick-data lake, analytics and backtesting platform.

``open_lake`` / ``init_lake`` return a :class:`~ticklake.api.LakeSession`: the storage
:class:`~ticklake.lake.Lake` plus one method per stage (``ingest``, ``validate``,
``bars``, ``analytics``, ``backtest``, ``sql``, ...).

The names below are loaded on first use (PEP 562 ``__getattr__``), so ``import
ticklake`` (and with it every ``ticklake`` command, ``--help`` included) does not pay
for Polars and pyarrow until something asks for a lake.

Examples:
    >>> import ticklake
    >>> callable(ticklake.open_lake)
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ticklake._version import __version__

if TYPE_CHECKING:
    from ticklake.api import LakeSession, init_lake, open_lake
    from ticklake.errors import TicklakeError
    from ticklake.lake import Lake
    from ticklake.schemas import DatasetSchema, get_schema

#: Public name -> the module that defines it (imported when the name is first read).
_LAZY = {
    "DatasetSchema": "ticklake.schemas",
    "Lake": "ticklake.lake",
    "LakeSession": "ticklake.api",
    "TicklakeError": "ticklake.errors",
    "get_schema": "ticklake.schemas",
    "init_lake": "ticklake.api",
    "open_lake": "ticklake.api",
}

__all__ = [
    "DatasetSchema",
    "Lake",
    "LakeSession",
    "TicklakeError",
    "__version__",
    "get_schema",
    "init_lake",
    "open_lake",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        try:  # a submodule such as ``ticklake.errors`` after a bare ``import ticklake``
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later reads skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
