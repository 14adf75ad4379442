"""Timestamps around every DST transition 2000-2030 survive a round trip through the lake.

Transition instants are found independently with the stdlib (``zoneinfo`` offsets,
bisected to the second); expected local dates and wall times come from ``zoneinfo`` too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow.parquet as pq
import pytest

from ticklake.lake.lake import Lake

NS = 1_000_000_000
START = datetime(2000, 1, 1, tzinfo=UTC)
END = datetime(2031, 1, 1, tzinfo=UTC)


def transitions(zone: ZoneInfo) -> list[int]:
    """UTC seconds at which ``zone``'s UTC offset changes between 2000 and 2030."""
    found = []
    moment = START
    offset = moment.astimezone(zone).utcoffset()
    while moment < END:
        later = moment + timedelta(days=1)
        later_offset = later.astimezone(zone).utcoffset()
        if later_offset != offset:
            low, high = int(moment.timestamp()), int(later.timestamp())
            while high - low > 1:
                middle = (low + high) // 2
                if datetime.fromtimestamp(middle, zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            found.append(high)
            offset = later_offset
        moment = later
    return found


def probe_instants(zone: ZoneInfo) -> list[int]:
    """UTC ns just before / at / after each transition (or at local midnights without DST)."""
    anchors = transitions(zone)
    if not anchors:  # Tokyo and Kolkata have no DST: probe local midnights instead
        anchors = [
            int(datetime(year, month, 1, tzinfo=zone).timestamp())
            for year in range(2000, 2031)
            for month in (1, 7)
        ]
    deltas_ns = [-3600 * NS, -NS, -1, 0, 1, 123_456_789, 1800 * NS, 3600 * NS + 7]
    return sorted({anchor * NS + delta for anchor in anchors for delta in deltas_ns})


def expected_local(ts_ns: int, zone: ZoneInfo) -> tuple[str, int]:
    """(local date, local wall time as naive ns) computed with the stdlib."""
    seconds, remainder = divmod(ts_ns, NS)
    local = datetime.fromtimestamp(seconds, zone)
    offset = local.utcoffset()
    assert offset is not None
    wall_ns = (seconds + int(offset.total_seconds())) * NS + remainder
    return local.date().isoformat(), wall_ns


@pytest.mark.parametrize(
    ("zone_name", "transitions_per_year"),
    [
        ("America/New_York", 2),
        ("Europe/London", 2),
        ("Australia/Sydney", 2),
        ("Asia/Tokyo", 0),
        ("Asia/Kolkata", 0),
    ],
)
def test_dst_round_trip(lake: Lake, zone_name: str, transitions_per_year: int) -> None:
    zone = ZoneInfo(zone_name)
    assert len(transitions(zone)) == 31 * transitions_per_year
    instants = probe_instants(zone)
    frame = pl.DataFrame(
        {
            "ts": instants,
            "instrument": ["X"] * len(instants),
            "trade_id": [str(i) for i in range(len(instants))],
            "price": [1.0] * len(instants),
            "size": [1.0] * len(instants),
        },
        schema_overrides={"ts": pl.Datetime("ns", "UTC")},
    )
    lake.write("ticks", frame, schema="trades", timezone=zone_name)

    oracle = {ts: expected_local(ts, zone) for ts in instants}
    by_date: dict[str, set[int]] = {}
    for ts, (day, _) in oracle.items():
        by_date.setdefault(day, set()).add(ts)
    stored = {
        part.date.isoformat(): set(pq.read_table(part.path).column("ts").cast("int64").to_pylist())
        for part in lake.partitions("ticks")
    }
    assert stored == by_date

    local = lake.scan("ticks", local_time=True).collect()
    assert local.schema["ts"] == pl.Datetime("ns", zone_name)
    got = dict(
        zip(
            local["ts"].dt.epoch("ns").to_list(),
            local["ts"].dt.replace_time_zone(None).dt.epoch("ns").to_list(),
            strict=True,
        )
    )
    assert got == {ts: wall for ts, (_, wall) in oracle.items()}
