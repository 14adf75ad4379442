from __future__ import annotations

import signal
from pathlib import Path

import pytest

# A suite launched with SIGINT ignored (`nohup make test &`, as many CI agents and
# schedulers start jobs) inherits SIG_IGN: a real Ctrl+C would then do nothing and the
# tests that press it would wait forever. Python's own handler makes SIGINT raise again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real market samples in ../shared/data; skip the test when they are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real samples not found at {SHARED_DATA} (../shared/data); skipped")
    return SHARED_DATA
