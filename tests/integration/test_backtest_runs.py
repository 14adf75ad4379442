"""Backtest runs under stress: SIGKILL and resume, 16 concurrent runs, tampered outputs.

All runs use the small generated lake of the engine unit tests (3 days of a BANKNIFTY
weekly chain, built once per session) copied per test, so each test starts with no runs
and an empty day cache.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "backtest"))

from _engine_fixtures import (
    GENERATED_DAYS,
    OPTIONS,
    SPOT,
    copy_lake,
    generated_lake_root,
    merge,
    sha256,
)

from ticklake.backtest.runner import (
    finish_run,
    load_ledger,
    resume_backtest,
    run_backtest,
)
from ticklake.backtest.spec import StrategySpec, parse_spec
from ticklake.errors import ExecutionError

__all__ = ["generated_lake_root"]

pytestmark = pytest.mark.slow

BASE: dict[str, Any] = {
    "name": "runs",
    "universe": {"underlying": "BANKNIFTY", "options_dataset": OPTIONS, "underlying_dataset": SPOT},
    "time": {
        "start": GENERATED_DAYS[0].isoformat(),
        "end": GENERATED_DAYS[-1].isoformat(),
        "entry_windows": ["09:20-09:25"],
        "exit_time": "15:20",
    },
    "legs": [
        {"name": "ce", "opt_type": "CE", "side": "sell"},
        {"name": "pe", "opt_type": "PE", "side": "sell"},
    ],
    "rebalance": {"kind": "every", "minutes": 30},
}
RUN_FILES = ("trades.parquet", "daily.parquet")

# Runs a backtest and blocks forever after the first completed day, so the test can
# SIGKILL it at a known point (the ledger is saved before the progress callback).
_KILLABLE = """
import json, sys, time
from ticklake.backtest.runner import run_backtest
from ticklake.backtest.spec import parse_spec
from ticklake.lake import open_lake

def progress(totals):
    print("DONE", totals["days_done"], flush=True)
    time.sleep(600)

run_backtest(open_lake(sys.argv[1]), parse_spec(json.loads(sys.argv[2])), executor="serial",
             run_id=sys.argv[3], progress=progress)
"""


def _clock(minutes_after_nine: int) -> str:
    return f"{9 + minutes_after_nine // 60:02d}:{minutes_after_nine % 60:02d}"


def _spec(**overrides: Any) -> StrategySpec:
    return parse_spec(merge(BASE, overrides))


def test_sigkill_then_resume_equals_an_uninterrupted_run(
    generated_lake_root: Path, tmp_path: Path
) -> None:
    lake = copy_lake(generated_lake_root, tmp_path / "lake")
    spec = _spec()
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE, str(lake.root), spec.model_dump_json(), "killed"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "DONE 1", line
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    run_dir = lake.root / "runs" / "killed"
    before = load_ledger(run_dir)
    assert before["status"] == "running"
    done = [d for d, e in before["days"].items() if e["status"] == "done"]
    assert done == [GENERATED_DAYS[0].isoformat()]
    first_day = run_dir / "days" / done[0]
    mtimes = {f.name: f.stat().st_mtime_ns for f in first_day.iterdir()}

    resumed = resume_backtest(lake, "killed", executor="serial")
    assert resumed.status == "complete"
    after = resumed.ledger["days"]
    # The completed day was not recomputed: same ledger entry, files untouched.
    assert after[done[0]] == before["days"][done[0]]
    assert {f.name: f.stat().st_mtime_ns for f in first_day.iterdir()} == mtimes
    for day in GENERATED_DAYS[1:]:
        assert after[day.isoformat()]["status"] == "done"
        assert after[day.isoformat()]["cached"] is False

    whole = run_backtest(lake, spec, executor="serial", run_id="whole", use_cache=False)
    for name in RUN_FILES:
        assert sha256(resumed.run_dir / name) == sha256(whole.run_dir / name), name
    assert whole.trades().height > 0


def test_sixteen_concurrent_process_runs_equal_their_serial_runs(
    generated_lake_root: Path, tmp_path: Path
) -> None:
    lake = copy_lake(generated_lake_root, tmp_path / "lake")
    # One day per run keeps 16 runs at 16 worker processes on a 2-core CI machine.
    two_days = {"start": GENERATED_DAYS[1].isoformat(), "end": GENERATED_DAYS[1].isoformat()}
    specs = []
    for i in range(16):
        minute = 20 + 5 * i  # windows 09:20-09:25 ... 10:35-10:40
        window = f"{_clock(minute)}-{_clock(minute + 5)}"
        specs.append(_spec(name=f"par{i:02d}", time={**two_days, "entry_windows": [window]}))

    def launch(index: int) -> Any:
        return run_backtest(
            lake, specs[index], executor="process", workers=2, run_id=f"process{index:02d}"
        )

    with ThreadPoolExecutor(max_workers=16) as pool:
        parallel = list(pool.map(launch, range(16)))
    hashes = set()
    for index, result in enumerate(parallel):
        assert result.status == "complete"
        serial = run_backtest(
            lake, specs[index], executor="serial", run_id=f"serial{index:02d}", use_cache=False
        )
        for name in RUN_FILES:
            assert sha256(result.run_dir / name) == sha256(serial.run_dir / name), (index, name)
        hashes.add(sha256(serial.run_dir / "trades.parquet"))
        first = serial.trades()["ts"].min()
        assert first is not None
    assert len(hashes) == 16  # 16 different strategies, not one run 16 times


@pytest.mark.parametrize("tamper", ["rewrite_trades", "delete_summary"])
def test_tampered_day_is_detected_by_finish_and_redone_by_resume(
    generated_lake_root: Path, tmp_path: Path, tamper: str
) -> None:
    lake = copy_lake(generated_lake_root, tmp_path / "lake")
    spec = _spec()
    result = run_backtest(lake, spec, executor="serial", run_id="tampered")
    original = {name: sha256(result.run_dir / name) for name in RUN_FILES}
    ledger_before = load_ledger(result.run_dir)
    victim = GENERATED_DAYS[1].isoformat()
    day_dir = result.run_dir / "days" / victim
    if tamper == "rewrite_trades":
        trades = pl.read_parquet(day_dir / "trades.parquet")
        trades.with_columns(pl.col("price_paise") + 5).write_parquet(day_dir / "trades.parquet")
    else:
        (day_dir / "summary.json").unlink()

    with pytest.raises(ExecutionError, match=r"incomplete: days \['" + victim):
        finish_run(result.run_dir, load_ledger(result.run_dir), spec)
    assert load_ledger(result.run_dir)["status"] == "incomplete"

    resumed = resume_backtest(lake, "tampered", executor="serial")
    assert resumed.status == "complete"
    days = resumed.ledger["days"]
    assert days[victim]["cached"] is True  # re-done (from the day cache), not trusted
    assert days[victim]["outputs"] == ledger_before["days"][victim]["outputs"]
    for day in (GENERATED_DAYS[0].isoformat(), GENERATED_DAYS[2].isoformat()):
        assert days[day] == ledger_before["days"][day]
    assert {name: sha256(resumed.run_dir / name) for name in RUN_FILES} == original
    assert json.loads((day_dir / "summary.json").read_text())["date"] == victim


# A serial `ticklake backtest run` whose day kernel is slowed down: the kernel call runs a
# compiled spin loop (a few seconds, calibrated here) and then the real simulate_day,
# all inside one Numba function, compiled before the marker file is written, so a SIGINT
# sent once the marker exists lands while compiled code runs. Numba then reports the
# Ctrl+C as "SystemError: CPUDispatcher(...) returned a result with an exception set"
# (issue #13).
_SLOW_KERNEL_CLI = """
import sys, time
from pathlib import Path
import numba
import numpy as np
from ticklake.backtest import kernel as k

