"""The users' Monday question on generated and on real NIFTY 50 data, checked against
values read from the raw files with plain Python."""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import math
import re
from datetime import date, time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from typer.testing import CliRunner

from ticklake.cli import app
from ticklake.lake import Lake
from ticklake.stats import window_statistics

WINDOWS = (("09:15-09:20", time(9, 15), time(9, 20)), ("15:20-15:30", time(15, 20), time(15, 30)))


def _raw(path: Path) -> list[tuple[time, float]]:
    """The file's (clock time, value) rows; the stamp is ``YYYY-MM-DD HH:MM:SS``."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        return [(_clock(stamp[11:19]), float(value)) for stamp, value in csv.reader(handle)]


_CLOCKS: dict[str, time] = {}


def _clock(text: str) -> time:
    # Memoised: a day has ~23,500 distinct seconds and the same ones recur every day.
    if text not in _CLOCKS:
        _CLOCKS[text] = time(int(text[0:2]), int(text[3:5]), int(text[6:8]))
    return _CLOCKS[text]


def _window(rows: list[tuple[time, float]], start: time, end: time) -> tuple[float, float] | None:
    """First value (the point at the start, else the first inside) and last (at or before end)."""
    inside = [(t, v) for t, v in rows if start <= t <= end]
    if not inside:
        return None
    at_start = [v for t, v in inside if t == start]
    return (at_start[0] if at_start else inside[0][1]), inside[-1][1]


def _file_day(path: Path) -> date:
    match = re.match(r"(\d{4}-\d{2}-\d{2})", path.name)
    assert match
    return date.fromisoformat(match[1])


# ------------------------------------------------------------------ generated data
def test_monday_question_on_generated_spot(generated: tuple[Lake, Path]) -> None:
    lake, spot = generated
    stats = window_statistics(
        lake, "spot", windows=[w for w, _, _ in WINDOWS], weekdays=["mon"],
        measures=["return", "volume_change_per_second"],
    )  # fmt: skip
    mondays = sorted(p for p in spot.glob("*.csv") if _file_day(p).isoweekday() == 1)
    assert [_file_day(p) for p in mondays] == [
        date(2024, 1, 1),
        date(2024, 1, 8),
        date(2024, 1, 15),
    ]
    assert stats.days_selected == 3
    for label, start, end in WINDOWS:
        expected = []
        for path in mondays:
            first, last = _window(_raw(path), start, end)  # type: ignore[misc]
            row = stats.per_day.filter(
                (pl.col("date") == _file_day(path)) & (pl.col("window") == label)
            ).row(0, named=True)
            assert (row["first_value"], row["last_value"]) == (first, last)
            assert row["up"] is (last > first)
            expected.append((last / first - 1) * 10_000)
        summary = stats.summary.filter(
            (pl.col("window") == label) & (pl.col("regime") == "all")
        ).row(0, named=True)
        assert summary["count"] == 3
        assert summary["mean"] == pytest.approx(np.mean(expected))
        assert summary["median"] == pytest.approx(np.median(expected))
        assert summary["up_percent"] == pytest.approx(100 * np.mean(np.array(expected) > 0))
    # The generator's spot files carry no volume.
    assert any("no volume" in note for note in stats.notes)


def test_regimes_on_generated_spot_match_the_raw_files(generated: tuple[Lake, Path]) -> None:
    lake, spot = generated
    stats = window_statistics(
        lake, "spot", windows=["09:15-09:20"], weekdays=["mon", "tue", "wed", "thu", "fri"],
        volatility_buckets=5,
    )  # fmt: skip
    files = sorted(spot.glob("*.csv"))
    volatility, gaps = {}, {}
    previous_close = None
    for path in files:
        session = [v for t, v in _raw(path) if time(9, 15) <= t <= time(15, 30)]
        volatility[_file_day(path)] = 10_000 * math.sqrt(
            sum(math.log(b / a) ** 2 for a, b in itertools.pairwise(session))
        )
        if previous_close is not None:
            gaps[_file_day(path)] = (session[0] / previous_close - 1) * 10_000
        previous_close = session[-1]
    per_day = stats.per_day.sort("date")
    assert per_day["date"].to_list() == sorted(volatility)
    assert per_day["realized_volatility_bps"].to_list() == pytest.approx(list(volatility.values()))
    quintiles = pd.qcut(list(volatility.values()), 5, labels=False) + 1
    assert per_day["volatility_decile"].to_list() == [f"D{k}" for k in quintiles]
    got_gaps = dict(zip(per_day["date"], per_day["gap_bps"], strict=True))
    assert got_gaps[_file_day(files[0])] is None  # no earlier partition
    for day, gap in gaps.items():
        assert got_gaps[day] == pytest.approx(gap)


def test_cli_writes_tables_and_a_report_whose_chart_data_matches(
    generated: tuple[Lake, Path], tmp_path: Path
) -> None:
    lake, _ = generated
    result = CliRunner().invoke(
        app,
        [
            "stats", "windows", "--lake", str(lake.root), "-d", "spot", "--weekdays", "mon",
            "-w", "09:15-09:20", "-w", "15:20-15:30", "-m", "return",
            "--out", str(tmp_path / "out"), "--format", "csv", "--html", str(tmp_path / "r.html"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "09:15-09:20" in result.output and "3 days selected" in result.output
    per_day = pl.read_csv(tmp_path / "out" / "per_day.csv")
    summary = pl.read_csv(tmp_path / "out" / "summary.csv")
    assert per_day.height == 6
    page = (tmp_path / "r.html").read_text()
    block = re.search(r'id="figure-up-percent"[^>]*>(.*?)</script>', page.replace("'", '"'))
    assert block is not None
    figure = json.loads(block[1])
    bars = figure["data"][0]
    assert bars["x"] == ["09:15-09:20", "15:20-15:30"]
    everything = summary.filter(pl.col("regime") == "all").sort("window")
    up_from_rows = (
        per_day.group_by("window").agg((pl.col("return_bps") > 0).mean() * 100).sort("window")
    )
    assert bars["y"] == pytest.approx(everything["up_percent"].to_list())
    assert bars["y"] == pytest.approx(up_from_rows["return_bps"].to_list())


# ------------------------------------------------------------------- real NIFTY 50
def test_monday_question_on_the_real_nifty_sample(nifty_lake: Lake, nifty_folder: Path) -> None:
    stats = window_statistics(
        nifty_lake, "nifty", windows=[w for w, _, _ in WINDOWS], weekdays=["mon"],
        measures=["return", "volume_change_per_second"], start="2022-08-01", end="2022-12-31",
    )  # fmt: skip
    mondays = sorted(p for p in nifty_folder.glob("*.csv.gz") if _file_day(p).isoweekday() == 1)
    raw = {_file_day(p): _raw(p) for p in mondays}
    assert stats.days_selected == len(mondays) == 10
    for label, start, end in WINDOWS:
        with_data = {d: _window(rows, start, end) for d, rows in raw.items()}
        with_data = {d: v for d, v in with_data.items() if v is not None}
        # 2022-10-10's file stops at 15:03: no 15:20-15:30 window that day.
        assert stats.days_used(label) == len(with_data) == (10 if label < "12" else 9)
        for day, (first, last) in with_data.items():
            row = stats.per_day.filter((pl.col("date") == day) & (pl.col("window") == label)).row(
                0, named=True
            )
            assert (row["first_value"], row["last_value"]) == (first, last)
            assert row["up"] is (last > first)
    # Two flags read off the raw files by hand: 2022-08-29 15:20 17310.65 -> 15:30 17332.55
    # (up), 2022-11-21 09:15 18246.4 -> 09:20 18210.55 (down).
    flags = {(d, w): up for d, w, up in stats.per_day.select("date", "window", "up").iter_rows()}
    assert flags[(date(2022, 8, 29), "15:20-15:30")] is True
    assert flags[(date(2022, 11, 21), "09:15-09:20")] is False
    assert any("no volume" in note for note in stats.notes)
    assert any("2022-10-10" in note and "no data" in note for note in stats.notes)


def test_nifty_copies_are_flagged_as_duplicates(nifty_lake: Lake, nifty_folder: Path) -> None:
    stats = window_statistics(
        nifty_lake, "nifty", windows=[w for w, _, _ in WINDOWS], weekdays=range(1, 8)
    )
    files = sorted(nifty_folder.glob("*.csv.gz"))
    windows_of = {}
    for path in files:
        rows = _raw(path)
        windows_of[_file_day(path)] = [
            [(t, v) for t, v in rows if start <= t <= end] for _, start, end in WINDOWS
        ]
    days = sorted(windows_of)
    expected = {
        day: before
        for before, day in itertools.pairwise(days)
        if windows_of[day] == windows_of[before] and any(windows_of[day])
    }
    flagged = dict(
        stats.per_day.filter(pl.col("suspected_duplicate_of").is_not_null())
        .select("date", "suspected_duplicate_of")
        .unique()
        .iter_rows()
    )
    assert flagged == expected
    # The scraper's weekend copies and a holiday copy (2022-11-08, Guru Nanak Jayanti).
    assert flagged[date(2022, 8, 27)] == date(2022, 8, 26)
    assert flagged[date(2022, 11, 8)] == date(2022, 11, 7)
    used = stats.per_day.filter(pl.col("excluded_reason").is_null())
    assert not set(used["date"]) & set(flagged)
