"""Route a collector's raw parts into the lake (``ticklake ingest binance_raw RAW_DIR``).

Each line goes by its own ``stream`` field (so one mixed file is routed, not quarantined
half by half) to a bronze dataset named ``<prefix>_<kind>``:

=================  ====================  ==================================================
stream kind        dataset               rows
=================  ====================  ==================================================
``trade``          ``<p>_trades``        ``trade_id`` = the trade id (``t``; REST ``id``)
``aggTrade``       ``<p>_agg_trades``    ``trade_id`` = the aggregate-trade id (``a``)
``bookTicker``     ``<p>_quotes``        ``seq`` = the update id ``u``
``depth``          ``<p>_book_updates``  one row per level; ``seq`` = ``u`` x 32,768 + level
                                         (+ 16,384 for a snapshot's levels)
``markPrice``      ``<p>_funding``       mark, index, funding rate, next funding time
``kline_<i>``      ``<p>_klines_<i>``    closed klines (``x`` true) as bars; an open kline
                                         is a running update, counted, not a bar
=================  ====================  ==================================================

Times: ``ts`` is the exchange's time in UTC (trades: ``T``; quotes: ``T``, else ``E``, else
our receive time, since spot bookTicker carries none; depth: ``E``; a depth snapshot from
REST: its ``T``/``E`` on USD-M, else our receive time; funding: ``E``; klines: the open
time ``t``, ``ts_end`` = the close time ``T`` + 1 ms, as bars' ``ts_end`` is exclusive);
``recv_ts`` is our receive time. Trades take ``side`` from ``m`` (buyer is the maker, so
the aggressor sold: ``sell``). Kline ``buy_volume`` is the taker-buy volume ``V``,
``sell_volume`` = ``v`` - ``V`` (decimal arithmetic), ``vwap`` = ``q`` / ``v``.

Depth replay: ``seq // SEQ_STRIDE`` (32,768) is the update id (``u``, or a snapshot's
``lastUpdateId``), so ordering one instrument's rows by ``seq`` replays the book in
update-id order: a snapshot (``is_snapshot``) replaces the book, diffs with a higher ``u``
follow it. A snapshot's levels are offset by ``SEQ_LEVELS`` (16,384), so they never share
a ``seq`` with the diff whose ``u`` equals the snapshot's ``lastUpdateId`` and sort after
it (the snapshot already holds that diff). Order by ``seq``, not ``ts``: a spot snapshot
is stamped with its receive time, later than the buffered diffs that come after it by
update id.

Re-reading is a no-op: every part routed is recorded (its sha256) in the sources of the
dataset its stream directory feeds and skipped next time, and rows dedupe by the
datasets' keys (so a REST recovery line the websocket also delivered counts once). A
line that cannot be routed (bad JSON, an unknown stream kind, a missing field) is
quarantined under ``<prefix>_<kind>`` (or ``<prefix>_unrouted``) with the part, line
number and reason. Parts are read in groups of at most ``GROUP_BYTES`` compressed bytes,
so memory stays bounded whatever RAW_DIR holds.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from ticklake.collect.rawfile import PART_SUFFIX, list_parts, raw_lines
from ticklake.errors import DatasetNotFoundError, IngestError
from ticklake.ingest.pipeline.frame import ingest_frame
from ticklake.ingest.pipeline.quarantine import _commit_quarantine, _quarantine_frame
from ticklake.ingest.pipeline.results import IngestRequest, IngestSummary
from ticklake.lake import Lake
from ticklake.lake.manifest import sha256_file

VENUE = "binance"
SEQ_LEVELS = 16_384  # at most SEQ_LEVELS - 1 levels in one depth message
SEQ_STRIDE = 2 * SEQ_LEVELS  # diffs' levels, then a snapshot's levels, per update id
_SEQ_MAX_UPDATE = (2**63 - 1) // SEQ_STRIDE - 1
GROUP_BYTES = 16 * 1024 * 1024
#: stream kind -> (dataset suffix, schema)
ROUTES = {
    "trade": ("trades", "trades"),
    "aggTrade": ("agg_trades", "trades"),
    "bookTicker": ("quotes", "quotes"),
    "depth": ("book_updates", "book_updates"),
    "markPrice": ("funding", "funding"),
    "fundingRate": ("funding", "funding"),  # REST backfill of the settled rates
    "openInterest": ("open_interest", "open_interest"),  # REST backfill (USD-M)
}


class RouteError(ValueError):
    """A line that cannot be routed; its text is the quarantine reason."""


def _ms(value: Any) -> int:
    return int(value) * 1_000_000


def _trade(line: dict[str, Any], data: dict[str, Any]) -> list[dict[str, Any]]:
    if "id" in data and "t" not in data:  # REST historicalTrades
        trade_id, price, qty = data["id"], data["price"], data["qty"]
        ts, maker = data["time"], data["isBuyerMaker"]
    else:
        trade_id = data["a"] if "a" in data else data["t"]
        price, qty, ts, maker = data["p"], data["q"], data["T"], data["m"]
    return [{
        "ts": _ms(ts), "instrument": line["symbol"], "trade_id": str(int(trade_id)),
        "price": float(price), "size": float(qty), "side": "sell" if maker else "buy",
        "venue": VENUE, "recv_ts": int(line["recv_ns"]),
    }]  # fmt: skip


def _quote(line: dict[str, Any], data: dict[str, Any]) -> list[dict[str, Any]]:
    ts = _ms(data["T"]) if "T" in data else _ms(data["E"]) if "E" in data else line["recv_ns"]
    return [{
        "ts": int(ts), "instrument": line["symbol"], "seq": int(data["u"]),
        "bid_price": float(data["b"]), "bid_size": float(data["B"]),
        "ask_price": float(data["a"]), "ask_size": float(data["A"]),
        "venue": VENUE, "recv_ts": int(line["recv_ns"]),
    }]  # fmt: skip


def _depth(line: dict[str, Any], data: dict[str, Any]) -> list[dict[str, Any]]:
    snapshot = line["source"] == "snapshot"
    if snapshot:
        update, levels = int(data["lastUpdateId"]), (data["bids"], data["asks"])
        stamp = data.get("T", data.get("E"))
        ts = _ms(stamp) if stamp is not None else int(line["recv_ns"])
    else:
        update, levels, ts = int(data["u"]), (data["b"], data["a"]), _ms(data["E"])
    rows = []
    for side, side_levels in zip(("bid", "ask"), levels, strict=True):
        for price, qty in side_levels:
            rows.append((side, float(price), float(qty)))
    if len(rows) >= SEQ_LEVELS:
        raise RouteError(f"{len(rows)} levels in one message; at most {SEQ_LEVELS - 1} fit seq")
    if not 0 <= update <= _SEQ_MAX_UPDATE:
        raise RouteError(f"update id {update} outside 0..{_SEQ_MAX_UPDATE} (seq is int64)")
    base = update * SEQ_STRIDE + (SEQ_LEVELS if snapshot else 0)
    return [{
        "ts": ts, "instrument": line["symbol"], "seq": base + i, "side": side,
        "price": price, "size": qty, "is_snapshot": snapshot, "venue": VENUE,
        "recv_ts": int(line["recv_ns"]),
    } for i, (side, price, qty) in enumerate(rows)]  # fmt: skip


def _funding(line: dict[str, Any], data: dict[str, Any]) -> list[dict[str, Any]]:
    return [{
        "ts": _ms(data["E"]), "instrument": line["symbol"], "mark_price": float(data["p"]),
        "index_price": float(data["i"]) if data.get("i") not in (None, "") else None,
        "funding_rate": float(data["r"]) if data.get("r") not in (None, "") else None,
        "next_funding_ts": _ms(data["T"]) if data.get("T") else None,
        "venue": VENUE, "recv_ts": int(line["recv_ns"]),
    }]  # fmt: skip


def _funding_rate(line: dict[str, Any], data: dict[str, Any]) -> list[dict[str, Any]]:
    """A ``/fapi/v1/fundingRate`` element: the rate settled at ``fundingTime``."""
    mark = data.get("markPrice")
    return [{
        "ts": _ms(data["fundingTime"]), "instrument": line["symbol"],
        "mark_price": float(mark) if mark not in (None, "") else None, "index_price": None,
        "funding_rate": float(data["fundingRate"]), "next_funding_ts": None,
        "venue": VENUE, "recv_ts": int(line["recv_ns"]),
    }]  # fmt: skip


def _open_interest(line: dict[str, Any], data: dict[str, Any]) -> list[dict[str, Any]]:
    """A ``/futures/data/openInterestHist`` element."""
    value = data.get("sumOpenInterestValue")
    return [{
        "ts": _ms(data["timestamp"]), "instrument": line["symbol"],
        "open_interest": float(data["sumOpenInterest"]),
        "open_interest_value": float(value) if value not in (None, "") else None,
        "venue": VENUE, "recv_ts": int(line["recv_ns"]),
    }]  # fmt: skip


def _kline(line: dict[str, Any], data: dict[str, Any]) -> list[dict[str, Any]]:
    k = data["k"]
    volume, quote_volume = float(k["v"]), float(k["q"])
    buy = k.get("V")
    return [{
        "ts": _ms(k["t"]), "ts_end": _ms(int(k["T"]) + 1), "instrument": line["symbol"],
        "open": float(k["o"]), "high": float(k["h"]), "low": float(k["l"]),
        "close": float(k["c"]), "volume": volume, "quote_volume": quote_volume,
        "trade_count": int(k["n"]), "vwap": quote_volume / volume if volume else None,
        "buy_volume": float(buy) if buy is not None else None,
        "sell_volume": float(Decimal(k["v"]) - Decimal(buy)) if buy is not None else None,
        "bid_price": None, "ask_price": None, "open_interest": None,
    }]  # fmt: skip


BUILDERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], list[dict[str, Any]]]] = {
    "trade": _trade,
    "aggTrade": _trade,
    "bookTicker": _quote,
    "depth": _depth,
    "markPrice": _funding,
    "fundingRate": _funding_rate,
    "openInterest": _open_interest,
}


def stream_kind(stream: str) -> str:
    """``btcusdt@depth@100ms`` -> ``depth``; ``btcusdt@kline_1m`` -> ``kline_1m``."""
    parts = stream.split("@")
    return parts[1] if len(parts) > 1 else ""


def route_of(kind: str) -> tuple[str, str] | None:
    """A stream kind's (dataset suffix, schema): ``kline_1m`` -> ``(klines_1m, bars)``."""
    if kind.startswith("kline_") and len(kind) > len("kline_"):
        return f"klines_{kind[len('kline_') :]}", "bars"
    return ROUTES.get(kind)


