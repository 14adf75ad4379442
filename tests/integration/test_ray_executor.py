"""The Ray executor keeps the executor contract, and a backtest on Ray matches serial.

Starting Ray costs 10-25 s here, so one Ray session serves the whole module (the
``ray_executor`` fixture); executors created inside it (``run_backtest(executor="ray")``)
reuse that session and leave it running.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ticklake.backtest.runner import run_backtest
from ticklake.backtest.spec import StrategySpec, parse_spec
from ticklake.errors import ConfigError, ExecutionError, InterruptedRunError
from ticklake.execution import get_executor
from ticklake.generate import generate_options
from ticklake.ingest.pipeline import ingest_files
from ticklake.ingest.readers.base import ReaderOptions
from ticklake.lake import Lake, init_lake

DAYS = (date(2024, 1, 8), date(2024, 1, 9))


# Tasks: module-level so they pickle; the fixture makes Ray ship them by value because
# Ray's workers cannot import a test module.
def square_last_for_five(arg: tuple[str, int]) -> int:
    """Square ``x``; for 5, first wait until the other four items have finished."""
    directory, x = arg
    if x == 5:
        deadline = time.monotonic() + 60
        while len(list(Path(directory).iterdir())) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        Path(directory, f"done-{x}").write_text("ok")
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def sleep_then_mark(arg: tuple[str, int]) -> int:
    directory, x = arg
    Path(directory, f"started-{x}").write_text("ok")
    time.sleep(x)
    Path(directory, f"done-{x}").write_text("ok")
    return x


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[Any]:
    ray = pytest.importorskip(
        "ray", reason="Ray is not installed (optional extra: pip install 'ticklake[ray]')"
    )
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    if ray.is_initialized():
        ray.shutdown()
    executor = get_executor("ray", workers=2, fresh_worker_per_task=False)
    with executor:
        yield executor
    assert not ray.is_initialized(), "the executor that started Ray must stop it"


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """Two generated BANKNIFTY days (30-second snapshots, weekly expiry), ingested."""
    root = tmp_path_factory.mktemp("ray_lake")
    generate_options(
        "BANKNIFTY",
        start=DAYS[0],
        days=len(DAYS),
        out=root / "generated",
        strikes_each_side=2,
        seconds_step=30,
        expiries=("weekly",),
    )
    lake = init_lake(root / "lake")
    ingest_files(lake, "nse_options", [root / "generated" / "options"], "banknifty_options")
    ingest_files(
        lake,
        "nse_index",
        [root / "generated" / "spot"],
        "banknifty_spot",
        options=ReaderOptions(instrument="BANKNIFTY"),
    )
    return lake


def _straddle() -> StrategySpec:
    return parse_spec(
        {
            "name": "ray_straddle",
            "universe": {
                "underlying": "BANKNIFTY",
                "options_dataset": "banknifty_options",
                "underlying_dataset": "banknifty_spot",
            },
            "time": {
                "start": DAYS[0].isoformat(),
                "end": DAYS[-1].isoformat(),
                "entry_windows": ["09:20-09:25"],
                "exit_time": "15:20",
            },
            "legs": [
                {"name": "ce", "opt_type": "CE", "side": "sell"},
                {"name": "pe", "opt_type": "PE", "side": "sell"},
            ],
            "rebalance": {"kind": "every", "minutes": 60},
            # 30-second snapshots: let a quote live until the next one arrives.
            "fills": {"as_of_tolerance_seconds": 35, "max_quote_age_seconds": 35},
        }
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_ray_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ConfigError, match=r"pip install 'ticklake\[ray\]'"):
        get_executor("ray", workers=2)


@pytest.mark.slow
def test_results_come_back_in_item_order_as_each_finishes(
    ray_executor: Any, tmp_path: Path
) -> None:
    seen: list[tuple[int, int]] = []
    items = [(str(tmp_path), x) for x in (5, 1, 4, 2, 3)]
    results = ray_executor.map(
        square_last_for_five, items, on_result=lambda i, r: seen.append((i, r))
    )
    assert results == [25, 1, 16, 4, 9]
    assert sorted(seen) == [(0, 25), (1, 1), (2, 16), (3, 4), (4, 9)]
    # on_result reports in completion order: item 0 waits for the others, so comes last
    # (this also shows two tasks ran at the same time).
    assert seen[-1] == (0, 25)


@pytest.mark.slow
def test_task_error_names_the_item(ray_executor: Any) -> None:
    with pytest.raises(ExecutionError, match=r"task for 3 failed: ValueError: bad item 3"):
        ray_executor.map(fail_on_three, [1, 2, 3, 4])


@pytest.mark.slow
def test_ticklake_errors_arrive_as_themselves(ray_executor: Any) -> None:
    from ticklake.backtest.costs import load_cost_table

    with pytest.raises(ConfigError, match=r"cost table 'no_such_table' not found") as caught:
        ray_executor.map(load_cost_table, ["nse_fo", "no_such_table"])
    assert type(caught.value) is ConfigError


@pytest.mark.slow
def test_ctrl_c_cancels_running_tasks(ray_executor: Any, tmp_path: Path) -> None:
    items = [(str(tmp_path), x) for x in (3, 4, 5)]

    def press_ctrl_c_once_a_task_runs() -> None:
        deadline = time.monotonic() + 30
        while not any(tmp_path.glob("started-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c_once_a_task_runs, daemon=True)
    presser.start()
    with pytest.raises(InterruptedRunError, match=r"interrupted after 0 of 3 tasks"):
        ray_executor.map(sleep_then_mark, items)
    presser.join()
    time.sleep(6.0)  # longer than any task would still take
    assert not list(tmp_path.glob("done-*")), "a cancelled task kept running"


@pytest.mark.slow
def test_backtest_on_ray_is_byte_identical_to_serial(ray_executor: Any, small_lake: Lake) -> None:
    spec = _straddle()
    serial = run_backtest(small_lake, spec, executor="serial", run_id="serial", use_cache=False)
    on_ray = run_backtest(
        small_lake, spec, executor="ray", workers=2, run_id="on-ray", use_cache=False
    )
    assert serial.status == on_ray.status == "complete"
    assert on_ray.ledger["executor"] == "ray"
    assert not any(entry["cached"] for entry in on_ray.ledger["days"].values())
    traded = serial.daily().filter(status="traded")
    assert traded.height == len(DAYS), serial.daily()
    assert serial.trades().height >= 4 * len(DAYS)  # entry + exit per leg, at least
    for name in ("trades.parquet", "daily.parquet"):
        assert _sha256(on_ray.run_dir / name) == _sha256(serial.run_dir / name), name
