"""ticklake: a local-first tick-data lake, analytics and backtesting platform."""

from ticklake._version import __version__

__all__ = ["__version__"]
