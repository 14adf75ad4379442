from __future__ import annotations

import html
import json
import re
from collections import defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import polars as pl
import pytest
from plotly.offline import get_plotlyjs
from rich.console import Console

from ticklake.backtest.report import (
    DRAWDOWN_TITLE,
    ENTRY_TIME_TITLE,
    EQUITY_TITLE,
    HISTOGRAM_TITLE,
    WEEKDAY_TITLE,
    daily_pnl_histogram_figure,
    drawdown_figure,
    entry_time_buckets,
    entry_time_figure,
    equity_figure,
    print_summary,
    weekday_figure,
    write_report,
)
from ticklake.errors import LakeError

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _pandas_daily(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "daily.parquet").sort_values("date").reset_index(drop=True)


def _oracle_equity(daily: pd.DataFrame) -> tuple[list[str], list[float], list[float]]:
    """Cumulative net P&L (₹) of non-skipped days, no-trade = 0, and its underwater curve."""
    kept = daily[daily.status != "skipped"]
    net = np.where(kept.status == "traded", kept.net_pnl_paise, 0)
    equity = np.cumsum(net)
    peak = np.maximum.accumulate(np.maximum(equity, 0))
    dates = [d.isoformat() for d in kept.date]
    return (
        dates,
        [e / 100 for e in equity],
        [-(p - e) / 100 for p, e in zip(peak, equity, strict=True)],
    )


def _figure_from_html(document: str, key: str) -> dict:
    match = re.search(
        rf"<script type='application/json' id='figure-{key}'[^>]*>(.*?)</script>",
        document,
        flags=re.S,
    )
    assert match, f"figure {key} is not embedded"
    return json.loads(match.group(1))


def test_equity_and_drawdown_figures(fake_run_dir: Path) -> None:
    daily = pl.read_parquet(fake_run_dir / "daily.parquet")
    dates, equity, underwater = _oracle_equity(_pandas_daily(fake_run_dir))
    assert len(dates) == 26  # 30 planned days minus 4 skipped

    figure = equity_figure(daily.reverse())  # input order must not matter
    assert list(figure.data[0].x) == dates
    assert list(figure.data[0].y) == pytest.approx(equity, abs=1e-9)
    assert figure.layout.title.text == EQUITY_TITLE

    figure = drawdown_figure(daily)
    assert list(figure.data[0].x) == dates
    assert list(figure.data[0].y) == pytest.approx(underwater, abs=1e-9)
    assert max(figure.data[0].y) <= 0
    assert figure.layout.title.text == DRAWDOWN_TITLE


def test_histogram_and_weekday_figures(fake_run_dir: Path) -> None:
    daily = pl.read_parquet(fake_run_dir / "daily.parquet")
    frame = _pandas_daily(fake_run_dir)
    traded = frame[frame.status == "traded"]

    histogram = daily_pnl_histogram_figure(daily)
    assert list(histogram.data[0].x) == pytest.approx(list(traded.net_pnl_paise / 100))

    weekdays = weekday_figure(daily)
    by_weekday = traded.groupby(pd.to_datetime(traded.date).dt.day_of_week)["net_pnl_paise"]
    expected = by_weekday.sum()
    assert list(weekdays.data[0].x) == [WEEKDAYS[i] for i in expected.index]
    assert list(weekdays.data[0].y) == pytest.approx(list(expected / 100))
    counts = by_weekday.count()
    assert [row[0] for row in weekdays.data[0].customdata] == list(counts)
    assert [row[1] for row in weekdays.data[0].customdata] == pytest.approx(
        list(expected / counts / 100)
    )


