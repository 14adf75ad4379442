"""Write semantics: idempotency, merge order independence, dedupe, trading-date partitions.

Oracles are plain Python: sets of row tuples, dicts keyed by the dataset key, and
dates computed with ``zoneinfo``.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lakecheck import sha256
from lakegen import make_trades, row_set

import ticklake
from ticklake.errors import DuplicateKeyError
from ticklake.lake.lake import Lake

KOLKATA = ZoneInfo("Asia/Kolkata")
BASE_NS = int(datetime(2024, 3, 4, tzinfo=UTC).timestamp()) * 1_000_000_000
DAY_NS = 86_400 * 1_000_000_000
PROPERTY_SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# A row's key is (instrument, ts, trade_id); offsets span three days so rows fall on
# both sides of Kolkata midnight (18:30 UTC).
keys = st.tuples(
    st.sampled_from(["NIFTY24MARFUT", "BANKNIFTY24MARFUT"]),
    st.integers(0, 3 * DAY_NS - 1),
    st.sampled_from(["1", "2", "3"]),
)
row_values = st.tuples(
    st.integers(400_000, 400_100).map(lambda t: t * 0.05),
    st.integers(1, 20).map(lambda lots: lots * 25.0),
    st.sampled_from(["buy", "sell", None]),
)


def frame_from(rows: dict[tuple, tuple]) -> pl.DataFrame:
    """Build a trades frame from ``{(instrument, offset_ns, trade_id): (price, size, side)}``."""
    items = sorted(rows.items())
    return pl.DataFrame(
        {
            "ts": [BASE_NS + k[1] for k, _ in items],
            "instrument": [k[0] for k, _ in items],
            "trade_id": [k[2] for k, _ in items],
            "price": [v[0] for _, v in items],
            "size": [v[1] for _, v in items],
            "side": [v[2] for _, v in items],
        },
        schema_overrides={"ts": pl.Datetime("ns", "UTC"), "side": pl.String},
    )


def stored(lake: Lake) -> dict[tuple, tuple]:
    """The lake's rows as ``{key: values}``, failing on duplicate keys."""
    frame = lake.scan("ticks").collect().with_columns(pl.col("ts").dt.epoch("ns"))
    out: dict[tuple, tuple] = {}
    for row in frame.iter_rows(named=True):
        key = (row["instrument"], row["ts"] - BASE_NS, row["trade_id"])
        assert key not in out, f"duplicate key {key}"
        out[key] = (row["price"], row["size"], row["side"])
    return out


def file_hashes(lake: Lake) -> dict[str, str]:
    return {p.date.isoformat(): sha256(p.path) for p in lake.partitions("ticks")}


def new_lake() -> tuple[tempfile.TemporaryDirectory, Lake]:
    holder = tempfile.TemporaryDirectory()
    return holder, ticklake.init_lake(Path(holder.name) / "lake")


def write(lake: Lake, rows: dict[tuple, tuple]):
    return lake.write("ticks", frame_from(rows), schema="trades", timezone="Asia/Kolkata")


@PROPERTY_SETTINGS
@given(rows=st.dictionaries(keys, row_values, min_size=1, max_size=40))
def test_rewriting_the_same_frame_changes_nothing(rows: dict) -> None:
    holder, lake = new_lake()
    with holder:
        write(lake, rows)
        hashes = file_hashes(lake)
        manifests = {p.date: p.manifest for p in lake.partitions("ticks")}
        again = write(lake, rows)
        assert [p.changed for p in again.partitions] == [False] * len(again.partitions)
        assert again.rows_added == 0
        assert file_hashes(lake) == hashes
        assert {p.date: p.manifest for p in lake.partitions("ticks")} == manifests
        assert stored(lake) == rows


@settings(PROPERTY_SETTINGS, max_examples=12)
@given(
    rows=st.dictionaries(keys, row_values, min_size=2, max_size=40),
    split=st.integers(0, 1000),
)
def test_merge_order_does_not_matter(rows: dict, split: int) -> None:
    items = sorted(rows.items())
    cut = split % len(items)
    first, second = dict(items[:cut]), dict(items[cut:])
    outcomes = []
    for order in ([first, second], [second, first], [rows]):
        holder, lake = new_lake()
        with holder:
            for part in order:
                if part:
                    write(lake, part)
            outcomes.append((stored(lake), file_hashes(lake)))
    assert outcomes[0][0] == outcomes[1][0] == outcomes[2][0] == rows
    # Same rows give byte-identical files whatever the order of the writes.
    assert outcomes[0][1] == outcomes[1][1] == outcomes[2][1]


@PROPERTY_SETTINGS
@given(
    old=st.dictionaries(keys, row_values, min_size=1, max_size=30),
    new=st.dictionaries(keys, row_values, min_size=1, max_size=30),
)
def test_overlapping_write_dedupes_and_new_row_wins(old: dict, new: dict) -> None:
    holder, lake = new_lake()
    with holder:
        write(lake, old)
        result = write(lake, new)
        expected = {**old, **new}
        assert stored(lake) == expected
        assert result.rows_added == len(expected) - len(old)
        assert lake.verify().ok


@PROPERTY_SETTINGS
@given(
    rows=st.dictionaries(keys, row_values, min_size=1, max_size=20),
    repeats=st.lists(st.integers(0, 100), min_size=1, max_size=10),
)
def test_identical_duplicates_in_input_are_counted(rows: dict, repeats: list[int]) -> None:
    items = sorted(rows.items())
    extra = [items[i % len(items)] for i in repeats]
    frame = frame_from(dict(items))
    doubled = pl.concat([frame, frame_from(dict(extra)).head(0)])
    duplicated = pl.concat([doubled, *(frame_from(dict([item])) for item in extra)])
    holder, lake = new_lake()
    with holder:
        result = lake.write("ticks", duplicated, schema="trades", timezone="Asia/Kolkata")
        assert result.rows_in == len(items) + len(extra)
        assert result.duplicates_in_input == len(extra)
        assert stored(lake) == rows


