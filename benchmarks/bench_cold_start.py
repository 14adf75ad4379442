"""Benchmark ticklake's cold start: light CLI commands and the CPU a backtest spends first.

Not part of the test suite. Prints one table (copy it into docs/benchmarks.md). Every
figure is CPU seconds (user + system of the child process, ``getrusage``), the minimum
of ``--repeat`` runs, so other load on the machine does not inflate it.

1. light commands: ``ticklake --help``, ``--version``, ``status``, ``lake tables``,
   ``health``, ``collect status``;
2. ``ticklake backtest run`` of one day (``--executor serial --no-cache --no-report``)
   in three Numba cache states, each in its own ``NUMBA_CACHE_DIR`` (the shared
   ``__pycache__`` caches are never touched):
   * cold: an empty cache (the first backtest after ``pip install``);
   * after ``ticklake warmup`` into that cache;
   * warm: the same cache after a first run.
   For each: CPU spent before the first day task starts (imports, lake open, spec
   parse), the first day's CPU, a second (steady) run of the same day in the same
   process, and "fixed" = before + first day - steady day: what the issue calls the
   start-up tax (imports, kernel cache load, first-day warm-up).

    python benchmarks/bench_cold_start.py                      # builds a demo lake first
    python benchmarks/bench_cold_start.py --lake /tmp/x/lake --day 2024-01-08
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TICKLAKE = str(Path(sys.executable).with_name("ticklake"))

#: Runs the CLI in-process with a probe on ``day_task``: prints process CPU at the first
#: day's start and end, then re-runs the same day (steady cost) and prints the totals.
PROBE = r"""
import json, sys, time
import ticklake.backtest.runner as runner
marks = {}
original = runner.day_task
def probed(job):
    marks.setdefault("before_first_day", time.process_time())
    result = original(job)
    marks.setdefault("first_day_end", time.process_time())
    marks.setdefault("job", job)
    return result
runner.day_task = probed
from ticklake.cli import app
try:
    app(sys.argv[1:], prog_name="ticklake")
except SystemExit as stop:
    if stop.code:
        raise
job = marks.pop("job")
from datetime import date
from ticklake import open_lake
from ticklake.backtest.engine import run_day
from ticklake.backtest.spec import parse_spec
lake = open_lake(job.lake_root)
spec = parse_spec(json.loads(job.spec_json))
t0 = time.process_time()
run_day(lake, spec, date.fromisoformat(job.day))
marks["steady_day"] = time.process_time() - t0
print("PROBE " + json.dumps(marks))
"""


def child_cpu(args: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run ``args``; return its CPU seconds (user + sys) and stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # 2: `collect status` of a directory no collector wrote; 23: `health` with no
    # heartbeat. Both still load what the command loads, so they are measured.
    if done.returncode not in (0, 2, 23):
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, done.stdout


def backtest_probe(args: list[str], cache_dir: Path) -> dict[str, float]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    cpu, out = child_cpu([sys.executable, "-c", PROBE, *args], env)
    line = next(x for x in out.splitlines() if x.startswith("PROBE "))
    marks = json.loads(line.removeprefix("PROBE "))
    first_day = marks["first_day_end"] - marks["before_first_day"]
    return {
        "before": marks["before_first_day"],
        "first_day": first_day,
        "steady_day": marks["steady_day"],
        "fixed": marks["before_first_day"] + first_day - marks["steady_day"],
        "process": cpu,
    }


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: min(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, help="lake to use (default: build a demo lake)")
    parser.add_argument("--day", default="2024-01-08", help="the one day to backtest")
    parser.add_argument("--template", default="atm_straddle_hourly")
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    lake = opts.lake
    if lake is None:
        subprocess.run(
            [TICKLAKE, "demo", "--dir", str(work / "demo")], check=True, capture_output=True
        )
        lake = work / "demo" / "lake"
    spec = work / "spec.yml"
    subprocess.run(
        [TICKLAKE, "strategies", "show", opts.template], check=True, stdout=spec.open("w")
    )

    rows: list[tuple[str, str]] = []
    light = {
        "ticklake --help": ["--help"],
        "ticklake --version": ["--version"],
        "ticklake status": ["status", "--lake", str(lake)],
        "ticklake lake tables": ["lake", "tables", "--lake", str(lake)],
        "ticklake health": ["health", "--lake", str(lake)],
        "ticklake collect status": ["collect", "status", str(work)],
    }
    for name, args in light.items():
        try:
            cpu = min(child_cpu([TICKLAKE, *args])[0] for _ in range(opts.repeat))
            rows.append((name, f"{cpu:.2f}"))
        except SystemExit as failed:
            rows.append((name, f"failed: {str(failed).splitlines()[0]}"))

    run = [
        "backtest",
        "run",
        str(spec),
        "--lake",
        str(lake),
        "--start",
        opts.day,
        "--end",
        opts.day,
        "--executor",
        "serial",
        "--no-cache",
        "--no-report",
    ]
    states: dict[str, list[dict[str, float]]] = {"cold": [], "after warmup": [], "warm": []}
    warmup_cpu: list[float] = []
    for i in range(opts.repeat):
        cold = work / f"numba-cold-{i}"
        states["cold"].append(backtest_probe(run, cold))
        states["warm"].append(backtest_probe(run, cold))
        fresh = work / f"numba-warmup-{i}"
        env = {**os.environ, "NUMBA_CACHE_DIR": str(fresh)}
        warmup_cpu.append(child_cpu([TICKLAKE, "warmup"], env)[0])
        states["after warmup"].append(backtest_probe(run, fresh))
    rows.append(("ticklake warmup (empty cache)", f"{min(warmup_cpu):.2f}"))

    width = max(len(name) for name, _ in rows)
    print(f"\n{'command':<{width}}  CPU s (min of {opts.repeat})")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"\nbacktest run, one day ({opts.template}, {opts.day}), CPU s, min of {opts.repeat}")
    print(
        f"{'numba cache':<14}{'before day':>11}{'first day':>11}{'steady day':>11}"
        f"{'fixed':>8}{'process':>9}"
    )
    for state, runs in states.items():
        b = best(runs)
        print(
            f"{state:<14}{b['before']:>11.2f}{b['first_day']:>11.2f}{b['steady_day']:>11.2f}"
            f"{b['fixed']:>8.2f}{b['process']:>9.2f}"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
