"""The packaged example pipelines on real LOBSTER data and on a generated option chain,
checked against values read straight from the raw files (csv) and against py_vollib."""

from __future__ import annotations

import csv
import io
import math
import warnings
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow.parquet as pq
import pytest

from ticklake.analytics.buckets import BucketSpec
from ticklake.analytics.pipeline import AggressorSideSpec, load_pipeline, parse_pipeline
from ticklake.analytics.processors import DAY, PassContext, aggressor_side
from ticklake.analytics.run import run_pipeline
from ticklake.ingest.mapping import infer_mapping
from ticklake.ingest.pipeline import ingest_files
from ticklake.ingest.readers.base import ReaderOptions
from ticklake.lake import Lake, init_lake

EXAMPLES = Path(__file__).resolve().parents[3] / "src" / "ticklake" / "analytics" / "examples"
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")


def test_every_example_pipeline_validates() -> None:
    from ticklake.analytics.pipeline import validate_pipeline

    paths = sorted(EXAMPLES.glob("*.yml"))
    assert len(paths) >= 2
    for path in paths:
        validate_pipeline(load_pipeline(path))


def _raw_lobster(archive: Path) -> tuple[list[list[str]], list[list[str]]]:
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()

        def rows(kind: str) -> list[list[str]]:
            (member,) = [n for n in names if f"_{kind}_" in n]
            with zf.open(member) as fh:
                return list(csv.reader(io.TextIOWrapper(fh, encoding="ascii")))

        return rows("message"), rows("orderbook")


@pytest.mark.shared_data
def test_lobster_example_matches_the_raw_files(shared_data: Path, tmp_path: Path) -> None:
    archive = shared_data / "lobster-2012-06-21" / "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip"
    lake = init_lake(tmp_path / "lake")
    ingest_files(lake, "lobster_book", [archive], "goog_book")
    ingest_files(lake, "lobster_messages", [archive], "goog_orders")
    run = run_pipeline(lake, load_pipeline(EXAMPLES / "lobster_book_and_orders.yml"))
    assert run.spec.timezone == "America/New_York"
    book = lake.read("gold.lobster_goog_book")
    orders = lake.read("gold.lobster_goog_orders")
    five = lake.read("gold.lobster_goog_book_five_minutes")
    book_l2 = lake.read("gold.lobster_goog_book_l2")

    messages, levels = _raw_lobster(archive)
    seconds = [float(m[0]) for m in messages]  # seconds after midnight, New York
    midnight = datetime(2012, 6, 21, tzinfo=NEW_YORK)

    def label(clock: str) -> datetime:
        hours, minutes = (int(x) for x in clock.split(":"))
        return (midnight + timedelta(hours=hours, minutes=minutes)).astimezone(UTC)

    def spread_at(moment: datetime) -> float:
        cut = (moment.astimezone(NEW_YORK) - midnight).total_seconds()
        last = max(i for i, s in enumerate(seconds) if s <= cut)
        return (int(levels[last][0]) - int(levels[last][2])) / 10_000

    for clock in ("09:31", "10:17", "12:00", "14:43", "15:59"):
        at = label(clock)
        row = book.filter(pl.col("ts") == at)
        assert row["spread"].item() == pytest.approx(spread_at(at), abs=1e-9), clock
        start = (at.astimezone(NEW_YORK) - midnight).total_seconds() - 60
        adds = sum(
            1
            for m, s in zip(messages, seconds, strict=True)
            if m[1] == "1" and start < s <= start + 60
        )
        assert orders.filter(pl.col("ts") == at)["order_add_count"].item() == adds, clock
        updates = sum(1 for s in seconds if start < s <= start + 60)  # one book row each
        assert book_l2.filter(pl.col("ts") == at)["book_update_count"].item() == updates
    for clock in ("09:35", "11:00", "15:55"):
        at = label(clock)
        assert five.filter(pl.col("ts") == at)["spread"].item() == pytest.approx(spread_at(at))
    assert book.height == 390 and five.height == 78  # 09:30–16:00 in whole minutes


@pytest.mark.slow
def test_option_example_matches_py_vollib(tmp_path: Path) -> None:
    from ticklake.generate import generate_options

    raw = tmp_path / "vendor"
    generate_options(
        "BANKNIFTY",
        start=date(2024, 1, 9),
        days=1,
        out=raw,
        seed=3,
        strikes_each_side=1,
        expiries=("weekly",),
        seconds_step=15,
    )
    lake = init_lake(tmp_path / "lake")
    ingest_files(lake, "nse_options", [raw / "options"], "banknifty_options")
    ingest_files(
        lake,
        "nse_index",
        [raw / "spot"],
        "banknifty_spot",
        options=ReaderOptions(instrument="BANKNIFTY"),
    )
    run_pipeline(lake, load_pipeline(EXAMPLES / "option_greeks.yml"), executor="serial")
    greeks = lake.read("gold.option_greeks_greeks")
    ranks = lake.read("gold.option_greeks_hourly_iv_rank")
    assert greeks.height > 100 and ranks.height > 10
    assert ranks["implied_volatility_mid_percentile_rank"].drop_nulls().is_between(0, 1).all()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from py_vollib.black_scholes_merton.greeks.analytical import delta
        from py_vollib.black_scholes_merton.implied_volatility import implied_volatility

    snapshots = lake.read("banknifty_options").sort("ts")
    spot = lake.read("banknifty_spot").sort("ts")
    checked = 0
    for row in (
        greeks.filter(pl.col("implied_volatility_mid").is_not_null())
        .sample(12, seed=5)
        .iter_rows(named=True)
    ):
        mine = snapshots.filter(
            (pl.col("symbol") == row["instrument"]) & (pl.col("ts") <= row["ts"])
        )
        snap = mine.row(-1, named=True)
        underlying = spot.filter(pl.col("ts") <= snap["ts"]).row(-1, named=True)
        assert snap["ts"] - underlying["ts"] <= timedelta(minutes=1)
        expiry = datetime.combine(snap["expiry"], datetime.min.time(), KOLKATA) + timedelta(
            hours=15, minutes=30
        )
        years = (expiry - snap["ts"]).total_seconds() / (365 * 86_400)
        price = (snap["bid_price_0"] + snap["ask_price_0"]) / 2
        flag = "c" if snap["opt_type"] == "CE" else "p"
        S, K = underlying["price"], snap["strike"]
        want = implied_volatility(price, S, K, years, 0.0, 0.0, flag)
        assert row["implied_volatility_mid"] == pytest.approx(want, rel=1e-6, abs=1e-6)
        assert row["delta_mid"] == pytest.approx(delta(flag, S, K, years, 0.0, want, 0.0), abs=1e-6)
        assert row["spot_price"] == S and math.isfinite(row["gamma_mid"])
        checked += 1
    assert checked == 12


