"""The per-query snapshot pins every committed file even when a commit replaces it
between the reader's path lookup and its link() (Linux then fails link() with ENOENT)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ticklake.lake import Lake
from ticklake.lake import sql as lake_sql


def test_a_file_replaced_while_linking_is_linked_again(
    lake: Lake, trades_frame, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake.write("nifty", trades_frame, schema="trades", timezone="Asia/Kolkata")
    expected = trades_frame.height
    real_link = os.link
    failures: list[str] = []

    def link_losing_the_race_once_per_file(src: Path, dst: Path) -> None:
        if str(src) not in failures:  # the old inode lost its name: ENOENT, path still there
            failures.append(str(src))
            raise FileNotFoundError(2, "No such file or directory", str(src))
        real_link(src, dst)

    monkeypatch.setattr(lake_sql.os, "link", link_losing_the_race_once_per_file)
    rows = lake.sql("SELECT count(*) AS n FROM nifty")["n"][0]
    assert len(failures) == len(lake.partitions("nifty")) == 3
    assert rows == expected


def test_a_partition_removed_while_linking_is_skipped(
    lake: Lake, trades_frame, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake.write("nifty", trades_frame, schema="trades", timezone="Asia/Kolkata")
    first = lake.partitions("nifty")[0]
    real_link = os.link

    def vacuumed_first(src: Path, dst: Path) -> None:
        if Path(src) == first.path:
            first.path.unlink()
            raise FileNotFoundError(2, "No such file or directory", str(src))
        real_link(src, dst)

    monkeypatch.setattr(lake_sql.os, "link", vacuumed_first)
    rows = lake.sql("SELECT count(*) AS n FROM nifty")["n"][0]
    assert rows == trades_frame.height - first.rows
