"""``ticklake backtest publish``: a run's results as gold datasets.

Runs are real (the engine on hand-built two-day chains, every price chosen here); the
oracles read the run's own files (``run.json`` with :mod:`json`, the Parquet files with
Polars, sha256 with :mod:`hashlib`) or the hand-chosen quotes, never the publish code.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from _engine_fixtures import (
    HAND_DAY,
    LOT,
    OPTIONS,
    HandChain,
    hand_costs_paise,
    hand_spec,
    ist,
    write_hand_lake,
)
from typer.testing import CliRunner

from ticklake.api import LakeSession, open_lake
from ticklake.backtest.runner import run_backtest
from ticklake.cli import app
from ticklake.errors import ConfigError, CorruptPartitionError, InvalidNameError
from ticklake.schemas import get_schema

DAY_2 = date(2024, 1, 9)
KINDS = ("fills", "positions", "pnl", "portfolio_snapshots")
runner = CliRunner()


def _chain(day: date, ce_exit_bid: float) -> HandChain:
    """The 48,000 straddle: CE 200/200.50 until 09:24, then ``ce_exit_bid`` (+0.50) with
    no CE snapshot 09:24:58-09:25:00, so the 09:25 exit buys at the 09:24:57 quote."""
    chain = HandChain(day=day)
    chain.set_spot("09:15:00", 48_020.0)
    chain.contract(48_000, "CE", 200, 200.5)
    chain.contract(48_000, "PE", 180, 180.4)
    chain.set_quote(48_000, "CE", "09:24:00", ce_exit_bid, ce_exit_bid + 0.5)
    chain.drop_rows(48_000, "CE", "09:24:58", "09:25:01")
    chain.set_quote(48_000, "CE", "09:25:01", 150, 150.5)
    return chain


def _lake(tmp_path: Path) -> LakeSession:
    """Two hand days in one lake: the CE exits at 210.50 on day 1 and at 190.50 on day 2."""
    lake = write_hand_lake(tmp_path / "lake", _chain(HAND_DAY, 210))
    lake.write(OPTIONS, _chain(DAY_2, 190).option_frame(), schema="option_snapshots")
    lake.write("banknifty_spot", _chain(DAY_2, 190).spot_frame(), schema="prices")
    return open_lake(lake.root)


def _run(lake: LakeSession, run_id: str, pnl_per_second: bool = False, **spec: Any) -> Path:
    overrides: dict[str, Any] = {"fills": {"max_quote_age_seconds": 5}, **spec}
    # Both hand days unless the test says otherwise (hand_spec merges into HAND_SPEC).
    overrides["time"] = {"end": DAY_2.isoformat(), **spec.get("time", {})}
    result = run_backtest(
        lake,
        hand_spec(**overrides),
        run_id=run_id,
        executor="serial",
        pnl_per_second=pnl_per_second,
    )
    assert result.status == "complete"
    return result.run_dir


def _ledger(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())


def _partition_hashes(lake: LakeSession, dataset: str) -> dict[str, str]:
    out = {}
    for part in lake.partitions(dataset):
        assert part.manifest is not None
        out[part.date.isoformat()] = part.manifest.file_sha256
    return out


@pytest.fixture
def published(tmp_path: Path) -> tuple[LakeSession, Path]:
    lake = _lake(tmp_path)
    run_dir = _run(lake, "straddle-1", pnl_per_second=True)
    lake.publish_run("straddle-1")
    return lake, run_dir


def test_published_fills_join_the_quotes_they_traded_against(
    published: tuple[LakeSession, Path],
) -> None:
    lake, _ = published
    joined = lake.sql(
        """
        SELECT f.date, f.leg, f.side, f.reason, f.price_paise, f.bid_paise, f.ask_paise,
               q.ts AS quote_ts, q.bid_price_0, q.ask_price_0
        FROM gold.backtest_fills f
        ASOF JOIN bronze.banknifty_options q
          ON q.symbol = f.symbol AND q.ts <= f.quote_asof_ts
        WHERE f.run_id = 'straddle-1' AND f.filled
        ORDER BY f.ts, f.fill_index
        """
    )
    got = [
        (r["date"], r["leg"], r["side"], r["price_paise"], r["quote_ts"])
        for r in joined.iter_rows(named=True)
    ]
    # Cross fills: sells at the bid, buys at the ask, of the quotes chosen in _chain.
    expected = []
    for day, ce_exit in ((HAND_DAY, 21_050), (DAY_2, 19_050)):
        expected += [
            (day, "ce", "sell", 20_000, ist("09:16:00", day)),
            (day, "pe", "sell", 18_000, ist("09:16:00", day)),
            (day, "ce", "buy", ce_exit, ist("09:24:57", day)),  # the stale quote
            (day, "pe", "buy", 18_040, ist("09:25:00", day)),
        ]
    assert got == expected
    # And the quote columns of the joined snapshot give back the fill price exactly.
    quote_paise = joined.select(
        pl.when(pl.col("side") == "buy")
        .then(pl.col("ask_price_0"))
        .otherwise(pl.col("bid_price_0"))
        .mul(100)
        .round()
        .cast(pl.Int64)
    ).to_series()
    assert quote_paise.to_list() == joined["price_paise"].to_list()
    assert (joined["bid_price_0"] * 100).round().cast(pl.Int64).to_list() == joined[
        "bid_paise"
    ].to_list()


def test_the_example_sql_runs_and_returns_every_fill(published: tuple[LakeSession, Path]) -> None:
    lake, run_dir = published
    result = lake.publish_run("straddle-1")
    rows = lake.sql(result.example_sql)
    trades = pl.read_parquet(run_dir / "trades.parquet").filter(pl.col("filled"))
    assert rows["price_paise"].to_list() == trades["price_paise"].to_list()
    assert rows["quote_ts"].null_count() == 0


def test_published_pnl_equals_the_run_ledger_to_the_paisa(
    published: tuple[LakeSession, Path],
) -> None:
    lake, run_dir = published
    ledger = _ledger(run_dir)
    ledger_net = sum(entry["net_pnl_paise"] for entry in ledger["days"].values())
    trades = pl.read_parquet(run_dir / "trades.parquet")
    trades_net = int(trades["cash_flow_paise"].sum()) - int(trades["costs_paise"].sum())
    pnl = lake.read("gold.backtest_pnl").sort("date")
    assert pnl["net_pnl_paise"].dtype == pl.Int64
    assert int(pnl["net_pnl_paise"].sum()) == ledger_net == trades_net
    assert pnl["equity_paise"].to_list()[-1] == ledger_net
    by_day = {d: e["net_pnl_paise"] for d, e in ledger["days"].items()}
    assert dict(zip(pnl["date"].cast(pl.String), pnl["net_pnl_paise"], strict=True)) == by_day
    fills = lake.read("gold.backtest_fills")
    positions = lake.read("gold.backtest_positions")
    fills_net = int(fills["cash_flow_paise"].sum()) - int(fills["costs_paise"].sum())
    assert int(positions["net_pnl_paise"].sum()) == fills_net == ledger_net
    # Each day ends at its session end (15:30 IST): the P&L is final then.
    assert pnl["ts"].to_list() == [ist("09:30:00", HAND_DAY), ist("09:30:00", DAY_2)]


def test_positions_pair_each_open_with_its_close_as_worked_out_by_hand(
    published: tuple[LakeSession, Path],
) -> None:
    lake, _ = published
    positions = lake.read("gold.backtest_positions").filter(pl.col("date") == HAND_DAY)
    got = {
        row["leg"]: (
            row["direction"],
            row["open_price_paise"],
            row["close_price_paise"],
            row["gross_pnl_paise"],
            row["costs_paise"],
            row["holding_seconds"],
            row["close_reason_group"],
        )
        for row in positions.iter_rows(named=True)
    }
    ce_costs = hand_costs_paise(False, LOT * 20_000) + hand_costs_paise(True, LOT * 21_050)
    pe_costs = hand_costs_paise(False, LOT * 18_000) + hand_costs_paise(True, LOT * 18_040)
    assert got == {
        "ce": ("short", 20_000, 21_050, LOT * (20_000 - 21_050), ce_costs, 540, "exit"),
        "pe": ("short", 18_000, 18_040, LOT * (18_000 - 18_040), pe_costs, 540, "exit"),
    }


def test_republishing_gives_the_same_rows_and_partition_hashes(
    published: tuple[LakeSession, Path],
) -> None:
    lake, _ = published
    before = {k: lake.read(f"gold.backtest_{k}") for k in KINDS}
    hashes = {k: _partition_hashes(lake, f"gold.backtest_{k}") for k in KINDS}
    again = lake.publish_run("straddle-1")
    assert {d.kind: d.partitions_changed for d in again.datasets} == dict.fromkeys(KINDS, 0)
    for kind in KINDS:
        assert lake.read(f"gold.backtest_{kind}").equals(before[kind]), kind
        assert _partition_hashes(lake, f"gold.backtest_{kind}") == hashes[kind], kind
    assert before["fills"].height == 8  # 2 days × 4 fills, not appended twice


def test_runs_share_datasets_and_republishing_one_leaves_the_other(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    first = _run(lake, "straddle-1")
    second = _run(lake, "straddle-early", time={"exit_time": "09:20"})
    lake.publish_run("straddle-1")
    lake.publish_run("straddle-early")
    other_before = lake.read("gold.backtest_fills", filters={"run_id": "straddle-early"})
    lake.publish_run("straddle-1")
    fills = lake.read("gold.backtest_fills")
    counts = dict(fills.group_by("run_id").len().iter_rows())
    assert counts == {
        "straddle-1": pl.read_parquet(first / "trades.parquet").height,
        "straddle-early": pl.read_parquet(second / "trades.parquet").height,
    }
    assert counts["straddle-1"] == 8
    assert fills.filter(pl.col("run_id") == "straddle-early").equals(other_before)
    spec_hashes = dict(fills.select("run_id", "spec_hash").unique().iter_rows())
    assert spec_hashes == {
        "straddle-1": _ledger(first)["spec_hash"],
        "straddle-early": _ledger(second)["spec_hash"],
    }
    assert lake.dataset_names().count("gold.backtest_portfolio_snapshots") == 0  # no P&L path


def test_lineage_names_the_run_files_by_sha256_and_the_spec_hash(
    published: tuple[LakeSession, Path],
) -> None:
    lake, run_dir = published
    expected_hash = _ledger(run_dir)["spec_hash"]
    for kind in KINDS:
        for part in lake.partitions(f"gold.backtest_{kind}"):
            assert part.manifest is not None
            lineage = part.manifest.lineage
            assert lineage.spec_hash == expected_hash
            sources = {s.path: s.sha256 for s in lineage.sources}
            assert (
                sources["runs/straddle-1/trades.parquet"]
                == hashlib.sha256((run_dir / "trades.parquet").read_bytes()).hexdigest()
            )
            assert "runs/straddle-1/daily.parquet" in sources


def test_portfolio_snapshots_end_each_day_at_its_gross_pnl(
    published: tuple[LakeSession, Path],
) -> None:
    lake, run_dir = published
    daily = pl.read_parquet(run_dir / "daily.parquet").sort("date")
    snapshots = lake.read("gold.backtest_portfolio_snapshots")
    last = snapshots.sort("ts").group_by("date", maintain_order=True).last()
    assert last["day_gross_pnl_paise"].to_list() == daily["gross_pnl_paise"].to_list()
    assert snapshots.height == pl.read_parquet(run_dir / "pnl.parquet").height


def test_publish_as_a_name_writes_that_prefix(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    _run(lake, "straddle-1")
    result = lake.publish_run("straddle-1", as_name="straddle_tests")
    assert [d.dataset for d in result.datasets] == [
        "gold.straddle_tests_fills",
        "gold.straddle_tests_positions",
        "gold.straddle_tests_pnl",
    ]
    assert lake.read("gold.straddle_tests_fills").height == 8
    with pytest.raises(InvalidNameError, match="cannot publish as 'Bad-Name'"):
        lake.publish_run("straddle-1", as_name="Bad-Name")


def test_publishing_a_crashed_run_fails_clearly_and_writes_nothing(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    run_dir = _run(lake, "straddle-1")
    # What a run killed during its second day leaves: the ledger says running, no
    # run-level files yet.
    ledger = _ledger(run_dir)
    ledger["status"] = "running"
    ledger["days"][DAY_2.isoformat()] = {"status": "pending"}
    (run_dir / "run.json").write_text(json.dumps(ledger))
    for name in ("trades.parquet", "daily.parquet"):
        (run_dir / name).unlink()
    result = runner.invoke(app, ["backtest", "publish", "straddle-1", "--lake", str(lake.root)])
    assert result.exit_code == ConfigError.exit_code == 2, result.output
    assert "is running, not complete (1/2 days done)" in result.output
    assert "ticklake backtest resume straddle-1" in result.output
    assert not [name for name in lake.dataset_names() if name.startswith("gold.")]


def test_publishing_an_unknown_run_exits_2_naming_the_runs_there(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    _run(lake, "straddle-1")
    result = runner.invoke(app, ["backtest", "publish", "nope", "--lake", str(lake.root)])
    assert result.exit_code == 2, result.output
    assert "no run 'nope'" in result.output and "straddle-1" in result.output


def test_a_run_file_changed_after_the_run_is_refused(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    run_dir = _run(lake, "straddle-1")
    trades = pl.read_parquet(run_dir / "trades.parquet")
    trades.with_columns(pl.col("price_paise") + 1).write_parquet(run_dir / "trades.parquet")
    with pytest.raises(CorruptPartitionError, match=r"does not match the sha256 in run\.json"):
        lake.publish_run("straddle-1")
    assert not [name for name in lake.dataset_names() if name.startswith("gold.")]


def test_a_sweep_is_refused_with_what_to_do(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    run_dir = _run(lake, "straddle-1")
    ledger = _ledger(run_dir)
    (run_dir / "run.json").write_text(json.dumps({**ledger, "kind": "sweep"}))
    with pytest.raises(ConfigError, match="is a sweep; publish a single run"):
        lake.publish_run("straddle-1")


def test_the_cli_prints_the_datasets_and_an_example_query(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    _run(lake, "straddle-1")
    result = runner.invoke(
        app, ["backtest", "publish", "straddle-1", "--as", "cli_run", "--lake", str(lake.root)]
    )
    assert result.exit_code == 0, result.output
    for kind in ("fills", "positions", "pnl"):
        assert f"gold.cli_run_{kind}" in result.output
    assert "ASOF JOIN bronze.banknifty_options" in result.output
    assert lake.read("gold.cli_run_pnl").height == 2


def test_the_web_endpoint_publishes_only_with_the_csrf_header(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from ticklake.web.app import create_app

    lake = _lake(tmp_path)
    _run(lake, "straddle-1")
    web = create_app(lake.root)
    try:
        client = TestClient(web, base_url="http://127.0.0.1")
        client.get("/api/v1/health")
        refused = client.post("/api/v1/runs/straddle-1/publish", json={})
        assert refused.status_code == 403
        assert not [name for name in lake.dataset_names() if name.startswith("gold.")]
        client.headers["X-Ticklake-CSRF"] = client.cookies.get("ticklake_csrf") or ""
        answer = client.post("/api/v1/runs/straddle-1/publish", json={"as_name": "web_run"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [d["dataset"] for d in body["datasets"]] == [
            "gold.web_run_fills",
            "gold.web_run_positions",
            "gold.web_run_pnl",
        ]
        assert lake.read("gold.web_run_fills").height == body["datasets"][0]["rows"] == 8
        missing = client.post("/api/v1/runs/nope/publish", json={})
        assert missing.status_code == 404
    finally:
        web.state.jobs.shutdown()


def test_the_canonical_result_schemas_accept_what_publish_writes(
    published: tuple[LakeSession, Path],
) -> None:
    lake, _ = published
    for kind in KINDS:
        schema = get_schema(kind)
        info = lake.dataset_info(f"gold.backtest_{kind}")
        assert info.dataset_schema.fingerprint() == schema.fingerprint()
        money = [c.name for c in schema.columns if c.name.endswith("_paise")]
        assert money and all(schema.column(c).type == "int64" for c in money)
        assert schema.column(schema.ts_column).type == "timestamp[ns, UTC]"


def test_a_run_without_a_fill_publishes_its_days_and_no_fills(tmp_path: Path) -> None:
    chain = HandChain()
    chain.set_spot("09:15:00", 48_020.0)
    chain.contract(48_000, "CE", 200, 200.5)  # no put: the PE leg never has a contract
    lake = open_lake(write_hand_lake(tmp_path / "lake", chain).root)
    run_dir = _run(lake, "no-trade", time={"end": HAND_DAY.isoformat()})
    assert pl.read_parquet(run_dir / "trades.parquet").height == 0
    result = lake.publish_run("no-trade")
    assert {d.kind: d.rows for d in result.datasets} == {"fills": 0, "positions": 0, "pnl": 1}
    pnl = lake.read("gold.backtest_pnl")
    assert pnl.select("status", "net_pnl_paise", "equity_paise").rows() == [("no_trade", 0, 0)]
    assert lake.read("gold.backtest_fills").height == 0


def test_a_forced_close_priced_by_an_earlier_quote_joins_that_quote(tmp_path: Path) -> None:
    chain = HandChain()
    chain.set_spot("09:15:00", 48_020.0)
    chain.contract(48_000, "CE", 200, 200.5)
    chain.contract(48_000, "PE", 180, 180.4)
    chain.set_quote(48_000, "CE", "09:29:00", 230, 230.5)
    chain.set_quote(48_000, "CE", "09:29:58", 231, 0)  # no ask in the last two seconds
    lake = open_lake(write_hand_lake(tmp_path / "lake", chain).root)
    _run(lake, "forced", time={"end": HAND_DAY.isoformat(), "exit_time": "09:30"})
    lake.publish_run("forced")
    query = """
        SELECT f.reason, f.price_paise, q.ts AS quote_ts, q.ask_price_0
        FROM gold.backtest_fills f
        ASOF JOIN bronze.banknifty_options q ON q.symbol = f.symbol AND q.ts <= f.{column}
        WHERE f.leg = 'ce' AND f.side = 'buy'
    """
    # The close at the last second (09:29:59) bought at the 09:29:57 ask, 230.50.
    assert lake.sql(query.format(column="quote_asof_ts")).rows() == [
        ("forced_end_of_day", 23_050, ist("09:29:57"), 230.5)
    ]
    # The fill's own second holds the one-sided snapshot: joining on ts would miss it.
    assert lake.sql(query.format(column="ts")).rows()[0][2:] == (ist("09:29:59"), 0.0)
