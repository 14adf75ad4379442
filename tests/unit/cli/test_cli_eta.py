"""The backtest bar's ETA comes from the run's day-cost model, not Rich's rate."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from rich.console import Console

import ticklake.cli.backtest_cmds as backtest_cmds
from ticklake.backtest.eta import DayCostPrior, EtaModel, RunEta
from ticklake.cli._common import ProgressBars, human_duration, progress_bars


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=200, color_system=None), out


def _lines(text: str, containing: str) -> list[str]:
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", text)
    return [line for line in re.split(r"[\r\n]", plain) if containing in line]


def test_human_duration() -> None:
    cases = (0, 0.2, 59.5, 60, 80, 3600, 3725)
    assert [human_duration(s) for s in cases] == [
        "0 s", "1 s", "1 m 0 s", "1 m 0 s", "1 m 20 s", "1 h 0 m", "1 h 2 m",
    ]  # fmt: skip


def test_bar_shows_the_given_eta_and_zero_when_finished() -> None:
    console, out = _terminal()
    with progress_bars(on=console) as bars:
        bar = bars.add("backtest", 10)
        bar.update(completed=3, eta_seconds=80)
    assert re.search(r"ETA 1 m (19|20) s", _lines(out.getvalue(), "backtest")[-1])
    console, out = _terminal()
    with progress_bars(on=console) as bars:
        bar = bars.add("backtest", 2)
        bar.update(completed=2, eta_seconds=5)
    assert "ETA 0 s" in _lines(out.getvalue(), "backtest")[-1]


def test_bars_without_an_eta_keep_richs_estimate() -> None:
    console, out = _terminal()
    with progress_bars(on=console) as bars:
        bars.add("reading files", 5).advance()
    assert "ETA" not in _lines(out.getvalue(), "reading files")[-1]


def test_run_progress_feeds_the_model_and_shows_its_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    console, out = _terminal()

    @contextmanager
    def on_terminal(**_: Any) -> Iterator[ProgressBars]:
        with progress_bars(on=console) as bars:
            yield bars

    monkeypatch.setattr(backtest_cmds, "progress_bars", on_terminal)
    days = ["2024-01-01", "2024-01-02", "2024-01-03"]
    # Day 0 (fresh, 1 s) and day 1 (2 M rows in 30 s): 15 s per M rows, day 2 has 4 M.
    clock = iter([0.0, 0.0, 1.0, 31.0]).__next__
    model = EtaModel([1_000_000, 2_000_000, 4_000_000], prior=DayCostPrior(0, 1e-6, 0, "t"))
    eta = RunEta(days, model, clock=clock)

    def call(progress: Any) -> str:
        for done, day in enumerate(days[:2], start=1):
            progress({"days_done": done, "fills": 0, "net_pnl_paise": 0, "day": day})
        return "result"

    assert backtest_cmds._run_with_progress(call, len(days), eta) == "result"
    assert model.done_count == 2
    assert re.search(r"ETA (1 m 0 s|59 s)", _lines(out.getvalue(), "backtest")[-1])
