"""Issue #19 on the server side: the report opens inline, the run answer carries the
sample-size rule and the bootstrap intervals, the pipeline page says what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from _web_fixtures import BASE_RUN

RUN = f"/api/v1/runs/{BASE_RUN}"


def test_report_html_is_served_inline_as_html(client: Any) -> None:
    response = client.get(f"{RUN}/files/report.html")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    disposition = response.headers.get("content-disposition", "")
    assert "attachment" not in disposition.lower()
    assert disposition == "" or disposition.lower().startswith("inline")
    assert "<html" in response.text.lower()


def test_run_detail_carries_the_sample_rule_and_bootstrap_intervals(
    client: Any, finished_lake_root: Path
) -> None:
    from ticklake.backtest.stats import read_run_results
    from ticklake.backtest.stats_sample import bootstrap_intervals

    body = client.get(RUN).json()
    results = read_run_results(finished_lake_root / "runs" / BASE_RUN)
    daily = results.daily.filter(pl.col("status") != "skipped").sort("date")
    series = [
        n if s == "traded" else 0
        for s, n in zip(daily["status"], daily["net_pnl_paise"], strict=True)
    ]
    sharpe, mean = bootstrap_intervals(series)
    sample = body["sample"]
    assert sample["days"] == len(series) < 20
    assert sample["bootstrap"]["sharpe_ratio"] == list(sharpe)
    assert sample["bootstrap"]["average_daily_net_pnl_rupees"] == list(mean)
    assert "fewer than 20" in sample["small_sample"]["sharpe_ratio"]
    assert body["statistics_text"]["sharpe_ratio"] == f"{body['statistics']['sharpe_ratio']:.3f}"
    # The report shows the same rule and interval: one source.
    report = (finished_lake_root / "runs" / BASE_RUN / "report.html").read_text()
    assert "class='small-sample'" in report and f"{sharpe[0]:.3f}" in report


def test_compare_answers_text_at_the_report_precision(client: Any) -> None:
    body = client.get(f"/api/v1/runs/compare?a={BASE_RUN}&b={BASE_RUN}").json()
    sharpe = next(s for s in body["statistics"] if s["name"] == "sharpe_ratio")
    assert sharpe["a_text"] == f"{sharpe['a']:.3f}" and sharpe["difference_text"] == "0.000"
    assert "sharpe_ratio" in body["sample_a"]["small_sample"]


def test_an_empty_pipeline_says_what_to_do_in_one_line(client: Any) -> None:
    from ticklake.web.api.jobs import EMPTY_PIPELINE

    for text in ("", "   \n", "# nothing yet\n", "name: daily_bars\npasses: []\n"):
        response = client.post("/api/v1/jobs/pipeline", json={"pipeline_yaml": text})
        assert response.status_code == 422, text
        assert response.json()["error"]["message"] == EMPTY_PIPELINE
    assert "\n" not in EMPTY_PIPELINE and "passes:" in EMPTY_PIPELINE


def test_run_detail_carries_the_round_trip_breakdowns_of_the_report(
    client: Any, finished_lake_root: Path
) -> None:
    from ticklake.backtest.stats import read_run_results

    body = client.get(RUN).json()
    results = read_run_results(finished_lake_root / "runs" / BASE_RUN)
    want = results.breakdowns()
    assert set(body["breakdowns"]) == {"all", "weekday", "entry_window", "month"}
    for facet, rows in want.items():
        assert body["breakdowns"][facet] == [row.as_dict() for row in rows]
    assert body["breakdowns"]["all"][0]["round_trips"] == results.statistics().round_trips


def test_a_day_carries_its_intraday_pnl_and_drawdown_by_minute(lake_copy: Path) -> None:
    import pandas as pd
    from _web_fixtures import make_client, straddle_spec_data

    from ticklake.backtest.runner import run_backtest
    from ticklake.backtest.spec import parse_spec
    from ticklake.lake import open_lake

    lake = open_lake(lake_copy)
    result = run_backtest(
        lake,
        parse_spec(straddle_spec_data()),
        run_id="straddle-path",
        executor="serial",
        use_cache=False,
        pnl_per_second=True,
    )
    day_dir = next(
        p for p in sorted((result.run_dir / "days").iterdir()) if (p / "pnl.parquet").is_file()
    )
    client = make_client(lake_copy)
    try:
        body = client.get(f"/api/v1/runs/straddle-path/days/{day_dir.name}").json()
        plain = client.get(f"{RUN}/days/{day_dir.name}").json()
    finally:
        client.app.state.jobs.shutdown()
    assert plain["pnl_path"] is None  # a run without pnl_per_second has no path
    path = body["pnl_path"]
    # Independent: pandas resample of the per-second file, last value of each minute
    # (right-closed, right-labelled), drawdown from the running peak (floored at 0).
    frame = pd.read_parquet(day_dir / "pnl.parquet").set_index("ts").sort_index()
    minutes = frame["pnl_paise"].resample("60s", label="right", closed="right").last().dropna()
    peak = minutes.cummax().clip(lower=0)
    assert path["pnl_paise"] == [int(v) for v in minutes]
    assert path["drawdown_paise"] == [int(v) for v in (peak - minutes).clip(lower=0)]
    local = minutes.index.tz_convert("Asia/Kolkata").strftime("%Y-%m-%dT%H:%M:%S")
    assert path["ts_local"] == list(local)
    assert min(path["pnl_paise"]) != max(path["pnl_paise"])  # the path really moves
