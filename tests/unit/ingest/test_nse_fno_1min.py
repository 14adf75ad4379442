from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from ticklake.ingest.readers import ReaderOptions, get_reader

IST = timedelta(hours=5, minutes=30)
SNIPPET = "banknifty-2017-options-1min-snippet"


def _raw(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _read(path: Path, **options: object) -> tuple[pl.DataFrame, pl.DataFrame]:
    batches = list(get_reader("nse_fno_1min").read(path, ReaderOptions(**options)))  # type: ignore[arg-type]
    return pl.concat([b.frame for b in batches]), pl.concat([b.rejected for b in batches])


def test_options_file(shared_data: Path) -> None:
    path = shared_data / SNIPPET / "BANKNIFTY_2017_OPTIONS.csv"
    raw = _raw(path)
    frame, rejected = _read(path)
    assert frame.height == len(raw) == 23 and rejected.height == 0
    by_instrument = {row["instrument"]: row for row in frame.iter_rows(named=True)}
    monthly = next(r for r in raw if r["Ticker"] == "BANKNIFTY25JAN1718300CE.NFO")
    bar = by_instrument["BANKNIFTY17JAN18300CE"]
    # 09:15:59 IST stamps the 09:15 bar: open 09:15:00 IST = 03:45 UTC, end 03:46 UTC.
    assert bar["ts"] == datetime(2017, 1, 2, 3, 45, tzinfo=UTC)
    assert bar["ts_end"] == datetime(2017, 1, 2, 3, 46, tzinfo=UTC)
    assert (bar["open"], bar["high"], bar["low"], bar["close"]) == tuple(
        float(monthly[k]) for k in ("Open", "High", "Low", "Close")
    )
    assert bar["volume"] == float(monthly["Volume"])
    assert bar["open_interest"] == float(monthly["OI"])
    # Weekly contract (expiry 2017-01-05 is not the month's monthly expiry).
    weekly = by_instrument["BANKNIFTY1710518900CE"]
    assert weekly["close"] == float(
        next(r for r in raw if r["Ticker"] == "BANKNIFTY05JAN1718900CE.NFO")["Close"]
    )
    weekly_count = sum(r["Contract_Monthly"] == "W" for r in raw)
    assert sum(len(s) == len("BANKNIFTY1710518900CE") for s in frame["instrument"]) >= 1
    assert frame.filter(pl.col("instrument").str.contains(r"^BANKNIFTY17105")).height == (
        weekly_count
    )


def test_futures_file(shared_data: Path) -> None:
    path = shared_data / SNIPPET / "BANKNIFTY_2017_FUTURES.csv"
    raw = _raw(path)
    frame, rejected = _read(path, batch_rows=10)
    assert frame.height == len(raw) == 25 and rejected.height == 0
    expected = {"2017-01-25": "BANKNIFTY17JANFUT", "2017-02-23": "BANKNIFTY17FEBFUT"}
    expected["2017-03-30"] = "BANKNIFTY17MARFUT"
    for row, bar in zip(raw, frame.iter_rows(named=True), strict=True):
        assert bar["instrument"] == expected[row["Expiry"]]
        stamp = datetime.fromisoformat(f"{row['Date']} {row['Time']}")
        assert bar["ts"] == (stamp.replace(second=0) - IST).replace(tzinfo=UTC)
        assert bar["close"] == float(row["Close"])
        assert bar["open_interest"] == float(row["OI"])


def test_batches_are_bounded(shared_data: Path) -> None:
    path = shared_data / SNIPPET / "BANKNIFTY_2017_FUTURES.csv"
    batches = list(get_reader("nse_fno_1min").read(path, ReaderOptions(batch_rows=10)))
    assert [b.frame.height for b in batches] == [10, 10, 5]


def test_bad_rows_are_rejected_with_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "Ticker,Date,Time,Open,High,Low,Close,Volume,OI,Type,Strike,Expiry,"
        "Contract_Monthly,Contract_Weekly\n"
        "BANKNIFTY25JAN1718300CE.NFO,2017-01-02,09:15:59,1,2,1,2,40,40,CE,18300,2017-01-25,I,IV\n"
        "BANKNIFTY25JAN1718300CE.NFO,2017-01-02,9h16,1,2,1,2,40,40,CE,18300,2017-01-25,I,IV\n"
        "BANKNIFTY25JAN1718300CE.NFO,2017-01-02,09:17:59,x,2,1,2,40,40,CE,18300,2017-01-25,I,IV\n"
        "BANKNIFTY25JAN1718300CE.NFO,2017-01-02,09:18:59,1,2,1,2,40,40,CE,18300,2017-01-26,I,IV\n"
        "NOTATICKER,2017-01-02,09:19:59,1,2,1,2,40,40,CE,18300,2017-01-25,I,IV\n"
        "BANKNIFTY25JAN1718300CE.NFO,2017-01-02,09:21:00,1,2,1,2,40,40,CE,18300,2017-01-25,I,IV\n"
    )
    frame, rejected = _read(path)
    assert rejected["source_row"].to_list() == [3, 4, 5, 6]
    reasons = rejected["reason"].to_list()
    assert reasons[0].startswith("Time") and reasons[1].startswith("Open")
    assert reasons[2].startswith("Expiry") and reasons[3].startswith("Ticker")
    # A bar stamped on the minute (09:21:00) is the bar that ends then (09:20).
    assert frame["ts"].to_list()[-1] == datetime(2017, 1, 2, 3, 50, tzinfo=UTC)


def test_missing_columns_raise(tmp_path: Path) -> None:
    from ticklake.errors import IngestError

    path = tmp_path / "x.csv"
    path.write_text("Ticker,Date,Open\nA,2017-01-02,1\n")
    with pytest.raises(IngestError, match=r"x\.csv: header lacks column\(s\) \['Time'"):
        _read(path)
