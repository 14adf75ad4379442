"""Backtesting: strategy specs, day tasks, Numba kernels, ledger and reports."""
