"""L2 metrics on LOBSTER's GOOG level-10 book (parsed here from the raw CSV), checked
against pandas / numpy computations."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from ticklake.analytics.buckets import BucketSpec
from ticklake.analytics.metrics import l2
from ticklake.analytics.registry import get_metric

LEVELS = 10
WIDTH_NS = 60_000_000_000
DUMMY = 9_999_999_999
# 2012-06-21 is EDT: New York midnight is 04:00 UTC
MIDNIGHT_UTC_NS = int(datetime(2012, 6, 21, 4, tzinfo=UTC).timestamp()) * 1_000_000_000


def _csv(path: Path, kind: str) -> pl.DataFrame:
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if f"_{kind}_" in n]
        return pl.read_csv(io.BytesIO(archive.read(name)), has_header=False, infer_schema=False)


@pytest.fixture(scope="module")
def goog_book(shared_data: Path) -> pl.DataFrame:
    path = shared_data / "lobster-2012-06-21" / "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip"
    seconds = _csv(path, "message")[:, 0].str.split_exact(".", 1)
    ns = pl.select(
        seconds.struct[0].cast(pl.Int64) * 1_000_000_000
        + seconds.struct[1].fill_null("").str.slice(0, 9).str.pad_end(9, "0").cast(pl.Int64)
        + MIDNIGHT_UTC_NS
    ).to_series()
    units = _csv(path, "orderbook").select(pl.all().cast(pl.Int64)).to_numpy()
    columns: dict[str, object] = {
        "ts": pl.from_epoch(ns, "ns").dt.replace_time_zone("UTC"),
        "instrument": "GOOG",
        "seq": np.arange(1, units.shape[0] + 1),
    }
    for side, offset in (("bid", 2), ("ask", 0)):
        for i in range(LEVELS):
            price = units[:, 4 * i + offset]
            empty = np.abs(price) == DUMMY
            columns[f"{side}_price_{i}"] = np.where(empty, np.nan, price / 10_000)
            columns[f"{side}_size_{i}"] = np.where(empty, np.nan, units[:, 4 * i + offset + 1])
    return pl.DataFrame(columns).fill_nan(None)


@pytest.fixture(scope="module")
def goog_pandas(goog_book: pl.DataFrame) -> pd.DataFrame:
    frame = goog_book.to_pandas()
    ns = goog_book["ts"].dt.epoch("ns").to_numpy()
    frame["ns"] = ns
    frame["label_ns"] = (ns + WIDTH_NS - 1) // WIDTH_NS * WIDTH_NS
    return frame


def _ours(book: pl.DataFrame) -> pl.DataFrame:
    requests = [
        ("book_spread", {}),
        ("book_spread_bps", {}),
        ("book_mid_price", {}),
        ("microprice", {}),
        ("book_depth", {"levels": 5}),
        ("book_depth", {"levels": 10, "side": "bid", "aggregation": "max"}),
        ("book_depth_within_bps", {"bps": 10}),
        ("order_book_imbalance", {"levels": 3}),
        ("book_update_count", {}),
    ]
    exprs = []
    for name, values in requests:
        m = get_metric(name)
        exprs += m.expressions(m.parse_params(values))
    spec = BucketSpec(width="1m")
    return (
        book.group_by_dynamic("ts", group_by="instrument", **spec.group_by_dynamic_args())
        .agg(exprs)
        .with_columns(label_ns=pl.col("ts").dt.epoch("ns"))
    )


@pytest.mark.shared_data
def test_snapshot_metrics_match_pandas_on_goog(
    goog_book: pl.DataFrame, goog_pandas: pd.DataFrame
) -> None:
    ours = _ours(goog_book).to_pandas().set_index("label_ns")
    f = goog_pandas.copy()
    bid, ask = f["bid_price_0"], f["ask_price_0"]
    mid = (bid + ask) / 2
    f["spread"] = ask - bid
    f["spread_bps"] = (ask - bid) / mid * 1e4
    f["mid"] = mid
    f["micro"] = (bid * f["ask_size_0"] + ask * f["bid_size_0"]) / (
        f["bid_size_0"] + f["ask_size_0"]
    )
    sizes = lambda side, n: f[[f"{side}_size_{i}" for i in range(n)]].fillna(0).sum(axis=1)  # noqa: E731
    f["depth5"] = sizes("bid", 5) + sizes("ask", 5)
    f["depth10bid"] = sizes("bid", 10)
    within = np.zeros(len(f))
    for side in ("bid", "ask"):
        for i in range(LEVELS):
            price = f[f"{side}_price_{i}"].to_numpy()
            dist = np.abs(price - mid.to_numpy()) / mid.to_numpy() * 1e4
            within += np.where(dist <= 10 + 1e-9, f[f"{side}_size_{i}"].fillna(0), 0.0)
    f["within10"] = np.where(mid.isna(), np.nan, within)
    b3, a3 = sizes("bid", 3), sizes("ask", 3)
    f["imbalance3"] = np.where(b3 + a3 > 0, (b3 - a3) / (b3 + a3), np.nan)
    grouped = f.groupby("label_ns")
    expected = pd.DataFrame(
        {
            "book_spread_mean": grouped["spread"].mean(),
            "book_spread_bps_mean": grouped["spread_bps"].mean(),
            "book_mid_price_last": grouped["mid"].agg(lambda s: s.iloc[-1]),
            "microprice_last": grouped["micro"].agg(lambda s: s.iloc[-1]),
            "book_depth_5_levels_both_mean": grouped["depth5"].mean(),
            "book_depth_10_levels_bid_max": grouped["depth10bid"].max(),
            "book_depth_within_10_bps_both_mean": grouped["within10"].mean(),
            "order_book_imbalance_3_levels_mean": grouped["imbalance3"].mean(),
            "book_update_count": grouped.size(),
        }
    )
    assert list(ours.index) == list(expected.index)
    assert len(expected) == 390  # (09:30, 09:31] .. (15:59, 16:00] New York
    for column in expected.columns:
        np.testing.assert_allclose(
            ours[column].to_numpy(dtype=float),
            expected[column].to_numpy(dtype=float),
            rtol=1e-10,
            err_msg=column,
        )


def _time_weighted_oracle(f: pd.DataFrame, values: np.ndarray) -> dict[int, float]:
    ns = f["ns"].to_numpy()
    ends = f["label_ns"].to_numpy()
    sums: dict[int, list[float]] = {}
    for i in range(len(ns)):
        following = ns[i + 1] if i + 1 < len(ns) else ends[i]
        weight = min(following, ends[i]) - ns[i]
        if np.isnan(values[i]):
            continue
        total = sums.setdefault(int(ends[i]), [0.0, 0.0])
        total[0] += values[i] * weight
        total[1] += weight
    return {k: v[0] / v[1] for k, v in sums.items() if v[1] > 0}


@pytest.mark.shared_data
def test_time_weighted_spread_and_presence_against_a_loop(
    goog_book: pl.DataFrame, goog_pandas: pd.DataFrame
) -> None:
    spec = BucketSpec(width="1m")
    spread = (goog_pandas["ask_price_0"] - goog_pandas["bid_price_0"]).to_numpy()
    expected = _time_weighted_oracle(goog_pandas, spread)
    out = l2.time_weighted_spread(goog_book, l2.NoParams(), spec)
    got = dict(out.select(pl.col("ts").dt.epoch("ns"), "time_weighted_spread").rows())
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9)
    present = goog_pandas["bid_price_0"].notna().to_numpy(dtype=float)
    expected_presence = _time_weighted_oracle(goog_pandas, present)
    out = l2.best_quote_presence_share(goog_book, l2.PresenceParams(side="bid"), spec)
    got = dict(out.select(pl.col("ts").dt.epoch("ns"), "best_quote_presence_share_bid").rows())
    assert got == pytest.approx(expected_presence, rel=1e-12)


def test_time_weights_stop_at_the_bucket_end() -> None:
    t0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "ts": [t0 + timedelta(seconds=s) for s in (10, 50, 70)],
            "instrument": "X",
            "bid_price_0": [10.0, 10.0, 10.0],
            "ask_price_0": [10.1, 10.5, 10.2],
        }
    )
    out = l2.time_weighted_spread(frame, l2.NoParams(), BucketSpec(width="1m"))
    # bucket 09:01: 0.1 for 40 s, 0.5 for 10 s (capped at 09:01, not 20 s to the next row)
    assert out["time_weighted_spread"].round(9).to_list() == [
        round((0.1 * 40 + 0.5 * 10) / 50, 9),
        0.2,
    ]


@pytest.mark.shared_data
def test_best_quote_update_count_against_a_loop(
    goog_book: pl.DataFrame, goog_pandas: pd.DataFrame
) -> None:
    out = l2.best_quote_update_count(goog_book, l2.NoParams(), BucketSpec(width="1m"))
    top = goog_pandas[["bid_price_0", "bid_size_0", "ask_price_0", "ask_size_0"]]
    previous = None
    counts: dict[int, int] = {}
    for label, row in zip(goog_pandas["label_ns"], top.itertuples(index=False), strict=True):
        counts[int(label)] = counts.get(int(label), 0) + (tuple(row) != previous)
        previous = tuple(row)
    got = dict(out.select(pl.col("ts").dt.epoch("ns"), "best_quote_update_count").rows())
    assert got == counts
