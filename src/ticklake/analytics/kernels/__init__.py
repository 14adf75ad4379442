"""Numba kernels behind path-dependent metrics (thin Python wrappers live in ``metrics``)."""
