"""L3 metrics and LOBSTER book replay, checked against LOBSTER's own order-book files
(parsed here with plain Polars CSV reads, not the ticklake readers) and plain-Python
oracles."""

from __future__ import annotations

import io
import zipfile
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticklake.analytics.buckets import BucketSpec
from ticklake.analytics.kernels.book import replay_top_levels
from ticklake.analytics.metrics import l3
from ticklake.analytics.metrics.l3 import lobster_initial_book, reconstruct_book
from ticklake.analytics.registry import get_metric
from ticklake.errors import ConfigError

LOBSTER_FILES = [
    ("AAPL", 1),
    ("AMZN", 1),
    ("AMZN", 5),
    ("GOOG", 1),
    ("GOOG", 5),
    ("GOOG", 10),
]
EVENTS = {1: "add", 2: "cancel", 3: "delete", 4: "fill", 5: "fill_hidden", 6: "trade", 7: "halt"}
DUMMY = 9_999_999_999


def _member(path: Path, kind: str) -> pl.DataFrame:
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if f"_{kind}_" in n]
        return pl.read_csv(io.BytesIO(archive.read(name)), has_header=False, infer_schema=False)


def _messages(path: Path, instrument: str) -> pl.DataFrame:
    raw = _member(path, "message")
    raw.columns = ["time", "type", "order_id", "size", "price", "direction"]
    seconds = pl.col("time").str.split_exact(".", 1)
    event = pl.col("type").cast(pl.Int64)
    # one AMZN row has 12 decimals (43002.632812672004): keep the first 9 (ns)
    fraction = seconds.struct[1].fill_null("").str.slice(0, 9).str.pad_end(9, "0")
    return raw.select(
        ts=pl.from_epoch(
            seconds.struct[0].cast(pl.Int64) * 1_000_000_000 + fraction.cast(pl.Int64), "ns"
        ).dt.replace_time_zone("UTC"),
        instrument=pl.lit(instrument),
        seq=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
        action=event.replace_strict(EVENTS),
        side=pl.when(event != 7).then(
            pl.col("direction").replace_strict({"1": "bid", "-1": "ask"}, default=None)
        ),
        order_id=pl.col("order_id").cast(pl.Int64),
        price=pl.when(event != 7).then(pl.col("price").cast(pl.Int64) / 10_000),
        size=pl.col("size").cast(pl.Float64),
    )


def _book_units(path: Path) -> np.ndarray:
    """LOBSTER's order-book file as integers, columns (ask p, ask s, bid p, bid s) x N."""
    return _member(path, "orderbook").select(pl.all().cast(pl.Int64)).to_numpy()


