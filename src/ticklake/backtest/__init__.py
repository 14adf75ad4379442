"""Backtesting: strategy specs, day tasks, Numba kernels, ledger and reports.

Examples:
    >>> from ticklake.backtest import StrategySpec, load_spec, run_backtest
    >>> callable(run_backtest) and StrategySpec.__name__
    'StrategySpec'
"""

from ticklake.backtest.engine import run_day
from ticklake.backtest.runner import RunResult, resume_backtest, run_backtest
from ticklake.backtest.spec import StrategySpec, json_schema, load_spec, parse_spec

__all__ = [
    "RunResult",
    "StrategySpec",
    "json_schema",
    "load_spec",
    "parse_spec",
    "resume_backtest",
    "run_backtest",
    "run_day",
]
