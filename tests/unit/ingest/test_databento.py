"""Databento MBO reader against the decoded CME ES samples, parsed with gzip/csv/Decimal."""

from __future__ import annotations

import csv
import gzip
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from ticklake.ingest.readers import ReaderOptions, get_reader

UNDEFINED = "9223372036854775807"
ACTIONS = {
    "A": "add",
    "C": "cancel",
    "M": "modify",
    "R": "clear",
    "T": "trade",
    "F": "fill_report",
}
SIDES = {"A": "ask", "B": "bid", "N": None}


def _sample(shared_data: Path, name: str) -> Path:
    return shared_data / "databento-cme-es-mbo" / name


def _raw(path: Path) -> list[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:  # type: ignore[operator]
        return list(csv.DictReader(fh))


def _expected_actions(raw: list[dict[str, str]]) -> list[str]:
    """Canonical actions with Databento's semantics, by a plain loop over the records.

    A C whose size equals the quantity filled on its order since the order's previous
    A/M/C (F records summed; T records if there is no F) is a ``fill_removal``.
    """
    fills: dict[str, dict[str, int]] = {}
    out = []
    for r in raw:
        action, order, size = r["action"], r["order_id"], int(r["size"])
        name = ACTIONS[action]
        if action == "R":
            fills.clear()
        elif order != "0" and action in ("F", "T"):
            run = fills.setdefault(order, {"F": 0, "T": 0})
            run[action] += size
        elif order != "0" and action in ("A", "M", "C"):
            run = fills.pop(order, {"F": 0, "T": 0})
            filled = run["F"] or run["T"]
            if action == "C" and filled and filled == size:
                name = "fill_removal"
        out.append(name)
    return out


def _read(path: Path, **options: object) -> tuple[pl.DataFrame, pl.DataFrame]:
    batches = list(get_reader("databento_mbo").read(path, ReaderOptions(**options)))  # type: ignore[arg-type]
    return pl.concat([b.frame for b in batches]), pl.concat([b.rejected for b in batches])


def test_hand_computed_price_and_time(shared_data: Path) -> None:
    frame, _ = _read(_sample(shared_data, "esh4-glbx-mdp3-20231224.mbo.csv.gz"), instrument="ESH4")
    # Line 2: ts_event 1703422805243925307 (2023-12-24 13:00:05.243925307 UTC), price
    # 4799000000000 x 1e-9 = 4799.00; line 6: 4798750000000 -> 4798.75.
    assert frame["ts"].dt.epoch("ns")[0] == 1_703_422_805_243_925_307
    assert frame["ts"][0].isoformat().startswith("2023-12-24T13:00:05.243925")
    assert frame["price"][0] == 4799.0 and frame["price"][4] == 4798.75
    assert frame.row(0, named=True) | {"ts": None} == {
        "ts": None,
        "instrument": "ESH4",
        "seq": 2,
        "action": "add",
        "side": "bid",
        "order_id": 6412777162812,
        "price": 4799.0,
        "size": 2.0,
        "flags": 40,
        "venue": "GLBX",
    }


@pytest.mark.parametrize(
    "name",
    [
        "esh4-glbx-mdp3-20231225.mbo.csv.gz",
        "orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.csv.gz",
    ],
)
def test_every_row_matches_the_raw_file(shared_data: Path, name: str) -> None:
    path = _sample(shared_data, name)
    raw = _raw(path)
    frame, rejected = _read(path, batch_rows=25_000)
    assert rejected.height == 0
    assert frame.height == len(raw)
    assert frame["ts"].dt.epoch("ns").to_list() == [int(r["ts_event"]) for r in raw]
    assert frame["seq"].to_list() == list(range(2, len(raw) + 2))
    assert frame["action"].to_list() == _expected_actions(raw)
    assert frame["side"].to_list() == [SIDES[r["side"]] for r in raw]
    assert frame["price"].to_list() == [
        None if r["price"] == UNDEFINED else float(Decimal(r["price"]) / Decimal(10**9))
        for r in raw
    ]
    assert frame["size"].to_list() == [float(r["size"]) for r in raw]
    assert frame["flags"].to_list() == [int(r["flags"]) for r in raw]
    assert frame["order_id"].to_list() == [
        None if r["order_id"] == "0" else int(r["order_id"]) for r in raw
    ]
    # No symbol column and no instrument option: the numeric instrument id.
    assert set(frame["instrument"]) == {r["instrument_id"] for r in raw}


def test_cancels_after_fills_are_fill_removals(shared_data: Path) -> None:
    # the figures of docs/analytics.md ("Venue semantics"): of 17,999 C records of the
    # 2023-12-25 file, 5,326 take a filled order off the book; 12,673 are cancels
    frame, _ = _read(_sample(shared_data, "esh4-glbx-mdp3-20231225.mbo.csv.gz"))
    counts = dict(frame["action"].value_counts().iter_rows())
    assert (counts["cancel"], counts["fill_removal"], counts["fill_report"]) == (
        12_673,
        5_326,
        6_371,
    )


def test_clear_record_has_null_price(shared_data: Path) -> None:
    path = _sample(shared_data, "orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.csv.gz")
    batch = next(iter(get_reader("databento_mbo").read(path, ReaderOptions(batch_rows=100))))
    first = batch.frame.row(0, named=True)
    assert (first["action"], first["side"], first["price"], first["order_id"]) == (
        "clear",
        None,
        None,
        None,
    )


def test_bad_rows_are_rejected_and_symbol_column_is_used(tmp_path: Path) -> None:
    path = tmp_path / "mbo.csv"
    header = (
        "ts_recv,ts_event,instrument_id,publisher_id,action,side,price,size,order_id,flags,"
        "ts_in_delta,sequence,channel_id,symbol"
    )
    rows = [
        "1,1715126401488989583,5602,1,T,B,5214250000000,1,6413245568384,0,1,11,0,ESM4",
        "1,1715126401488989583,5602,1,N,N,5214250000000,1,0,0,1,11,0,ESM4",
        "1,1715126401488989583,5602,1,A,X,5214250000000,1,1,0,1,11,0,ESM4",
        "1,1715126401488989583,5602,1,A,B,52l4,1,1,0,1,11,0,ESM4",
        "1,1715126401488989583,5602,1,A,B,5214.25,1,7,0,1,11,0,ESM4",
        "1,1715126401488989583,5602,1,A,B,5214.25,1",
    ]
    path.write_text("\n".join([header, *rows]) + "\n")
    frame, rejected = _read(path)
    assert frame["seq"].to_list() == [2, 6]
    assert frame["instrument"].to_list() == ["ESM4", "ESM4"]
    assert frame["price"].to_list() == [5214.25, 5214.25]  # fixed-point and pretty_px
    reasons = dict(zip(rejected["source_row"], rejected["reason"], strict=True))
    assert reasons.keys() == {3, 4, 5, 7}
    assert reasons[3].startswith("field 'action': cannot read N")
    assert reasons[4].startswith("field 'side': cannot read X")
    assert reasons[5].startswith("field 'price': cannot read 52l4")
    assert reasons[7].startswith("expected 14 comma-separated fields")
