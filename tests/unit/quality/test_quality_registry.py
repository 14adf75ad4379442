"""Conformance: every registered rule is documented, typed, and quiet on clean data."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from _quality_helpers import at

from ticklake.lake import Lake
from ticklake.quality import Rule, Severity, rule_classes, select_rule_classes, validate_dataset


@pytest.mark.parametrize("cls", rule_classes(), ids=lambda c: c.id)
def test_rule_is_documented_and_typed(cls: type[Rule]) -> None:
    assert len(cls.description) > 80, "describe what is checked and what counts once"
    assert isinstance(cls.severity, Severity) and cls.schemas and cls.unit
    rule = cls()  # every parameter has a default
    for name, field in cls.Parameters.model_fields.items():
        assert field.description, f"{cls.id} parameter {name} has no description"
    assert rule.parameters.model_config.get("extra") == "forbid"
    assert rule.parameters.model_config.get("frozen") is True


def test_families_select_their_rules() -> None:
    assert [c.id for c in select_rule_classes(["R5"])] == [
        "R5.alignment",
        "R5.duplicates",
        "R5.gaps",
        "R5.order",
    ]
    assert [c.id for c in select_rule_classes(["S"])] == ["S1", "S2", "S3", "S4", "S5"]
    assert [c.id for c in select_rule_classes(["ohlc_order", "R2"])] == ["R1", "R2"]


def _clean(schema: str, n: int = 120) -> pl.DataFrame:
    ts = [at(i) for i in range(n)]
    price = [100.0 + 0.01 * (i % 7) for i in range(n)]
    base = {"ts": ts, "instrument": ["X"] * n}
    if schema == "trades":
        return pl.DataFrame(
            {**base, "trade_id": [str(i) for i in range(n)], "price": price, "size": [1.0] * n}
        )
    if schema == "prices":
        return pl.DataFrame({**base, "price": price})
    if schema == "bars":
        return pl.DataFrame(
            {
                "ts": [at(60 * i) for i in range(n)],
                "ts_end": [at(60 * i + 60) for i in range(n)],
                "instrument": ["X"] * n,
                "open": price,
                "high": [p + 0.05 for p in price],
                "low": [p - 0.05 for p in price],
                "close": price,
            }
        )
    if schema in ("quotes", "l2_1"):
        bid, ask = (
            ("bid_price", "ask_price") if schema == "quotes" else ("bid_price_0", "ask_price_0")
        )
        return pl.DataFrame(
            {**base, "seq": list(range(n)), bid: price, ask: [p + 0.02 for p in price]}
        )
    if schema == "l3":
        return pl.DataFrame(
            {
                **base,
                "seq": list(range(n)),
                "action": ["add"] * n,
                "price": price,
                "size": [1.0] * n,
            }
        )
    raise AssertionError(schema)


#: Rules that must find nothing in clean, regular, single-day data (session rules
#: judge the calendar, not the rows, and are exercised in test_quality_session).
QUIET = {
    "R1",
    "R2",
    "R3",
    "R4",
    "R5.alignment",
    "R5.duplicates",
    "R5.gaps",
    "R5.order",
    "R6",
    "P1",
    "P2",
    "Q1",
    "L1",
}


@pytest.mark.parametrize("schema", ["trades", "prices", "bars", "quotes", "l2_1", "l3"])
def test_clean_data_passes_every_applicable_rule(lake: Lake, schema: str) -> None:
    lake.write("clean", _clean(schema), schema=schema)
    report = validate_dataset(lake, "clean")
    assert report.days == [date(2024, 1, 2)]
    ran = {r.id for r in report.rules if r.status != "skipped"}
    assert ran & QUIET, "no rule applied"
    noisy = [(r.id, r.violations) for r in report.rules if r.id in QUIET and r.violations]
    assert noisy == []
