"""``ticklake backfill http``: minute bars from any HTTP provider, described by a TOML file.

A source file (:class:`HttpSourceConfig`, keys tabled in docs/collect.md) says how to ask
for bars (path and query templates, ``${ENV}`` for keys), how to read the answer (JSON
rows at a dotted path, or CSV) and which field fills which ``bars`` column. Rows merge by
key into a bronze dataset (default ``macro_1m``), so a re-run adds nothing. Paging walks
time windows; a row that does not map fails the run naming URL (secrets as ``***``), row
and field, committing nothing of that request; the position after each committed page
is saved under ``<lake>/_state/backfill_http/``, so an interrupted run resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import email.utils
import hashlib
import io
import json
import logging
import math
import os
import re
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, quote_plus
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import orjson
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ticklake.collect.rest import CollectError
from ticklake.errors import ConfigError
from ticklake.lake.commit import write_text_atomic
from ticklake.lake.lake import Lake

log = logging.getLogger("ticklake.collect")

INTERVAL_NS = {k: s * 10**9 for k, s in {"1m": 60, "5m": 300, "15m": 900, "30m": 1800,
                                           "1h": 3600}.items()}  # fmt: skip
EPOCH_UNITS = {"epoch_s": 10**9, "epoch_ms": 10**6, "epoch_us": 10**3, "epoch_ns": 1}
#: bar columns a mapping may fill besides ts (open..close are required)
VALUE_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume", "trade_count",
                 "vwap", "bid_price", "ask_price", "open_interest")  # fmt: skip
STATE_DIR = "_state/backfill_http"
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _time_format(value: str) -> str:
    if value in EPOCH_UNITS or value == "iso" or "%" in value:
        return value
    raise ValueError(f"unknown time format {value!r}: use epoch_s/ms/us/ns, iso or a strftime")


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name, e.g. UTC)") from None
    return value


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResponseSpec(_Frozen):
    """How to find the rows in an answer."""

    format: Literal["json", "csv"] = "json"
    rows: str = ""  # json: dotted path to the list of rows ("" = the body itself)
    missing_rows: Literal["error", "empty"] = "error"  # json: the path absent or null
    delimiter: str = ","  # csv


class MappingSpec(_Frozen):
    """The provider's field for each bar column (a name, or an index for array rows)."""

    ts: str
    ts_format: str = "epoch_ms"
    ts_timezone: str = "UTC"  # for ts strings without an offset
    ts_label: Literal["open", "close"] = "open"  # does the provider stamp bars by open?
    open: str
    high: str
    low: str
    close: str
    volume: str | None = None
    quote_volume: str | None = None
    trade_count: str | None = None
    vwap: str | None = None
    bid_price: str | None = None
    ask_price: str | None = None
    open_interest: str | None = None
    optional: tuple[str, ...] = ()  # bar columns that may be null / absent in a row

    _ts_format = field_validator("ts_format")(_time_format)
    _ts_timezone = field_validator("ts_timezone")(_zone)

    @model_validator(mode="after")
    def _optional(self) -> MappingSpec:
        unknown = [c for c in self.optional if c not in VALUE_COLUMNS or getattr(self, c) is None]
        if unknown:
            raise ValueError(f"optional lists {unknown}, which are not mapped bar columns")
        return self

    def columns(self) -> dict[str, str]:
        """Bar column -> provider field, for the mapped value columns."""
        return {c: getattr(self, c) for c in VALUE_COLUMNS if getattr(self, c) is not None}


