"""The untrusted SQL path streams its result and stops at a byte cap (issue 13).

It used to materialise the whole result (up to ``max_rows``) before anything looked at
its size: ``select repeat('x', 50000) from range(10000)`` peaked at ≈ 734 MB in the web
worker before the JSON cap refused it. Now DuckDB hands Arrow batches of 128 rows and
the query stops once their bytes pass ``max_bytes``. Oracles: the Arrow size of a BIGINT
column worked out by hand (8 bytes a value plus one validity bit a row, per batch) and
the peak RSS of a fresh process.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

import ticklake
from ticklake.errors import ResultTooLargeError
from ticklake.lake.lake import Lake
from ticklake.lake.sql import run_untrusted_sql

QUERY = "select i::BIGINT as i from range(5000) t(i)"


def arrow_bytes_by_hand(rows: int, batch: int = 128) -> int:
    sizes = [min(batch, rows - start) for start in range(0, rows, batch)]
    return sum(8 * n + math.ceil(n / 8) for n in sizes)


def test_a_result_exactly_at_the_cap_passes_and_one_byte_less_stops(lake: Lake) -> None:
    exact = arrow_bytes_by_hand(5000)
    assert exact == 39 * (128 * 8 + 16) + (8 * 8 + 1)  # 5,000 rows = 39 x 128 + 8
    result = run_untrusted_sql(lake, QUERY, max_bytes=exact)
    assert result.frame["i"].to_list() == list(range(5000))
    assert not result.truncated
    with pytest.raises(ResultTooLargeError, match=r"passed 40,624 bytes .* after 5,000 rows"):
        run_untrusted_sql(lake, QUERY, max_bytes=exact - 1)


def test_the_default_cap_is_the_setting(lake: Lake) -> None:
    small = ticklake.open_lake(lake.root, query={"max_result_mib": 1})
    wide = "select repeat('x', 1000) as s from range(5000)"  # ≈ 5 MB of text
    with pytest.raises(ResultTooLargeError, match=r"query\.max_result_mib"):
        small.query_untrusted(wide)
    assert lake.query_untrusted(wide).frame.height == 5000  # the default 256 MiB


_PEAK = """
import resource, sys
import ticklake
from ticklake.errors import ResultTooLargeError
lake = ticklake.open_lake(sys.argv[1])
lake.query_untrusted("select 1")  # imports and DuckDB warm before the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    lake.query_untrusted("select repeat('x', 50000) as s from range(10000)",
                         max_bytes=16 * 1024 * 1024)
    print("no error")
except ResultTooLargeError as exc:
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) // 1024, exc.rows)
"""


def test_a_huge_result_stops_early_in_memory(lake: Lake) -> None:
    """500 MB of text: stopped after a few batches, the process grows by far less."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, str(lake.root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=Path(lake.root).parent,
    ).stdout.split()
    grown_mib, rows = int(out[0]), int(out[1])
    assert rows <= 2048  # 16 MiB is 336 rows of 50 kB; DuckDB runs ahead by a vector at most
    assert grown_mib < 150, f"peak RSS grew by {grown_mib} MiB (479 MiB before streaming)"
