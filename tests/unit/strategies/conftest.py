"""Fixtures of the template tests: the generated lake (see ``_strategies_lake``) and
memoised template runs."""

from __future__ import annotations

import fcntl
import shutil
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _strategies_lake import LAKE_VERSION, build_lake  # type: ignore[import-not-found]


@pytest.fixture(scope="session")
def strategies_lake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pristine lake (built once, also across sessions and xdist workers)."""
    base = tmp_path_factory.getbasetemp().parent / "ticklake-strategies"
    base.mkdir(parents=True, exist_ok=True)
    target = base / f"lake-{LAKE_VERSION}"
    with open(base / "lake.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "ticklake.toml").is_file():
            build_lake(target)
    return target


@pytest.fixture(scope="session")
def strategies_lake(strategies_lake_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A private copy of the lake for this session's runs."""
    from ticklake.lake import open_lake

    copy = tmp_path_factory.mktemp("strategies") / "lake"
    shutil.copytree(strategies_lake_root, copy, ignore=shutil.ignore_patterns("runs", "cache"))
    return open_lake(copy)


@pytest.fixture(scope="session")
def run_template(strategies_lake: Any) -> Callable[..., Any]:
    """``run_template(name, start, end, overrides=None, axes=None)``: a finished run.

    ``overrides`` are dotted keys set on the template (``{"entry.when": ...}``); ``axes``
    replaces a sweep's axes. Runs are serial, uncached and memoised for the session, so
    the generic run test and the behaviour tests share a run when they ask for the same.
    """
    import json

    import yaml

    from ticklake.backtest.runner import run_backtest
    from ticklake.backtest.spec import parse_spec
    from ticklake.backtest.sweep import run_sweep, sweep_from_data
    from ticklake.strategies import template_path

    done: dict[str, Any] = {}

    def run(
        name: str,
        start: date,
        end: date,
        overrides: dict[str, Any] | None = None,
        axes: dict[str, list[Any]] | None = None,
    ) -> Any:
        key = json.dumps([name, str(start), str(end), overrides, axes], sort_keys=True)
        if key in done:
            return done[key]
        data = yaml.safe_load(template_path(name).read_text())
        data["time"] = {**data["time"], "start": start.isoformat(), "end": end.isoformat()}
        for dotted, value in (overrides or {}).items():
            target = data
            *parents, leaf = dotted.split(".")
            for part in parents:
                target = target.setdefault(part, {})
            target[leaf] = value
        if "sweep" in data:
            if axes is not None:
                data["sweep"] = axes
            result = run_sweep(
                strategies_lake,
                sweep_from_data(data, source=name),
                executor="serial",
                use_cache=False,
            )
        else:
            result = run_backtest(
                strategies_lake,
                parse_spec(data, source=name),
                executor="serial",
                use_cache=False,
            )
        done[key] = result
        return result

    return run
