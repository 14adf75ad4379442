"""Property test: any page of any sort and filter equals pandas on the same rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticklake.web.results import Filter, page_of

OPS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


@st.composite
def tables(draw: st.DrawFn) -> pd.DataFrame:
    size = draw(st.integers(0, 60))
    values = st.integers(-3, 3)  # few distinct values: many ties test sort stability
    return pd.DataFrame(
        {
            "price_paise": draw(st.lists(values, min_size=size, max_size=size)),
            "leg": draw(
                st.lists(st.sampled_from(["ce", "pe", "wing"]), min_size=size, max_size=size)
            ),
            "fill_index": list(range(size)),
        }
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    frame=tables(),
    sort=st.sampled_from([None, "price_paise", "leg"]),
    descending=st.booleans(),
    op=st.sampled_from(sorted(OPS)),
    threshold=st.integers(-3, 3),
    leg=st.sampled_from([None, "ce", "pe"]),
    offset=st.integers(0, 70),
    limit=st.integers(1, 25),
)
def test_page_equals_pandas(
    tmp_path: Path,
    frame: pd.DataFrame,
    sort: str | None,
    descending: bool,
    op: str,
    threshold: int,
    leg: str | None,
    offset: int,
    limit: int,
) -> None:
    path = tmp_path / f"t{abs(hash((len(frame), sort, op, threshold, leg)))}.parquet"
    schema = {"price_paise": pl.Int64, "leg": pl.String, "fill_index": pl.Int64}
    pl.DataFrame(frame.to_dict("list"), schema=schema).write_parquet(path)
    filters = [Filter("price_paise", op, str(threshold))]
    expected = frame.query(f"price_paise {OPS[op]} {threshold}")
    if leg is not None:
        filters.append(Filter("leg", "eq", leg))
        expected = expected[expected["leg"] == leg]
    if sort is not None:
        expected = expected.sort_values(sort, ascending=not descending, kind="stable")
    page = page_of(
        path, offset=offset, limit=limit, sort=sort, descending=descending, filters=tuple(filters)
    )
    assert page["total"] == len(expected)
    window = expected.iloc[offset : offset + limit]
    assert [r["fill_index"] for r in page["rows"]] == window["fill_index"].tolist()


def test_a_page_with_a_zone_adds_exchange_times_and_keeps_the_utc_field(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from ticklake.web.local_time import zone_fields

    utc = [datetime(2024, 1, 10, 3, 50, tzinfo=UTC), datetime(2024, 7, 10, 14, 30, 5, tzinfo=UTC)]
    path = tmp_path / "t.parquet"
    frame = pl.DataFrame({"ts": utc, "leg": ["ce", "pe"]})
    frame.with_columns(pl.col("ts").dt.cast_time_unit("ns")).write_parquet(path)
    plain = page_of(path)
    assert "timezone" not in plain and set(plain["rows"][0]) == {"ts", "leg"}
    for zone, label in [
        ("Asia/Kolkata", "IST (Asia/Kolkata)"),
        ("America/Chicago", "CST/CDT (America/Chicago)"),
        ("UTC", "UTC"),
    ]:
        page = page_of(path, zone=zone_fields(zone))
        assert page["timezone_label"] == label
        assert page["columns"][0] == {**plain["columns"][0], "local": "ts_local"}
        assert "local" not in page["columns"][1]
        assert [r["ts"] for r in page["rows"]] == [r["ts"] for r in plain["rows"]]
        assert [r["ts_local"] for r in page["rows"]] == [
            t.astimezone(ZoneInfo(zone)).isoformat() for t in utc
        ]
    kolkata = page_of(path, zone=zone_fields("Asia/Kolkata"))["rows"][0]["ts_local"]
    assert kolkata == "2024-01-10T09:20:00+05:30"