def test_entry_time_buckets_in_exchange_time_zone(fake_run_dir: Path) -> None:
    daily = pl.read_parquet(fake_run_dir / "daily.parquet")
    rows = pd.read_parquet(fake_run_dir / "daily.parquet")
    kolkata = ZoneInfo("Asia/Kolkata")
    totals: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    for row in rows[rows.status == "traded"].itertuples():
        local = row.first_entry_ts.to_pydatetime().astimezone(kolkata)
        minute = (local.hour * 60 + local.minute) // 15 * 15
        bucket = f"{minute // 60:02d}:{minute % 60:02d}"
        totals[bucket] += row.net_pnl_paise
        counts[bucket] += 1
    assert len(totals) >= 4  # entries spread over several buckets

    buckets = entry_time_buckets(daily, "Asia/Kolkata", 15)
    assert buckets["bucket"].to_list() == sorted(totals)
    assert buckets["net_pnl_paise"].to_list() == [totals[b] for b in sorted(totals)]
    assert buckets["days"].to_list() == [counts[b] for b in sorted(totals)]
    assert "09:15" in totals  # 09:20 IST (03:50 UTC) lands in the 09:15 bucket, not 03:45

    figure = entry_time_figure(daily, "Asia/Kolkata", 15)
    assert list(figure.data[0].x) == sorted(totals)
    assert list(figure.data[0].y) == pytest.approx([totals[b] / 100 for b in sorted(totals)])
    assert "15-minute buckets, Asia/Kolkata" in figure.layout.title.text

    hourly = entry_time_buckets(daily, "Asia/Kolkata", 60)
    assert hourly["days"].sum() == sum(counts.values())
    assert set(hourly["bucket"]) <= {"09:00", "10:00", "11:00"}
    with pytest.raises(ValueError, match="bucket_minutes must be positive"):
        entry_time_buckets(daily, "Asia/Kolkata", 0)


def test_write_report_is_self_contained_and_matches_inputs(fake_run_dir: Path) -> None:
    path = write_report(fake_run_dir)
    assert path == fake_run_dir / "report.html"
    document = path.read_text(encoding="utf-8")

    assert not re.search(r"<script[^>]+src=", document)
    assert not re.search(r"<link[^>]+href=[\"']?https?:", document)
    assert document.count(get_plotlyjs()[:2_000]) == 1  # plotly.js inlined exactly once
    assert len(re.findall(r"<script type=\"text/javascript\">", document)) == 2
    assert len(document) > 3_000_000  # plotly.js itself is inlined (~4.8 MB)

    text = html.unescape(document)
    for title in (EQUITY_TITLE, DRAWDOWN_TITLE, HISTOGRAM_TITLE, WEEKDAY_TITLE, ENTRY_TIME_TITLE):
        assert title in text

    run = json.loads((fake_run_dir / "run.json").read_text())
    spec = json.loads((fake_run_dir / "spec.json").read_text())
    for value in (run["run_id"], run["spec_hash"], "atm_straddle", "process (2 workers)"):
        assert value in text
    assert "2024-01-01 → 2024-02-09" in text
    assert "<td>complete</td>" in text
    assert json.dumps(spec, indent=2) in text  # the spec, pretty-printed

    # The statistics table, each number computed here from the files.
    daily = _pandas_daily(fake_run_dir)
    trades = pd.read_parquet(fake_run_dir / "trades.parquet")
    traded = daily[daily.status == "traded"]
    series = daily[daily.status != "skipped"].net_pnl_paise.astype(float)
    total = int(trades.cash_flow_paise.sum() - trades.costs_paise.sum())
    sharpe = series.mean() / series.std() * np.sqrt(252)
    _, _, underwater = _oracle_equity(daily)
    max_drawdown = -min(underwater)

    def statistic(name: str) -> str:
        match = re.search(rf"data-statistic='{name}'><th>[^<]*</th><td>([^<]*)</td>", text)
        assert match, name
        return match.group(1)

    sign = "-" if total < 0 else ""
    assert statistic("total_net_pnl_paise") == f"{sign}₹{abs(total) / 100:,.2f}"
    assert statistic("total_costs_paise") == f"₹{trades.costs_paise.sum() / 100:,.2f}"
    assert statistic("sharpe_ratio") == f"{sharpe:.3f}"
    assert statistic("max_drawdown_paise") == f"₹{max_drawdown:,.2f}"
    assert statistic("win_rate_traded_days") == (f"{(traded.net_pnl_paise > 0).mean() * 100:.2f}%")
    assert statistic("days_skipped") == "4"
    assert statistic("fills") == str(len(trades))

    # Every chart's embedded data is the data computed here.
    dates, equity, underwater = _oracle_equity(daily)
    equity_json = _figure_from_html(document, "equity")
    assert equity_json["data"][0]["x"] == dates
    assert equity_json["data"][0]["y"] == pytest.approx(equity, abs=1e-9)
    assert _figure_from_html(document, "drawdown")["data"][0]["y"] == pytest.approx(
        underwater, abs=1e-9
    )
    assert _figure_from_html(document, "histogram")["data"][0]["x"] == pytest.approx(
        list(traded.net_pnl_paise / 100)
    )
    weekday_json = _figure_from_html(document, "weekday")["data"][0]
    assert sum(weekday_json["y"]) == pytest.approx(traded.net_pnl_paise.sum() / 100)
    entry_json = _figure_from_html(document, "entry-time")["data"][0]
    assert sum(entry_json["y"]) == pytest.approx(traded.net_pnl_paise.sum() / 100)

    # Samples: the count line and the first fill, its time in IST and money in rupees.
    assert f"first 12 of {len(trades)} fills" in text
    first = trades.sort_values(["date", "ts", "fill_index"]).iloc[0]
    local = first.ts.tz_convert("Asia/Kolkata").strftime("%Y-%m-%d %H:%M:%S")
    assert f"<td>{local}</td>" in text
    assert f"<td>{first.price_paise / 100:,.2f}</td>" in text
    assert "price (₹)" in text

    # Skipped and no-trade days with their reasons.
    for row in daily[daily.status != "traded"].itertuples():
        assert f"<td>{row.date}</td><td>{WEEKDAYS[row.date.weekday()]}</td>" in text
        assert f"<td>{row.status}</td><td>{row.skip_reason}</td>" in text
    assert "skipped — exchange holiday: 2" in text


