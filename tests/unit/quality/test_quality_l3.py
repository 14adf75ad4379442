from __future__ import annotations

import csv
import gzip
from collections import Counter
from pathlib import Path

import polars as pl
from _quality_helpers import Validate, at

from ticklake.ingest.pipeline import ingest_files
from ticklake.lake import Lake
from ticklake.quality import validate_dataset

SENTINEL = "9223372036854775807"


def test_l1_counts_null_prices_where_the_action_needs_one(validate: Validate) -> None:
    frame = pl.DataFrame(
        {
            "ts": [at(i) for i in range(5)],
            "instrument": ["ES"] * 5,
            "seq": list(range(5)),
            "action": ["add", "add", "modify", "clear", "cancel"],
            "price": [None, 4800.0, 4800.25, None, None],
            "size": [1.0, 1.0, 2.0, 0.0, 1.0],
        }
    )
    report = validate(frame, "l3", ["L1"])
    summary = report.rule("L1")
    assert (summary.checked, summary.violations) == (3, 1)
    assert summary.statistics == {
        "null_price_add": 1,
        "null_price_clear": 1,
        "null_price_cancel": 1,
    }
    assert report.verdict == "FAIL"


def test_databento_sentinel_prices_are_counted(shared_data: Path, lake: Lake) -> None:
    path = (
        shared_data
        / "databento-cme-es-mbo"
        / "orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.csv.gz"
    )
    with gzip.open(path, "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    sentinel = Counter(r["action"] for r in rows if r["price"] == SENTINEL)
    needs_price = sum(1 for r in rows if r["action"] in ("A", "M"))
    ingest_files(lake, "databento_mbo", [path], "es_mbo", executor="serial")
    report = validate_dataset(lake, "es_mbo", rules=["L1"])
    summary = report.rule("L1")
    assert sentinel == {"R": 1}  # the sample's one sentinel sits on the clear record
    assert summary.checked == needs_price
    assert summary.violations == sentinel["A"] + sentinel["M"] == 0
    assert summary.statistics == {"null_price_clear": 1}
    assert "null_price_clear = 1" in report.to_markdown()
