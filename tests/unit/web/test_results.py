"""Property test: any page of any sort and filter equals pandas on the same rows."""

from __future__ import annotations

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
