"""The facade: ``ticklake.open_lake`` gives a LakeSession whose verbs do what the stage
functions do, on a generated NSE option lake; storage alone has no stage verbs."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

import ticklake
from ticklake.api import LakeSession
from ticklake.backtest.runner import run_backtest
from ticklake.backtest.spec import load_spec
from ticklake.bars import build_bars
from ticklake.errors import ConfigError, SchemaMismatchError
from ticklake.generate import generate_options
from ticklake.ingest.pipeline import ingest_files
from ticklake.ingest.readers import ReaderOptions
from ticklake.lake import Lake
from ticklake.lake import init_lake as init_storage
from ticklake.lake import open_lake as open_storage
from ticklake.quality import validate_dataset
from ticklake.strategies import template_path

DAY = date(2024, 1, 8)


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vendor")
    generate_options(
        "BANKNIFTY", start=DAY, days=1, out=out, seed=3, strikes_each_side=2, expiries=("weekly",)
    )
    return out


@pytest.fixture(scope="module")
def lakes(vendor: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[LakeSession, Lake]:
    """The same sources ingested through the facade and through the stage functions."""
    root = tmp_path_factory.mktemp("lakes")
    session = ticklake.init_lake(root / "facade")
    session.ingest([vendor / "options"], "options", format="nse_options")
    session.ingest(
        vendor / "spot", "spot", format="nse_index", options=ReaderOptions(instrument="BANKNIFTY")
    )
    storage = init_storage(root / "direct")
    ingest_files(storage, "nse_options", [vendor / "options"], "options")
    ingest_files(
        storage,
        "nse_index",
        [vendor / "spot"],
        "spot",
        options=ReaderOptions(instrument="BANKNIFTY"),
    )
    return session, storage


def test_open_lake_gives_the_facade_and_storage_stays_storage(tmp_path: Path) -> None:
    session = ticklake.init_lake(tmp_path / "lake")
    assert isinstance(session, LakeSession) and isinstance(session, Lake)
    assert isinstance(ticklake.open_lake(tmp_path / "lake"), LakeSession)
    storage = open_storage(tmp_path / "lake")
    assert type(storage) is Lake
    for verb in ("ingest", "validate", "bars", "analytics", "backtest", "sweep", "sql", "verify"):
        assert callable(getattr(session, verb))
        assert not hasattr(storage, verb), f"storage must not know the stage verb {verb}"


def test_ingest_through_the_facade_commits_what_the_pipeline_commits(
    lakes: tuple[LakeSession, Lake],
) -> None:
    session, storage = lakes
    for dataset in ("options", "spot"):
        ours = session.read(dataset)
        theirs = storage.read(dataset)
        assert ours.height > 1000
        assert ours.equals(theirs)
        (mine,) = session.partitions(dataset)
        (other,) = storage.partitions(dataset)
        assert mine.manifest is not None and other.manifest is not None
        assert mine.manifest.file_sha256 == other.manifest.file_sha256


def test_validate_and_bars_delegate_with_their_options(lakes: tuple[LakeSession, Lake]) -> None:
    session, storage = lakes
    ours = session.validate("spot", rules=["R5"])
    theirs = validate_dataset(storage, "spot", rules=["R5"])
    assert [r.id for r in ours.rules] == [r.id for r in theirs.rules] != []
    assert [(r.id, r.violations) for r in ours.rules] == [
        (r.id, r.violations) for r in theirs.rules
    ]
    assert ours.verdict == theirs.verdict
    session.bars("spot", "5m", out="spot_5m", anchor="09:15")
    build_bars(storage, "spot", "5m", out="spot_5m", anchor="09:15")
    bars = session.read("silver.spot_5m")
    assert bars.height == 75  # 09:15-15:30 in 5-minute bars
    assert bars.equals(storage.read("silver.spot_5m"))


def test_sql_and_verify_are_session_verbs(lakes: tuple[LakeSession, Lake]) -> None:
    session, _ = lakes
    count = session.sql("select count(*) as n from bronze.options").item()
    assert count == session.read("options").height
    assert session.query_untrusted("select 1 as one").frame.item() == 1
    report = session.verify()
    assert report.ok and report.partitions_checked >= 2


def test_backtest_through_the_facade_trades_what_the_runner_trades(
    lakes: tuple[LakeSession, Lake],
) -> None:
    session, _ = lakes
    overrides = {
        "time.start": str(DAY),
        "time.end": str(DAY),
        "universe.options_dataset": "options",
        "universe.underlying_dataset": "spot",
    }
    path = template_path("atm_straddle_hourly")
    ours = session.backtest(path, overrides=overrides, executor="serial", use_cache=False)
    theirs = run_backtest(
        session, load_spec(path, overrides=overrides), executor="serial", use_cache=False
    )
    assert ours.run_id != theirs.run_id
    columns = ["ts", "leg", "side", "quantity", "price_paise", "reason"]
    trades = ours.trades().select(columns)
    assert trades.height > 0
    assert trades.equals(theirs.trades().select(columns))
    assert ours.ledger["totals"] == theirs.ledger["totals"]
    resumed = session.resume(ours.run_id, executor="serial")
    assert resumed.ledger["totals"] == ours.ledger["totals"]


def test_facade_errors_name_what_to_pass(lakes: tuple[LakeSession, Lake], tmp_path: Path) -> None:
    session, _ = lakes
    frame = pl.DataFrame({"ts": [1], "price": [1.0]})
    with pytest.raises(SchemaMismatchError, match="needs schema="):
        session.ingest(frame, "x")
    with pytest.raises(ConfigError, match="no sweep: section"):
        session.sweep(template_path("atm_straddle_hourly"))
    spec = load_spec(template_path("atm_straddle_hourly"))
    with pytest.raises(ConfigError, match="overrides apply to a strategy file"):
        session.backtest(spec, overrides={"time.start": "2024-01-08"})
