"""``ticklake warmup`` fills Numba's cache with what the engine compiles (#16).

Each run uses its own ``NUMBA_CACHE_DIR`` (a fresh, empty cache: the first backtest
after an install), so the shared ``__pycache__`` caches are never read or touched.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ticklake.cli.warmup_cmd import kernel_counts


def warmup(cache: Path) -> str:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-c", "from ticklake.cli import main; main()", "warmup"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def compiled(output: str, group: str) -> int:
    found = re.search(rf"{group}[^:]*: (\d+) kernel specialisation\(s\) compiled", output)
    assert found, output
    return int(found.group(1))


def test_kernel_counts_are_counts() -> None:
    compiled_now, loaded = kernel_counts()
    assert compiled_now >= 0 and loaded >= 0


@pytest.mark.slow
def test_warmup_compiles_into_an_empty_cache_and_a_second_run_compiles_nothing(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "numba"
    first = warmup(cache)
    # An empty cache: the engine's kernels are compiled now, and written to the cache.
    assert compiled(first, "backtest engine") > 10
    assert compiled(first, "option analytics") > 0
    assert f"Numba cache: {cache}" in first
    written = {p.name.split(".")[0] for p in cache.rglob("*.nbi")}
    assert {"kernel", "kernel_fills", "kernel_selection"} <= written, written
    # The same specialisations again: every one is found in the cache, none compiled.
    second = warmup(cache)
    assert compiled(second, "backtest engine") == 0
    assert compiled(second, "option analytics") == 0
