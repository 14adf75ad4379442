"""Lake endpoints against the Parquet files read independently (pyarrow, DuckDB)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from _engine_fixtures import GENERATED_DAYS, OPTIONS, SPOT


def _files(root: Path, dataset: str) -> list[Path]:
    return sorted((root / "bronze" / dataset).glob("date=*/data.parquet"))


def test_status_counts_rows_and_days_of_every_dataset(
    client: Any, finished_lake_root: Path
) -> None:
    body = client.get("/api/v1/lake/status").json()
    by_name = {d["name"]: d for d in body["datasets"]}
    assert set(by_name) == {f"bronze.{OPTIONS}", f"bronze.{SPOT}"}
    for dataset in (OPTIONS, SPOT):
        files = _files(finished_lake_root, dataset)
        entry = by_name[f"bronze.{dataset}"]
        assert entry["rows"] == sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        assert entry["bytes"] == sum(f.stat().st_size for f in files)
        assert entry["days"] == len(GENERATED_DAYS)
        assert (entry["first_day"], entry["last_day"]) == (
            GENERATED_DAYS[0].isoformat(),
            GENERATED_DAYS[-1].isoformat(),
        )
    assert body["totals"]["runs"] == 1


def test_partitions_list_each_day_with_its_rows_and_hash(
    client: Any, finished_lake_root: Path
) -> None:
    import hashlib

    parts = client.get(f"/api/v1/datasets/{OPTIONS}/partitions").json()
    files = _files(finished_lake_root, OPTIONS)
    assert [p["date"] for p in parts] == [f.parent.name[5:] for f in files]
    for part, path in zip(parts, files, strict=True):
        assert part["rows"] == pq.ParquetFile(path).metadata.num_rows
        assert part["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_dataset_detail_names_the_columns(client: Any) -> None:
    body = client.get(f"/api/v1/datasets/bronze.{SPOT}").json()
    assert [c["name"] for c in body["columns"]] == ["ts", "instrument", "price", "volume"]
    assert body["timezone"] == "Asia/Kolkata"


def test_preview_pages_through_one_day_in_file_order(client: Any, finished_lake_root: Path) -> None:
    day = GENERATED_DAYS[1].isoformat()
    raw = pq.read_table(finished_lake_root / "bronze" / SPOT / f"date={day}" / "data.parquet")
    expected = raw.column("price").to_pylist()[250:260]
    page = client.get(
        f"/api/v1/datasets/{SPOT}/preview", params={"date": day, "offset": 250, "limit": 10}
    ).json()
    assert page["total"] == raw.num_rows
    assert [row["price"] for row in page["rows"]] == expected
    # local_time=true shows exchange time: 09:15 IST is 03:45 UTC
    first = client.get(f"/api/v1/datasets/{SPOT}/preview", params={"date": day, "limit": 1}).json()
    assert first["rows"][0]["ts"].startswith(f"{day}T09:15:00")


def test_preview_names_the_zone_its_times_are_in(client: Any) -> None:
    day = GENERATED_DAYS[1].isoformat()
    url = f"/api/v1/datasets/{SPOT}/preview"
    local = client.get(url, params={"date": day, "limit": 1}).json()
    assert (local["timezone"], local["timezone_abbreviation"]) == ("Asia/Kolkata", "IST")
    assert local["columns"][0] == {
        "name": "ts",
        "type": "Datetime(time_unit='ns', time_zone='Asia/Kolkata')",
        "label": "ts (IST)",
    }
    assert "label" not in local["columns"][2]  # price: not a time
    utc = client.get(url, params={"date": day, "limit": 1, "local_time": "false"}).json()
    assert (utc["timezone"], utc["columns"][0]["label"]) == ("UTC", "ts (UTC)")
    assert utc["rows"][0]["ts"].startswith(f"{day}T03:45:00")


def test_unknown_dataset_is_404_naming_the_known_ones(client: Any) -> None:
    response = client.get("/api/v1/datasets/nifty_ticks/partitions")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "DatasetNotFoundError"
    assert "nifty_ticks" in error["message"] and f"bronze.{OPTIONS}" in error["message"]


def test_preview_of_a_missing_day_is_404(client: Any) -> None:
    response = client.get(f"/api/v1/datasets/{SPOT}/preview", params={"date": "2023-12-25"})
    assert response.status_code == 404


def test_sql_select_matches_duckdb_on_the_files(client: Any, finished_lake_root: Path) -> None:
    query = (
        f"SELECT date, count(*) AS n, round(avg(price), 4) AS mean_price FROM bronze.{SPOT} "
        "GROUP BY date ORDER BY date"
    )
    body = client.post("/api/v1/sql", json={"query": query}).json()
    pattern = str(finished_lake_root / "bronze" / SPOT / "date=*" / "data.parquet")
    expected = (
        duckdb.connect()
        .sql(
            f"SELECT count(*), round(avg(price), 4) FROM read_parquet('{pattern}', "
            "hive_partitioning=true) GROUP BY date ORDER BY date"
        )
        .fetchall()
    )
    assert [(r["n"], r["mean_price"]) for r in body["rows"]] == [tuple(e) for e in expected]
    assert [r["date"] for r in body["rows"]] == [d.isoformat() for d in GENERATED_DAYS]
    assert body["truncated"] is False


def test_sql_row_cap_truncates_and_says_so(client: Any) -> None:
    body = client.post(
        "/api/v1/sql", json={"query": f"SELECT price FROM bronze.{SPOT}", "max_rows": 7}
    ).json()
    assert body["row_count"] == 7 and body["truncated"] is True


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        (f"SELECT 1; SELECT * FROM bronze.{SPOT}", "exactly one statement"),
        (f"DELETE FROM bronze.{SPOT}", "only SELECT"),
        ("SELECT * FROM read_csv('/etc/passwd')", "refused"),
        ("SELEC price FROM nowhere", "does not parse"),
    ],
)
def test_sql_refusals_are_400_with_the_reason(client: Any, query: str, needle: str) -> None:
    response = client.post("/api/v1/sql", json={"query": query})
    assert response.status_code == 400
    assert needle in response.json()["error"]["message"]


def test_sql_error_message_reaches_the_client(client: Any) -> None:
    response = client.post(
        "/api/v1/sql", json={"query": "SELECT no_such_column FROM bronze." + SPOT}
    )
    assert response.status_code == 400
    assert "no_such_column" in response.json()["error"]["message"]
