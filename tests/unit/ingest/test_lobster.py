"""LOBSTER readers against the real 2012-06-21 sample zips, parsed independently here."""

from __future__ import annotations

import csv
import io
import itertools
import os
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from ticklake.errors import IngestError
from ticklake.ingest.readers import ReaderOptions, get_reader

NEW_YORK = ZoneInfo("America/New_York")
ACTIONS = {"1": "add", "2": "cancel", "3": "delete", "4": "fill", "5": "fill_hidden"}


def _lobster(shared_data: Path, name: str) -> Path:
    return shared_data / "lobster-2012-06-21" / f"LOBSTER_SampleFile_{name}.zip"


def _raw_rows(archive: Path, kind: str, limit: int | None = None) -> list[list[str]]:
    with zipfile.ZipFile(archive) as zf:
        (member,) = [n for n in zf.namelist() if f"_{kind}_" in n]
        with zf.open(member) as fh:
            lines = io.TextIOWrapper(fh, encoding="ascii")
            return list(itertools.islice(csv.reader(lines), limit))


def _expected_ns(seconds_text: str, session: date) -> int:
    """Oracle: Decimal seconds + zoneinfo wall clock -> UTC epoch ns (no floats)."""
    whole, _, fraction = seconds_text.partition(".")
    local = datetime(session.year, session.month, session.day, tzinfo=NEW_YORK) + timedelta(
        seconds=int(whole)
    )
    epoch_seconds = int(local.astimezone(UTC).timestamp())
    return epoch_seconds * 1_000_000_000 + int(fraction.ljust(9, "0"))


def _read_all(reader_name: str, path: Path, **options: object) -> tuple[pl.DataFrame, pl.DataFrame]:
    reader = get_reader(reader_name)
    batches = list(reader.read(path, ReaderOptions(**options)))  # type: ignore[arg-type]
    return pl.concat([b.frame for b in batches]), pl.concat([b.rejected for b in batches])


def test_hand_computed_timestamp_of_first_aapl_message(shared_data: Path) -> None:
    archive = _lobster(shared_data, "AAPL_2012-06-21_1")
    frame = next(iter(get_reader("lobster_messages").read(archive, ReaderOptions(batch_rows=10))))
    frame = frame.frame
    # Raw line 1: 34200.004241176,1,16113575,18,5853300,1. 2012-06-21 is EDT (UTC-4):
    # 09:30:00.004241176 local = 13:30:00.004241176 UTC; 2012-06-21T00:00Z = 1340236800 s,
    # plus 13.5 h = 48600 s -> 1340285400 s.
    first = frame.row(0, named=True)
    assert frame["ts"].dt.epoch("ns")[0] == 1_340_285_400_004_241_176
    assert first["price"] == 585.33  # 5853300 / 10000
    assert (first["action"], first["side"], first["order_id"], first["size"]) == (
        "add",
        "bid",
        16113575,
        18.0,
    )
    assert (first["instrument"], first["seq"], first["venue"]) == ("AAPL", 1, "XNAS")


def test_messages_match_raw_file_row_for_row(shared_data: Path) -> None:
    archive = _lobster(shared_data, "GOOG_2012-06-21_1")
    raw = _raw_rows(archive, "message")
    frame, rejected = _read_all("lobster_messages", archive, batch_rows=20_000)
    assert frame.height == len(raw) - rejected.height == 49_482
    assert rejected.height == 0
    assert frame["seq"].to_list() == list(range(1, len(raw) + 1))
    ts = frame["ts"].dt.epoch("ns").to_list()
    session = date(2012, 6, 21)
    for i in [*range(300), *range(300, len(raw), 997), len(raw) - 1]:
        time_text, event, order_id, size, price, direction = raw[i]
        row = frame.row(i, named=True)
        assert ts[i] == _expected_ns(time_text, session), i
        assert row["action"] == ACTIONS[event]
        assert row["side"] == {"1": "bid", "-1": "ask"}[direction]
        assert row["price"] == float(Decimal(price) / 10_000)
        assert row["size"] == float(size)
        assert row["order_id"] == (None if order_id == "0" else int(order_id))
    counts = dict(frame.group_by("action").len().iter_rows())
    raw_counts: dict[str, int] = {}
    for line in raw:
        raw_counts[ACTIONS[line[1]]] = raw_counts.get(ACTIONS[line[1]], 0) + 1
    assert counts == raw_counts


