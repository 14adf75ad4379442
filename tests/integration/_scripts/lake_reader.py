"""Reader process for the readers-during-commits test.

Usage: python lake_reader.py <lake> polars|duckdb <stop_file> <out_json>. Loops until
``stop_file`` exists, recording every (row count, sum of size) it sees and every error.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import polars as pl

import ticklake


def main() -> None:
    root, engine, stop_file, out = sys.argv[1:5]
    lake = ticklake.open_lake(root)
    seen: dict[str, int] = {}
    errors: list[str] = []
    reads = 0
    deadline = time.monotonic() + 120
    while not Path(stop_file).exists() and time.monotonic() < deadline:
        try:
            if engine == "polars":
                row = lake.scan("nifty").select(pl.len(), pl.col("size").sum()).collect().row(0)
            elif reads % 2 == 0:  # DuckDB: alternate the trusted and the locked path
                row = lake.sql("SELECT count(*), sum(size) FROM nifty").row(0)
            else:
                result = lake.query_untrusted("SELECT count(*) AS n, sum(size) AS s FROM nifty")
                row = result.frame.row(0)
            key = f"{int(row[0])}:{float(row[1] or 0.0)}"
            seen[key] = seen.get(key, 0) + 1
        except BaseException as exc:  # a Rust panic surfaces as a BaseException
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
        reads += 1
    Path(out).write_text(json.dumps({"seen": seen, "errors": errors}))


if __name__ == "__main__":
    main()
