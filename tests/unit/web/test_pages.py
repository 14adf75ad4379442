"""Server-rendered pages show the lake's content; assets are served locally (no CDN)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _engine_fixtures import OPTIONS, SPOT
from _web_fixtures import BASE_RUN


def test_overview_lists_datasets_runs_and_row_counts(client: Any, finished_lake_root: Path) -> None:
    import pyarrow.parquet as pq

    html = client.get("/").text
    assert f"bronze.{OPTIONS}" in html and f"bronze.{SPOT}" in html
    rows = sum(
        pq.ParquetFile(f).metadata.num_rows
        for f in (finished_lake_root / "bronze" / SPOT).glob("date=*/data.parquet")
    )
    assert f"{rows:,}" in html
    assert f'href="/runs/{BASE_RUN}"' in html


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/data", 'id="chain-table"'),
        ("/quality", "verdict"),
        ("/analytics", "volume_over_minutes"),
        ("/builder", 'data-rule="entry"'),
        ("/runs", BASE_RUN),
        (f"/runs/{BASE_RUN}", 'id="results-table"'),
        (f"/compare?a={BASE_RUN}&b={BASE_RUN}", 'id="compare-stats"'),
    ],
)
def test_every_page_renders(client: Any, path: str, needle: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert needle in response.text
    assert "<script>" not in response.text  # no inline scripts: the CSP allows 'self' only


def test_page_text_is_escaped(client: Any) -> None:
    html = client.get("/runs/<img src=x onerror=alert(1)>").text
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_plotly_is_served_from_the_python_package(client: Any) -> None:
    import plotly

    response = client.get("/vendor/plotly.min.js")
    assert response.status_code == 200
    shipped = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert response.content == shipped.read_bytes()
    for asset in ("app.css", "common.js", "builder.js", "run.js", "data.js"):
        assert client.get(f"/static/{asset}").status_code == 200


def test_metric_catalogue_comes_from_the_registry(client: Any) -> None:
    from ticklake.analytics.registry import all_metrics

    body = client.get("/api/v1/metrics").json()
    assert [m["name"] for m in body["metrics"]] == [m.name for m in all_metrics()]
    ema = client.get("/api/v1/metrics/ema").json()
    assert ema["condition_usable"] is True and "minutes" in ema["parameters"]["properties"]
    assert client.get("/api/v1/metrics/no_such_metric").status_code == 404
    series = client.get("/api/v1/metrics", params={"kind": "series"}).json()["metrics"]
    assert series and all(m["kind"] == "series" for m in series)


def test_strategy_schema_templates_and_yaml_round_trip(client: Any) -> None:
    import yaml

    from ticklake.backtest.spec import json_schema
    from ticklake.strategies import template_names

    assert client.get("/api/v1/strategies/schema").json() == json_schema()
    names = [t["name"] for t in client.get("/api/v1/strategies/templates").json()]
    assert names == template_names()
    spec = client.get("/api/v1/strategies/templates/atm_straddle_hourly").json()
    text = client.post("/api/v1/strategies/yaml", json={"spec": spec}).text
    assert yaml.safe_load(text)["rebalance"] == {"kind": "every", "minutes": 60}
    checked = client.post(
        "/api/v1/strategies/validate",
        json={
            "spec": spec,
            "overrides": {
                "entry.when": {
                    "all": [
                        {
                            "left": {"metric": "volume_1m"},
                            "op": ">",
                            "right": {"metric": "volume_2m"},
                        },
                        {
                            "left": {"metric": "ema", "args": {"minutes": 1}},
                            "op": ">",
                            "right": {"metric": "ema", "args": {"minutes": 5}},
                        },
                    ]
                }
            },
        },
    ).json()
    text = checked["conditions"]["entry.when"]
    assert text == "volume_1m > volume_2m and ema(minutes=1) > ema(minutes=5)"
    # The text form the server prints is itself a valid condition with the same meaning.
    again = client.post(
        "/api/v1/strategies/validate", json={"spec": spec, "overrides": {"entry.when": text}}
    ).json()
    assert again["conditions"]["entry.when"] == text
    # 2024-01-08 .. 2024-01-31: 18 weekdays less the NSE holidays of the 22nd and the 26th
    assert checked["days_planned"] == 16


def test_openapi_docs_are_served_without_a_cdn(client: Any) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/vendor/swagger/swagger-ui-bundle.js" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from the internet
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "cdn" not in csp
    bundle = client.get("/vendor/swagger/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text
    init = client.get("/static/swagger-init.js")
    assert init.status_code == 200 and "/openapi.json" in init.text
    assert client.get("/openapi.json").json()["info"]["title"] == "ticklake"
