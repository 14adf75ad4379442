"""Ctrl+C that lands inside the Numba kernel stops a run as ``interrupted`` (issue #13).

Numba runs the SIGINT handler while it boxes a compiled function's results, so CPython
raises ``SystemError: CPUDispatcher(...) returned a result with an exception set`` with
the KeyboardInterrupt two levels down its cause chain (measured: SystemError →
SystemError from ``_numba_unpickle`` → KeyboardInterrupt). The subprocess test that
sends a real SIGINT is in ``tests/integration/test_backtest_runs.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _engine_fixtures import HAND_DAY, HandChain, hand_spec, write_hand_lake

from ticklake.backtest import kernel as k
from ticklake.backtest.engine import run_day
from ticklake.backtest.runner import load_ledger, run_backtest
from ticklake.errors import ExecutionError, InterruptedRunError


def _numba_style_error(cause: BaseException) -> SystemError:
    """The chain CPython builds when a compiled call returns with an exception set."""
    inner = SystemError("<function _numba_unpickle> returned a result with an exception set")
    inner.__cause__ = cause
    outer = SystemError("CPUDispatcher(<function simulate_day>) returned a result with ...")
    outer.__cause__ = inner
    outer.__context__ = inner
    return outer


def _lake(tmp_path: Path) -> Any:
    chain = HandChain()
    chain.set_spot("09:15:00", 48_020.0)
    chain.contract(48000, "CE", 200.0, 200.5)
    chain.contract(48000, "PE", 180.0, 180.4)
    return write_hand_lake(tmp_path / "lake", chain)


def _raising(exc: BaseException) -> Any:
    def simulate_day(*args: Any) -> Any:
        raise exc

    return simulate_day


def test_system_error_caused_by_ctrl_c_is_raised_as_keyboard_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = _lake(tmp_path)
    monkeypatch.setattr(k, "simulate_day", _raising(_numba_style_error(KeyboardInterrupt())))
    with pytest.raises(KeyboardInterrupt):
        run_day(lake, hand_spec(), HAND_DAY)


def test_serial_run_interrupted_inside_the_kernel_is_interrupted_in_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = _lake(tmp_path)
    monkeypatch.setattr(k, "simulate_day", _raising(_numba_style_error(KeyboardInterrupt())))
    with pytest.raises(InterruptedRunError, match="interrupted after 0 of 1 tasks") as info:
        run_backtest(lake, hand_spec(), executor="serial", run_id="stopped")
    assert info.value.exit_code == 130
    assert load_ledger(lake.root / "runs" / "stopped")["status"] == "interrupted"


def test_other_system_errors_still_fail_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = _lake(tmp_path)
    monkeypatch.setattr(k, "simulate_day", _raising(_numba_style_error(ValueError("bad"))))
    with pytest.raises(ExecutionError, match="SystemError") as info:
        run_backtest(lake, hand_spec(), executor="serial", run_id="broken")
    assert not isinstance(info.value, InterruptedRunError)
    assert load_ledger(lake.root / "runs" / "broken")["status"] == "failed"
