"""`ticklake slice --symbols` refuses symbols the dataset never holds instead of writing nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner, Result

import ticklake
from ticklake.cli import app
from ticklake.cli._common import state

runner = CliRunner()
T0 = datetime(2024, 1, 8, 4, 0, tzinfo=UTC)


@pytest.fixture
def lake_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(state, "debug", False)
    lake = ticklake.init_lake(tmp_path / "lake")
    trades = {"ts": [T0, T0], "instrument": ["AAPL", "MSFT"], "trade_id": ["1", "2"]}
    trades |= {"price": [180.5, 410.0], "size": [1.0, 2.0]}
    lake.write("trades", pl.DataFrame(trades), schema="trades")
    chain = {
        "ts": [T0, T0],
        "symbol": ["BANKNIFTY2411048000CE", "BANKNIFTY2411048000PE"],
        "underlying": ["BANKNIFTY", "BANKNIFTY"],
        "expiry": [date(2024, 1, 10)] * 2,
        "strike": [48000.0, 48000.0],
        "opt_type": ["CE", "PE"],
        "last_price": [233.2, 252.5],
    }
    lake.write("chain", pl.DataFrame(chain), schema="option_snapshots", timezone="Asia/Kolkata")
    return str(tmp_path / "lake")


def _slice(lake_dir: str, dataset: str, symbols: str, out: Path) -> Result:
    return runner.invoke(
        app,
        ["slice", "-d", dataset, "--symbols", symbols, "--out", str(out), "--lake", lake_dir],
    )


def test_known_symbols_are_exported(lake_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "ok.parquet"
    result = _slice(lake_dir, "chain", "BANKNIFTY2411048000PE", out)
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(out)["last_price"].to_list() == [252.5]


@pytest.mark.parametrize(
    ("dataset", "symbols", "unknown", "known"),
    [
        ("trades", "AAPL,MSTF", "MSTF", "AAPL, MSFT"),
        ("chain", "banknifty2411048000ce", "banknifty2411048000ce", "BANKNIFTY2411048000CE"),
    ],
)
def test_unknown_symbols_are_refused_naming_them(
    lake_dir: str, tmp_path: Path, dataset: str, symbols: str, unknown: str, known: str
) -> None:
    out = tmp_path / "typo.parquet"
    result = _slice(lake_dir, dataset, symbols, out)
    output = " ".join(result.output.split())
    assert result.exit_code == 2, output
    assert f"has no rows for --symbols {unknown} " in output
    assert known in output
    assert not out.exists()
