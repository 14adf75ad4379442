"""Black–Scholes prices and a simple volatility surface, vectorised over numpy arrays.

The normal CDF uses ``math.erf`` inside a Numba loop (no SciPy); with
``NUMBA_DISABLE_JIT=1`` the same loop runs as plain Python.

Examples:
    >>> import numpy as np
    >>> call = black_scholes(np.array([100.0]), 100.0, np.array([1.0]), np.array([0.2]), 0.0, "CE")
    >>> round(float(call[0]), 4)  # textbook value
    7.9656
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: Annual risk-free rate used for pricing (roughly the Indian 91-day T-bill yield).
RISK_FREE_RATE = 0.065
SECONDS_PER_YEAR = 365.0 * 86_400.0


@numba.njit(cache=False)
def _norm_cdf_kernel(values: np.ndarray, out: np.ndarray) -> None:
    inv_sqrt2 = 1.0 / math.sqrt(2.0)
    for i in range(values.size):
        out[i] = 0.5 * (1.0 + math.erf(values[i] * inv_sqrt2))


def norm_cdf(values: np.ndarray) -> np.ndarray:
    """Return the standard normal CDF of every element of ``values``."""
    flat = np.ascontiguousarray(values, dtype=np.float64).ravel()
    out = np.empty_like(flat)
    _norm_cdf_kernel(flat, out)
    return out.reshape(np.shape(values))


def black_scholes(
    spot: np.ndarray,
    strike: float,
    years_to_expiry: np.ndarray,
    volatility: np.ndarray,
    rate: float,
    opt_type: str,
) -> np.ndarray:
    """Return Black–Scholes prices (no dividends) of a call (``CE``) or put (``PE``)."""
    years = np.maximum(years_to_expiry, 1e-9)
    vol_sqrt_t = np.maximum(volatility, 1e-6) * np.sqrt(years)
    d1 = (np.log(spot / strike) + (rate + 0.5 * volatility**2) * years) / vol_sqrt_t
    d2 = d1 - vol_sqrt_t
    discounted_strike = strike * np.exp(-rate * years)
    if opt_type == "CE":
        return spot * norm_cdf(d1) - discounted_strike * norm_cdf(d2)
    return discounted_strike * norm_cdf(-d2) - spot * norm_cdf(-d1)


def standardised_moneyness(
    spot: np.ndarray, strike: float, years_to_expiry: np.ndarray, atm_volatility: np.ndarray
) -> np.ndarray:
    """Return ``ln(K/S) / (σ_atm √T)``, with T floored at one day so expiry day stays finite."""
    years = np.maximum(years_to_expiry, 1.0 / 365.0)
    return np.log(strike / spot) / (atm_volatility * np.sqrt(years))


def atm_volatility(base_volatility: float, years_to_expiry: np.ndarray) -> np.ndarray:
    """Term structure: short expiries trade at a premium that decays over about a week."""
    days = np.maximum(years_to_expiry, 0.0) * 365.0
    return base_volatility * (1.0 + 0.25 * np.exp(-days / 4.0))


def smile_volatility(atm: np.ndarray, moneyness: np.ndarray) -> np.ndarray:
    """Skewed smile: puts (low strikes) richer than calls, curvature in both wings."""
    m = np.clip(moneyness, -4.0, 4.0)
    return atm * (1.0 - 0.07 * m + 0.025 * m * m)