def _book_frame(units: np.ndarray, messages: pl.DataFrame) -> pl.DataFrame:
    levels = units.shape[1] // 4
    columns = {}
    for i in range(levels):
        for j, name in enumerate(("ask_price", "ask_size", "bid_price", "bid_size")):
            price = units[:, 4 * i + (j // 2) * 2]
            value = units[:, 4 * i + j] / (10_000 if j % 2 == 0 else 1)
            columns[f"{name}_{i}"] = np.where(np.abs(price) == DUMMY, np.nan, value)
    return pl.concat(
        [messages.select("ts", "instrument", "seq"), pl.DataFrame(columns).fill_nan(None)],
        how="horizontal",
    )


def _as_units(book: pl.DataFrame, levels: int) -> np.ndarray:
    """Our book in LOBSTER's layout and units (dummies for empty levels, NaN unknown)."""
    out = np.empty((book.height, 4 * levels))
    for i in range(levels):
        for j, (name, dummy) in enumerate(
            (("ask_price", DUMMY), ("ask_size", 0), ("bid_price", -DUMMY), ("bid_size", 0))
        ):
            values = book[f"{name}_{i}"].to_numpy().astype(float)
            scale = 10_000 if j % 2 == 0 else 1
            out[:, 4 * i + j] = np.where(np.isnan(values), dummy, np.round(values * scale))
    return out


@pytest.fixture(scope="module")
def lobster(shared_data: Path) -> dict[tuple[str, int], tuple[pl.DataFrame, np.ndarray]]:
    folder = shared_data / "lobster-2012-06-21"
    loaded = {}
    for ticker, levels in LOBSTER_FILES:
        path = folder / f"LOBSTER_SampleFile_{ticker}_2012-06-21_{levels}.zip"
        loaded[(ticker, levels)] = (_messages(path, ticker), _book_units(path))
    return loaded


def _entering_levels_oracle(messages: pl.DataFrame, units: np.ndarray, levels: int) -> int:
    """Events after which a level enters the top N from deeper: a removal that empties a
    level of a side that had N levels. Plain Python over LOBSTER's own files."""
    count = 0
    actions = messages["action"].to_list()
    sides = messages["side"].to_list()
    prices = np.round(messages["price"].fill_null(0).to_numpy() * 10_000).astype(np.int64)
    for i in range(1, len(actions)):
        if actions[i] not in ("cancel", "delete", "fill"):
            continue
        offset = 0 if sides[i] == "ask" else 2
        before = units[i - 1, offset::4]
        after = units[i, offset::4]
        if np.all(np.abs(before) != DUMMY) and prices[i] in before and prices[i] not in after:
            count += 1
    return count


@pytest.mark.shared_data
@pytest.mark.parametrize(("ticker", "levels"), LOBSTER_FILES, ids=lambda v: str(v))
def test_replay_reproduces_the_lobster_book_file_row_for_row(
    lobster: dict, ticker: str, levels: int
) -> None:
    messages, units = lobster[(ticker, levels)]
    snapshots = _book_frame(units, messages)
    initial = lobster_initial_book(messages, snapshots)
    book = reconstruct_book(
        messages,
        levels,
        initial=initial,
        snapshots=snapshots,
        window_levels=levels,
        with_coverage=True,
    )
    assert book.height == units.shape[0]
    mine = _as_units(book, levels)
    mismatched = np.flatnonzero((mine != units).any(axis=1))
    assert mismatched.size == 0, f"first differing row {mismatched[:1]}"
    # the file is used only where a level enters the window from beyond the messages
    assert int(book["snapshot_refill"].sum()) == _entering_levels_oracle(messages, units, levels)


@pytest.mark.shared_data
@pytest.mark.parametrize(("ticker", "levels"), LOBSTER_FILES, ids=lambda v: str(v))
def test_replay_from_messages_alone_never_states_a_wrong_level(
    lobster: dict, ticker: str, levels: int
) -> None:
    messages, units = lobster[(ticker, levels)]
    initial = lobster_initial_book(messages, _book_frame(units, messages))
    book = reconstruct_book(messages, levels, initial=initial, window_levels=levels)
    mine = np.full((book.height, 4 * levels), np.nan)
    for i in range(levels):
        for j, name in enumerate(("ask_price", "ask_size", "bid_price", "bid_size")):
            values = book[f"{name}_{i}"].to_numpy().astype(float)
            mine[:, 4 * i + j] = np.round(values * (10_000 if j % 2 == 0 else 1))
    known = ~np.isnan(mine)
    assert not (known & (mine != units)).any()
    # until the first level enters from deeper, the messages alone give every row
    first_unknown = int(np.argmax((~known).any(axis=1)))
    assert first_unknown > 0
    assert (mine[:first_unknown] == units[:first_unknown]).all()


@pytest.mark.shared_data
def test_replay_through_the_lobster_readers(shared_data: Path) -> None:
    from ticklake.ingest.readers.base import ReaderOptions
    from ticklake.ingest.readers.lobster import LobsterBookReader, LobsterMessagesReader

    path = shared_data / "lobster-2012-06-21" / "LOBSTER_SampleFile_GOOG_2012-06-21_1.zip"
    messages = pl.concat(b.frame for b in LobsterMessagesReader().read(path, ReaderOptions()))
    reader = LobsterBookReader()
    options = reader.prepare(path, ReaderOptions())
    snapshots = pl.concat(b.frame for b in reader.read(path, options))
    book = reconstruct_book(
        messages,
        1,
        initial=lobster_initial_book(messages, snapshots),
        snapshots=snapshots,
        window_levels=1,
    )
    assert book.columns == snapshots.columns
    assert book.height == 49_482
    assert book.select(pl.exclude("ts", "instrument", "seq")).equals(
        snapshots.select(pl.exclude("ts", "instrument", "seq"))
    )


def _at(seconds: float) -> datetime:
    return datetime(2024, 3, 1, 14, 30, tzinfo=UTC) + timedelta(seconds=seconds)


def _events(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "ts": pl.Datetime("us", "UTC"),
            "action": pl.String,
            "side": pl.String,
            "order_id": pl.Int64,
            "price": pl.Float64,
            "size": pl.Float64,
        },
        orient="row",
    ).with_columns(instrument=pl.lit("X"), seq=pl.int_range(1, pl.len() + 1, dtype=pl.Int64))


def test_halts_hidden_fills_and_crosses_leave_the_book_unchanged() -> None:
    frame = _events(
        [
            (_at(0), "add", "bid", 1, 10.0, 100.0),
            (_at(1), "add", "ask", 2, 10.5, 50.0),
            (_at(2), "halt", None, None, None, 0.0),
            (_at(3), "fill_hidden", "bid", 0, 10.2, 30.0),
            (_at(4), "trade", "bid", 0, 10.2, 500.0),
            (_at(5), "cancel", "bid", 1, 10.0, 40.0),
        ]
    )
    rows = reconstruct_book(frame, 1).select("bid_size_0", "ask_size_0").rows()
    assert rows == [
        (100.0, None),
        (100.0, 50.0),
        (100.0, 50.0),  # halt: LOBSTER repeats the book
        (100.0, 50.0),  # hidden execution
        (100.0, 50.0),  # cross trade
        (60.0, 50.0),
    ]


def test_modify_events_set_the_order_they_follow() -> None:
    # a modify sets its order's price and size (Databento, Bitstamp): the replay follows
    # the order by id; one not seen before (it rested before the frame) is added
    frame = _events(
        [
            (_at(0), "add", "bid", 1, 10.0, 5.0),
            (_at(1), "modify", "bid", 1, 10.0, 2.0),
            (_at(2), "modify", "bid", 1, 10.1, 2.0),
            (_at(3), "cancel", "bid", 1, 10.1, 1.0),
            (_at(4), "modify", "bid", 1, 9.9, 4.0),
            (_at(5), "modify", "bid", 2, 9.8, 3.0),
        ]
    )
    rows = reconstruct_book(frame, 2).select("bid_price_0", "bid_size_0", "bid_price_1").rows()
    assert rows == [
        (10.0, 5.0, None),
        (10.0, 2.0, None),
        (10.1, 2.0, None),
        (10.1, 1.0, None),
        (9.9, 4.0, None),
        (9.9, 4.0, 9.8),
    ]
    with pytest.raises(ConfigError, match="needs the l3 'order_id' column"):
        reconstruct_book(frame.drop("order_id"), 1)


def _dict_book(frame: pl.DataFrame, levels: int) -> list[tuple]:
    book: dict[str, dict[float, float]] = {"bid": defaultdict(float), "ask": defaultdict(float)}
    out = []
    for action, side, price, size in frame.select("action", "side", "price", "size").rows():
        if action == "add":
            book[side][price] += size
        elif action in ("cancel", "delete", "fill"):
            book[side][price] -= size
            if book[side][price] <= 0:
                del book[side][price]
        row: list[float | None] = []
        for name in ("bid", "ask"):
            ranked = sorted(book[name].items(), reverse=name == "bid")[:levels]
            for i in range(levels):
                row.extend(ranked[i] if i < len(ranked) else (None, None))
        out.append(tuple(row))
    return out


@st.composite
def _order_flow(draw: st.DrawFn) -> pl.DataFrame:
    resting: list[tuple[str, float, float]] = []
    rows = []
    for step in range(draw(st.integers(1, 60))):
        if resting and draw(st.booleans()):
            side, price, size = resting.pop(draw(st.integers(0, len(resting) - 1)))
            action = draw(st.sampled_from(["delete", "fill"]))
            rows.append((_at(step), action, side, 1, price, size))
        else:
            side = draw(st.sampled_from(["bid", "ask"]))
            ticks = draw(st.integers(0, 8))
            price = 100.0 - ticks * 0.01 if side == "bid" else 100.01 + ticks * 0.01
            size = float(draw(st.integers(1, 500)))
            resting.append((side, price, size))
            rows.append((_at(step), "add", side, 1, price, size))
    return _events(rows)


@settings(max_examples=60, deadline=None)
@given(frame=_order_flow(), levels=st.integers(1, 4))
def test_full_feed_replay_matches_a_dict_book(frame: pl.DataFrame, levels: int) -> None:
    book = reconstruct_book(frame, levels)
    columns = [
        f"{s}_{w}_{i}" for s in ("bid", "ask") for i in range(levels) for w in ("price", "size")
    ]
    assert book.select(columns).rows() == _dict_book(frame, levels)


def test_kernel_compiled_and_pure_python_agree() -> None:
    rng = np.random.default_rng(7)
    n, levels = 400, 3
    action = rng.choice([1, 1, 2, 3, 4, 5], n).astype(np.int64)
    side = rng.integers(0, 2, n).astype(np.int64)
    key = (1000 + rng.integers(-6, 7, n)).astype(np.int64)
    size = rng.integers(1, 50, n).astype(np.float64)
    init = (
        np.full((2, levels), -1, np.int64),
        np.full((2, levels), np.nan),
        np.full((2, levels), np.nan),
        np.zeros(2, np.int64),
        np.ones(2, np.bool_),
    )
    snaps = (np.full((1, 2, levels), -1, np.int64), np.full((1, 2, levels), np.nan))
    args = (
        action,
        side,
        key,
        key / 100,
        size,
        levels,
        levels,
        *init,
        snaps[0],
        snaps[1],
        snaps[1],
        False,
    )
    compiled = replay_top_levels(*args)
    pure = replay_top_levels.py_func(*args)
    for a, b in zip(compiled, pure, strict=True):
        np.testing.assert_array_equal(a, b)


# --- bucket metrics ---------------------------------------------------------------------


def _flow() -> pl.DataFrame:
    return _events(
        [
            (_at(1), "add", "bid", 1, 10.0, 100.0),
            (_at(2), "add", "ask", 2, 10.2, 100.0),
            (_at(3), "fill", "bid", 1, 10.0, 30.0),
            (_at(4), "fill", "bid", 1, 10.0, 20.0),
            (_at(5), "fill_hidden", "ask", None, 10.1, 25.0),
            (_at(6), "cancel", "ask", 2, 10.2, 10.0),
            (_at(61), "add", "ask", 3, 10.3, 10.0),
            (_at(62), "delete", "ask", 3, 10.3, 10.0),
            (_at(63), "delete", "ask", 2, 10.2, 90.0),
            (_at(64), "add", "bid", 4, 9.9, 5.0),
        ]
    )


def _run_bucket_metrics(frame: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    exprs = []
    for name in names:
        m = get_metric(name)
        exprs += m.expressions(m.params_model())
    spec = BucketSpec(width="1m")
    return (
        frame.sort("ts")
        .group_by_dynamic("ts", group_by="instrument", **spec.group_by_dynamic_args())
        .agg(exprs)
    )


def test_bucket_counts_and_ratios_against_a_python_loop() -> None:
    frame = _flow()
    names = [
        "order_add_count",
        "order_cancel_count",
        "order_delete_count",
        "order_modify_count",
        "visible_execution_count",
        "hidden_execution_count",
        "visible_execution_volume",
        "hidden_execution_volume",
        "hidden_execution_volume_share",
        "order_to_trade_ratio",
        "quote_to_trade_ratio",
        "order_cancel_rate",
    ]
    out = _run_bucket_metrics(frame, names)
    expected: dict[datetime, dict[str, float | None]] = {}
    for label in sorted({_label(t) for t in frame["ts"]}):
        rows = [r for r in frame.iter_rows(named=True) if _label(r["ts"]) == label]

        def count(*actions: str, rows: list[dict] = rows) -> int:
            return sum(r["action"] in actions for r in rows)

        vis = sum(r["size"] for r in rows if r["action"] == "fill")
        hid = sum(r["size"] for r in rows if r["action"] == "fill_hidden")
        trades = len({r["order_id"] for r in rows if r["action"] == "fill"}) + count("fill_hidden")
        expected[label] = {
            "order_add_count": count("add"),
            "order_cancel_count": count("cancel", "delete"),
            "order_delete_count": count("delete"),
            "order_modify_count": count("modify"),
            "visible_execution_count": count("fill"),
            "hidden_execution_count": count("fill_hidden"),
            "visible_execution_volume": vis,
            "hidden_execution_volume": hid,
            "hidden_execution_volume_share": hid / (vis + hid) if vis + hid else None,
            "order_to_trade_ratio": count("add") / trades if trades else None,
            "quote_to_trade_ratio": count("add", "cancel", "delete", "modify") / trades
            if trades
            else None,
            "order_cancel_rate": count("delete") / count("add") if count("add") else None,
        }
    assert out.height == len(expected)
    for row in out.iter_rows(named=True):
        for name in names:
            assert row[name] == pytest.approx(expected[row["ts"]][name]), name
    first = out.row(0, named=True)
    # two partial fills of order 1 count once: 2 adds / (1 order + 1 hidden execution)
    assert first["order_to_trade_ratio"] == 1.0


def _label(ts: datetime) -> datetime:
    start = ts.replace(second=0, microsecond=0)
    return start if start == ts else start + timedelta(minutes=1)


def test_fill_probability_is_stamped_when_the_horizon_ends() -> None:
    frame = _events(
        [
            (_at(0), "add", "bid", 1, 10.0, 10.0),
            (_at(1), "add", "bid", 2, 9.9, 10.0),
            (_at(20), "fill", "bid", 1, 10.0, 10.0),
            (_at(45), "fill", "bid", 2, 9.9, 10.0),
            (_at(50), "add", "ask", 3, 10.5, 10.0),
            (_at(200), "delete", "ask", 3, 10.5, 10.0),
        ]
    )
    out = l3.fill_probability(frame, l3.FillHorizonParams(horizon_seconds=30))
    # orders 1 and 2 are decided at 30 s and 31 s (bucket 14:31); order 3 at 80 s (14:32)
    assert out.select("ts", "fill_probability_30s").rows() == [
        (_at(60), 0.5),
        (_at(120), 0.0),
    ]


@pytest.mark.shared_data
def test_resting_time_at_best_on_goog_against_a_python_walk(lobster: dict) -> None:
    messages, units = lobster[("GOOG", 1)]
    messages = messages.head(6000)
    snapshots = _book_frame(units[:6000], messages)
    out = l3.resting_time_at_best_before_first_fill(
        messages, l3.NoParams(), BucketSpec(width="5m"), book=snapshots
    )
    # oracle: walk the events; an order is at the best while the book after the last
    # event so far has its price on top of its side
    ts = messages["ts"].dt.epoch("ns").to_list()
    best = {"bid": units[:6000, 2], "ask": units[:6000, 0]}
    rows = messages.select("action", "side", "order_id", "price").rows()
    added: dict[int, tuple[str, int, int]] = {}
    at_best_ns: dict[int, int] = {}
    first_fill: dict[int, int] = {}
    for i, (action, side, order_id, price) in enumerate(rows):
        if i > 0:
            for oid, (s, p, add_i) in added.items():
                if oid not in first_fill and ts[i] > ts[add_i]:
                    # state in force over (ts[i-1], ts[i]] is the book after event i-1
                    start = max(ts[i - 1], ts[add_i])
                    if best[s][i - 1] == p:
                        at_best_ns[oid] += ts[i] - start
        if action == "add":
            added[order_id] = (side, round(price * 10_000), i)
            at_best_ns[order_id] = 0
        elif action == "fill" and order_id in added and order_id not in first_fill:
            first_fill[order_id] = i
        elif action == "delete" and order_id in added and order_id not in first_fill:
            added.pop(order_id)
    buckets: dict[datetime, list[float]] = defaultdict(list)
    for oid, i in first_fill.items():
        label = messages["ts"][i]
        start = label.replace(minute=label.minute - label.minute % 5, second=0, microsecond=0)
        label = start if start == label else start + timedelta(minutes=5)
        buckets[label].append(at_best_ns[oid] / 1e9)
    expected = {k: sum(v) / len(v) for k, v in buckets.items()}
    got = dict(out.select("ts", "resting_time_at_best_before_first_fill_seconds").rows())
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-9)


def test_refill_count_counts_adds_right_after_a_fill_at_the_same_price() -> None:
    frame = _events(
        [
            (_at(0.000), "fill", "ask", 1, 10.0, 5.0),
            (_at(0.004), "add", "ask", 2, 10.0, 5.0),  # refill
            (_at(0.005), "add", "ask", 3, 10.1, 5.0),  # other price
            (_at(0.006), "add", "bid", 4, 10.0, 5.0),  # other side
            (_at(0.030), "add", "ask", 5, 10.0, 5.0),  # too late for 10 ms
        ]
    )
    out = l3.price_level_refill_count(frame, l3.RefillParams(window_seconds=0.01))
    assert out["price_level_refill_count_0.01s"].to_list() == [1]


@pytest.mark.shared_data
def test_bucket_metrics_on_goog_messages_match_duckdb(lobster: dict) -> None:
    import duckdb

    messages, _ = lobster[("GOOG", 10)]
    names = [
        "order_add_count",
        "order_cancel_count",
        "visible_execution_volume",
        "hidden_execution_count",
        "order_to_trade_ratio",
        "quote_to_trade_ratio",
    ]
    ours = _run_bucket_metrics(messages, names).with_columns(label_ns=pl.col("ts").dt.epoch("ns"))
    width = 60_000_000_000
    con = duckdb.connect()
    con.register("l3", messages.to_arrow())
    expected = con.sql(
        f"""
        WITH e AS (SELECT *, (epoch_ns(ts) + {width} - 1) // {width} * {width} AS label_ns
                   FROM l3),
        b AS (
          SELECT label_ns,
            count(*) FILTER (WHERE action = 'add') AS adds,
            count(*) FILTER (WHERE action IN ('cancel', 'delete')) AS cancels,
            count(*) FILTER (WHERE action = 'modify') AS modifies,
            coalesce(sum(size) FILTER (WHERE action = 'fill'), 0) AS visible_volume,
            count(*) FILTER (WHERE action = 'fill_hidden') AS hidden,
            count(DISTINCT order_id) FILTER (WHERE action = 'fill') AS filled_orders
          FROM e GROUP BY label_ns)
        SELECT label_ns, adds, cancels, visible_volume, hidden,
          CASE WHEN filled_orders + hidden > 0
               THEN adds / (filled_orders + hidden) END AS otr,
          CASE WHEN filled_orders + hidden > 0
               THEN (adds + cancels + modifies) / (filled_orders + hidden) END AS qtr
        FROM b ORDER BY label_ns
        """
    ).pl()
    assert ours["label_ns"].to_list() == expected["label_ns"].to_list()
    assert ours["order_add_count"].to_list() == expected["adds"].to_list()
    assert ours["order_cancel_count"].to_list() == expected["cancels"].to_list()
    assert ours["hidden_execution_count"].to_list() == expected["hidden"].to_list()
    for column, oracle in (
        ("visible_execution_volume", "visible_volume"),
        ("order_to_trade_ratio", "otr"),
        ("quote_to_trade_ratio", "qtr"),
    ):
        np.testing.assert_allclose(
            ours[column].to_numpy().astype(float),
            expected[oracle].to_numpy().astype(float),
            rtol=1e-12,
            err_msg=column,
        )
