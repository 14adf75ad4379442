from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ticklake.errors import ConfigError, ExecutionError
from ticklake.execution import get_executor

sys.path.insert(0, str(Path(__file__).parent))
import _tasks


@pytest.mark.parametrize(
    ("name", "fresh"), [("serial", True), ("process", True), ("process", False)]
)
def test_map_returns_results_in_item_order(name: str, fresh: bool) -> None:
    executor = get_executor(name, workers=2, fresh_worker_per_task=fresh)
    seen: list[tuple[int, int]] = []
    items = [5, 1, 4, 2, 3]
    assert executor.map(_tasks.square, items, on_result=lambda i, r: seen.append((i, r))) == [
        25,
        1,
        16,
        4,
        9,
    ]
    assert sorted(seen) == [(0, 25), (1, 1), (2, 16), (3, 4), (4, 9)]


def test_fresh_worker_per_task_uses_a_new_process_each_time() -> None:
    pids = get_executor("process", workers=2).map(_tasks.pid_of, list(range(4)))
    assert len(set(pids)) == 4
    assert os.getpid() not in pids


def test_workers_serve_several_tasks_then_are_replaced() -> None:
    executor = get_executor("process", workers=2, tasks_per_worker=3)
    pids = executor.map(_tasks.pid_of, list(range(10)))
    counts = {pid: pids.count(pid) for pid in set(pids)}
    assert max(counts.values()) <= 3  # never more than 3 tasks in one process
    assert len(counts) >= 4  # 10 tasks / 3 per worker
    assert sum(c > 1 for c in counts.values()) >= 2  # and processes are reused
    assert os.getpid() not in counts


def test_a_worker_whose_memory_grew_past_the_limit_is_replaced() -> None:
    # A worker's own size (interpreter and imports) is the baseline; each heavy task
    # keeps 150 MiB more alive: over the limit of baseline + 100 MiB, every worker is
    # replaced after one task. Tasks that keep nothing reuse their two workers.
    baseline = max(get_executor("process", workers=2).map(_tasks.rss_mib, [0, 1]))
    assert baseline > 0
    executor = get_executor(
        "process", workers=2, tasks_per_worker=100, max_worker_rss_mib=baseline + 100
    )
    heavy = executor.map(_tasks.hold_memory, [150] * 4)
    assert len(set(heavy)) == 4
    light = executor.map(_tasks.hold_memory, [0] * 6)
    assert len(set(light)) <= 2


@pytest.mark.parametrize("tasks_per_worker", [None, 4])
def test_reused_workers_report_failures_and_deaths_like_fresh_ones(
    tasks_per_worker: int | None,
) -> None:
    executor = get_executor("process", workers=2, tasks_per_worker=tasks_per_worker)
    with pytest.raises(ExecutionError, match=r"task for 3 failed: ValueError: bad item 3"):
        executor.map(_tasks.fail_on_three, [1, 2, 3, 4, 5, 6])
    with pytest.raises(ExecutionError, match=r"worker for 2 died with exit code 9"):
        executor.map(_tasks.die_on_two, [1, 2, 3, 4])
    assert executor.map(_tasks.square, [5, 1, 4, 2, 3, 6, 7]) == [25, 1, 16, 4, 9, 36, 49]


@pytest.mark.parametrize("name", ["serial", "process"])
def test_task_failure_names_the_item(name: str) -> None:
    with pytest.raises(ExecutionError, match=r"task for 3 failed: ValueError: bad item 3"):
        get_executor(name, workers=2).map(_tasks.fail_on_three, [1, 2, 3, 4])


def test_worker_death_is_reported_with_exit_code() -> None:
    with pytest.raises(ExecutionError, match=r"worker for 2 died with exit code 9"):
        get_executor("process", workers=2).map(_tasks.die_on_two, [1, 2, 3])


def test_unknown_executor_lists_choices() -> None:
    with pytest.raises(ConfigError, match="choose one of serial, process, ray"):
        get_executor("threads")


def test_ctrl_c_stops_workers_and_says_how_far_it_got(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import _tasks
        from ticklake.errors import InterruptedRunError
        from ticklake.execution import get_executor
        items = [({str(tmp_path)!r}, x) for x in (1, 8, 9, 10)]
        try:
            get_executor("process", workers=2).map(_tasks.sleep_then_mark, items)
        except InterruptedRunError as exc:
            print("INTERRUPTED", exc)
            sys.exit(130)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 30
    while not (tmp_path / "done-1").exists():
        assert time.monotonic() < deadline, "first task never finished"
        time.sleep(0.05)
    time.sleep(1.0)  # let the parent collect task 1; task 2 (x=8) runs for 2.4 s
    os.killpg(proc.pid, signal.SIGINT)  # like Ctrl+C in a terminal: the whole group
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "INTERRUPTED interrupted after 1 of 4 tasks" in out
    time.sleep(3.5)  # longer than any task would take: no worker kept running
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done-1"]
