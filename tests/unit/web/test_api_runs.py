"""Run endpoints: paging, sorting, filtering, facets, equity, drill-down, downloads, compare —
each checked against the run's Parquet files read with pandas/pyarrow."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow.parquet as pq
import pytest
from _engine_fixtures import GENERATED_DAYS
from _web_fixtures import BASE_RUN

RUN = f"/api/v1/runs/{BASE_RUN}"


def _trades(root: Path) -> pd.DataFrame:
    return pd.read_parquet(root / "runs" / BASE_RUN / "trades.parquet")


def test_runs_list_shows_the_finished_run_with_totals(
    client: Any, finished_lake_root: Path
) -> None:
    runs = client.get("/api/v1/runs").json()
    assert [r["run_id"] for r in runs] == [BASE_RUN]
    trades = _trades(finished_lake_root)
    assert runs[0]["status"] == "complete" and runs[0]["kind"] == "backtest"
    assert runs[0]["totals"]["fills"] == len(trades)
    daily = pd.read_parquet(finished_lake_root / "runs" / BASE_RUN / "daily.parquet")
    assert runs[0]["totals"]["net_pnl_paise"] == int(daily["net_pnl_paise"].sum())


def test_run_detail_carries_statistics_and_spec(client: Any, finished_lake_root: Path) -> None:
    body = client.get(RUN).json()
    stats = json.loads((finished_lake_root / "runs" / BASE_RUN / "stats.json").read_text())
    assert body["statistics"] == stats
    assert body["spec"]["rebalance"] == {"kind": "every", "minutes": 60, "points": None}
    assert "report.html" in body["files"] and body["days_total"] == len(GENERATED_DAYS)


def test_trades_page_sorted_by_price_descending_matches_pandas(
    client: Any, finished_lake_root: Path
) -> None:
    trades = _trades(finished_lake_root)
    expected = trades.sort_values("price_paise", ascending=False, kind="stable").iloc[5:15]
    page = client.get(
        f"{RUN}/tables/trades",
        params={"sort": "price_paise", "descending": True, "offset": 5, "limit": 10},
    ).json()
    assert page["total"] == len(trades)
    assert [r["price_paise"] for r in page["rows"]] == expected["price_paise"].tolist()
    assert [(r["date"], r["fill_index"]) for r in page["rows"]] == [
        (d.isoformat(), i) for d, i in zip(expected["date"], expected["fill_index"], strict=True)
    ]


def test_filters_combine_and_facets_count_the_filtered_rows(
    client: Any, finished_lake_root: Path
) -> None:
    trades = _trades(finished_lake_root)
    chosen = trades[
        (trades["leg"] == "ce") & (trades["side"] == "buy") & (trades["price_paise"] >= 20000)
    ]
    page = client.get(
        f"{RUN}/tables/trades",
        params={
            "filter": ["leg:eq:ce", "side:eq:buy", "price_paise:ge:20000"],
            "limit": 1000,
            "facets": True,
        },
    ).json()
    assert page["total"] == len(chosen) > 0
    assert sorted(r["price_paise"] for r in page["rows"]) == sorted(chosen["price_paise"])
    reasons = {f["value"]: f["count"] for f in page["facets"]["reason"]}
    assert reasons == chosen["reason"].value_counts().to_dict()
    assert {f["value"] for f in page["facets"]["leg"]} == {"ce"}


def test_datetime_date_and_in_filters(client: Any, finished_lake_root: Path) -> None:
    trades = _trades(finished_lake_root)
    cut = pd.Timestamp("2024-01-09T05:00:00Z")
    expected = trades[(trades["ts"] >= cut) & (trades["date"].astype(str).isin(["2024-01-09"]))]
    page = client.get(
        f"{RUN}/tables/trades",
        params={"filter": ["ts:ge:2024-01-09T05:00:00Z", "date:in:2024-01-09"], "limit": 1000},
    ).json()
    assert page["total"] == len(expected) > 0
    contains = client.get(
        f"{RUN}/tables/trades", params={"filter": "reason:contains:rebalance", "limit": 1}
    ).json()
    assert contains["total"] == int(trades["reason"].str.contains("rebalance").sum())


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"sort": "no_such"}, "unknown column"),
        ({"filter": "price_paise:like:1"}, "column:op:value"),
        ({"filter": "price_paise:gt:cheap"}, "not a valid"),
        ({"filter": "nope:eq:1"}, "unknown column"),
        ({"filter": "price_paise:contains:1"}, "text column"),
    ],
)
def test_bad_table_queries_are_422_with_the_reason(
    client: Any, params: dict[str, Any], needle: str
) -> None:
    response = client.get(f"{RUN}/tables/trades", params=params)
    assert response.status_code == 422
    assert needle in response.json()["error"]["message"]


def test_equity_is_the_cumulative_daily_net_pnl(client: Any, finished_lake_root: Path) -> None:
    daily = pd.read_parquet(finished_lake_root / "runs" / BASE_RUN / "daily.parquet")
    body = client.get(f"{RUN}/equity").json()
    equity = daily["net_pnl_paise"].cumsum()
    assert body["equity_paise"] == equity.tolist()
    peak = equity.cummax().clip(lower=0)
    assert body["drawdown_paise"] == (peak - equity).tolist()


def test_day_drill_down_returns_the_first_fills_with_their_inputs(
    client: Any, finished_lake_root: Path
) -> None:
    day = GENERATED_DAYS[2].isoformat()
    raw = pd.read_parquet(finished_lake_root / "runs" / BASE_RUN / "days" / day / "trades.parquet")
    body = client.get(f"{RUN}/days/{day}", params={"limit": 4}).json()
    assert body["fills_total"] == len(raw)
    first = raw.sort_values("fill_index").head(4)
    assert [f["bid_paise"] for f in body["fills"]] == first["bid_paise"].tolist()
    assert [f["quote_age_seconds"] for f in body["fills"]] == first["quote_age_seconds"].tolist()
    assert client.get(f"{RUN}/days/2024-02-01").status_code == 404


def test_csv_download_equals_the_parquet_file(client: Any, finished_lake_root: Path) -> None:
    response = client.get(f"{RUN}/download/trades", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f"{BASE_RUN}-trades.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    table = pq.read_table(finished_lake_root / "runs" / BASE_RUN / "trades.parquet").to_pylist()
    assert len(rows) == len(table)
    for got, want in zip(rows, table, strict=True):
        assert int(got["cash_flow_paise"]) == want["cash_flow_paise"]
        assert got["symbol"] == want["symbol"] and got["reason"] == want["reason"]


def test_parquet_download_is_the_file_byte_for_byte(client: Any, finished_lake_root: Path) -> None:
    response = client.get(f"{RUN}/download/daily", params={"format": "parquet"})
    assert (
        response.content == (finished_lake_root / "runs" / BASE_RUN / "daily.parquet").read_bytes()
    )


def test_compare_a_run_with_a_changed_copy(writable_client: Any, lake_copy: Path) -> None:
    from _web_fixtures import straddle_spec_data

    from ticklake.backtest.runner import run_backtest
    from ticklake.backtest.spec import parse_spec
    from ticklake.lake import open_lake

    spec = parse_spec(straddle_spec_data(rebalance={"kind": "none"}))
    run_backtest(open_lake(lake_copy), spec, run_id="no-rebalance", executor="serial")
    body = writable_client.get(
        "/api/v1/runs/compare", params={"a": BASE_RUN, "b": "no-rebalance"}
    ).json()
    diffs = {d["path"]: (d["a"], d["b"]) for d in body["spec_differences"]}
    assert diffs["rebalance.kind"] == ("every", "none")
    fills = next(s for s in body["statistics"] if s["name"] == "fills")
    a_fills = len(pd.read_parquet(lake_copy / "runs" / BASE_RUN / "trades.parquet"))
    b_fills = len(pd.read_parquet(lake_copy / "runs" / "no-rebalance" / "trades.parquet"))
    assert (fills["a"], fills["b"], fills["difference"]) == (a_fills, b_fills, b_fills - a_fills)


def test_unknown_run_is_404(client: Any) -> None:
    assert client.get("/api/v1/runs/nope").status_code == 404
    assert client.get("/api/v1/runs/nope/tables/trades").status_code == 404


# ------------------------------------------------------------- exchange time (issue #13)
# Oracle: the Parquet file's UTC instants converted with zoneinfo in the test. The run's
# entry window opens 09:20 IST, so its first fill is at 09:20 local (03:50 UTC).
KOLKATA = ZoneInfo("Asia/Kolkata")


def _parquet_ts(root: Path, name: str, column: str = "ts") -> list[datetime]:
    return pq.read_table(root / "runs" / BASE_RUN / name).column(column).to_pylist()


def test_a_0920_ist_entry_is_shown_as_0920_with_the_zone_named(
    client: Any, finished_lake_root: Path
) -> None:
    page = client.get(f"{RUN}/tables/trades", params={"limit": 1000}).json()
    assert (page["timezone"], page["timezone_abbreviation"], page["timezone_label"]) == (
        "Asia/Kolkata",
        "IST",
        "IST (Asia/Kolkata)",
    )
    ts_column = next(c for c in page["columns"] if c["name"] == "ts")
    assert ts_column["local"] == "ts_local"
    stored = _parquet_ts(finished_lake_root, "trades.parquet")
    # The UTC field an API client reads keeps its meaning; the local one is beside it.
    assert [r["ts"] for r in page["rows"]] == [t.isoformat() for t in stored]
    assert [r["ts_local"] for r in page["rows"]] == [
        t.astimezone(KOLKATA).isoformat() for t in stored
    ]
    first = page["rows"][0]
    assert first["ts"] == f"{GENERATED_DAYS[0].isoformat()}T03:50:00+00:00"
    assert first["ts_local"] == f"{GENERATED_DAYS[0].isoformat()}T09:20:00+05:30"
    daily = client.get(f"{RUN}/tables/daily").json()
    entries = _parquet_ts(finished_lake_root, "daily.parquet", "first_entry_ts")
    assert [r["first_entry_ts_local"] for r in daily["rows"]] == [
        t.astimezone(KOLKATA).isoformat() for t in entries
    ]
    assert {r["first_entry_ts_local"][11:16] for r in daily["rows"]} == {"09:20"}
    assert client.get(RUN).json()["timezone_label"] == "IST (Asia/Kolkata)"


def test_day_drill_down_gives_exchange_times_beside_the_utc_ones(
    client: Any, finished_lake_root: Path
) -> None:
    day = GENERATED_DAYS[1].isoformat()
    body = client.get(f"{RUN}/days/{day}", params={"limit": 1000}).json()
    assert body["timezone_label"] == "IST (Asia/Kolkata)"
    raw = pq.read_table(finished_lake_root / "runs" / BASE_RUN / "days" / day / "trades.parquet")
    stored = sorted(
        zip(raw.column("fill_index").to_pylist(), raw.column("ts").to_pylist(), strict=True)
    )
    assert [(f["ts"], f["ts_local"]) for f in body["fills"]] == [
        (t.isoformat(), t.astimezone(KOLKATA).isoformat()) for _, t in stored
    ]
    summary, local = body["summary"], body["summary_local"]
    entry_utc = datetime.fromisoformat(summary["first_entry_ts"])  # the file's, unchanged
    assert local["first_entry_ts"] == entry_utc.astimezone(KOLKATA).isoformat()
    assert local["first_entry_ts"] == f"{day}T09:20:00+05:30"
    assert local["last_exit_ts"] == f"{day}T15:20:00+05:30"  # the spec's exit_time


def test_csv_download_is_in_exchange_time_unless_utc_is_asked(
    client: Any, finished_lake_root: Path
) -> None:
    stored = _parquet_ts(finished_lake_root, "trades.parquet")
    local = list(csv.DictReader(io.StringIO(client.get(f"{RUN}/download/trades").text)))
    assert [r["ts"] for r in local] == [t.astimezone(KOLKATA).isoformat() for t in stored]
    assert local[0]["ts"] == f"{GENERATED_DAYS[0].isoformat()}T09:20:00+05:30"
    utc = list(csv.DictReader(io.StringIO(client.get(f"{RUN}/download/trades?tz=UTC").text)))
    assert [datetime.fromisoformat(r["ts"]) for r in utc] == stored
    assert utc[0]["ts"].endswith("+0000")  # UTC exactly as it was before, on request
    day = GENERATED_DAYS[0].isoformat()
    per_day = client.get(f"{RUN}/files/days/{day}/trades.parquet", params={"format": "csv"})
    assert next(csv.DictReader(io.StringIO(per_day.text)))["ts"] == f"{day}T09:20:00+05:30"
    assert client.get(f"{RUN}/download/trades?tz=IST").status_code == 422


def test_the_zone_is_the_runs_own_with_summer_time_named(
    writable_client: Any, lake_copy: Path
) -> None:
    spec_path = lake_copy / "runs" / BASE_RUN / "spec.json"
    spec = json.loads(spec_path.read_text())
    spec["time"]["timezone"] = "America/Chicago"
    spec_path.write_text(json.dumps(spec))
    page = writable_client.get(f"{RUN}/tables/trades", params={"limit": 3}).json()
    assert page["timezone_label"] == "CST/CDT (America/Chicago)"
    chicago = ZoneInfo("America/Chicago")
    stored = _parquet_ts(lake_copy, "trades.parquet")[:3]
    assert [r["ts_local"] for r in page["rows"]] == [
        t.astimezone(chicago).isoformat() for t in stored
    ]
    assert page["rows"][0]["ts_local"].endswith("-06:00")  # January: CST
