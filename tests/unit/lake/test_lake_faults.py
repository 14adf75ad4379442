"""Injected I/O errors at every commit step surface as CommitError and leave no damage."""

from __future__ import annotations

import errno
import json
from datetime import date
from pathlib import Path

import pytest
from lakecheck import assert_manifest_matches, read_everywhere, temp_files
from lakegen import make_trades, row_set

from ticklake.errors import CommitError
from ticklake.lake import commit
from ticklake.lake.lake import Lake

CAUSES = {
    errno.ENOSPC: "no space left on device",
    errno.EIO: "I/O error from the storage device",
}
BEFORE_RENAME = ("write_temp", "fsync_temp", "pending", "replace_data")


@pytest.mark.parametrize("error_number", sorted(CAUSES))
@pytest.mark.parametrize("step", commit.STEPS)
def test_io_error_at_each_step_is_reported_and_leaves_nothing_partial(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, step: str, error_number: int
) -> None:
    old = make_trades(days=1, rows_per_day=200, seed=1, first_day=date(2024, 1, 2))
    lake.write("nifty", old, schema="trades", timezone="Asia/Kolkata")
    new = make_trades(days=1, rows_per_day=150, seed=2, first_day=date(2024, 1, 2))
    partition = lake.root / "bronze" / "nifty" / "date=2024-01-02"
    old_manifest = (partition / "_manifest.json").read_text()

    def fail(name: str) -> None:
        if name == step:
            raise OSError(error_number, "injected failure")

    monkeypatch.setattr(commit, "FAULT_HOOK", fail)
    with pytest.raises(CommitError) as caught:
        lake.write("nifty", new)
    message = str(caught.value)
    assert "bronze/nifty/date=2024-01-02" in message
    assert f"step {step!r}" in message
    assert CAUSES[error_number] in message
    assert caught.value.errno == error_number
    assert isinstance(caught.value.__cause__, OSError)

    if step in BEFORE_RENAME:
        # Rolled back: the committed file and manifest are exactly the old ones.
        assert "Nothing was changed" in message
        assert read_everywhere(partition / "data.parquet") == row_set(old)
        assert (partition / "_manifest.json").read_text() == old_manifest
        assert temp_files(lake.root) == []
        assert not (partition / "_manifest.json.pending").exists()
        assert lake.verify().ok
    else:
        # The rename happened: readers see the complete new file, never a mix.
        assert "rolled forward" in message
        assert read_everywhere(partition / "data.parquet") == row_set(old) | row_set(new)
        assert json.loads(old_manifest)["rows"] == 200
    assert row_set(lake.scan("nifty").collect()) in (row_set(old), row_set(old) | row_set(new))

    monkeypatch.setattr(commit, "FAULT_HOOK", None)
    lake.write("nifty", new)
    assert read_everywhere(partition / "data.parquet") == row_set(old) | row_set(new)
    assert row_set(lake.scan("nifty").collect()) == row_set(old) | row_set(new)
    report = lake.verify()
    assert report.ok, report.problems
    assert_manifest_matches(partition)
    assert temp_files(lake.root) == []


def test_io_error_in_new_partition_leaves_no_visible_partition(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    frame = make_trades(days=1, rows_per_day=50, seed=3)

    def fail(name: str) -> None:
        if name == "fsync_temp":
            raise OSError(errno.EIO, "injected failure")

    monkeypatch.setattr(commit, "FAULT_HOOK", fail)
    with pytest.raises(CommitError, match="fsync_temp"):
        lake.write("nifty", frame, schema="trades", timezone="Asia/Kolkata")
    assert lake.partitions("nifty") == []
    assert lake.scan("nifty").collect().height == 0
    assert lake.sql("SELECT count(*) AS n FROM nifty")["n"][0] == 0
    assert temp_files(lake.root) == []
    # The failed commit left only an empty directory; repair removes it, a retry works.
    repaired = lake.verify(repair=True)
    assert [p.kind for p in repaired.problems] == ["empty_partition"]
    assert lake.verify().ok
    monkeypatch.setattr(commit, "FAULT_HOOK", None)
    assert lake.write("nifty", frame).rows_added == 50
    assert row_set(lake.scan("nifty").collect()) == row_set(frame)
    assert lake.verify().ok