@dataclass
class RouteSummary:
    """What a routing run did, per dataset (each an :class:`IngestSummary`)."""

    prefix: str
    parts_read: int = 0
    parts_skipped: int = 0
    lines: int = 0
    lines_quarantined: int = 0
    klines_open: int = 0  # kline updates of a bar still open (x false): not bars, counted
    parts: dict[str, int] = field(default_factory=dict)  # dataset -> parts that fed it
    datasets: dict[str, list[IngestSummary]] = field(default_factory=dict)
    seconds: float = 0.0

    def rows_added(self, dataset: str) -> int:
        return sum(s.rows_added for s in self.datasets.get(dataset, []))

    def rows_read(self, dataset: str) -> int:
        return sum(s.rows_read for s in self.datasets.get(dataset, []))

    def rows_quarantined(self, dataset: str) -> int:
        return sum(s.rows_quarantined for s in self.datasets.get(dataset, []))

    @property
    def nothing_committed(self) -> bool:
        """Parts were read but no row reached the lake (all quarantined or empty)."""
        committed = sum(s.rows_committed for ss in self.datasets.values() for s in ss)
        return self.parts_read > 0 and committed == 0


def _expected_dataset(path: Path, prefix: str) -> str | None:
    """The dataset a part in the collector's layout feeds (by its stream directory)."""
    if not path.name.endswith(PART_SUFFIX):
        return None
    route = route_of(stream_kind(path.parent.parent.name))
    return f"{prefix}_{route[0]}" if route else None


