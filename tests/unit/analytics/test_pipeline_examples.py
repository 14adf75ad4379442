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
import pytest

from ticklake.analytics.pipeline import load_pipeline
from ticklake.analytics.run import run_pipeline
from ticklake.ingest.pipeline import ingest_files
from ticklake.ingest.readers.base import ReaderOptions
from ticklake.lake import init_lake

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
