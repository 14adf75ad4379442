"""The verdict at exactly ``allowed_violation_share`` (issue #13).

docs/quality.md and ``ticklake.quality.report``: a rule **fails** when its violations
*exceed* ``allowed_violation_share`` of what it checked; violations within the allowance
(equal included) are *tolerated*. So a share exactly at the allowance is tolerated and
one more violation fails — for the run's rule status, the verdict and the failing days.
"""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from _quality_helpers import Validate, at


def _prices(rows: int, bad: int) -> pl.DataFrame:
    """``rows`` prices on 2024-01-02, the first ``bad`` of them negative (R2 violations)."""
    return pl.DataFrame(
        {
            "ts": [at(i) for i in range(rows)],
            "instrument": ["X"] * rows,
            "price": [-1.0 if i < bad else 100.0 for i in range(rows)],
        }
    )


@pytest.mark.parametrize(
    ("rows", "allowed", "bad", "status", "verdict"),
    [
        (1000, 0.01, 10, "tolerated", "PASS"),  # 10 / 1000 == 0.01: at the allowance
        (1000, 0.01, 11, "fail", "FAIL"),  # 11 / 1000 > 0.01
        (100, 0.07, 7, "tolerated", "PASS"),  # 0.07 is not exact in binary: still equal
        (100, 0.07, 8, "fail", "FAIL"),
        (3, 1 / 3, 1, "tolerated", "PASS"),
        (3, 1 / 3, 2, "fail", "FAIL"),
    ],
)
def test_error_rule_at_exactly_the_allowed_share_is_tolerated(
    validate: Validate, rows: int, allowed: float, bad: int, status: str, verdict: str
) -> None:
    report = validate(
        _prices(rows, bad), "prices", ["R2"], {"R2": {"allowed_violation_share": allowed}}
    )
    r2 = report.rule("R2")
    assert (r2.checked, r2.violations) == (rows, bad)
    assert r2.status == status
    assert report.verdict == verdict
    failing = {date(2024, 1, 2): ["R2"]} if status == "fail" else {}
    assert report.failing_days == failing
    assert r2.failed_days == list(failing)


def _quotes(rows: int, wide: int) -> pl.DataFrame:
    """Two-sided quotes; the first ``wide`` have a 10 % spread (R6 allows 5 % of the mid)."""
    return pl.DataFrame(
        {
            "ts": [at(i) for i in range(rows)],
            "instrument": ["X"] * rows,
            "seq": list(range(rows)),
            "bid_price": [95.0 if i < wide else 99.99 for i in range(rows)],
            "bid_size": [1.0] * rows,
            "ask_price": [105.0 if i < wide else 100.01 for i in range(rows)],
            "ask_size": [1.0] * rows,
        }
    )


@pytest.mark.parametrize(
    ("wide", "status", "verdict"), [(1, "tolerated", "PASS"), (2, "fail", "INVESTIGATE")]
)
def test_warning_rule_default_allowance_is_inclusive(
    validate: Validate, wide: int, status: str, verdict: str
) -> None:
    # R6 (spread_sanity, a warning) allows 0.1 % by default: 1 of 1,000 is exactly that.
    report = validate(_quotes(1000, wide), "quotes", ["R6"])
    r6 = report.rule("R6")
    assert r6.parameters["allowed_violation_share"] == 0.001
    assert (r6.checked, r6.violations, r6.status, report.verdict) == (1000, wide, status, verdict)
