"""The end-of-run line of ``ticklake backtest run`` names marked closes (issue #13)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ticklake.cli import backtest_cmds


def _line(monkeypatch: pytest.MonkeyPatch, marked: int | None) -> str:
    printed: list[str] = []
    monkeypatch.setattr(backtest_cmds.console, "print", lambda text, **_: printed.append(str(text)))
    totals: dict[str, Any] = {
        "days": 3, "traded_days": 2, "skipped_days": 1, "fills": 12,
        "net_pnl_paise": 12_345, "costs_paise": 500,
    }  # fmt: skip
    if marked is not None:
        totals["marked_closes"] = marked
    result = SimpleNamespace(
        run_id="r1", status="finished", run_dir=Path("runs/r1"),
        ledger={"kind": "backtest", "totals": totals, "samples": {"kept": 12, "of": 12}},
    )  # fmt: skip
    backtest_cmds._finish(result)
    return printed[0]


@pytest.mark.parametrize(
    ("marked", "expected"),
    [
        (2, "12 fills, 2 marked closes (no fill), net P&L ₹123.45"),
        (1, "12 fills, 1 marked close (no fill), net P&L"),
        (0, "12 fills, net P&L ₹123.45"),
        (None, "12 fills, net P&L ₹123.45"),  # a ledger from before marked closes
    ],
)
def test_end_of_run_line_says_how_many_closes_were_marked(
    monkeypatch: pytest.MonkeyPatch, marked: int | None, expected: str
) -> None:
    line = _line(monkeypatch, marked)
    assert expected in line
    assert ("marked close" in line) == bool(marked)
