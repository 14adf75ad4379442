"""Venue semantics of L3 actions on Databento MBO: fills do not change the book, the
cancel that takes a filled order off the book is not a cancel.

Checked on a real slice of the CME ES sample (tests/data/databento, see its PROVENANCE)
against oracles written here in plain pandas / Python from the raw CSV records, and on a
hand-built case whose book is written out by hand.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from ticklake.analytics.metrics import l3
from ticklake.analytics.metrics.l3 import reconstruct_book
from ticklake.analytics.metrics.l3_replay import REPLAY_CODES
from ticklake.analytics.registry import NoParams
from ticklake.ingest.readers import ReaderOptions, get_reader

SLICE = (
    Path(__file__).resolve().parents[2]
    / "data"
    / "databento"
    / "esh4-glbx-mdp3-20231225-head.mbo.csv.gz"
)
F_LAST = 0x80
#: the full ES book of the slice fits: track every level (the default stops at 256)
DEPTH = 2000


def _read(path: Path, **options: object) -> pl.DataFrame:
    batches = get_reader("databento_mbo").read(path, ReaderOptions(**options))  # type: ignore[arg-type]
    return pl.concat([b.frame for b in batches])


@pytest.fixture(scope="module")
def events() -> pl.DataFrame:
    return _read(SLICE)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return pd.read_csv(SLICE)


@pytest.fixture(scope="module")
def book(events: pl.DataFrame) -> pl.DataFrame:
    return reconstruct_book(events, 5, window_levels=DEPTH)


def _hand_counted_cancels(raw: pd.DataFrame) -> tuple[int, int]:
    """(cancels, fill removals) from the raw records, with Databento's semantics.

    A C record takes a filled order off the book when the quantity filled on that order
    since its previous A/M/C (its F records summed; its T records if it has no F: CME
    reports an execution as a T and an F of the resting order) equals the C's size.
    """
    orders = raw[raw["order_id"] != 0].copy()
    assert not (raw["action"] == "R").any()  # no clear in the slice: no reset to follow
    ends_run = orders["action"].isin(["A", "M", "C"]).astype(int)
    orders["run"] = ends_run.groupby(orders["order_id"]).cumsum() - ends_run
    runs = orders.groupby(["order_id", "run"])
    for letter in ("F", "T"):
        sizes = orders["size"].where(orders["action"] == letter, 0)
        orders[letter] = sizes.groupby([orders["order_id"], orders["run"]]).transform("sum")
    assert runs.ngroups > 0
    filled = orders["F"].where(orders["F"] > 0, orders["T"])
    removal = (orders["action"] == "C") & (filled > 0) & (filled == orders["size"])
    return int((raw["action"] == "C").sum() - removal.sum()), int(removal.sum())


def test_order_cancel_count_matches_a_hand_count(events: pl.DataFrame, raw: pd.DataFrame) -> None:
    cancels, removals = _hand_counted_cancels(raw)
    # the slice: 1,889 C records, of which 444 take a filled order off the book
    assert (cancels, removals) == (1445, 444)
    assert events.select(l3.order_cancel_count(NoParams())).item() == cancels
    assert (events["action"] == "fill_removal").sum() == removals
    # executions are the F records, each once; the removals are not executions again
    assert events.select(l3.visible_execution_count(NoParams())).item() == 547
    assert events.select(l3.visible_execution_volume(NoParams())).item() == float(
        raw.loc[raw["action"] == "F", "size"].sum()
    )
    # quotes: A, M and the genuine cancels only
    quotes = events.select(l3.quote_to_trade_ratio(NoParams())).item()
    executed = raw.loc[raw["action"] == "F", "order_id"].nunique()
    assert quotes == pytest.approx((11_572 + 1_656 + cancels) / executed)


def test_marking_does_not_depend_on_batch_boundaries(events: pl.DataFrame) -> None:
    # runs of fills and their C straddle batch ends at many places with 97-row batches
    assert _read(SLICE, batch_rows=97)["action"].to_list() == events["action"].to_list()


def test_book_is_never_crossed_after_the_open(events: pl.DataFrame, book: pl.DataFrame) -> None:
    opened = events.filter(pl.col("action") == "trade")["ts"].min()
    # complete events only (F_LAST): inside one event an aggressive add rests crossed
    # until its fills' removals follow
    states = (
        events.select("seq", "ts", "flags")
        .join(book.drop("ts"), on="seq")
        .filter((pl.col("ts") >= opened) & ((pl.col("flags") & F_LAST) > 0))
    )
    both = states.filter(pl.col("bid_price_0").is_not_null() & pl.col("ask_price_0").is_not_null())
    assert both.height > 5_000
    crossed = both.filter(pl.col("bid_price_0") >= pl.col("ask_price_0"))
    assert crossed.height == 0, crossed.head(3)


def test_sizes_are_positive_wherever_a_level_exists(book: pl.DataFrame) -> None:
    for side in ("bid", "ask"):
        for i in range(5):
            price, size = book[f"{side}_price_{i}"], book[f"{side}_size_{i}"]
            assert (price.is_null() == size.is_null()).all()
            assert (size.drop_nulls() > 0).all(), f"{side} level {i}"


def _order_level_book(raw: pd.DataFrame, levels: int) -> dict[int, tuple]:
    """Top levels after each F_LAST record from a per-order book kept in plain Python:
    A and M set an order, C takes its size off, T and F change nothing."""
    orders: dict[int, tuple[str, int, int]] = {}
    depth: dict[str, dict[int, int]] = {"B": defaultdict(int), "A": defaultdict(int)}
    out = {}
    names = ("action", "side", "price", "size", "order_id", "flags")
    rows = zip(*(raw[c].tolist() for c in names), strict=True)
    for line, (action, side, price, size, order, flags) in enumerate(rows, start=2):
        if action in ("A", "M"):
            if order in orders:
                old_side, old_price, old_size = orders[order]
                depth[old_side][old_price] -= old_size
            orders[order] = (side, price, size)
            depth[side][price] += size
        elif action == "C":
            old_side, old_price, old_size = orders[order]
            depth[old_side][old_price] -= size
            if old_size - size > 0:
                orders[order] = (old_side, old_price, old_size - size)
            else:
                del orders[order]
        if flags & F_LAST:
            row: list[float | None] = []
            for key, pick in (("B", heapq.nlargest), ("A", heapq.nsmallest)):
                live = pick(levels, (p for p, s in depth[key].items() if s > 0))
                for i in range(levels):
                    p = live[i] if i < len(live) else None
                    row += [None, None] if p is None else [p / 1e9, float(depth[key][p])]
            out[line] = tuple(row)
    return out


def test_replayed_book_equals_a_per_order_book(raw: pd.DataFrame, book: pl.DataFrame) -> None:
    # a fill removed twice (by the F and by its C) would show as a smaller size here
    expected = _order_level_book(raw, 5)
    columns = [
        f"{side}_{what}_{i}"
        for side in ("bid", "ask")
        for i in range(5)
        for what in ("price", "size")
    ]
    got = dict(zip(book["seq"].to_list(), book.select(columns).rows(), strict=True))
    assert len(expected) > 5_000
    mismatched = [seq for seq, row in expected.items() if got[seq] != row]
    assert mismatched == [], (mismatched[:3], expected[mismatched[0]], got[mismatched[0]])


def test_no_order_loses_more_than_it_had(events: pl.DataFrame) -> None:
    """Per order and per add/modify: what the replay takes off the book (the actions it
    plays as cancel / delete / fill) and what executed never exceed the order's size."""
    takes_off = [a for a, code in REPLAY_CODES.items() if code in (2, 3, 4)]
    size = pl.col("size")
    per_order = (
        events.filter(pl.col("order_id").is_not_null())
        .with_columns(state=pl.col("action").is_in(["add", "modify"]).cum_sum().over("order_id"))
        .group_by("order_id", "state")
        .agg(
            had=size.filter(pl.col("action").is_in(["add", "modify"])).first(),
            removed=size.filter(pl.col("action").is_in(takes_off)).sum(),
            executed=size.filter(pl.col("action").is_in(["fill", "fill_report"])).sum(),
        )
        .filter(pl.col("had").is_not_null())
    )
    assert per_order.filter(pl.col("removed") > pl.col("had")).height == 0
    assert per_order.filter(pl.col("executed") > 0).height > 300
    assert per_order.filter(pl.col("executed") > pl.col("had")).height == 0