class HttpSourceConfig(_Frozen):
    """A provider of minute bars over HTTP (see the module text and docs/collect.md)."""

    name: str = "http"
    base_url: str
    path: str = ""
    query: dict[str, str] = {}
    headers: dict[str, str] = {}
    symbols: dict[str, str] = {}  # instrument in the lake -> the provider's symbol
    interval: Literal["1m", "5m", "15m", "30m", "1h"] = "1m"
    time_format: str = "epoch_ms"  # how {start} / {end} are written
    time_zone: str = "UTC"  # of {start} / {end} when written as iso or strftime
    end_bound: Literal["inclusive", "exclusive"] = "inclusive"  # is {end} the last bar?
    max_rows: int = Field(1000, gt=0)  # {limit}: rows the provider returns at most per request
    page_from: Literal["start", "end"] = "start"  # which end of a window a full page holds
    max_window_minutes: int | None = Field(None, gt=0)  # the longest span one request asks
    requests_per_minute: float = Field(60.0, gt=0)
    retries: int = Field(5, ge=0)
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 30.0
    timeout_seconds: float = 30.0
    response: ResponseSpec = ResponseSpec()
    mapping: MappingSpec

    _time_format = field_validator("time_format")(_time_format)
    _time_zone = field_validator("time_zone")(_zone)

    @property
    def interval_ns(self) -> int:
        return INTERVAL_NS[self.interval]

    def fingerprint(self, provider_symbol: str) -> str:
        """What a saved position depends on: where and how the bars are asked for."""
        parts = [self.base_url, self.path, self.query, provider_symbol, self.interval]
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def load_source(path: Path, *, base_url: str | None = None) -> HttpSourceConfig:
    """Read a source TOML file; ``base_url`` (``--base-url``) overrides the file's."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it as TOML ({exc})", path=str(path)) from None
    if base_url is not None:
        data["base_url"] = base_url
    try:
        return HttpSourceConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'source'}: {e['msg']}" for e in exc.errors()
        )
        hint = (
            "the keys are tabled in docs/collect.md, 'Minute macro/FX bars from any HTTP provider'"
        )
        raise ConfigError(f"{path}: {problems} ({hint})", path=str(path)) from None


# ------------------------------------------------------------------ times and values
def format_time(ns: int, fmt: str, zone: str) -> str:
    """A request bound written the provider's way.

    Examples:
        >>> format_time(1_709_510_400 * 10**9, "epoch_s", "UTC")
        '1709510400'
        >>> format_time(1_709_510_400 * 10**9, "iso", "UTC")
        '2024-03-04T00:00:00Z'
    """
    if fmt in EPOCH_UNITS:
        return str(ns // EPOCH_UNITS[fmt])
    moment = datetime.fromtimestamp(ns // 10**9, UTC).astimezone(ZoneInfo(zone))
    if fmt == "iso":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if zone == "UTC" else moment.isoformat()
    return moment.strftime(fmt)


class _Unmappable(ValueError):
    """A value that does not map; the caller adds the URL, row and field."""


def parse_ts(value: Any, fmt: str, zone: str) -> int:
    """A provider's time as UTC ns; a naive string is read in ``zone``.

    Examples:
        >>> parse_ts("1709510400000", "epoch_ms", "UTC")
        1709510400000000000
        >>> parse_ts("2024-03-04 09:30:00", "iso", "America/New_York") // 10**9
        1709562600
    """
    if value is None or value == "":
        raise _Unmappable("is missing")
    if fmt in EPOCH_UNITS:
        # Decimal, not float: 1709510400.0 s in float ns is off by up to 256 ns
        number = None if isinstance(value, bool) else _decimal(value)
        if number is None or not number.is_finite():
            raise _Unmappable(f"is {value!r}, not an epoch number ({fmt})")
        return int(number * EPOCH_UNITS[fmt])
    if not isinstance(value, str):
        raise _Unmappable(f"is {value!r}, not a time string ({fmt})")
    try:
        moment = datetime.fromisoformat(value) if fmt == "iso" else datetime.strptime(value, fmt)
    except ValueError:
        raise _Unmappable(f"is {value!r}, which does not parse as {fmt}") from None
    if moment.tzinfo is None:
        tz = ZoneInfo(zone)
        early, late = moment.replace(tzinfo=tz), moment.replace(tzinfo=tz, fold=1)
        skipped = early.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != moment
        if skipped or early.utcoffset() != late.utcoffset():  # a clock change skips / repeats
            problem = "does not exist" if skipped else "is ambiguous"
            raise _Unmappable(f"is {value!r}, which {problem} in {zone}; ask for UTC times")
        moment = early
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value).strip())
    except ArithmeticError:  # decimal.InvalidOperation
        return None


def parse_number(value: Any) -> float | None:
    """A finite number from a JSON number or a numeric string; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _Unmappable(f"is {value!r}, not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _Unmappable(f"is {value!r}, not a number") from None
    if not math.isfinite(number):
        raise _Unmappable(f"is {value!r}, not a finite number")
    return number


# ------------------------------------------------------------------ the client
@dataclass
class HttpBackfillSummary:
    """Per instrument: rows received and added; pages, retries, time waited."""

    rows: dict[str, int] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)
    outside_range: int = 0  # rows the provider sent outside --start/--end (not written)
    pages: int = 0
    resumed_from: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    waited_seconds: float = 0.0
    seconds: float = 0.0


def _substitute(template: str, values: Mapping[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), template)


