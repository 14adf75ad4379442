"""Helpers shared by the browser tests (see ``conftest.py``; a unique module name)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "backtest"))

from _engine_fixtures import GENERATED_DAYS, OPTIONS, SPOT

BASE_RUN = "straddle-base"


def straddle_spec_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "e2e_straddle",
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


@dataclass
class LiveServer:
    url: str
    lake_root: Path
    app: Any
