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
