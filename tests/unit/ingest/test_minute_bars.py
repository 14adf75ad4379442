"""Minute-bar readers against the real samples, checked row by row with csv/gzip."""

from __future__ import annotations

import csv
import gzip
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ticklake.errors import IngestError
from ticklake.ingest.readers import ReaderOptions, get_reader

EASTERN = ZoneInfo("America/New_York")
MINUTE = timedelta(minutes=1)


def _raw(path: Path) -> list[list[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:  # type: ignore[operator]
        return list(csv.reader(fh))


def _rows(reader: str, path: Path, **options: object) -> tuple[list[dict[str, object]], int, int]:
    batches = list(get_reader(reader).read(path, ReaderOptions(**options)))  # type: ignore[arg-type]
    rows = [r for b in batches for r in b.frame.iter_rows(named=True)]
    return rows, len(batches), sum(b.rejected.height for b in batches)


def _utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def test_cme_bars_real_sample(shared_data: Path) -> None:
    path = shared_data / "cme-6e-1min" / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz"
    raw = _raw(path)
    assert raw[0] == ["timestamp_utc", "open", "high", "low", "close", "volume"]
    rows, batches, rejected = _rows("cme_bars", path, batch_rows=10_000)
    assert len(rows) == len(raw) - 1 == 29_996 and batches == 3 and rejected == 0
    # Stamps mark the bar close: the Globex session reopening at 23:00 UTC has its first
    # bar stamped 23:01, i.e. the bar 23:00-23:01.
    for index in (0, 1, 12_345, 29_995):
        source, row = raw[index + 1], rows[index]
        assert row["ts_end"] == _utc(source[0]) and row["ts"] == _utc(source[0]) - MINUTE
        assert [row[c] for c in ("open", "high", "low", "close", "volume")] == [
            float(v) for v in source[1:]
        ]
        assert row["instrument"] == "6EH4"
    assert rows[0]["ts"] == datetime(2024, 1, 1, 23, 0, tzinfo=UTC)


def test_cme_bars_label_override_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "6EH4.XCME_1min_bars_20240101_20240131.csv"
    path.write_text(
        "timestamp_utc,open,high,low,close,volume\n"
        "2024-01-01 23:01:00,1.1076,1.10785,1.1076,1.1078,205\n"
        "2024-01-01 25:02:00,1.10775,1.1078,1.1077,1.10775,86\n"
        "2024-01-01 23:03:00,1.10775,n/a,1.10765,1.10765,47\n"
    )
    rows, _, _ = _rows("cme_bars", path, extra={"label": "open"})
    assert rows[0]["ts"] == datetime(2024, 1, 1, 23, 1, tzinfo=UTC)
    batch = next(iter(get_reader("cme_bars").read(path, ReaderOptions())))
    assert batch.rejected.to_dicts() == [
        {
            "source_row": 3,
            "raw": "2024-01-01 25:02:00,1.10775,1.1078,1.1077,1.10775,86",
            "reason": "cannot read ts from source column 'timestamp_utc': '2024-01-01 25:02:00'",
        },
        {
            "source_row": 4,
            "raw": "2024-01-01 23:03:00,1.10775,n/a,1.10765,1.10765,47",
            "reason": "cannot read high from source column 'high': 'n/a'",
        },
    ]


def test_cme_bars_missing_column_and_truncated_gzip(tmp_path: Path, shared_data: Path) -> None:
    path = tmp_path / "6EH4.XCME_1min_bars_20240101_20240131.csv"
    path.write_text("timestamp,open,high,low,close,volume\n2024-01-01 23:01:00,1,1,1,1,1\n")
    # A preset names its format and the missing column, not a "mapping" the user never
    # wrote (issue 13), and still lists the file's columns.
    with pytest.raises(
        IngestError, match=r"format 'cme_bars' needs a column 'timestamp_utc'.*timestamp, open"
    ):
        list(get_reader("cme_bars").read(path, ReaderOptions()))
    source = shared_data / "cme-6e-1min" / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz"
    cut = tmp_path / source.name
    cut.write_bytes(source.read_bytes()[:100_000])
    with pytest.raises(
        IngestError, match=r"6EH4\.XCME_1min_bars_20240101_20240131\.csv\.gz: file is corrupt"
    ):
        list(get_reader("cme_bars").read(cut, ReaderOptions(batch_rows=5_000)))


@pytest.mark.parametrize(
    ("name", "rows", "length"),
    [
        ("SPX_1min.txt_sample.txt", 4_753, timedelta(minutes=1)),
        ("SPX_5min.txt_sample.txt", 960, timedelta(minutes=5)),
        ("SPX_1hour.txt_sample.txt", 96, timedelta(hours=1)),
    ],
)
def test_firstrate_intraday_real_samples(
    shared_data: Path, name: str, rows: int, length: timedelta
) -> None:
    path = shared_data / "firstratedata-spx-sample" / name
    raw = _raw(path)
    read, _, rejected = _rows("firstrate_bars", path, batch_rows=2_000)
    assert len(read) == len(raw) == rows and rejected == 0
    for index in (0, rows // 2, rows - 1):
        source, row = raw[index], read[index]
        # Stamped at the bar's start, naive US/Eastern.
        start = datetime.strptime(source[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=EASTERN)
        assert row["ts"] == start.astimezone(UTC)
        assert row["ts_end"] == (start + length).astimezone(UTC)
        assert [row[c] for c in ("open", "high", "low", "close")] == [float(v) for v in source[1:5]]
        assert row["volume"] is None and row["instrument"] == "SPX"
    # 2023-03-16 09:30 EDT (DST began 2023-03-12) is 13:30 UTC; the hourly file's first
    # bar is stamped 09:00 (it holds 09:30-10:00 only).
    first_utc = datetime(2023, 3, 16, 13, 0 if "1hour" in name else 30, tzinfo=UTC)
    assert read[0]["ts"] == first_utc


def test_firstrate_daily_bars_span_eastern_midnights(shared_data: Path) -> None:
    path = shared_data / "firstratedata-spx-sample" / "SPX_1day.txt_sample.txt"
    raw = _raw(path)
    read, _, _ = _rows("firstrate_bars", path)
    assert len(read) == len(raw) == 12
    day = datetime.strptime(raw[3][0], "%Y-%m-%d").replace(tzinfo=EASTERN)
    assert read[3]["ts"] == day.astimezone(UTC)
    assert read[3]["ts_end"] == (day + timedelta(days=1)).astimezone(UTC)
    assert read[3]["close"] == float(raw[3][4])


def test_firstrate_dst_gap_and_bad_rows_rejected(tmp_path: Path) -> None:
    path = tmp_path / "SPX_1min.txt"
    path.write_text(
        "2023-03-10 15:59:00,3861.6,3862.0,3860.1,3861.59\n"
        "2023-03-12 02:30:00,3861.6,3862.0,3860.1,3861.59\n"
        "2023-03-13 09:30:00,3855.1,x,3850.0,3851.2\n"
    )
    batch = next(iter(get_reader("firstrate_bars").read(path, ReaderOptions())))
    assert batch.frame["ts"].to_list() == [datetime(2023, 3, 10, 20, 59, tzinfo=UTC)]
    reasons = dict(zip(batch.rejected["source_row"], batch.rejected["reason"], strict=True))
    # 02:30 on 2023-03-12 does not exist in New York (clocks jump 02:00 -> 03:00).
    assert reasons == {
        2: "cannot read ts from source column 'datetime': '2023-03-12 02:30:00'",
        3: "cannot read high from source column 'high': 'x'",
    }
    with pytest.raises(IngestError, match="cannot tell the instrument / bar length"):
        list(get_reader("firstrate_bars").read(tmp_path / "spx.txt", ReaderOptions()))


def test_ftx_btc_perp_real_sample(shared_data: Path) -> None:
    path = shared_data / "nautilus-crypto-samples" / "btc-perp-20211231-20220201_1m.csv.gz"
    raw = _raw(path)
    read, batches, rejected = _rows("ftx_bars", path, batch_rows=20_000)
    assert len(read) == len(raw) - 1 == 45_031 and batches == 3 and rejected == 0
    for index in (0, 20_000, 45_030):
        source, row = raw[index + 1], read[index]
        stamp = datetime.strptime(source[0], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        assert (row["ts"], row["ts_end"]) == (stamp - MINUTE, stamp)
        assert [row[c] for c in ("open", "high", "low", "close")] == [float(v) for v in source[1:5]]
        assert row["quote_volume"] == float(source[5]) and row["volume"] is None
        assert row["instrument"] == "BTC-PERP"
    # Contiguous minutes: every bar starts where the previous one ended.
    assert all(a["ts_end"] == b["ts"] for a, b in pairwise(read))
