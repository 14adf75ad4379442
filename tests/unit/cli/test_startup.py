"""The CLI starts without the heavy stages (#16 "no start-up tax").

Each check runs a fresh interpreter: in the test process Polars and Numba are loaded
long before, so only a subprocess sees what a command really imports.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

import ticklake

#: Libraries `ticklake --help` must not load (each costs 0.1-1.5 s of CPU). Not pydantic:
#: Typer itself loads it to parse any sub-command's parameters.
HEAVY = (
    "duckdb",
    "exchange_calendars",
    "fastapi",
    "httpx",
    "numba",
    "pandas",
    "plotly",
    "polars",
    "pyarrow",
    "sqlglot",
    "websockets",
)
#: What a light command on a lake may still not load: opening a lake needs Polars,
#: pyarrow and pydantic (``ticklake.lake``), but never the engine, SQL or web stacks.
ENGINE_AND_WEB = ("duckdb", "fastapi", "httpx", "numba", "plotly", "websockets")

#: Runs the CLI in-process with ``argv``, then prints the heavy modules it loaded.
SCRIPT = """
import json, sys
from ticklake.cli import app
try:
    app(sys.argv[1:], prog_name="ticklake")
except SystemExit:
    pass
watched = set(json.loads({watched!r}))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in watched)))
"""


def loaded_by(args: list[str], watched: tuple[str, ...] = HEAVY) -> list[str]:
    """The watched modules a fresh ``ticklake ARGS`` imports (its output discarded)."""
    code = SCRIPT.format(watched=json.dumps(list(watched)))
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    result: list[str] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = (
        "import ticklake.cli; import sys; print(sorted(m for m in sys.modules if "
        "m.split('.')[0] in {'polars','numba','duckdb','fastapi','pyarrow','plotly'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["backtest", "run", "--help"], ["warmup", "--help"]],
    ids=" ".join,
)
def test_help_and_version_load_no_heavy_library(args: list[str]) -> None:
    assert loaded_by(args) == []


def test_import_ticklake_is_lazy_but_its_api_still_works() -> None:
    code = (
        "import sys, ticklake\n"
        "lazy = 'polars' not in sys.modules\n"
        "ok = callable(ticklake.open_lake) and callable(ticklake.init_lake)\n"
        "ok = ok and issubclass(ticklake.errors.ConfigError, ticklake.TicklakeError)\n"
        "from ticklake import Lake, LakeSession, get_schema\n"
        "print(lazy, ok, 'ticklake.api' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "True", "True"]


def test_light_commands_on_a_lake_skip_the_engine_and_web_stacks(tmp_path: Path) -> None:
    lake = str(tmp_path / "lake")
    ticklake.init_lake(lake)
    for args in (["status", "--lake", lake], ["lake", "tables", "--lake", lake]):
        assert loaded_by(args, ENGINE_AND_WEB) == [], args


def test_help_costs_little_cpu() -> None:
    # CPU (user + system) of the child, not wall time, and the best of three: a loaded
    # 2-core CI machine slows the wall clock, hardly the CPU a process itself spends.
    # Before the lazy imports `ticklake --help` cost ~2.5 s; now ~0.4 s.
    costs = []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            [sys.executable, "-c", "from ticklake.cli import main; main()", "--help"],
            capture_output=True,
            check=True,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        costs.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    assert min(costs) < 1.5, costs
