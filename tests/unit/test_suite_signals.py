"""The suite itself: started with SIGINT ignored (``nohup make test &``), it never hangs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CTRL_C_TEST = "tests/unit/lake/test_lake_sql_interrupt.py::test_ctrl_c_stops_a_running_query"


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_ctrl_c_tests_pass_when_the_suite_starts_with_sigint_ignored() -> None:
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         CTRL_C_TEST],
        cwd=ROOT,
        env=env,
        preexec_fn=_ignore_sigint,  # what nohup and many job runners do to their children
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
    assert time.monotonic() - started < 240
