"""The NSE session list is cached per exchange_calendars version, so a process that only
needs trading days does not build the calendar (≈ 1.5 s of CPU, pandas) again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import exchange_calendars

SCRIPT = """
import json, sys
from datetime import date
from ticklake.market import calendar
days = calendar.trading_days(date(2023, 1, 1), date(2024, 12, 31))
print(json.dumps({"days": [d.isoformat() for d in days],
                  "pandas": "pandas" in sys.modules,
                  "exchange_calendars": "exchange_calendars" in sys.modules}))
"""


def _run(cache: Path) -> dict[str, object]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout))


def test_the_second_process_reads_the_cached_sessions_without_the_calendar(
    tmp_path: Path,
) -> None:
    first = _run(tmp_path)
    assert first["exchange_calendars"] is True  # built once
    files = list((tmp_path / "ticklake").glob("sessions-XBOM-*.txt"))
    assert len(files) == 1 and exchange_calendars.__version__ in files[0].name
    second = _run(tmp_path)
    assert second["exchange_calendars"] is False and second["pandas"] is False
    cal = exchange_calendars.get_calendar("XBOM")
    expected = [d.date().isoformat() for d in cal.sessions if 2023 <= d.year <= 2024]
    assert first["days"] == second["days"] == expected


def test_an_unreadable_cache_is_rebuilt(tmp_path: Path) -> None:
    first = _run(tmp_path)
    path = next((tmp_path / "ticklake").glob("sessions-XBOM-*.txt"))
    built = path.read_text()
    path.write_text("not a date\n")
    again = _run(tmp_path)
    assert again["days"] == first["days"] and again["exchange_calendars"] is True
    # Rebuilt as the first process built it (not compared with this process's calendar:
    # exchange_calendars starts it 20 years before *now*, so one built before midnight
    # UTC starts a day earlier than one built after).
    assert path.read_text() == built
    assert built.split()[0] in {
        d.date().isoformat() for d in exchange_calendars.get_calendar("XBOM").sessions[:3]
    }
