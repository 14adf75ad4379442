"""ticklake: a local-first tick-data lake, analytics and backtesting platform.

``open_lake`` / ``init_lake`` return a :class:`~ticklake.api.LakeSession`: the storage
:class:`~ticklake.lake.Lake` plus one method per stage (``ingest``, ``validate``,
``bars``, ``analytics``, ``backtest``, ``sql``, ...).

Examples:
    >>> import ticklake
    >>> callable(ticklake.open_lake)
    True
"""

from ticklake._version import __version__
from ticklake.api import LakeSession, init_lake, open_lake
from ticklake.errors import TicklakeError
from ticklake.lake import Lake
from ticklake.schemas import DatasetSchema, get_schema

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
