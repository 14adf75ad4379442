"""The DuckDB analytics target never auto-installs or auto-loads extensions (issue #13)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from ticklake.analytics.targets import write_duckdb


def test_write_duckdb_turns_extension_autoinstall_and_autoload_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_connect = duckdb.connect
    seen: list[tuple[bool, bool]] = []

    def connect(*args: Any, **kwargs: Any) -> duckdb.DuckDBPyConnection:
        con = real_connect(*args, **kwargs)
        row = con.execute(
            "SELECT current_setting('autoinstall_known_extensions'), "
            "current_setting('autoload_known_extensions')"
        ).fetchall()[0]
        seen.append((bool(row[0]), bool(row[1])))
        return con

    monkeypatch.setattr(duckdb, "connect", connect)
    frame = pl.DataFrame({"instrument": ["X"], "ts": [1], "value": [2.5]})
    target = tmp_path / "out.duckdb"
    write_duckdb(frame, str(target), "metrics")
    assert seen == [(False, False)]
    with real_connect(str(target), read_only=True) as con:
        assert con.execute("SELECT instrument, ts, value FROM metrics").fetchall() == [
            ("X", 1, 2.5)
        ]