class HttpSource:
    """One provider: an ``httpx.AsyncClient`` with the source's limits and secrets."""

    def __init__(self, config: HttpSourceConfig, environ: Mapping[str, str] | None = None):
        self.config = config
        env = os.environ if environ is None else environ
        self.secrets: list[str] = []
        self.headers = {k: self._resolve(f"headers.{k}", v, env) for k, v in config.headers.items()}
        self.query = {k: self._resolve(f"query.{k}", v, env) for k, v in config.query.items()}
        if any(secret in value for secret in self.secrets for value in self.query.values()):
            # httpx logs request URLs at INFO; a key in the query must not reach a log
            logging.getLogger("httpx").setLevel(logging.WARNING)
        base, timeout = config.base_url.rstrip("/"), config.timeout_seconds
        self.client = httpx.AsyncClient(base_url=base, headers=self.headers, timeout=timeout)
        self.retried, self.waited_seconds, self._next_request = 0, 0.0, 0.0

    def _resolve(self, where: str, value: str, env: Mapping[str, str]) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if not env.get(name):
                raise ConfigError(
                    f"source {self.config.name!r}: {where} needs ${name}, which is not set; "
                    f"export {name}=... (keys are read from the environment, never from "
                    "the source file)",
                    variable=name,
                )
            self.secrets.append(env[name])
            return env[name]

        return _ENV.sub(one, value)

    def error(self, text: str, **fields: Any) -> CollectError:
        """A :class:`CollectError` naming the source, with every secret redacted."""
        return CollectError(self.redact(f"source {self.config.name!r}: {text}"), **fields)

    def redact(self, text: str) -> str:
        """``text`` with every secret (plain or URL-encoded) replaced by ``***``."""
        for secret in sorted(set(self.secrets), key=len, reverse=True):
            encoded = str(httpx.QueryParams({"k": secret}))[2:]  # as httpx puts it in a URL
            for form in (secret, encoded, quote(secret, safe=""), quote_plus(secret)):
                text = text.replace(form, "***")
        return text

    async def close(self) -> None:
        await self.client.aclose()

    async def _pace(self) -> None:
        """Keep ``requests_per_minute``: requests at least 60/rpm seconds apart."""
        now = time.monotonic()
        if now < self._next_request:
            pause = self._next_request - now
            self.waited_seconds += pause
            await asyncio.sleep(pause)
        gap = 60.0 / self.config.requests_per_minute
        self._next_request = max(now, self._next_request) + gap

    def request_for(self, symbol: str, start_ns: int, end_ns: int) -> tuple[str, dict[str, str]]:
        """(path, query) asking for bars opening in ``[start_ns, end_ns]``."""
        cfg = self.config
        end = end_ns + (cfg.interval_ns if cfg.end_bound == "exclusive" else 0)
        values = {
            "symbol": symbol,
            "start": format_time(start_ns, cfg.time_format, cfg.time_zone),
            "end": format_time(end, cfg.time_format, cfg.time_zone),
            "limit": str(cfg.max_rows),
        }
        path = _substitute(cfg.path, {**values, "symbol": quote(symbol, safe="")})
        return path, {k: _substitute(v, values) for k, v in self.query.items()}

    def url_of(self, path: str, query: dict[str, str]) -> str:
        """The URL as it may be shown: secrets redacted."""
        url = httpx.URL(self.config.base_url.rstrip("/") + path, params=query)
        return self.redact(str(url))

    async def get(self, path: str, query: dict[str, str]) -> httpx.Response:
        cfg = self.config
        url = self.url_of(path, query)
        error = ""
        for attempt in range(cfg.retries + 1):
            await self._pace()
            try:
                response = await self.client.get(path, params=query)
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__}: {exc}"
                delay = min(cfg.backoff_cap_seconds, cfg.backoff_base_seconds * 2**attempt)
            else:
                if response.status_code == 200:
                    return response
                error = f"HTTP {response.status_code}: {response.text[:200]!r}"
                if response.status_code == 429:
                    delay = _retry_after(response.headers.get("Retry-After"), attempt, cfg)
                elif response.status_code >= 500:
                    delay = min(cfg.backoff_cap_seconds, cfg.backoff_base_seconds * 2**attempt)
                else:
                    hint = (
                        "check the API key in the environment and the source's [headers]"
                        if response.status_code in (401, 403)
                        else "check the symbol, the path and the [query] of the source file"
                    )
                    raise self.error(f"{url} refused: {error}; {hint}", status=response.status_code)
            self.retried += 1
            self.waited_seconds += delay
            log.info("%s: %s; retry in %.1f s", url, self.redact(error), delay)
            await asyncio.sleep(delay)
        raise self.error(f"{url} failed {cfg.retries + 1} times: {error}")


