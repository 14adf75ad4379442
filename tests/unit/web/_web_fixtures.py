"""Helpers shared by the web tests (a uniquely named module: every test folder has a
``conftest``, so ``from conftest import ...`` would pick whichever was imported first)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backtest"))

from _engine_fixtures import GENERATED_DAYS, OPTIONS, SPOT

BASE_RUN = "straddle-base"
TOKEN = "test-token-0123456789abcdef"


def straddle_spec_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "web_straddle",
        "universe": {
            "underlying": "BANKNIFTY",
            "options_dataset": OPTIONS,
            "underlying_dataset": SPOT,
        },
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
        "rebalance": {"kind": "every", "minutes": 60},
    }
    data.update(changes)
    return data


def make_client(root: Path, **kwargs: Any) -> Any:
    from fastapi.testclient import TestClient

    from ticklake.web.app import create_app

    app = create_app(root, **kwargs)
    client = TestClient(app, base_url="http://127.0.0.1")
    client.get("/api/v1/health")  # receive the CSRF cookie like a browser's first page load
    client.headers["X-Ticklake-CSRF"] = client.cookies.get("ticklake_csrf") or ""
    return client
