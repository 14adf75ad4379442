"""``backfill http``: minute bars from a pluggable HTTP provider (issue 14).

The provider is a local ``http.server`` on 127.0.0.1 with two shapes: a JSON API (epoch
ms, ascending pages of ``limit`` rows, an API key in a header) and a CSV API (naive New
York times, newest bars first, a key in the query, at most 6 h per request). Both serve
SPY (14:30-21:00 UTC only) and EURUSD (every minute) from :func:`bar`, a deterministic
function of the symbol and the minute: that function is the oracle, never our output.
Faults on command: 429 with ``Retry-After``, 500, a corrupted field in one bar.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app
from ticklake.collect.http_source import (
    STATE_DIR,
    HttpSourceConfig,
    load_source,
    parse_ts,
    run_http_backfill,
)
from ticklake.collect.rest import CollectError, run_sync
from ticklake.errors import ConfigError

pytestmark = pytest.mark.timeout(120)
runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples" / "macro"
KEY = "sk-live-7f3a9c1e55"  # the key the provider accepts
START, END = datetime(2024, 3, 4, 12, 0, tzinfo=UTC), datetime(2024, 3, 5, 2, 59, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")
BASE = {"SPY": 510.0, "EURUSD": 1.085}


def trades_at(symbol: str, minute: datetime) -> bool:
    if symbol == "SPY":  # the US cash session, 14:30-21:00 UTC in winter
        return 14 * 60 + 30 <= minute.hour * 60 + minute.minute < 21 * 60
    return True


def bar(symbol: str, minute: datetime) -> dict[str, Any]:
    i = int(minute.timestamp()) // 60
    base = BASE[symbol]
    o = round(base * (1 + ((i * 37) % 101 - 50) / 1e4), 6)
    c = round(base * (1 + ((i * 53) % 97 - 48) / 1e4), 6)
    return {"ts": minute, "open": o, "high": round(max(o, c) + base * 1e-4, 6),
            "low": round(min(o, c) - base * 1e-4, 6), "close": c,
            "volume": float((i % 17) * 100 + 1) if symbol == "SPY" else None}  # fmt: skip


def minutes(symbol: str, first: datetime, last: datetime) -> list[datetime]:
    out, t = [], first
    while t <= last:
        if trades_at(symbol, t):
            out.append(t)
        t += timedelta(minutes=1)
    return out


def oracle(symbols: list[str], first: datetime = START, last: datetime = END) -> pl.DataFrame:
    rows = [{"instrument": s, **bar(s, t)} for s in symbols for t in minutes(s, first, last)]
    frame = pl.DataFrame(rows, schema_overrides={"volume": pl.Float64})
    return frame.with_columns(
        pl.col("ts").dt.cast_time_unit("ns"),
        (pl.col("ts") + pl.duration(minutes=1)).dt.cast_time_unit("ns").alias("ts_end"),
    ).sort("ts", "instrument")


def stored(lake: Any, dataset: str = "macro_1m") -> pl.DataFrame:
    return (
        lake.read(dataset)
        .select("instrument", "ts", "open", "high", "low", "close", "volume", "ts_end")
        .sort("ts", "instrument")
    )


class Provider:
    """What the server serves and the faults it injects; every request is logged."""

    def __init__(self) -> None:
        self.faults: list[str] = []  # "429" / "500": the next requests' answers
        self.corrupt: dict[tuple[str, datetime], tuple[str, str]] = {}
        self.log: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def rows(self, symbol: str, first: datetime, last: datetime) -> list[dict[str, Any]]:
        out = []
        for t in minutes(symbol, first, last):
            row = bar(symbol, t)
            if (symbol, t) in self.corrupt:
                name, value = self.corrupt[(symbol, t)]
                row[name] = value
            out.append(row)
        return out


def handler_for(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def send(self, status: int, body: str, kind: str, headers: dict[str, str]) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            with provider.lock:
                provider.log.append({"path": url.path, "query": query,
                                     "key": self.headers.get("X-Api-Key"),
                                     "at": time.monotonic()})  # fmt: skip
                fault = provider.faults.pop(0) if provider.faults else None
            if fault == "429":
                return self.send(429, "slow down", "text/plain", {"Retry-After": "1"})
            if fault == "500":
                return self.send(500, "internal error", "text/plain", {})
            if url.path == "/v1/bars":
                return self.json_bars(query)
            if url.path.startswith("/csv/"):
                return self.csv_bars(unquote(url.path.removeprefix("/csv/")), query)
            return self.send(404, "no such path", "text/plain", {})

        def json_bars(self, query: dict[str, str]) -> None:
            key = self.headers.get("X-Api-Key")
            if key != KEY:  # echoes the key, as some providers do
                return self.send(401, json.dumps({"error": f"invalid key {key}"}),
                                 "application/json", {})  # fmt: skip
            first = datetime.fromtimestamp(int(query["from"]) / 1000, UTC)
            last = datetime.fromtimestamp(int(query["to"]) / 1000, UTC)
            rows = provider.rows(query["symbol"], first, last)[: int(query["limit"])]
            values = [{"t": int(r["ts"].timestamp() * 1000), "o": str(r["open"]),
                       "h": str(r["high"]), "l": str(r["low"]), "c": r["close"],
                       "v": r["volume"]} for r in rows]  # fmt: skip
            body = {"status": "ok", "data": {"values": values}}
            return self.send(200, json.dumps(body), "application/json", {})

        def csv_bars(self, symbol: str, query: dict[str, str]) -> None:
            if query.get("apikey") != KEY:
                return self.send(403, f"bad apikey {query.get('apikey')}", "text/plain", {})
            symbol = symbol.replace("/", "")  # the provider's "EUR/USD" is our EURUSD
            local = [datetime.strptime(query[k], "%Y-%m-%d %H:%M").replace(tzinfo=NEW_YORK)
                     for k in ("start", "end")]  # fmt: skip
            first, last = (t.astimezone(UTC) for t in local)
            rows = provider.rows(symbol, first, last)[::-1][: int(query["outputsize"])]
            lines = ["datetime,open,high,low,close,volume"]
            for r in rows:
                when = r["ts"].astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M:%S")
                volume = "" if r["volume"] is None else r["volume"]
                lines.append(f"{when},{r['open']},{r['high']},{r['low']},{r['close']},{volume}")
            return self.send(200, "\n".join(lines) + "\n", "text/csv", {})

    return Handler


@pytest.fixture
def provider() -> Iterator[tuple[Provider, str]]:
    state = Provider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


JSON_SOURCE = """
name = "test-json"
base_url = "http://unused.invalid"
path = "/v1/bars"
time_format = "epoch_ms"
max_rows = 200
requests_per_minute = 6000
backoff_base_seconds = 0.05
[query]
symbol = "{symbol}"
from = "{start}"
to = "{end}"
limit = "{limit}"
[headers]
X-Api-Key = "${TEST_MACRO_KEY}"
[response]
format = "json"
rows = "data.values"
[mapping]
ts = "t"
ts_format = "epoch_ms"
open = "o"
high = "h"
low = "l"
close = "c"
volume = "v"
optional = ["volume"]
"""

CSV_SOURCE = """
name = "test-csv"
base_url = "http://unused.invalid"
path = "/csv/{symbol}"
time_format = "%Y-%m-%d %H:%M"
time_zone = "America/New_York"
max_rows = 200
page_from = "end"
max_window_minutes = 360
requests_per_minute = 6000
[query]
start = "{start}"
end = "{end}"
outputsize = "{limit}"
apikey = "${TEST_MACRO_KEY}"
[symbols]
EURUSD = "EUR/USD"
[response]
format = "csv"
[mapping]
ts = "datetime"
ts_format = "iso"
ts_timezone = "America/New_York"
open = "open"
high = "high"
low = "low"
close = "close"
volume = "volume"
optional = ["volume"]
"""


def source(text: str, url: str, **overrides: Any) -> HttpSourceConfig:
    import tomllib

    return HttpSourceConfig.model_validate({**tomllib.loads(text), "base_url": url, **overrides})


def backfill(lake: Any, config: HttpSourceConfig, symbols: list[str], **kwargs: Any) -> Any:
    env = kwargs.pop("environ", {"TEST_MACRO_KEY": KEY})
    return run_sync(run_http_backfill(lake, config, symbols, START, END, environ=env, **kwargs))


def test_json_pages_through_a_429_and_a_500_fill_every_minute_once_and_a_rerun_adds_nothing(
    provider: tuple[Provider, str], tmp_path: Path
) -> None:
    server, url = provider
    lake = ticklake.init_lake(tmp_path / "lake")
    config = source(JSON_SOURCE, url)
    server.faults = ["429", "500"]
    summary = backfill(lake, config, ["SPY", "EURUSD"])
    expected = oracle(["SPY", "EURUSD"])
    assert expected.filter(pl.col("instrument") == "SPY").height == 390  # the session only
    assert_frame_equal(stored(lake), expected)
    assert summary.rows == {"SPY": 390, "EURUSD": 900} and summary.added == summary.rows
    # SPY: 200 + 190 + an empty window (closed till the end); EURUSD: 4 x 200 + 100, which
    # reaches the end
    assert summary.pages == 3 + 5
    assert summary.retries == 2 and summary.waited_seconds >= 1.0  # Retry-After: 1
    assert len(server.log) == 8 + 2 and {r["key"] for r in server.log} == {KEY}
    assert lake.partitions("macro_1m")[0].date.isoformat() == "2024-03-04"
    assert len(lake.partitions("macro_1m")) == 2  # the range crosses midnight UTC

    again = backfill(lake, config, ["SPY", "EURUSD"])  # a finished range: nothing asked
    assert again.pages == 0 and len(server.log) == 10
    shutil.rmtree(lake.root / STATE_DIR)  # no saved position: fetched again, merged by key
    fresh = backfill(lake, config, ["SPY", "EURUSD"])
    assert fresh.pages == 8 and fresh.added == {"SPY": 0, "EURUSD": 0}
    assert_frame_equal(stored(lake), expected)


def test_csv_in_new_york_time_newest_first_through_the_cli_maps_symbols_and_fills_every_minute(
    provider: tuple[Provider, str], tmp_path: Path
) -> None:
    server, url = provider
    lake = ticklake.init_lake(tmp_path / "lake")
    path = tmp_path / "csv.toml"
    path.write_text(CSV_SOURCE)
    args = ["backfill", "http", "--source", str(path), "--symbols", "SPY,EURUSD",
            "--start", "2024-03-04T12:00", "--end", "2024-03-05T02:59", "-d", "fx_1m",
            "--base-url", url, "--lake", str(lake.root)]  # fmt: skip
    result = runner.invoke(app, args, env={"TEST_MACRO_KEY": KEY})
    assert result.exit_code == 0, result.output
    assert "1,290 bar(s) received, 1,290 added" in result.output
    assert_frame_equal(stored(lake, "fx_1m"), oracle(["SPY", "EURUSD"]))
    assert {r["path"] for r in server.log} == {"/csv/SPY", "/csv/EUR%2FUSD"}  # mapped, quoted
    # 6 h windows, newest first: 12:00-17:59 UTC (07:00-12:59 in New York) gives its newest
    # 200 bars (from 14:40), so the rest of the window is asked next: 12:00-14:39
    eurusd = [r["query"] for r in server.log if r["path"] == "/csv/EUR%2FUSD"]
    assert [(q["start"], q["end"]) for q in eurusd[:2]] == [
        ("2024-03-04 07:00", "2024-03-04 12:59"), ("2024-03-04 07:00", "2024-03-04 09:39"),
    ]  # fmt: skip
    again = runner.invoke(app, args, env={"TEST_MACRO_KEY": KEY})
    assert again.exit_code == 0 and "0 bar(s) received, 0 added, in 0 page(s)" in again.output


class Interrupted(Exception):
    pass


def test_an_interrupted_run_resumes_after_the_last_committed_page(
    provider: tuple[Provider, str], tmp_path: Path
) -> None:
    server, url = provider
    lake = ticklake.init_lake(tmp_path / "lake")
    config = source(JSON_SOURCE, url)

    def stop(instrument: str, position: int, rows: int) -> None:
        raise Interrupted  # like Ctrl+C after the first page

    with pytest.raises(Interrupted):
        backfill(lake, config, ["EURUSD"], on_page=stop)
    first_page = oracle(["EURUSD"]).head(200)
    assert_frame_equal(stored(lake), first_page)
    resume_at = START + timedelta(minutes=200)
    summary = backfill(lake, config, ["EURUSD"])
    assert summary.resumed_from == {"EURUSD": int(resume_at.timestamp()) * 10**9}
    assert int(server.log[1]["query"]["from"]) == int(resume_at.timestamp() * 1000)
    assert summary.rows == {"EURUSD": 700} and summary.pages == 4  # 3 x 200 + 100
    assert_frame_equal(stored(lake), oracle(["EURUSD"]))


def test_a_malformed_row_names_url_row_and_field_and_commits_nothing_of_that_request(
    provider: tuple[Provider, str], tmp_path: Path
) -> None:
    server, url = provider
    lake = ticklake.init_lake(tmp_path / "lake")
    config = source(JSON_SOURCE, url)
    bad_minute = START + timedelta(minutes=249)  # row 50 of the second page
    server.corrupt[("EURUSD", bad_minute)] = ("close", "n/a")
    with pytest.raises(CollectError) as caught:
        backfill(lake, config, ["EURUSD"])
    message = str(caught.value)
    page_two = int((START + timedelta(minutes=200)).timestamp() * 1000)
    assert f"{url}/v1/bars?symbol=EURUSD&from={page_two}&to=" in message
    assert "row 50: field 'c' (bar column close) is 'n/a', not a number" in message
    assert "\n" not in message and caught.value.exit_code == 13
    assert_frame_equal(stored(lake), oracle(["EURUSD"]).head(200))  # page 1 only
    del server.corrupt[("EURUSD", bad_minute)]  # the provider fixed it: resume at page 2
    summary = backfill(lake, config, ["EURUSD"])
    assert summary.resumed_from and summary.rows == {"EURUSD": 700}
    assert_frame_equal(stored(lake), oracle(["EURUSD"]))


def test_a_key_from_the_environment_never_appears_in_an_error(
    provider: tuple[Provider, str], tmp_path: Path
) -> None:
    server, url = provider
    lake = ticklake.init_lake(tmp_path / "lake")
    path = tmp_path / "csv.toml"
    path.write_text(CSV_SOURCE)
    args = ["backfill", "http", "--source", str(path), "--symbols", "SPY",
            "--start", "2024-03-04", "--end", "2024-03-04", "--base-url", url,
            "--lake", str(lake.root)]  # fmt: skip
    server.corrupt[("SPY", datetime(2024, 3, 4, 15, 0, tzinfo=UTC))] = ("high", "")
    result = runner.invoke(app, args, env={"TEST_MACRO_KEY": KEY})
    assert result.exit_code == 13, result.output
    assert server.log[0]["query"]["apikey"] == KEY  # it came from the environment
    assert KEY not in result.output and "apikey=***" in result.output
    assert "field 'high' (bar column high) is missing" in result.output
    # a refused key (the provider echoes it back): at once, no retry, still redacted
    wrong = "sk-wrong-0000"
    config = source(JSON_SOURCE, url)
    with pytest.raises(CollectError) as caught:
        backfill(lake, config, ["SPY"], environ={"TEST_MACRO_KEY": wrong})
    assert "HTTP 401" in str(caught.value) and "check the API key" in str(caught.value)
    assert wrong not in str(caught.value) and "invalid key ***" in str(caught.value)
    assert server.log[-1]["key"] == wrong and caught.value.status == 401
    requests = len(server.log)
    with pytest.raises(ConfigError, match=r"headers.X-Api-Key needs \$TEST_MACRO_KEY"):
        backfill(lake, config, ["SPY"], environ={})
    assert len(server.log) == requests  # nothing sent without the key


def test_retries_are_bounded_and_requests_per_minute_is_kept(
    provider: tuple[Provider, str], tmp_path: Path
) -> None:
    server, url = provider
    lake = ticklake.init_lake(tmp_path / "lake")
    server.faults = ["500"] * 10
    with pytest.raises(CollectError, match="failed 3 times: HTTP 500"):
        backfill(lake, source(JSON_SOURCE, url, retries=2), ["SPY"])
    assert len(server.log) == 3
    server.faults, server.log = [], []
    backfill(lake, source(JSON_SOURCE, url, requests_per_minute=600), ["SPY"])  # 0.1 s apart
    gaps = [b["at"] - a["at"] for a, b in zip(server.log, server.log[1:], strict=False)]
    assert len(gaps) == 2 and min(gaps) >= 0.08  # arrival jitter: a few ms


def test_times_that_cannot_be_placed_are_refused() -> None:
    with pytest.raises(ValueError, match="is ambiguous in America/New_York"):
        parse_ts("2024-11-03 01:30:00", "iso", "America/New_York")  # the hour repeated
    with pytest.raises(ValueError, match="does not exist in America/New_York"):
        parse_ts("2024-03-10 02:30:00", "iso", "America/New_York")  # the hour skipped
    assert parse_ts("2024-03-04T09:30:00-05:00", "iso", "Asia/Tokyo") == parse_ts(
        "1709562600", "epoch_s", "UTC"
    )
    with pytest.raises(ValueError, match="not an epoch number"):
        parse_ts("17095626oo", "epoch_s", "UTC")


def test_a_misaligned_ts_is_an_error_naming_the_unit(
    provider: tuple[Provider, str], tmp_path: Path
) -> None:
    _, url = provider
    lake = ticklake.init_lake(tmp_path / "lake")
    wrong_unit = source(JSON_SOURCE, url)
    mapping = wrong_unit.mapping.model_copy(update={"ts_format": "epoch_us"})
    with pytest.raises(CollectError, match=r"row 1: field 't' .* not on a 1m boundary"):
        backfill(lake, wrong_unit.model_copy(update={"mapping": mapping}), ["SPY"])
    assert lake.dataset_names() == []


def test_the_source_file_refuses_unknown_keys_and_the_examples_load(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text(JSON_SOURCE.replace("max_rows = 200", "max_row = 200"))
    with pytest.raises(ConfigError, match=r"typo.toml: max_row: Extra inputs are not permitted"):
        load_source(path)
    examples = sorted(EXAMPLES.glob("*.toml"))
    assert len(examples) == 2
    loaded = [load_source(p, base_url="http://127.0.0.1:1") for p in examples]
    assert {c.response.format for c in loaded} == {"json", "csv"}
    assert all(c.base_url == "http://127.0.0.1:1" for c in loaded)
