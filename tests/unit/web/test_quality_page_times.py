"""The Quality page shows offending rows in the dataset's exchange time, the column named
with the zone (issue 13). Oracle: the UTC instants converted with zoneinfo here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
from _web_fixtures import make_client

import ticklake
from ticklake.web.pages import local_rows


def test_offending_rows_are_in_exchange_time(tmp_path: Path) -> None:
    lake = ticklake.init_lake(tmp_path / "lake")
    start = datetime(2024, 1, 2, 3, 45, 0, 250_000, tzinfo=UTC)  # 09:15:00.25 IST
    moments = [start + timedelta(seconds=i) for i in range(5)]
    frame = pl.DataFrame(
        {"ts": moments, "instrument": ["NIFTY"] * 5, "price": [1.0, -2.0, 3.0, 4.0, 5.0]}
    )
    lake.write("spot", frame, schema="prices", timezone="Asia/Kolkata")
    report = lake.validate("spot", rules=["R2"], executor="serial")
    report_id = report.write_to_lake(lake.root)
    client = make_client(lake.root)
    page = client.get("/quality", params={"report": report_id}).text
    local = moments[1].astimezone(ZoneInfo("Asia/Kolkata")).strftime("%Y-%m-%d %H:%M:%S.%f")
    assert "<th>ts (IST)</th>" in page
    assert local[:23] in page  # 2024-01-02 09:15:01.250
    assert "03:45:01" not in page
    client.app.state.jobs.shutdown()


def test_local_rows_keep_nanoseconds_and_leave_other_values() -> None:
    rows = [{"ts": "2024-07-01 12:00:00.123456789+00:00", "price": -1.0, "note": "2024 x"}]
    shown = local_rows(rows, "America/New_York")
    assert shown == [{"ts (EST/EDT)": "2024-07-01 08:00:00.123456789", "price": -1.0,
                      "note": "2024 x"}]  # fmt: skip
    assert local_rows(rows, None) == rows
