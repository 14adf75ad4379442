"""REST backfill against the local Binance (issue 14): pages of 1,000, 429 with
``Retry-After``, resume after an interruption, dedupe against the lake.

Oracle: the fake exchange's own klines (a deterministic function of the open time) and
its aggTrade history, never the backfill's output.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app
from ticklake.collect import backfill as backfill_module
from ticklake.collect.backfill import BackfillSpec, run_backfill
from ticklake.collect.rest import run_sync

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fakes"))
from binance_exchange import FakeBinance

pytestmark = pytest.mark.timeout(300)
runner = CliRunner()


@pytest.fixture
def exchange() -> Iterator[FakeBinance]:
    with FakeBinance(rate_hz=500) as fake:
        yield fake


def test_klines_over_two_days_in_pages_with_a_429(exchange: FakeBinance, tmp_path: Path) -> None:
    start, end = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, 23, 59, tzinfo=UTC)
    exchange.rate_limit(answers=1, retry_after=1)
    spec = BackfillSpec(
        symbols=["BTCUSDT"],
        kind="klines",
        interval="1m",
        start=start.date(),
        end=end.date(),
        out=tmp_path / "raw",
        rest_url=exchange.rest_url,
    )
    summary = run_sync(run_backfill(spec))
    assert summary.lines == {"btcusdt@kline_1m": 2880}
    assert summary.pages == 3  # 1,000 + 1,000 + 880 bars
    assert summary.retries == 1 and summary.waited_seconds >= 1
    lake = ticklake.init_lake(tmp_path / "lake")
    lake.ingest_raw(tmp_path / "raw")
    bars = lake.read("binance_klines_1m").sort("ts")
    assert bars.height == 2880
    first_ms = int(start.timestamp() * 1000)
    for i in (0, 999, 1000, 2879):  # page edges
        row = bars.row(i, named=True)
        k = exchange.kline(first_ms + i * 60_000, 60_000)
        assert int(row["ts"].timestamp() * 1000) == k[0]
        assert int(row["ts_end"].timestamp() * 1000) == k[6] + 1  # exclusive end
        assert (row["open"], row["high"], row["low"], row["close"]) == tuple(
            float(x) for x in k[1:5]
        )
        assert row["volume"] == float(k[5]) and row["trade_count"] == k[8]
    again = run_sync(run_backfill(spec))
    assert again.lines == {} and again.pages == 0  # finished: nothing fetched


def test_a_418_ban_waits_its_retry_after_and_the_backfill_completes(
    exchange: FakeBinance, tmp_path: Path
) -> None:
    """418 is Binance's IP ban; its Retry-After is the ban's length: wait it, then go on."""
    exchange.ban(answers=1, retry_after=2)
    spec = BackfillSpec(
        symbols=["BTCUSDT"], kind="klines", interval="1m", start=datetime(2024, 3, 1).date(),
        end=datetime(2024, 3, 1).date(), out=tmp_path / "raw", rest_url=exchange.rest_url,
    )  # fmt: skip
    started = time.monotonic()
    summary = run_sync(run_backfill(spec))
    assert exchange.bans_answered == 1
    assert summary.retries == 1 and summary.waited_seconds >= 2
    assert time.monotonic() - started >= 2
    assert summary.lines == {"btcusdt@kline_1m": 1440}


def test_an_interrupted_kline_backfill_resumes_where_it_stopped(
    exchange: FakeBinance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = BackfillSpec(
        symbols=["BTCUSDT"],
        kind="klines",
        interval="1m",
        start=datetime(2024, 3, 1, tzinfo=UTC),
        end=datetime(2024, 3, 2, tzinfo=UTC),
        out=tmp_path / "raw",
        rest_url=exchange.rest_url,
    )
    real_get = backfill_module.BinanceRest.get
    calls = [0]

    async def failing_get(self, path, params):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt  # the user's Ctrl+C after the first page
        return await real_get(self, path, params)

    monkeypatch.setattr(backfill_module.BinanceRest, "get", failing_get)
    with pytest.raises(KeyboardInterrupt):
        run_sync(run_backfill(spec))
    monkeypatch.setattr(backfill_module.BinanceRest, "get", real_get)
    resumed = run_sync(run_backfill(spec))
    first_ms = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000)
    assert resumed.resumed_from == {"BTCUSDT": first_ms + 1000 * 60_000}
    assert resumed.lines == {"btcusdt@kline_1m": 1441 - 1000}
    lake = ticklake.init_lake(tmp_path / "lake")
    lake.ingest_raw(tmp_path / "raw")
    assert lake.read("binance_klines_1m").height == 1441  # 00:00 day 1 .. 00:00 day 2


def test_agg_trades_backfill_fills_what_the_lake_lacks_once(
    exchange: FakeBinance, tmp_path: Path
) -> None:
    time.sleep(3.0)  # ~1,500 trades of history
    exchange.pause()
    history = exchange.agg_trades["BTCUSDT"]
    begin = datetime.fromtimestamp(history[100]["T"] / 1000, tz=UTC)
    finish = datetime.fromtimestamp(history[-50]["T"] / 1000, tz=UTC)
    low, high = begin.timestamp() * 1000, finish.timestamp() * 1000
    expected = [r["a"] for r in history if low <= r["T"] <= high]
    args = [
        "backfill",
        "binance",
        "--symbols",
        "BTCUSDT",
        "--kind",
        "aggTrades",
        "--start",
        begin.isoformat(),
        "--end",
        finish.isoformat(),
        "--out",
        str(tmp_path / "raw"),
        "--rest-url",
        exchange.rest_url,
        "--lake",
        str(ticklake.init_lake(tmp_path / "lake").root),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lake = ticklake.open_lake(tmp_path / "lake")
    got = lake.read("binance_agg_trades").sort("ts")["trade_id"].to_list()
    assert sorted(int(t) for t in got) == expected and len(expected) > 1000  # > one page
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "fetched 0 aggTrades line(s)" in second.output and "already routed" in second.output
    assert lake.read("binance_agg_trades").height == len(expected)


def test_funding_and_open_interest_backfill_usdm(tmp_path: Path) -> None:
    """Settled funding rates (8-hourly) and 5 m open interest over the last days, paged,
    routed to binance_funding and binance_open_interest with the server's values."""
    with FakeBinance(market="usdm", rate_hz=50) as fake:
        now = datetime.now(UTC)
        start = (now - timedelta(days=4)).date()
        raw, lake = tmp_path / "raw", ticklake.init_lake(tmp_path / "lake")
        base = dict(
            market="usdm",
            symbols=["BTCUSDT"],
            start=start,
            end=now,
            out=raw,
            rest_url=fake.rest_url,
        )
        funding = run_sync(run_backfill(BackfillSpec(kind="fundingRate", **base)))
        oi = run_sync(run_backfill(BackfillSpec(kind="openInterest", interval="5m", **base)))
        lake.ingest_raw(raw)
        first_ms = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp() * 1000)
        now_ms = int(now.timestamp() * 1000)
        settle = [t for t in range(first_ms, now_ms + 1, 28_800_000)]
        rates = lake.read("binance_funding").sort("ts")
        assert funding.lines == {"btcusdt@fundingRate": len(settle)}
        assert [int(t.timestamp() * 1000) for t in rates["ts"]] == settle
        assert rates["funding_rate"].to_list() == [
            float(fake.funding("BTCUSDT", t)["fundingRate"]) for t in settle
        ]
        periods = list(range(first_ms, now_ms + 1, 300_000))
        assert oi.pages == -(-len(periods) // 500)  # 500 a page
        interest = lake.read("binance_open_interest").sort("ts")
        assert interest.height == len(periods)
        sample = periods[::97]
        got = dict(
            zip(
                (int(t.timestamp() * 1000) for t in interest["ts"]),
                interest["open_interest"],
                strict=True,
            )
        )
        assert [got[t] for t in sample] == [
            float(fake.open_interest("BTCUSDT", t, 300_000)["sumOpenInterest"]) for t in sample
        ]
    with pytest.raises(ValueError, match="USD-M futures only"):
        BackfillSpec(kind="fundingRate", symbols=["X"], start=start, end=start, out=raw)