def test_book_rows_take_time_and_seq_of_their_message(shared_data: Path) -> None:
    archive = _lobster(shared_data, "GOOG_2012-06-21_10")
    raw_book = _raw_rows(archive, "orderbook", limit=1500)
    raw_messages = _raw_rows(archive, "message", limit=1500)
    reader = get_reader("lobster_book")
    options = ReaderOptions(batch_rows=1500, extra={"levels": 10})
    assert reader.schema_for(options) == "l2_10"
    batch = next(iter(reader.read(archive, options)))
    assert batch.frame.height == 1500 and batch.rejected.height == 0
    frame = batch.frame
    ts = frame["ts"].dt.epoch("ns").to_list()
    for i in [0, 1, 2, 777, 1499]:
        row = frame.row(i, named=True)
        assert ts[i] == _expected_ns(raw_messages[i][0], date(2012, 6, 21))
        assert row["seq"] == i + 1
        for level in range(10):
            ask_price, ask_size, bid_price, bid_size = raw_book[i][4 * level : 4 * level + 4]
            assert row[f"ask_price_{level}"] == float(Decimal(ask_price) / 10_000)
            assert row[f"ask_size_{level}"] == float(ask_size)
            assert row[f"bid_price_{level}"] == float(Decimal(bid_price) / 10_000)
            assert row[f"bid_size_{level}"] == float(bid_size)


def test_full_book_row_count_equals_message_count(shared_data: Path) -> None:
    archive = _lobster(shared_data, "AMZN_2012-06-21_1")
    frame, rejected = _read_all("lobster_book", archive, batch_rows=60_000, extra={"levels": 1})
    assert frame.height == len(_raw_rows(archive, "orderbook")) == 57_515
    assert rejected.height == 0
    assert frame["seq"].to_list() == list(range(1, 57_516))


def test_book_level_one_moves_by_the_message_size(shared_data: Path) -> None:
    """A message at the best price changes the level-1 size by exactly its size."""
    archive = _lobster(shared_data, "GOOG_2012-06-21_1")
    messages = next(
        iter(get_reader("lobster_messages").read(archive, ReaderOptions(batch_rows=600)))
    ).frame
    book = next(
        iter(
            get_reader("lobster_book").read(
                archive, ReaderOptions(batch_rows=600, extra={"levels": 1})
            )
        )
    ).frame
    checked = 0
    for i in range(1, 600):
        message = messages.row(i, named=True)
        if message["action"] == "fill_hidden":
            # Hidden executions never touch the visible book.
            assert book.row(i)[3:] == book.row(i - 1)[3:]
            continue
        side = message["side"]
        before, after = book.row(i - 1, named=True), book.row(i, named=True)
        best_before = before[f"{side}_price_0"]
        if message["price"] != best_before and message["action"] != "add":
            continue
        size_before, size_after = before[f"{side}_size_0"], after[f"{side}_size_0"]
        if message["action"] == "add" and message["price"] == best_before:
            assert size_after - size_before == message["size"], i
        elif message["action"] == "add" and message["price"] == after[f"{side}_price_0"]:
            assert size_after == message["size"], i  # a new, better level
        elif message["action"] in ("cancel", "delete", "fill"):
            if after[f"{side}_price_0"] == best_before:
                assert size_before - size_after == message["size"], i
            else:  # the level was emptied: its whole size left with this message
                assert size_before == message["size"], i
        else:
            continue
        checked += 1
    assert checked > 200


def _write_zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


MESSAGES = "XYZ_2012-03-12_34200000_57600000_message_1.csv"
BOOK = "XYZ_2012-03-12_34200000_57600000_orderbook_1.csv"


def test_zip_slip_member_is_refused(tmp_path: Path) -> None:
    archive = _write_zip(
        tmp_path / "slip.zip", {MESSAGES: b"34200.1,1,1,10,1000000,1\n", "../evil": b"x"}
    )
    with pytest.raises(IngestError, match=r"'\.\./evil' has an unsafe path"):
        list(get_reader("lobster_messages").read(archive, ReaderOptions()))


def test_oversize_member_is_refused(tmp_path: Path) -> None:
    archive = _write_zip(tmp_path / "big.zip", {MESSAGES: os.urandom(5000)})
    options = ReaderOptions(extra={"max_member_bytes": 4096})
    with pytest.raises(IngestError, match=r"inflates to 5,000 bytes, over the limit of 4,096"):
        list(get_reader("lobster_messages").read(archive, options))