def _parts(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise IngestError(f"{source}: no such file or directory (give RAW_DIR or a part file)")
    parts = list_parts(source) or sorted(source.rglob(f"*{PART_SUFFIX}"))
    if not parts:
        raise IngestError(
            f"{source}: no raw parts (*{PART_SUFFIX}) found; point at the --out directory of "
            "`ticklake collect binance`"
        )
    return parts


def route_raw(
    lake: Lake,
    source: Path | str,
    prefix: str = "binance",
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RouteSummary:
    """Route the raw parts under ``source`` (RAW_DIR or one part) into ``<prefix>_*``."""
    started = time.perf_counter()
    summary = RouteSummary(prefix)
    parts = _parts(Path(source))
    todo: list[tuple[Path, str, str | None]] = []
    known: dict[str, dict[str, Any]] = {}
    for path in parts:
        sha = sha256_file(path)
        expected = _expected_dataset(path, prefix)
        if expected and not force:
            if expected not in known:
                try:
                    known[expected] = lake.ingested_sources(expected)
                except DatasetNotFoundError:  # the dataset does not exist yet
                    known[expected] = {}
            if sha in known[expected]:
                summary.parts_skipped += 1
                continue
        todo.append((path, sha, expected))
    group: list[tuple[Path, str, str | None]] = []
    size = 0
    for index, item in enumerate(todo, start=1):
        group.append(item)
        size += item[0].stat().st_size
        if size >= GROUP_BYTES or index == len(todo):
            _route_group(lake, group, summary)
            group, size = [], 0
        if progress is not None:
            progress(index, len(todo))
    summary.seconds = time.perf_counter() - started
    return summary


def _route_group(
    lake: Lake, group: list[tuple[Path, str, str | None]], summary: RouteSummary
) -> None:
    prefix = summary.prefix
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    schemas: dict[str, str] = {}
    rejected: dict[str, list[tuple[str, int, str, str]]] = defaultdict(list)
    for path, _, _ in group:
        summary.parts_read += 1
        fed: set[str] = set()
        for number, raw in raw_lines(path):
            if not raw.strip():
                continue
            summary.lines += 1
            target = f"{prefix}_unrouted"
            try:
                line = orjson.loads(raw)
                kind = stream_kind(str(line["stream"]))
                route = route_of(kind)
                if route is None:
                    raise RouteError(
                        f"stream {line['stream']!r}: no dataset for kind {kind!r} "
                        f"(routed kinds: {', '.join(ROUTES)}, kline_<interval>)"
                    )
                target = f"{prefix}_{route[0]}"
                data = line["data"]
                if route[1] == "bars":
                    if data["k"]["i"] != kind[len("kline_") :]:
                        raise RouteError(f"kline interval {data['k']['i']!r} in stream {kind!r}")
                    if data["k"]["x"] is not True:
                        summary.klines_open += 1
                        continue
                built = _kline(line, data) if route[1] == "bars" else BUILDERS[kind](line, data)
                rows[target].extend(built)
                schemas[target] = route[1]
                fed.add(target)
            except (orjson.JSONDecodeError, RouteError, KeyError, TypeError, ValueError) as exc:
                reason = (
                    f"field {exc} missing" if isinstance(exc, KeyError) else f"{exc}"
                ).replace("\n", " ")
                rejected[target].append((path.name, number, raw.decode(errors="replace"), reason))
        for dataset in fed:
            summary.parts[dataset] = summary.parts.get(dataset, 0) + 1
    for dataset, dataset_rows in rows.items():
        frame = pl.DataFrame(dataset_rows, infer_schema_length=None).with_columns(
            pl.col(c).cast(pl.Datetime("ns", "UTC"))
            for c in ("ts", "ts_end", "recv_ts", "next_funding_ts")
            if c in dataset_rows[0]
        )
        result = ingest_frame(lake, frame, dataset, schema=schemas[dataset], timezone="UTC")
        summary.datasets.setdefault(dataset, []).append(result)
    for dataset, lines in rejected.items():
        summary.lines_quarantined += len(lines)
        ingest_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        request = IngestRequest(str(lake.root), "binance_raw", dataset, ingest_id=ingest_id)
        frame = _quarantine_frame(
            "binance_raw",
            request.ingest_id,
            pl.Series([n for _, n, _, _ in lines], dtype=pl.Int64),
            pl.Series([f"{name}: {text}" for name, _, text, _ in lines], dtype=pl.String),
            pl.Series([f"{name} line {n}: {why}" for name, n, _, why in lines], dtype=pl.String),
        )
        _commit_quarantine(lake, request, "unknown", frame, "unrouted")
    by_dataset: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path, sha, expected in group:
        if expected is not None and expected in rows:
            by_dataset[expected].append(
                {"sha256": sha, "path": str(path), "format": "binance_raw", "days": []}
            )
    for dataset, records in by_dataset.items():
        lake.record_sources(dataset, records)