def _retry_after(header: str | None, attempt: int, cfg: HttpSourceConfig) -> float:
    """``Retry-After`` in seconds (a number or an HTTP date), else exponential backoff."""
    text = (header or "").strip()
    if text.replace(".", "", 1).isdigit():
        return float(text)
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(text)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return min(cfg.backoff_cap_seconds, cfg.backoff_base_seconds * 2**attempt)


# ------------------------------------------------------------------ answers -> bars
def _rows_of(source: HttpSource, response: httpx.Response, url: str) -> list[Any]:
    spec = source.config.response
    if spec.format == "csv":
        reader = csv.DictReader(io.StringIO(response.text), delimiter=spec.delimiter)
        return list(reader)
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise source.error(
            f"{url} did not answer JSON ({response.text[:120]!r}); is response.format right?"
        ) from None
    node: Any = body
    for part in [p for p in spec.rows.split(".") if p]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            node = None
            break
    if node is None and spec.missing_rows == "empty":
        return []
    if not isinstance(node, list):
        raise source.error(
            f"{url} has no list of rows at response.rows = {spec.rows!r} "
            f"({response.text[:160]!r}); fix response.rows, or set response.missing_rows = "
            "'empty' if the provider omits it when a window has no bars"
        )
    return node


def _field(row: Any, name: str) -> Any:
    if isinstance(row, dict):
        return row.get(name)
    if isinstance(row, list | tuple) and name.isdigit():
        return row[int(name)] if int(name) < len(row) else None
    raise _Unmappable(f"row is {type(row).__name__}, not an object or an array")


def map_rows(source: HttpSource, rows: list[Any], url: str) -> dict[str, list[Any]]:
    """Columns of bars from a page's rows; the first row that does not map raises."""
    cfg, mapping = source.config, source.config.mapping
    step, shift = cfg.interval_ns, cfg.interval_ns if mapping.ts_label == "close" else 0
    columns = mapping.columns()
    out: dict[str, list[Any]] = {"ts": [], **{c: [] for c in columns}}
    for number, row in enumerate(rows, start=1):
        column, name = "ts", mapping.ts
        try:
            ts = parse_ts(_field(row, name), mapping.ts_format, mapping.ts_timezone) - shift
            if ts % step:
                raise _Unmappable(
                    f"is {_field(row, name)!r}, not on a {cfg.interval} boundary (is "
                    f"ts_format = {mapping.ts_format!r} the provider's unit?)"
                )
            values = {}
            for column, name in columns.items():
                value = parse_number(_field(row, name))
                if value is None and column not in mapping.optional:
                    raise _Unmappable("is missing (mapping.optional lists fields that may be)")
                if column == "trade_count" and value is not None:
                    if not value.is_integer():
                        raise _Unmappable(f"is {value!r}, not a whole number")
                    value = int(value)
                values[column] = value
        except _Unmappable as exc:
            csv_line = f" (line {number + 1})" if cfg.response.format == "csv" else ""
            raise source.error(
                f"{url} row {number}{csv_line}: field {name!r} (bar column {column}) {exc}; "
                "nothing of this request was committed: fix the source's [mapping] or ask the "
                "provider, then re-run to resume here",
                **{"row": number, "field": name},
            ) from None
        out["ts"].append(ts)
        for column, value in values.items():
            out[column].append(value)
    return out


def bars_frame(columns: dict[str, list[Any]], instrument: str, step_ns: int) -> pl.DataFrame:
    """The mapped columns as a ``bars`` frame: UTC ns ``ts``, ``ts_end = ts + interval``."""
    ts, utc = pl.Series("ts", columns["ts"], dtype=pl.Int64), pl.Datetime("ns", "UTC")
    values = {c: pl.Series(c, v, dtype=pl.Int64 if c == "trade_count" else pl.Float64)
              for c, v in columns.items() if c != "ts"}  # fmt: skip
    frame = pl.DataFrame({"ts": ts.cast(utc), "ts_end": (ts + step_ns).cast(utc),
                          "instrument": [instrument] * len(ts), **values})  # fmt: skip
    return frame.sort("ts")


