"""The window-statistics HTML report, read back out of the written file."""

from __future__ import annotations

import html
import json
import math
import re
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from ticklake.lake import Lake
from ticklake.stats import window_statistics
from ticklake.stats.report import write_html

IST = ZoneInfo("Asia/Kolkata")
#: Window open and close prices of four weekdays: three close higher, one lower.
DAYS = {
    date(2024, 1, 8): (100.0, 101.0),
    date(2024, 1, 9): (100.0, 99.0),
    date(2024, 1, 10): (100.0, 102.0),
    date(2024, 1, 11): (200.0, 201.0),
}


def _lake(lake: Lake) -> Lake:
    rows = [
        {"ts": datetime.combine(day, time.fromisoformat(clock), IST), "instrument": "IDX",
         "price": price, "volume": None}
        for day, (first, last) in DAYS.items()
        for clock, price in (("09:15:00", first), ("09:17:00", first), ("09:20:00", last))
    ]  # fmt: skip
    frame = pl.DataFrame(rows, schema_overrides={"volume": pl.Float64})
    lake.write("idx", frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC")),
               schema="prices", timezone="Asia/Kolkata")  # fmt: skip
    return lake


def _figure(document: str, key: str) -> dict:
    match = re.search(
        rf"<script type='application/json' id='figure-{key}'[^>]*>(.*?)</script>",
        document,
        flags=re.S,
    )
    assert match is not None, key
    return json.loads(match.group(1))


def test_report_file_holds_the_up_share_and_every_day(lake: Lake, tmp_path: Path) -> None:
    stats = window_statistics(_lake(lake), "idx", windows=["09:15-09:20"])
    path = write_html(stats, tmp_path / "out" / "stats.html")
    document = path.read_text(encoding="utf-8")

    up = _figure(document, "up-percent")["data"]
    assert [trace["x"] for trace in up] == [["09:15-09:20"]]
    assert up[0]["y"] == [75.0]  # 3 of the 4 days close higher than they open

    box = _figure(document, "distribution-return_bps")["data"][0]
    by_day = dict(zip(box["text"], box["y"], strict=True))
    assert by_day.keys() == {str(d) for d in DAYS}
    for day, (first, last) in DAYS.items():
        assert math.isclose(by_day[str(day)], (last / first - 1) * 10_000)

    title = re.search(r"<title>(.*?)</title>", document)
    assert title is not None
    assert html.unescape(title.group(1)) == "Window statistics — idx (IDX)"
    per_day = document.split("<h2>Per day</h2>", 1)[1]
    assert per_day.count("<tr><td>") == len(DAYS)
    assert [p.name for p in path.parent.iterdir()] == ["stats.html"]
