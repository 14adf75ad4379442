"""Golden-file support: ``pytest tests/unit/backtest/conditions --update-golden`` (or
``TICKLAKE_UPDATE_GOLDEN=1``) rewrites ``tests/unit/backtest/golden/conditions/*.txt``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "conditions"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", default=False, help="rewrite golden plan files"
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """``golden(name, text)``: compare with ``golden/conditions/NAME.txt`` (or rewrite it)."""
    try:
        update = bool(request.config.getoption("--update-golden"))
    except ValueError:
        update = False
    update = update or os.environ.get("TICKLAKE_UPDATE_GOLDEN") == "1"

    def check(name: str, text: str) -> None:
        path = GOLDEN / f"{name}.txt"
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        assert path.is_file(), f"no golden file {path}; run pytest with --update-golden"
        assert text == path.read_text(encoding="utf-8"), (
            f"compiled plan differs from {path}; if the change is intended, rerun with "
            "--update-golden and review the diff"
        )

    return check