def test_report_for_a_run_without_fills(fake_run_factory, tmp_path: Path) -> None:
    run_dir = fake_run_factory("empty", seed=1)
    daily = pl.read_parquet(run_dir / "daily.parquet").with_columns(
        status=pl.lit("no_trade"),
        skip_reason=pl.lit("no signal"),
        fills=pl.lit(0, pl.Int64),
        round_trips=pl.lit(0, pl.Int64),
        gross_pnl_paise=pl.lit(0, pl.Int64),
        costs_paise=pl.lit(0, pl.Int64),
        net_pnl_paise=pl.lit(0, pl.Int64),
        first_entry_ts=pl.lit(None, pl.Datetime("ns", "UTC")),
        exposure_seconds=pl.lit(0, pl.Int64),
    )
    daily.write_parquet(run_dir / "daily.parquet")
    (run_dir / "trades.parquet").unlink()
    (run_dir / "samples.parquet").unlink()
    document = write_report(run_dir).read_text(encoding="utf-8")
    assert "first 0 of 0 fills" in document
    assert _figure_from_html(document, "equity")["data"][0]["y"] == [0.0] * 30
    assert _figure_from_html(document, "entry-time")["data"][0]["x"] == []


def test_write_report_needs_a_finished_run(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(LakeError, match=r"daily\.parquet is missing"):
        write_report(tmp_path / "run")


def test_print_summary(fake_run_dir: Path) -> None:
    console = Console(record=True, width=160)
    statistics = print_summary(fake_run_dir, console)
    output = console.export_text()
    trades = pd.read_parquet(fake_run_dir / "trades.parquet")
    total = int(trades.cash_flow_paise.sum() - trades.costs_paise.sum())
    sign = "-" if total < 0 else ""
    assert "Total net P&L" in output
    assert f"{sign}₹{abs(total) / 100:,.2f}" in output
    assert "20240301-atm_straddle-0001" in output
    assert "exchange holiday ×2" in output
    assert statistics.total_net_pnl_paise == total
