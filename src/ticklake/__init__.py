"""ticklake: a local-first tick-data lake, analytics and backtesting platform.

Examples:
    >>> import ticklake
    >>> callable(ticklake.open_lake)
    True
"""

from ticklake._version import __version__
from ticklake.errors import TicklakeError
from ticklake.lake import Lake, init_lake, open_lake
from ticklake.schemas import DatasetSchema, get_schema

__all__ = [
    "DatasetSchema",
    "Lake",
    "TicklakeError",
    "__version__",
    "get_schema",
    "init_lake",
    "open_lake",
]
