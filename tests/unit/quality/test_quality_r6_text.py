"""R6's text says what its verdict does: exactly 0.1 % violating is tolerated (issue #13)."""

from __future__ import annotations

from pathlib import Path

from ticklake.quality.rules.book import SpreadSanityRule

DOCS = Path(__file__).resolve().parents[3] / "docs" / "quality.md"


def test_r6_description_and_docs_say_at_least_99_9_percent_must_pass() -> None:
    # The verdict tolerates a share equal to allowed_violation_share (see
    # test_quality_share_boundary.py), so "more than 99.9 % must pass" would be wrong.
    assert "at least 99.9 % must pass" in SpreadSanityRule.description
    assert "> 99.9" not in SpreadSanityRule.description
    docs = DOCS.read_text(encoding="utf-8")
    assert "more than 99.9 %" not in docs
    assert "> 99.9 %" not in docs
    assert "at least 99.9 % of quotes must pass" in docs