HEADER = "ts_recv,ts_event,instrument_id,publisher_id,action,side,price,size,order_id,flags"
#: (action, side, price x 1e9, size, order_id) of a hand-built event sequence
HAND = [
    ("A", "B", 100_000_000_000, 5, 1),  # bid 100.00 x5
    ("A", "B", 100_000_000_000, 3, 2),  # bid 100.00 x3 behind it
    ("A", "A", 100_250_000_000, 4, 3),  # ask 100.25 x4
    ("T", "A", 100_000_000_000, 6, 0),  # a sell of 6 trades at 100.00 ...
    ("F", "B", 100_000_000_000, 5, 1),  # ... filling order 1 in full
    ("F", "B", 100_000_000_000, 1, 2),  # ... and 1 of order 2
    ("C", "B", 100_000_000_000, 5, 1),  # order 1 leaves the book: a fill removal
    ("M", "B", 100_000_000_000, 2, 2),  # order 2 rests with the 2 left
    ("M", "A", 100_500_000_000, 4, 3),  # order 3 moves to 100.50
    ("C", "A", 100_500_000_000, 4, 3),  # and is cancelled: the only cancel
]
#: the book after each message, written out by hand: (bid p, bid s, ask p, ask s)
HAND_BOOK = [
    (100.0, 5.0, None, None),
    (100.0, 8.0, None, None),
    (100.0, 8.0, 100.25, 4.0),
    (100.0, 8.0, 100.25, 4.0),  # T changes nothing
    (100.0, 8.0, 100.25, 4.0),  # nor do the F records
    (100.0, 8.0, 100.25, 4.0),
    (100.0, 3.0, 100.25, 4.0),  # the C removes order 1's 5
    (100.0, 2.0, 100.25, 4.0),  # the M sets order 2 to 2
    (100.0, 2.0, 100.5, 4.0),
    (100.0, 2.0, None, None),
]


def test_hand_built_case(tmp_path: Path) -> None:
    path = tmp_path / "mbo.csv"
    lines = [
        f"1,{1_700_000_000_000_000_000 + i},7,1,{a},{s},{p},{n},{o},{F_LAST}"
        for i, (a, s, p, n, o) in enumerate(HAND)
    ]
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    events = _read(path)
    assert events["action"].to_list() == [
        "add",
        "add",
        "add",
        "trade",
        "fill_report",
        "fill_report",
        "fill_removal",
        "modify",
        "modify",
        "cancel",
    ]
    book = reconstruct_book(events, 1)
    assert book.select("bid_price_0", "bid_size_0", "ask_price_0", "ask_size_0").rows() == HAND_BOOK
    counts = events.select(
        l3.order_cancel_count(NoParams()),
        l3.visible_execution_count(NoParams()),
        l3.visible_execution_volume(NoParams()),
    ).row(0)
    assert counts == (1, 2, 6.0)
