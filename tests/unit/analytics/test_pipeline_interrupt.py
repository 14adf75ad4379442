"""Ctrl+C during a process-executor run leaves only whole days; a re-run completes it.
The re-run is profiled: the VizTracer trace holds the parent and the worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

sys.path.insert(0, str(Path(__file__).parent))
from _pipeline_helpers import HERE, make_trades, registered_test_metrics

from ticklake import init_lake
from ticklake.analytics.pipeline import parse_pipeline
from ticklake.analytics.run import run_pipeline

DAYS = [date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6), date(2024, 3, 7)]


def spec_dict(name: str, seconds: float) -> dict[str, object]:
    return {
        "name": name,
        "metric_modules": ["_pipeline_test_metrics"],
        "batch_frequency": "D",
        "passes": [
            {
                "name": "minute",
                "input": "trades",
                "modules": [
                    {"metric": "pipeline_test_volume"},
                    {"metric": "pipeline_test_cumulative_volume"},
                    {"metric": "pipeline_test_slow_count", "params": {"seconds_per_call": seconds}},
                ],
            }
        ],
    }


def test_ctrl_c_leaves_whole_days_and_a_rerun_completes(tmp_path: Path) -> None:
    lake = init_lake(tmp_path / "lake")
    lake.write("trades", make_trades(DAYS, ["AAA", "BBB"], per_day=200), schema="trades")
    with registered_test_metrics():
        run_pipeline(lake, parse_pipeline(spec_dict("reference", 0.0)), executor="serial")
    reference = lake.read("gold.reference_minute")

    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        from ticklake.analytics.pipeline import parse_pipeline
        from ticklake.analytics.run import run_pipeline
        from ticklake.errors import InterruptedRunError
        from ticklake.lake import open_lake

        if __name__ == "__main__":
            spec = parse_pipeline({spec_dict("cut", 4.0)!r})
            try:
                run_pipeline(open_lake({str(lake.root)!r}), spec, executor="process", workers=2)
            except InterruptedRunError as exc:
                print("INTERRUPTED", exc)
                sys.exit(130)
        """
    )
    path = tmp_path / "run_cut.py"
    path.write_text(script)
    proc = subprocess.Popen(
        [sys.executable, str(path)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    gold = lake.root / "gold" / "cut_minute"
    deadline = time.monotonic() + 90
    while not list(gold.glob("date=*/data.parquet")):
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "no batch finished"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # like Ctrl+C in a terminal: the whole group
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "INTERRUPTED interrupted after" in out

    report = lake.verify()
    assert report.ok, report.problems
    committed = lake.partitions("gold.cut_minute")
    assert 1 <= len(committed) < len(DAYS)
    for part in committed:  # every committed day is whole: equal to the reference day
        day = reference.filter(
            pl.col("ts").dt.convert_time_zone("UTC").dt.offset_by("-1ns").dt.date() == part.date
        ).drop("pipeline_test_slow_count")
        assert_frame_equal(
            pl.read_parquet(part.path).drop("pipeline_test_slow_count"), day, check_dtypes=False
        )
    ledger = json.loads(next((lake.root / "runs").glob("*/run.json")).read_text())
    assert "interrupted" in {ledger["status"]} | {
        json.loads(p.read_text())["status"] for p in (lake.root / "runs").glob("*/run.json")
    }

    # Re-run the same pipeline (no pause now): it completes, identical to the reference.
    with registered_test_metrics():
        spec = parse_pipeline({**spec_dict("cut", 0.0), "batch_frequency": "W"})
        run = run_pipeline(lake, spec, executor="process", workers=1, profile=True)
    assert_frame_equal(lake.read("gold.cut_minute"), reference)
    assert run.profile_path is not None and run.profile_path.is_file()
    trace = json.loads(run.profile_path.read_text())
    pids = {event["pid"] for event in trace["traceEvents"]}
    assert len(pids) >= 2  # the parent and the worker that ran the batch
    names = {e.get("name", "") for e in trace["traceEvents"] if e.get("ph") == "X"}
    assert any("run_pass" in name for name in names)