def _ingest_binance(lake: Lake, folder: Path) -> None:
    trades = infer_mapping(folder / "btcusdt-trades.parquet")
    quotes = infer_mapping(folder / "btcusdt-quotes.parquet")
    # The quotes file names the pair 'BTC/USDT', the trades do not name it: one symbol.
    quotes = quotes.model_copy(
        update={"columns": {k: v for k, v in quotes.columns.items() if k != "instrument"}}
    )
    for name, dataset, mapping in (
        ("btcusdt-trades.parquet", "btcusdt_trades", trades),
        ("btcusdt-quotes.parquet", "btcusdt_quotes", quotes),
    ):
        options = ReaderOptions(instrument="BTCUSDT", extra={"mapping": mapping})
        ingest_files(lake, "parquet", [folder / name], dataset, options=options)


@pytest.mark.shared_data
def test_binance_example_matches_the_raw_files(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "nautilus-crypto-samples" / "binance"
    lake = init_lake(tmp_path / "lake")
    _ingest_binance(lake, folder)
    run_pipeline(lake, load_pipeline(EXAMPLES / "binance_btcusdt.yml"), executor="serial")
    trades = lake.read("gold.binance_btcusdt_trades")
    quotes = lake.read("gold.binance_btcusdt_quotes")

    raw = pq.read_table(folder / "btcusdt-trades.parquet").to_pylist()
    buckets: dict[datetime, list[dict[str, object]]] = {}
    for t in raw:
        stamp = t["timestamp"]
        assert isinstance(stamp, datetime)
        end = stamp.replace(microsecond=0, second=stamp.second // 10 * 10) + timedelta(seconds=10)
        if stamp == end - timedelta(seconds=10):  # on a boundary: the bucket ending there
            end -= timedelta(seconds=10)
        buckets.setdefault(end, []).append(t)
    assert trades["ts"].to_list() == sorted(buckets)
    for row in trades.iter_rows(named=True):
        rows = buckets[row["ts"]]
        size = [float(str(t["quantity"])) for t in rows]
        price = [float(str(t["price"])) for t in rows]
        taker_buy = [s for s, t in zip(size, rows, strict=True) if t["buyer_maker"] == "False"]
        assert row["trade_volume"] == pytest.approx(sum(size))
        assert row["trade_count"] == len(rows)
        assert row["vwap_price"] == pytest.approx(
            sum(p * s for p, s in zip(price, size, strict=True)) / sum(size)
        )
        assert (row["open_price"], row["close_price"]) == (price[0], price[-1])
        assert row["buy_volume"] == pytest.approx(sum(taker_buy))
        assert row["sell_volume"] == pytest.approx(sum(size) - sum(taker_buy))

    book = pq.read_table(folder / "btcusdt-quotes.parquet").to_pylist()
    for row in quotes.iter_rows(named=True):
        last = [q for q in book if q["timestamp"] <= row["ts"]][-1]
        bid, ask = float(str(last["bid"])), float(str(last["ask"]))
        assert row["spread_bps"] == pytest.approx((ask - bid) / ((ask + bid) / 2) * 10_000)


@pytest.mark.shared_data
def test_quote_rule_agrees_with_binance_aggressor_flags(shared_data: Path, tmp_path: Path) -> None:
    lake = init_lake(tmp_path / "lake")
    _ingest_binance(lake, shared_data / "nautilus-crypto-samples" / "binance")
    spec = parse_pipeline(
        {"name": "p", "passes": [{"name": "a", "input": "btcusdt_trades", "modules": []}]}
    )
    day = date(2021, 1, 8)
    context = PassContext(lake, spec, spec.passes[0], "UTC", (day,), BucketSpec())
    vendor = lake.read("btcusdt_trades").with_columns(pl.lit(day).alias(DAY))
    classify = AggressorSideSpec(
        kind="aggressor_side", quotes="btcusdt_quotes", max_quote_age="5s", keep_vendor_side=False
    )
    ours = aggressor_side(vendor, classify, context)
    by_quote = ours.filter(pl.col("side_source") == "quote")
    agreement = (by_quote["side"] == vendor.filter(ours["side_source"] == "quote")["side"]).mean()
    # 451 quote snapshots for 2,001 trades: the prevailing quote is often stale, yet the
    # quote rule matches Binance's exact aggressor flag on ~91% of trades (measured 0.906).
    assert by_quote.height > 1900 and agreement is not None and agreement > 0.88
