"""scan() bounds and filters against a plain-Python filter over the written rows."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ticklake

NS = 1_000_000_000
BASE = datetime(2024, 3, 8, tzinfo=UTC)  # spans the 2024-03-10 US DST change
ZONES = ["UTC", "Asia/Kolkata", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago"]


def instants(count: int) -> list[int]:
    step = 5 * 86_400 * NS // count
    base = int(BASE.timestamp()) * NS
    return [base + i * step + (i * 7919) % 1000 for i in range(count)]


ROWS = instants(480)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dataset_zone=st.sampled_from(ZONES),
    bound_zone=st.sampled_from([*ZONES, None]),
    start_hours=st.integers(-24, 130),
    length_hours=st.integers(0, 60),
    as_dates=st.booleans(),
)
def test_scan_bounds_match_a_plain_filter(
    dataset_zone: str, bound_zone: str | None, start_hours: int, length_hours: int, as_dates: bool
) -> None:
    frame = pl.DataFrame(
        {
            "ts": ROWS,
            "instrument": ["X"] * len(ROWS),
            "trade_id": [str(i) for i in range(len(ROWS))],
            "price": [1.0] * len(ROWS),
            "size": [1.0] * len(ROWS),
        },
        schema_overrides={"ts": pl.Datetime("ns", "UTC")},
    )
    start = BASE + timedelta(hours=start_hours)
    end = start + timedelta(hours=length_hours, minutes=17)
    zone = ZoneInfo(dataset_zone)

    def local_date(ts: int) -> date:
        return datetime.fromtimestamp(ts // NS, zone).date()

    if as_dates:
        first, last = start.date(), end.date()
        expected = {ts for ts in ROWS if first <= local_date(ts) <= last}
        bounds: dict = {"start": first, "end": last}
    else:
        low, high = int(start.timestamp()) * NS, int(end.timestamp()) * NS
        expected = {ts for ts in ROWS if low <= ts < high}
        if bound_zone is None:  # naive datetimes mean UTC
            bounds = {"start": start.replace(tzinfo=None), "end": end.replace(tzinfo=None)}
        else:
            bounds = {
                "start": start.astimezone(ZoneInfo(bound_zone)),
                "end": end.astimezone(ZoneInfo(bound_zone)),
            }
    with tempfile.TemporaryDirectory() as holder:
        lake = ticklake.init_lake(Path(holder) / "lake")
        lake.write("ticks", frame, schema="trades", timezone=dataset_zone)
        got = lake.scan("ticks", **bounds).collect()["ts"].dt.epoch("ns").to_list()
    assert sorted(got) == sorted(expected)


def test_filters_by_dict_and_expression(lake) -> None:
    from lakegen import make_trades, row_set

    frame = make_trades(days=2, rows_per_day=200, seed=51)
    lake.write("nifty", frame, schema="trades", timezone="Asia/Kolkata")
    got = lake.scan(
        "nifty",
        filters={"instrument": ["NIFTY24JANFUT", "FINNIFTY24JANFUT"], "side": "buy"},
    ).collect()
    expected = {
        row
        for row in row_set(frame)
        if row[1] in ("NIFTY24JANFUT", "FINNIFTY24JANFUT") and row[5] == "buy"
    }
    assert row_set(got) == expected
    big = lake.scan("nifty", filters=pl.col("size") >= 500, columns=["trade_id"]).collect()
    assert set(big["trade_id"]) == {row[2] for row in row_set(frame) if row[4] >= 500}


def test_datetime_bounds_in_a_far_zone_keep_rows_of_the_previous_trading_day(lake) -> None:
    # 10:30 UTC is 00:30 next day in Kiritimati (UTC+14) and 23:30 the day before in
    # Pago Pago (UTC-11): the two local dates are two days apart.
    moment = datetime(2024, 3, 9, 10, 30, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "ts": [int(moment.timestamp()) * NS],
            "instrument": ["X"],
            "trade_id": ["1"],
            "price": [1.0],
            "size": [1.0],
        },
        schema_overrides={"ts": pl.Datetime("ns", "UTC")},
    )
    lake.write("ticks", frame, schema="trades", timezone="Pacific/Pago_Pago")
    assert [p.date for p in lake.partitions("ticks")] == [date(2024, 3, 8)]
    kiritimati = ZoneInfo("Pacific/Kiritimati")
    start = (moment - timedelta(minutes=10)).astimezone(kiritimati)
    assert start.date() == date(2024, 3, 10)
    got = lake.scan("ticks", start=start, end=start + timedelta(hours=1)).collect()
    assert got.height == 1
