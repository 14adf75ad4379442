"""``fetch binance-vision`` against a local archive server (issue 14).

The server is Python's own ``http.server`` over a directory laid out like
data.binance.vision (real HTTP, 404 for a day not published), holding zips made from the
real samples: the ADABTC 1 m kline files exactly as Binance publishes them, and a day of
BTCUSDT trades in the archive's CSV layout. Oracles: the CSVs read with pandas, and
hashlib for the checksums.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app

BINANCE = Path(__file__).resolve().parents[2] / "data" / "binance"
runner = CliRunner()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def publish(
    root: Path, relative: str, member: str, payload: bytes, *, bad_sum: bool = False
) -> Path:
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, payload)
    sha = hashlib.sha256(target.read_bytes()).hexdigest()
    if bad_sum:
        sha = sha[::-1]
    (root / (relative + ".CHECKSUM")).write_text(f"{sha}  {target.name}\n")
    return target


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "vision"
    for day in ("2021-11-27", "2021-11-28"):
        name = f"ADABTC-1m-{day}"
        payload = (BINANCE / f"{name}.csv").read_bytes()
        publish(root, f"data/spot/daily/klines/ADABTC/1m/{name}.zip", f"{name}.csv", payload)
    trades = pd.read_parquet(BINANCE / "btcusdt-trades.parquet")
    ms = trades["timestamp"].astype("datetime64[ns, UTC]").astype("int64") // 1_000_000
    lines = [
        f"{t},{p:.8f},{q:.8f},{p * q:.8f},{m},{b!s},True"
        for t, p, q, m, b in zip(
            trades["trade_id"],
            trades["price"],
            trades["quantity"],
            ms,
            trades["buyer_maker"],
            strict=True,
        )
    ]
    name = "BTCUSDT-trades-2021-01-08"
    publish(
        root,
        f"data/spot/daily/trades/BTCUSDT/{name}.zip",
        f"{name}.csv",
        ("\n".join(lines) + "\n").encode(),
    )
    # a day whose published checksum does not match its zip
    name = "BTCUSDT-trades-2021-01-09"
    publish(
        root,
        f"data/spot/daily/trades/BTCUSDT/{name}.zip",
        f"{name}.csv",
        ("\n".join(lines[:10]) + "\n").encode(),
        bad_sum=True,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    server.shutdown()


def test_klines_fetched_verified_and_ingested_equal_the_published_csv(
    archive: tuple[str, Path],
) -> None:
    base, tmp = archive
    lake = ticklake.init_lake(tmp / "lake")
    args = [
        "fetch",
        "binance-vision",
        "--symbols",
        "ADABTC",
        "--kind",
        "klines",
        "--start",
        "2021-11-26",
        "--end",
        "2021-11-28",
        "--out",
        str(tmp / "out"),
        "--base-url",
        base,
        "--lake",
        str(lake.root),
        "-d",
        "adabtc_1m",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 fetched" in result.output and "1 not published" in result.output  # the 26th
    csv = pd.concat(
        pd.read_csv(BINANCE / f"ADABTC-1m-{d}.csv", header=None)
        for d in ("2021-11-27", "2021-11-28")
    )
    bars = lake.read("adabtc_1m").sort("ts").to_pandas()
    assert len(bars) == len(csv) == 21
    assert (bars["ts"].astype("int64") // 1_000_000).tolist() == csv[0].tolist()
    assert bars["close"].tolist() == csv[4].tolist()
    assert bars["volume"].tolist() == csv[5].tolist()
    again = runner.invoke(app, args)
    assert "0 fetched" in again.output and "2 already present" in again.output


def test_a_checksum_mismatch_is_refused_and_nothing_of_it_ingested(
    archive: tuple[str, Path],
) -> None:
    base, tmp = archive
    lake = ticklake.init_lake(tmp / "lake")
    result = runner.invoke(
        app,
        [
            "fetch",
            "binance-vision",
            "--symbols",
            "BTCUSDT",
            "--kind",
            "trades",
            "--start",
            "2021-01-08",
            "--end",
            "2021-01-09",
            "--out",
            str(tmp / "out"),
            "--base-url",
            base,
            "--lake",
            str(lake.root),
            "-d",
            "btc_trades",
        ],
    )
    assert result.exit_code == 13
    assert "BTCUSDT-trades-2021-01-09.zip: sha256" in result.output
    assert "is not the published" in result.output
    bad = tmp / "out/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2021-01-09.zip"
    assert not bad.exists() and not bad.with_name(bad.name + ".part").exists()
    trades = lake.read("btc_trades").to_pandas()
    sample = pd.read_parquet(BINANCE / "btcusdt-trades.parquet")
    assert len(trades) == len(sample) == 2001  # the good day only
    assert sorted(trades["trade_id"].astype("int64")) == sorted(sample["trade_id"])


def test_whole_months_come_from_monthly_archives_and_unpublished_months_day_by_day(
    archive: tuple[str, Path],
) -> None:
    base, tmp = archive
    root = tmp / "vision"
    days = ("2021-11-27", "2021-11-28")
    payload = b"".join((BINANCE / f"ADABTC-1m-{d}.csv").read_bytes() for d in days)
    publish(root, "data/spot/monthly/klines/ADABTC/1m/ADABTC-1m-2021-11.zip",
            "ADABTC-1m-2021-11.csv", payload)  # fmt: skip
    lake = ticklake.init_lake(tmp / "lake")

    def fetch(start: str, end: str, *extra: str) -> str:
        args = ["fetch", "binance-vision", "--symbols", "ADABTC", "--kind", "klines",
                "--start", start, "--end", end, "--out", str(tmp / "out"), "--base-url", base,
                "--lake", str(lake.root), "-d", "adabtc_1m", *extra]  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return result.output

    # October has no monthly zip (nor daily ones): its 31 days are tried one by one
    output = fetch("2021-10-01", "2021-11-30")
    assert "1 fetched" in output and "31 not published" in output
    assert "1 month(s) not published as a whole, fetched day by day" in output
    assert (tmp / "out/data/spot/monthly/klines/ADABTC/1m/ADABTC-1m-2021-11.zip").is_file()
    assert not (tmp / "out/data/spot/daily").exists()
    csv = pd.concat(pd.read_csv(BINANCE / f"ADABTC-1m-{d}.csv", header=None) for d in days)
    bars = lake.read("adabtc_1m").sort("ts").to_pandas()
    assert (bars["ts"].astype("int64") // 1_000_000).tolist() == csv[0].tolist()
    assert bars["close"].tolist() == csv[4].tolist()
    # a month only partly in the range, or --period daily, uses the daily zips
    output = fetch("2021-11-02", "2021-11-30")
    assert "2 fetched" in output and "27 not published" in output
    output = fetch("2021-11-01", "2021-11-30", "--period", "daily")
    assert "2 already present" in output and "28 not published" in output
    assert lake.read("adabtc_1m").height == 21  # the same bars, ingested once
