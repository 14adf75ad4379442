from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ticklake.generate import GenerateSummary, generate_options

#: 2024-01-10 is a BANKNIFTY weekly expiry (Wednesday): far strikes go stale quickly.
CHAIN_DAY = date(2024, 1, 10)


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerateSummary, Path]:
    """One full-resolution day of a BANKNIFTY chain, weekly expiry only."""
    out = tmp_path_factory.mktemp("chain")
    summary = generate_options(
        "BANKNIFTY",
        start=CHAIN_DAY,
        days=1,
        out=out,
        seed=7,
        strikes_each_side=14,
        expiries=("weekly",),
    )
    return summary, out