def test_conflicting_duplicates_in_input_raise(lake: Lake) -> None:
    frame = make_trades(days=1, rows_per_day=10, seed=4)
    clash = frame.head(1).with_columns(pl.col("price") + 0.05)
    with pytest.raises(DuplicateKeyError, match=r"same key \('instrument', 'ts', 'trade_id'\)"):
        lake.write("nifty", pl.concat([frame, clash]), schema="trades", timezone="Asia/Kolkata")
    assert lake.partitions("nifty") == []


def test_new_row_replaces_old_row_with_same_key(lake: Lake) -> None:
    frame = make_trades(days=2, rows_per_day=100, seed=5)
    lake.write("nifty", frame, schema="trades", timezone="Asia/Kolkata")
    corrected = frame.filter(pl.col("trade_id").str.ends_with("7")).with_columns(
        pl.col("price") * 2, pl.lit("sell").alias("side")
    )
    result = lake.write("nifty", corrected)
    assert result.rows_added == 0
    assert all(p.changed for p in result.partitions)
    expected = {row[:3]: row for row in row_set(frame)}
    expected.update({row[:3]: row for row in row_set(corrected)})
    assert row_set(lake.scan("nifty").collect()) == set(expected.values())


@pytest.mark.parametrize(
    ("utc_moment", "local_date"),
    [
        (datetime(2024, 1, 2, 18, 29, 59, 999999, tzinfo=UTC), date(2024, 1, 2)),
        (datetime(2024, 1, 2, 18, 30, tzinfo=UTC), date(2024, 1, 3)),
        (datetime(2024, 1, 2, 20, 0, tzinfo=UTC), date(2024, 1, 3)),
        (datetime(2024, 1, 2, 3, 45, tzinfo=UTC), date(2024, 1, 2)),
    ],
)
def test_rows_land_in_their_kolkata_trading_date(
    lake: Lake, utc_moment: datetime, local_date: date
) -> None:
    assert utc_moment.astimezone(KOLKATA).date() == local_date  # the oracle agrees
    ts_ns = int(utc_moment.timestamp()) * 1_000_000_000 + utc_moment.microsecond * 1000 + 417
    frame = pl.DataFrame(
        {"ts": [ts_ns], "instrument": ["NIFTY"], "trade_id": ["1"], "price": [1.0], "size": [1.0]},
        schema_overrides={"ts": pl.Datetime("ns", "UTC")},
    )
    result = lake.write("nifty", frame, schema="trades", timezone="Asia/Kolkata")
    assert result.days == [local_date.isoformat()]
    path = lake.root / "bronze/nifty" / f"date={local_date.isoformat()}" / "data.parquet"
    stored_ns = pq.read_table(path).column("ts").cast("int64").to_pylist()
    assert stored_ns == [ts_ns]


def test_day_offset_moves_evening_rows_to_next_trading_day(lake: Lake) -> None:
    # CME-style: the trading day starts at 17:00 Chicago time, so local time + 7 h gives
    # the trading date.
    chicago = ZoneInfo("America/Chicago")
    moments = [
        datetime(2024, 3, 7, 16, 59, 59, tzinfo=chicago),
        datetime(2024, 3, 7, 17, 0, tzinfo=chicago),
        datetime(2024, 3, 8, 9, 30, tzinfo=chicago),
        datetime(2024, 3, 10, 18, 0, tzinfo=chicago),  # first evening after the DST change
        datetime(2024, 11, 3, 16, 30, tzinfo=chicago),  # the day DST ends
    ]
    frame = pl.DataFrame(
        {
            "ts": [int(m.timestamp()) * 1_000_000_000 for m in moments],
            "instrument": ["ESH4"] * len(moments),
            "trade_id": [str(i) for i in range(len(moments))],
            "price": [5000.25] * len(moments),
            "size": [1.0] * len(moments),
        },
        schema_overrides={"ts": pl.Datetime("ns", "UTC")},
    )
    lake.write("es", frame, schema="trades", timezone="America/Chicago", day_offset="7h")
    expected: dict[str, set[str]] = {}
    for i, moment in enumerate(moments):
        trading_date = (moment + timedelta(hours=7)).date()
        expected.setdefault(trading_date.isoformat(), set()).add(str(i))
    assert sorted(expected) == ["2024-03-07", "2024-03-08", "2024-03-11", "2024-11-03"]
    got = {
        p.date.isoformat(): set(pq.read_table(p.path).column("trade_id").to_pylist())
        for p in lake.partitions("es")
    }
    assert got == expected


def test_manifest_records_exact_nanosecond_bounds(lake: Lake) -> None:
    frame = make_trades(days=2, rows_per_day=50, seed=6)
    lake.write("nifty", frame, schema="trades", timezone="Asia/Kolkata")
    for part in lake.partitions("nifty"):
        ts = pq.read_table(part.path).column("ts").cast("int64")
        low, high = pc.min_max(ts).values()
        assert part.manifest is not None
        assert (part.manifest.min_ts_ns, part.manifest.max_ts_ns) == (low.as_py(), high.as_py())
        assert low.as_py() % 1000 != 0 or high.as_py() % 1000 != 0  # sub-µs digits exist
