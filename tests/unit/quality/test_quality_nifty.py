"""The rules catch the real NIFTY 50 sample's known flaws (see its PROVENANCE.md).

Oracles are read from the raw CSV files with plain Python.
"""

from __future__ import annotations

import csv
import gzip
from datetime import date, datetime
from itertools import groupby, pairwise
from pathlib import Path

from _quality_helpers import NIFTY_DAYS

from ticklake.quality import ValidationReport

FOLDER = "nse-nifty50-index-1s"


def _raw(shared_data: Path, day: str) -> list[tuple[datetime, float]]:
    with gzip.open(shared_data / FOLDER / f"{day}.csv.gz", "rt", newline="") as fh:
        return [(datetime.fromisoformat(t), float(v)) for t, v in csv.reader(fh)]


def _local(value: object) -> str:
    assert isinstance(value, datetime)
    return value.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Kolkata")).strftime(
        "%Y-%m-%d %H:%M:%S"
    )


def test_weekend_dated_copies_are_caught(shared_data: Path, nifty_report: ValidationReport) -> None:
    weekend = [d for d in NIFTY_DAYS if date.fromisoformat(d).weekday() >= 5]
    assert weekend == ["2022-08-27", "2022-09-03", "2022-10-01", "2022-10-02"]
    s2 = nifty_report.rule("S2")
    assert [d.isoformat() for d in s2.failed_days] == weekend
    # the copy detector names the session each copy repeats
    copies = {
        row["date"].isoformat(): row["original"].isoformat()
        for row in nifty_report.rule("S3").offending.iter_rows(named=True)
    }
    assert copies == {
        "2022-08-27": "2022-08-26",
        "2022-09-03": "2022-09-02",
        "2022-10-01": "2022-09-30",
        "2022-10-02": "2022-09-30",
    }
    # oracle: the raw Saturday file repeats Friday's values at the same times of day
    friday = {t.time(): v for t, v in _raw(shared_data, "2022-08-26")}
    saturday = _raw(shared_data, "2022-08-27")
    same = sum(1 for t, v in saturday if friday.get(t.time()) == v)
    assert same / len(saturday) > 0.99
    assert set(nifty_report.failing_days) == {date.fromisoformat(d) for d in weekend}
    assert nifty_report.verdict == "FAIL"


def test_the_outlier_print_is_flagged(shared_data: Path, nifty_report: ValidationReport) -> None:
    raw = _raw(shared_data, "2022-08-12")
    assert raw[1] == (datetime(2022, 8, 12, 9, 0, 2), 16529.4)
    top = nifty_report.rule("P1").offending.row(0, named=True)
    assert _local(top["ts"]) == "2022-08-12 09:00:02" and top["price"] == 16529.4
    assert top["deviation_bps"] > 500


def test_the_frozen_pre_open_is_flagged(shared_data: Path, nifty_report: ValidationReport) -> None:
    raw = _raw(shared_data, "2022-08-12")
    runs = []
    for value, group in groupby(raw, key=lambda r: r[1]):
        rows = list(group)
        runs.append((rows[-1][0] - rows[0][0], rows[0][0], rows[-1][0], len(rows), value))
    longest = max(runs)
    assert longest[1].strftime("%H:%M") == "09:07" and longest[2].strftime("%H:%M") == "09:15"
    p2 = nifty_report.rule("P2")
    found = [
        r for r in p2.offending.iter_rows(named=True) if _local(r["start"])[:10] == "2022-08-12"
    ]
    assert found, "the 2022-08-12 pre-open freeze is not among the top frozen runs"
    assert _local(found[0]["start"]) == longest[1].strftime("%Y-%m-%d %H:%M:%S")
    assert _local(found[0]["end"]) == longest[2].strftime("%Y-%m-%d %H:%M:%S")
    assert found[0]["rows"] == longest[3] and found[0]["value"] == longest[4]
    # pre-open rows (before 09:15 IST) are counted by S5
    pre_open = sum(1 for t, _ in raw if t.time() < datetime(2022, 1, 1, 9, 15).time())
    assert nifty_report.day_results[date(2022, 8, 12)]["S5"][1] >= pre_open


def test_partial_day_and_gaps(shared_data: Path, nifty_report: ValidationReport) -> None:
    s4 = nifty_report.rule("S4")
    partial = {r["date"]: r for r in s4.offending.iter_rows(named=True)}
    assert list(partial) == [date(2022, 12, 1)]
    last_raw = _raw(shared_data, "2022-12-01")[-1][0]
    assert _local(partial[date(2022, 12, 1)]["last_ts"]) == last_raw.strftime("%Y-%m-%d %H:%M:%S")
    assert last_raw.strftime("%H:%M:%S") == "11:15:48"
    raw = _raw(shared_data, "2022-08-12")
    gaps = sum(1 for a, b in pairwise(raw) if (b[0] - a[0]).total_seconds() > 5)
    assert nifty_report.day_results[date(2022, 8, 12)]["R5.gaps"][1] == gaps >= 1
