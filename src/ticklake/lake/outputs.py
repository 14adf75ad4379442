"""Verify what lives beside the datasets: ingest staging and run outputs under ``runs/``.

* ``<lake>/_staging/<ingest_id>/`` holds an ingest's spooled rows while it runs. An
  ingest killed before its cleanup leaves it behind: verify reports each one with its
  size and owner, vacuum removes those whose owner process is gone (never a live one).
* ``<lake>/runs/<run_id>/run.json`` (backtests and sweeps) records the sha256 of the
  run's outputs (``outputs``: ``{file: sha256}``) and of each day's
  (``days.<day>.outputs``, files under ``days/<day>/``); verify re-hashes them.
  Analytics runs write gold datasets, which the partition records cover.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ticklake.lake.layout import RUNS_DIR, STAGING_DIR
from ticklake.lake.manifest import sha256_file
from ticklake.lake.owners import describe_owner

#: A staging directory with no owner record is taken as abandoned after this long.
UNOWNED_STAGING_SECONDS = 3600.0

Report = Callable[[str, Path, str], None]


def _size(directory: Path) -> int:
    total = 0
    for path in directory.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            continue
    return total


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def staging_dirs(root: Path) -> Iterator[tuple[Path, bool | None, str]]:
    """Each staging directory with (owner alive?, description incl. size)."""
    base = root / STAGING_DIR
    if not base.is_dir():
        return
    for entry in sorted(base.iterdir()):
        if not entry.is_dir():
            continue
        running, owner = describe_owner(entry)
        if running is None and owner == "no owner recorded":
            age = time.time() - entry.stat().st_mtime
            running = age < UNOWNED_STAGING_SECONDS
        yield entry, running, f"{_mib(_size(entry))}, {owner}"


def check_staging(root: Path, report: Report) -> list[str]:
    """Report abandoned staging; return one line per staging directory still in use."""
    in_use = []
    for entry, running, what in staging_dirs(root):
        if running is False:
            report(
                "stale_staging",
                entry,
                f"staging of an interrupted ingest ({what}); `ticklake lake vacuum` removes it, "
                "then re-run the ingest (its committed days are kept, the rest is ingested)",
            )
        else:
            in_use.append(f"{entry}: staging of an ingest in progress or unknown ({what})")
    return in_use


def remove_stale_staging(root: Path) -> list[str]:
    actions = []
    for entry, running, what in staging_dirs(root):
        if running is False:
            shutil.rmtree(entry, ignore_errors=True)
            actions.append(f"removed staging {entry.name} of an interrupted ingest ({what})")
    return actions


def _check_files(directory: Path, outputs: dict[str, Any], run_id: str, report: Report) -> int:
    checked = 0
    for name, sha in sorted(outputs.items()):
        path = directory / name
        fix = (
            f"`ticklake backtest resume {run_id}` rebuilds the outputs that changed "
            "(days whose outputs changed are run again)"
        )
        if not path.is_file():
            report("run_output_missing", path, f"recorded in {run_id}'s run.json but gone; {fix}")
            continue
        checked += 1
        actual = sha256_file(path)
        if actual != sha:
            report(
                "run_output_changed",
                path,
                f"sha256 {actual[:12]}… differs from the {str(sha)[:12]}… recorded in run.json "
                f"(bit rot or an outside edit); {fix}",
            )
    return checked


def check_runs(root: Path, report: Report) -> int:
    """Re-hash every run output recorded in a ``run.json``; return the files checked."""
    checked = 0
    for ledger_path in sorted((root / RUNS_DIR).glob("*/run.json")):
        run_dir = ledger_path.parent
        try:
            ledger = json.loads(ledger_path.read_text())
            assert isinstance(ledger, dict)
        except (OSError, ValueError, AssertionError):
            report(
                "unreadable_file",
                ledger_path,
                "run ledger is not valid JSON; the run cannot be resumed or checked",
            )
            continue
        run_id = str(ledger.get("run_id") or run_dir.name)
        # A run in progress rewrites its run-level files before it records their hashes.
        if ledger.get("status") != "running" and isinstance(ledger.get("outputs"), dict):
            checked += _check_files(run_dir, ledger["outputs"], run_id, report)
        days = ledger.get("days")
        if isinstance(days, dict):
            for day, entry in sorted(days.items()):
                if isinstance(entry, dict) and isinstance(entry.get("outputs"), dict):
                    checked += _check_files(
                        run_dir / "days" / day, entry["outputs"], run_id, report
                    )
    return checked