def test_zip_bomb_ratio_is_refused(tmp_path: Path) -> None:
    archive = _write_zip(tmp_path / "bomb.zip", {MESSAGES: b"\0" * 2_000_000})
    with pytest.raises(IngestError, match=r"compression ratio of .* zip bomb") as info:
        list(get_reader("lobster_messages").read(archive, ReaderOptions()))
    assert str(archive) in str(info.value) and MESSAGES in str(info.value)


def test_bad_message_rows_are_rejected_with_reasons(tmp_path: Path) -> None:
    # 2012-03-12 is the Monday after the 2012-03-11 DST change: New York is UTC-4.
    messages = (
        b"34200.123456789,1,11,100,1000000,1\n"
        b"34200.1234567895,1,12,100,1000000,1\n"  # 10 decimals: rounded to the ns
        b"34201,9,13,100,1000000,1\n"  # unknown event type
        b"34202.5,3,14,100\n"  # too few fields
        b"36023,7,0,0,-1,-1\n"  # halt
        b"57599.999999999,4,15,50,1000100,-1\n"
    )
    book = (
        b"1000100,50,1000000,100\n"
        b"1000100,50,1000000,200\n"
        b"1000100,50,1000000,200\n"
        b"1000100,50,1000000,100\n"
        b"1000100,50,1000000,100\n"
        b"9999999999,0,-9999999999,0\n"
    )
    archive = _write_zip(tmp_path / "XYZ.zip", {MESSAGES: messages, BOOK: book})
    frame, rejected = _read_all("lobster_messages", archive, batch_rows=4)
    assert frame["seq"].to_list() == [1, 2, 5, 6]
    reasons = dict(zip(rejected["source_row"], rejected["reason"], strict=True))
    assert set(reasons) == {3, 4}
    assert "field 'event_type'" in reasons[3]
    assert "expected 6 comma-separated fields" in reasons[4]
    ts = frame["ts"].dt.epoch("ns").to_list()
    assert ts[0] == _expected_ns("34200.123456789", date(2012, 3, 12))
    assert ts[1] == _expected_ns("34200.123456790", date(2012, 3, 12))  # half up on digit 10
    assert ts[3] == _expected_ns("57599.999999999", date(2012, 3, 12))
    halt = frame.row(2, named=True)
    assert (halt["action"], halt["side"], halt["price"], halt["flags"], halt["order_id"]) == (
        "halt",
        None,
        None,
        -1,
        None,
    )
    book_frame, book_rejected = _read_all(
        "lobster_book", archive, batch_rows=4, extra={"levels": 1}
    )
    assert book_frame["seq"].to_list() == [1, 2, 5, 6]
    assert book_frame["ts"].dt.epoch("ns").to_list() == ts
    assert sorted(book_rejected["source_row"]) == [3, 4]
    assert all("message line" in r for r in book_rejected["reason"])
    empty = book_frame.row(3, named=True)
    assert [empty[c] for c in ("ask_price_0", "ask_size_0", "bid_price_0", "bid_size_0")] == [
        None
    ] * 4


def test_levels_mismatch_and_bare_csv(tmp_path: Path, shared_data: Path) -> None:
    archive = _lobster(shared_data, "GOOG_2012-06-21_5")
    with pytest.raises(IngestError, match=r"has 5 book levels but levels=10.*pass levels=5"):
        list(get_reader("lobster_book").read(archive, ReaderOptions()))
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if n.endswith(".csv")]
        for name in names:
            (tmp_path / name).write_bytes(zf.read(name))
    book_csv = next(tmp_path.glob("*_orderbook_5.csv"))
    batch = next(
        iter(
            get_reader("lobster_book").read(
                book_csv, ReaderOptions(batch_rows=100, extra={"levels": 5})
            )
        )
    )
    assert batch.frame.height == 100 and batch.frame["instrument"][0] == "GOOG"


def test_mismatched_book_and_message_lengths_raise(tmp_path: Path) -> None:
    archive = _write_zip(
        tmp_path / "short.zip",
        {MESSAGES: b"34200.1,1,1,10,1000000,1\n34200.2,1,2,10,1000000,1\n", BOOK: b"1,1,1,1\n"},
    )
    with pytest.raises(IngestError, match="different numbers of rows"):
        list(get_reader("lobster_book").read(archive, ReaderOptions(extra={"levels": 1})))
