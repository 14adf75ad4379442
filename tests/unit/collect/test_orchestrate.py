"""The orchestrator and the health file (issue 14).

A soak test with a compressed schedule (seconds, not hours): ``ticklake orchestrate`` as
a real subprocess against the local Binance, jobs routing raw parts, building bars,
validating, pruning, and one job that always fails; then SIGTERM. Oracles: the fake
exchange's trade ids, the clock, and the documented status rules worked by hand.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app
from ticklake.collect.health import Health, JobState, read_health
from ticklake.collect.orchestrate import parse_every

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fakes"))
from binance_exchange import FakeBinance

pytestmark = pytest.mark.timeout(300)
runner = CliRunner()

CONFIG = """
lake = "lake"
heartbeat_seconds = 0.5
[[collectors]]
market = "spot"
symbols = ["BTCUSDT"]
streams = ["aggTrade", "bookTicker"]
out = "raw"
ws_url = "{ws}"
rest_url = "{rest}"
part_seconds = 0.5
[[jobs]]
name = "route"
kind = "route"
every = "1s"
on_start = true
raw = "raw"
[[jobs]]
name = "bars"
kind = "bars"
every = "2s"
dataset = "binance_agg_trades"
interval = "1s"
retry_seconds = 0.5
[[jobs]]
name = "validate"
kind = "validate"
every = "2s"
dataset = "binance_agg_trades"
retry_seconds = 0.5
[[jobs]]
name = "prune"
kind = "prune_raw"
every = "1s"
raw = "raw"
retention_days = 1
[[jobs]]
name = "broken"
kind = "bars"
every = "1s"
dataset = "no_such_dataset"
retry_seconds = 0.1
"""


def beat(lake: Path) -> dict:
    return json.loads((lake / "health" / "heartbeat.json").read_text())


def test_soak_jobs_run_a_failing_job_is_reported_and_sigterm_stops_cleanly(
    tmp_path: Path,
) -> None:
    ticklake.init_lake(tmp_path / "lake")
    with FakeBinance(rate_hz=200) as fake:
        config = tmp_path / "orchestrate.toml"
        config.write_text(CONFIG.format(ws=fake.ws_url, rest=fake.rest_url))
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "ticklake"), "orchestrate", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=tmp_path, env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
        lake = tmp_path / "lake"
        deadline = time.monotonic() + 60
        running = None
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.25)
            try:
                current = beat(lake)
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            jobs = current["jobs"]
            if (
                jobs["bars"]["runs"] >= 2 and jobs["validate"]["runs"] >= 1
                and jobs["broken"]["failures_in_a_row"] >= 3
                and "row(s) added" in str(jobs["route"]["last_result"])
            ):  # fmt: skip
                running = current
                break
        assert running is not None, proc.stdout.read() if proc.poll() is not None else "timeout"
        assert running["status"] == "ERROR"
        assert any("job broken: failed" in r for r in running["reasons"])
        stream = running["streams"]["spot:btcusdt@aggTrade"]
        assert stream["rate_per_second"] > 50 and stream["silent_seconds"] < 5
        assert running["jobs"]["bars"]["last_result"].startswith("ok:")
        assert running["jobs"]["validate"]["last_result"].startswith("ok: verdict")
        assert running["jobs"]["prune"]["last_result"].startswith("ok: 0 part(s) removed")
        # the collectors kept running while jobs failed: messages still arrive
        assert (time.time_ns() - fake.agg_trades["BTCUSDT"][-1]["T"] * 1_000_000) < 5e9
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        stopped_in = time.monotonic() - stopping
    assert proc.returncode == 0, output
    assert stopped_in < 10, f"stopped in {stopped_in:.1f} s"
    final = beat(lake)
    assert final["status"] == "STOPPED"
    assert not list((tmp_path / "raw").rglob("*.open")), "open parts closed on stop"
    session = ticklake.open_lake(lake)
    ids = sorted(int(t) for t in session.read("binance_agg_trades")["trade_id"].to_list())
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # routed: no hole, none twice
    assert session.read("bars_1s", layer="silver").height > 0
    health = runner.invoke(app, ["health", "--lake", str(lake)])
    assert health.exit_code == 22 and "STOPPED" in health.output
    assert (lake / "health" / "orchestrator.log").stat().st_size > 0


def _collector(last_recv_ns: int | None, gaps: list[dict]) -> SimpleNamespace:
    stats = SimpleNamespace(snapshot=lambda now: {"market": "spot", "streams": {"s@aggTrade": {
        "last_recv_ns": last_recv_ns, "rate_per_second": 1.0, "written": 1,
        "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0}}}})  # fmt: skip
    return SimpleNamespace(stats=stats, gaps=SimpleNamespace(read=lambda: gaps))


def test_status_rules_at_their_boundaries(tmp_path: Path) -> None:
    health = Health(tmp_path, heartbeat_seconds=30, silent_error_seconds=120)
    now = time.time_ns()
    assert health.build([_collector(now - 119 * 10**9, [])])["status"] == "HEALTHY"
    assert health.build([_collector(now - 121 * 10**9, [])])["status"] == "ERROR"
    lost = [{"recorded_ns": now, "stream": "s@aggTrade", "recovered": False}]
    kept = [{"recorded_ns": now, "stream": "s@aggTrade", "recovered": True}]
    assert health.build([_collector(now, kept)])["status"] == "HEALTHY"
    assert health.build([_collector(now, lost)])["status"] == "DEGRADED"
    job = JobState("bars", "bars", 60, failures_in_a_row=2, last_result="failed: x")
    health.jobs["bars"] = job
    assert health.build([])["status"] == "DEGRADED"
    job.failures_in_a_row = 3
    assert health.build([])["status"] == "ERROR"
    assert health.build([], stopped=True)["status"] == "STOPPED"
    health.write([])
    assert read_health(tmp_path)[0] == "ERROR"
    heartbeat = tmp_path / "health" / "heartbeat.json"
    old = json.loads(heartbeat.read_text())
    old["written_ns"] -= 91 * 10**9  # more than 3 periods of 30 s
    heartbeat.write_text(json.dumps(old))
    assert read_health(tmp_path)[0] == "STALE"
    assert read_health(tmp_path / "nowhere")[0] == "MISSING"


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600),
                                               ("1d", 86400), (2.5, 2.5), ("90", 90)])  # fmt: skip
def test_every_parses_the_documented_units(text: str | float, seconds: float) -> None:
    assert parse_every(text) == seconds


def test_a_bad_config_names_the_file_and_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('lake = "lake"\n[[jobs]]\nname = "x"\nkind = "route"\nevery = "5 minutes"\n')
    result = runner.invoke(app, ["orchestrate", str(config)])
    assert result.exit_code == 2
    assert "bad.toml" in result.output and "jobs.0.every" in result.output


def test_compact_repacks_each_closed_day_once_and_again_after_late_data(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    import polars as pl
    from polars.testing import assert_frame_equal

    from ticklake import init_lake
    from ticklake.collect.orchestrate import SYNC_JOBS, JobConfig

    lake = init_lake(tmp_path / "lake")
    now = datetime.now(UTC).replace(hour=0, minute=30, second=0, microsecond=0)
    times = [now - timedelta(days=2), now - timedelta(days=1), now]  # two closed days, today
    # (each day's trades lie within 10 minutes before 00:30 UTC: never on another day)

    def trades(ids: range, shift: int = 0) -> pl.DataFrame:
        return pl.DataFrame({
            "ts": [times[i % 3] - timedelta(seconds=i + shift) for i in ids],
            "instrument": "BTCUSDT", "trade_id": [str(i + shift) for i in ids],
            "price": [100.0 + i for i in ids], "size": 1.0,
        }).with_columns(pl.col("ts").dt.cast_time_unit("ns"))  # fmt: skip

    for start in range(0, 300, 50):  # six small routed batches
        lake.write("binance_trades", trades(range(start, start + 50)), schema="trades")
    before = lake.read("binance_trades").sort("ts", "trade_id")
    job = JobConfig(name="compact", kind="compact", every="1h")
    today = {p.date: p.manifest.file_sha256 for p in lake.partitions("binance_trades")}
    assert SYNC_JOBS["compact"](lake, job) == "ok: 2 closed day(s) compacted in 1 dataset(s)"
    after = {p.date: p.manifest.file_sha256 for p in lake.partitions("binance_trades")}
    assert after[now.date()] == today[now.date()]  # today is still open: untouched
    assert_frame_equal(lake.read("binance_trades").sort("ts", "trade_id"), before)
    assert SYNC_JOBS["compact"](lake, job) == "ok: 0 closed day(s) compacted in 1 dataset(s)"
    late = trades(range(1, 2), shift=10_000)  # one late trade of yesterday
    lake.write("binance_trades", late, schema="trades")
    assert SYNC_JOBS["compact"](lake, job) == "ok: 1 closed day(s) compacted in 1 dataset(s)"
    assert lake.read("binance_trades").height == 301