@numba.njit
def spin(n, out):
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1000003
    out[0] = x

real_simulate_day = k.simulate_day


@numba.njit
def slow_simulate_day(n, out, *args):
    spin(n, out)
    return real_simulate_day(*args)

out = np.zeros(1, np.int64)
spin(10, out)
started = time.perf_counter()
spin(20_000_000, out)
per_step = (time.perf_counter() - started) / 20_000_000
steps = int(4.0 / max(per_step, 1e-10))  # about 4 s in compiled code
marker = Path(sys.argv[1])

def simulate_day(*args):
    slow_simulate_day(0, out, *args)  # compile first (compiling is Python code)
    marker.write_text(str(steps))
    return slow_simulate_day(steps, out, *args)

k.simulate_day = simulate_day
from ticklake.cli import app
sys.argv = ["ticklake", *sys.argv[2:]]
app()
"""


def test_ctrl_c_inside_the_numba_kernel_is_interrupted_not_failed(tmp_path: Path) -> None:
    from _engine_fixtures import HandChain, hand_spec, write_hand_lake

    from ticklake.backtest.spec import spec_document

    chain = HandChain()
    chain.set_spot("09:15:00", 48_020.0)
    chain.contract(48000, "CE", 200.0, 200.5)
    chain.contract(48000, "PE", 180.0, 180.4)
    lake = write_hand_lake(tmp_path / "lake", chain)
    spec_path = tmp_path / "hand.json"
    spec_path.write_text(json.dumps(spec_document(hand_spec())))
    marker = tmp_path / "in-kernel"
    args = ["backtest", "run", str(spec_path), "--lake", str(lake.root)]
    args += ["--executor", "serial", "--no-cache"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_KERNEL_CLI, str(marker), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the kernel was never reached"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGINT)  # the spin runs for ~4 s more: inside Numba
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out + err
    assert proc.returncode == 130, text
    assert "interrupted" in text and "SystemError" not in text, text
    assert "failed" not in text, text
    (run_dir,) = [p.parent for p in (lake.root / "runs").glob("*/run.json")]
    ledger = load_ledger(run_dir)
    assert ledger["status"] == "interrupted"
    assert [e["status"] for e in ledger["days"].values()] == ["pending"]
    # Nothing was lost: resume finishes the run.
    assert resume_backtest(lake, run_dir.name, executor="serial").status == "complete"