# ------------------------------------------------------------------ the backfill
def range_bounds(start: date | datetime, end: date | datetime, step: int) -> tuple[int, int]:
    """(first, last) bar open times in UTC ns, inclusive; a date ``end`` is the whole day."""

    def ns(value: date | datetime) -> int:
        if not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        return int(value.replace(tzinfo=value.tzinfo or UTC).timestamp()) * 10**9

    first = ns(start)
    last = ns(end) if isinstance(end, datetime) else ns(end + timedelta(days=1)) - step
    first += -first % step  # the first bar boundary at or after start
    last -= last % step
    if last < first:
        raise ConfigError(f"--end {end} is before --start {start}")
    return first, last


def state_path(lake: Lake, dataset: str, instrument: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", instrument)
    return lake.root / STATE_DIR / dataset / f"{safe}.json"


def _load_state(path: Path, expected: dict[str, Any]) -> tuple[int, int | None] | None:
    """(next start, upper bound of a window walked back) saved for this range and source."""
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if all(state.get(k) == v for k, v in expected.items()):
        return int(state["next"]), state.get("upper")
    return None


async def run_http_backfill(
    lake: Lake,
    config: HttpSourceConfig,
    symbols: list[str],
    start: date | datetime,
    end: date | datetime,
    *,
    dataset: str = "macro_1m",
    environ: Mapping[str, str] | None = None,
    on_page: Callable[[str, int, int], None] | None = None,
) -> HttpBackfillSummary:
    """Fetch ``symbols`` over ``[start, end]`` into ``dataset`` (bronze, schema bars).

    ``on_page(instrument, next_position_ns, rows)`` is called after each page is
    committed and its position saved (a progress bar; raising from it stops the run
    resumably).
    """
    instruments = list(dict.fromkeys(s.strip() for s in symbols if s.strip()))
    if not instruments:
        raise ConfigError("give at least one symbol, e.g. --symbols SPY,EURUSD")
    bounds = range_bounds(start, end, config.interval_ns)
    started = time.perf_counter()
    summary = HttpBackfillSummary()
    source = HttpSource(config, environ)

    async def backfill(instrument: str) -> None:
        cfg, (first, last), step = config, bounds, config.interval_ns
        provider_symbol = cfg.symbols.get(instrument, instrument)
        window = None if cfg.max_window_minutes is None else cfg.max_window_minutes * 60 * 10**9
        key = {"start": first, "end": last, "source": cfg.fingerprint(provider_symbol)}
        state = state_path(lake, dataset, instrument)
        saved = _load_state(state, key)
        position, upper = saved or (first, None)
        if saved is not None:
            summary.resumed_from[instrument] = position
        summary.rows[instrument] = summary.added[instrument] = 0
        while position <= last:
            window_last = last if window is None else min(last, position + window - step)
            asked = window_last if upper is None else upper
            path, query = source.request_for(provider_symbol, position, asked)
            url = source.url_of(path, query)
            response = await source.get(path, query)
            summary.pages += 1
            rows = _rows_of(source, response, url)
            columns = map_rows(source, rows, url)
            stamps = columns["ts"]
            in_window = [t for t in stamps if position <= t <= asked]
            if stamps and not in_window:
                span = (
                    f"{format_time(position, 'iso', 'UTC')} .. {format_time(asked, 'iso', 'UTC')}"
                )
                raise source.error(
                    f"{url} returned {len(stamps)} row(s), none opening in {span}; does the "
                    f"provider read {{start}}/{{end}} as time_format = {cfg.time_format!r}?"
                )
            keep = [first <= t <= last for t in stamps]
            summary.outside_range += keep.count(False)
            kept = {
                c: [v for v, k in zip(vals, keep, strict=True) if k] for c, vals in columns.items()
            }
            if kept["ts"]:
                result = lake.write(dataset, bars_frame(kept, instrument, step), schema="bars")
                summary.rows[instrument] += len(kept["ts"])
                summary.added[instrument] += result.rows_added
            if cfg.page_from == "end" and len(rows) >= cfg.max_rows and min(in_window) > position:
                upper = min(in_window) - step  # a full page of the window's newest bars: walk back
            elif cfg.page_from == "start" and in_window:
                position = max(in_window) + step
            else:  # the window is exhausted (or empty: a closed market): the next one
                position, upper = window_last + step, None
            state.parent.mkdir(parents=True, exist_ok=True)
            record = {**key, "next": position, "upper": upper, "done": position > last}
            write_text_atomic(state, json.dumps(record))
            if on_page is not None:
                on_page(instrument, position, len(kept["ts"]))

    try:
        for instrument in instruments:
            await backfill(instrument)
    finally:
        summary.retries = source.retried
        summary.waited_seconds = source.waited_seconds
        summary.seconds = time.perf_counter() - started
        await source.close()
    return summary
