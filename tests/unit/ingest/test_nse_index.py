from __future__ import annotations

import csv
import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from ticklake.ingest.readers import ReaderOptions, get_reader

IST = timedelta(hours=5, minutes=30)


def _raw_rows(path: Path) -> list[tuple[datetime, float]]:
    with gzip.open(path, "rt", newline="") as fh:
        return [(datetime.fromisoformat(t), float(v)) for t, v in csv.reader(fh)]


def test_reads_the_nifty_file_row_for_row(shared_data: Path) -> None:
    path = shared_data / "nse-nifty50-index-1s" / "2022-08-12.csv.gz"
    raw = _raw_rows(path)
    batches = list(get_reader("nse_index").read(path, ReaderOptions(batch_rows=5_000)))
    assert all(b.frame.height <= 5_000 for b in batches) and len(batches) > 1
    frame = pl.concat([b.frame for b in batches])
    assert sum(b.rejected.height for b in batches) == 0
    assert frame.height == len(raw)
    assert frame.schema["ts"] == pl.Datetime("ns", "UTC")
    assert set(frame["instrument"]) == {"NIFTY 50"}
    # Pre-open rows and the 16529.40 outlier (row 2) are kept for the quality stage.
    assert frame["price"][1] == 16529.4 == raw[1][1]
    for i in (0, 1, 12_345, len(raw) - 1):
        local, value = raw[i]
        assert frame["ts"][i] == (local - IST).replace(tzinfo=UTC)
        assert frame["price"][i] == value


def test_instrument_and_timezone_options(shared_data: Path) -> None:
    path = shared_data / "nse-nifty50-index-1s" / "2022-12-01.csv.gz"
    options = ReaderOptions(instrument="NIFTY", timezone="UTC")
    frame = pl.concat([b.frame for b in get_reader("nse_index").read(path, options)])
    first_local, _ = _raw_rows(path)[0]
    assert set(frame["instrument"]) == {"NIFTY"}
    assert frame["ts"][0] == first_local.replace(tzinfo=UTC)


def test_bad_lines_are_rejected_with_their_line_number(tmp_path: Path) -> None:
    path = tmp_path / "2022-11-22.csv"
    path.write_text(
        "2022-11-22 09:00:17,17848.05\n"
        "2022-11-22 09:00:18,abc\n"
        "\n"
        "22-11-2022 09:00:19,17852.75\n"
        "2022-11-22 09:00:20,17853\n"
    )
    batches = list(get_reader("nse_index").read(path, ReaderOptions()))
    rejected = pl.concat([b.rejected for b in batches])
    frame = pl.concat([b.frame for b in batches])
    assert frame["price"].to_list() == [17848.05, 17853.0]
    assert rejected["source_row"].to_list() == [2, 4]
    assert rejected["raw"][0] == "2022-11-22 09:00:18,abc"
    assert "value" in rejected["reason"][0] and "time" in rejected["reason"][1]
