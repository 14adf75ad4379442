"""Every file of the checked-in mutated-input corpus through ``ticklake ingest``.

The corpus (tests/data/mutated, built by its make_corpus.py) holds small files of each
reader's format damaged the ways real files are. For each file, through the CLI:

- no traceback, and the exit code is 0, 9 (a file failed), or 11 (nothing committed);
- a failure is one line that names the file;
- rows read = rows committed + rows quarantined, checked against the lake and the
  quarantine themselves (not only the summary line);
- every committed row equals its source row (an independent parse of the source
  text / Parquet), so no value was changed on the way: a row is committed unchanged or
  quarantined with a reason.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app
from ticklake.errors import IngestError, NothingCommittedError
from ticklake.lake.layout import QUARANTINE_DIR

CORPUS = Path(__file__).parents[2] / "data" / "mutated"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
ALLOWED_EXIT = {0, IngestError.exit_code, NothingCommittedError.exit_code}
SUMMARY = re.compile(r"([\d,]+) rows read, ([\d,]+) committed .*?, ([\d,]+) quarantined")
runner = CliRunner()


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def _source_lines(path: Path) -> list[list[str]]:
    """The source's data rows as fields (an independent parse: csv module, UTF-8)."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        import gzip

        data = gzip.decompress(data)
    rows = []
    for line in data.decode("utf-8-sig").split("\n"):
        try:
            rows.append(next(csv.reader([line.removesuffix("\r")]), []))
        except csv.Error:
            rows.append([])
    if rows and rows[-1] == []:
        rows.pop()  # the final newline
    return rows


def _committed_match_source(entry: dict[str, Any], path: Path, rows: pl.DataFrame) -> None:
    """Each committed row carries exactly its source row's values."""
    seed = entry["seed"]
    if rows.height == 0 or path.suffix == ".zip":
        return
    if seed == "nse_options":
        source = pq.read_table(path).to_pylist()
        by_ts = {}
        for row in source:
            by_ts.setdefault(row["timestamp"], []).append(row)
        for row in rows.iter_rows(named=True):
            candidates = [
                src
                for src in source
                if (
                    src["ts"]
                    and abs((row["ts"].replace(tzinfo=None) - _utc(src["ts"])).total_seconds())
                    < 1e-6
                )
                or (src["timestamp"] and row["ts"].replace(tzinfo=None) == _utc(src["timestamp"]))
            ]
            assert candidates, row
            assert any(
                row["last_price"] == (float(src["price"] or 0) or None)
                and row["bid_price_0"] == (src["bp0"] or None)
                and row["ask_price_0"] == (src["sp0"] or None)
                and row["volume"] == src["volume"]
                for src in candidates
            ), (row, candidates)
        return
    lines = _source_lines(path)
    if seed in ("binance_trades", "binance_aggtrades", "tardis_trades", "csv_generic"):
        id_at, price_at, size_at = {
            "binance_trades": (0, 1, 2),
            "binance_aggtrades": (0, 1, 2),
            "tardis_trades": (4, 6, 7),
            "csv_generic": (4, 2, 3),
        }[seed]
        source: dict[str, list[tuple[float, float]]] = {}
        for fields in lines:
            if len(fields) > max(id_at, price_at, size_at):
                try:
                    source.setdefault(fields[id_at], []).append(
                        (float(fields[price_at]), float(fields[size_at]))
                    )
                except ValueError:
                    continue
        for row in rows.iter_rows(named=True):
            assert (row["price"], row["size"]) in source[row["trade_id"]], (row, source)
    elif seed == "lobster_messages":
        for row in rows.iter_rows(named=True):
            fields = lines[row["seq"] - 1]
            units = int(fields[4])
            if fields[1] == "7":
                assert row["price"] is None and row["flags"] == units
            else:
                assert row["price"] == units / 10_000
            assert row["size"] == float(fields[3])
    elif seed == "nse_index":
        values = Counter(float(f[1]) for f in lines if len(f) == 2 and _is_float(f[1]))
        for price in rows["price"]:
            assert values[price] > 0, price
    elif seed == "binance_klines":
        opens = {_number_or(f[0]): float(f[1]) for f in lines if len(f) == 12 and _is_float(f[1])}
        for row in rows.iter_rows(named=True):
            assert row["open"] == opens[int(row["ts"].timestamp() * 1000)]
    elif seed == "databento_mbo":
        for row in rows.iter_rows(named=True):  # seq is the line number
            fields = lines[row["seq"] - 1]
            assert row["price"] == int(fields[6]) / 1e9 and row["size"] == float(fields[7])


def _utc(naive: Any) -> Any:
    from datetime import timedelta

    return naive - timedelta(hours=5, minutes=30)


def _is_float(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _number_or(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _quarantined(lake_root: Path, dataset: str) -> pl.DataFrame:
    parts = sorted((lake_root / QUARANTINE_DIR / dataset).rglob("*.parquet"))
    return pl.concat([pl.read_parquet(p) for p in parts]) if parts else pl.DataFrame()


def _entries() -> Iterator[dict[str, Any]]:
    yield from MANIFEST


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Ingest every corpus file (each into its own dataset of one lake)."""
    root = tmp_path_factory.mktemp("mutated") / "lake"
    ticklake.init_lake(root)
    results = []
    for number, entry in enumerate(_entries()):
        source = CORPUS / entry["path"]
        # Copy: the user's file is named as in the corpus, at a path of its own.
        work = root.parent / "in" / str(number) / source.name
        work.parent.mkdir(parents=True)
        shutil.copy(source, work)
        options = [str(CORPUS / o) if o.endswith(".yaml") else o for o in entry["options"]]
        dataset = f"d{number:03d}"
        result = runner.invoke(
            app,
            ["ingest", entry["format"], str(work), "-d", dataset, "--lake", str(root), *options],
        )
        results.append({**entry, "work": work, "dataset": dataset, "result": result, "root": root})
    return results


def test_corpus_is_big_small_and_covers_every_reader() -> None:
    files = [CORPUS / e["path"] for e in MANIFEST]
    assert len(files) >= 150 and all(f.is_file() for f in files)
    assert sum(f.stat().st_size for f in files) < 2 * 2**20
    assert {e["format"] for e in MANIFEST} >= {
        "csv",
        "binance_trades",
        "binance_klines",
        "nse_options",
        "nse_index",
        "lobster_messages",
        "tardis_trades",
        "databento_mbo",
    }


def test_every_file_ingests_without_traceback_and_loses_nothing(
    outcomes: list[dict[str, Any]],
) -> None:
    figures: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for out in outcomes:
        result, work = out["result"], out["work"]
        text = result.output
        where = f"{out['seed']}/{out['mutation']}: exit {result.exit_code}\n{text}"
        assert result.exception is None or isinstance(result.exception, SystemExit), where
        assert "Traceback" not in text and "unexpected error" not in text, where
        assert result.exit_code in ALLOWED_EXIT, where
        figures[f"exit {result.exit_code}"] += 1
        if result.exit_code == IngestError.exit_code:
            failed = [line for line in text.splitlines() if line.startswith(("failed", "error"))]
            assert len(failed) == 1 and work.name in failed[0], where
            assert "_staging" not in text, where
        summary = SUMMARY.search(text)
        if summary is None:  # refused before reading (e.g. no usable input file)
            assert result.exit_code == IngestError.exit_code, where
            continue
        read, committed, quarantined = (_number(g) for g in summary.groups())
        assert read == committed + quarantined, where
        lake = ticklake.open_lake(out["root"])
        names = {info.name for info in lake.datasets()}
        rows = lake.read(out["dataset"]) if out["dataset"] in names else pl.DataFrame()
        assert rows.height == committed, where
        q = _quarantined(out["root"], out["dataset"])
        assert q.height == quarantined, where
        if q.height:
            assert q["reason"].null_count() == 0 and (q["reason"].str.len_chars() > 0).all()
            reasons.update(re.sub(r"[-\d.e+]{3,}|'[^']*'", "#", r) for r in q["reason"])
        if committed == 0 and read >= 0 and result.exit_code == 0:
            # exit 0 with nothing committed only when every file was already ingested
            raise AssertionError(where)
        try:
            _committed_match_source(out, work, rows)
        except AssertionError as exc:
            raise AssertionError(f"{where}\n{exc}") from exc
        figures["rows read"] += read
        figures["rows committed"] += committed
        figures["rows quarantined"] += quarantined
    figures["files"] = len(outcomes)
    # The figures quoted in docs/reliability.md (run with -s to see them).
    print(json.dumps({"figures": figures, "reasons": reasons.most_common()}, indent=1))
    assert figures["rows quarantined"] > 0 and figures["rows committed"] > 0


def test_specific_outcomes(outcomes: list[dict[str, Any]]) -> None:
    """The cases the issue names, each with its expected outcome."""
    by = {(o["seed"], o["mutation"]): o for o in outcomes}

    def quarantine(seed: str, mutation: str) -> list[str]:
        out = by[(seed, mutation)]
        q = _quarantined(out["root"], out["dataset"])
        return q["reason"].to_list() if q.height else []

    def output(seed: str, mutation: str) -> str:
        return str(by[(seed, mutation)]["result"].output)

    def code(seed: str, mutation: str) -> int:
        return int(by[(seed, mutation)]["result"].exit_code)

    for seed in ("binance_trades", "csv_generic", "tardis_trades"):
        assert any("plausibility cap" in r for r in quarantine(seed, "huge_price")), seed
        assert any("plausibility cap" in r for r in quarantine(seed, "digits40_price")), seed
        assert any("after the ingest time" in r for r in quarantine(seed, "future_time")), seed
        assert quarantine(seed, "short_row") and quarantine(seed, "long_row"), seed
    assert quarantine("binance_trades", "short_row") == ["expected 7 fields, got 6"]
    assert quarantine("binance_trades", "long_row") == ["expected 7 fields, got 8"]
    # nse_options: negative and non-numeric values are quarantined, 0 is "none"
    assert quarantine("nse_options", "negative_price") == [
        "last_price is not a finite positive number (vendor field 'price': -410.5)"
    ]
    assert quarantine("nse_options", "negative_bp0") == [
        "bid_price_0 is not a finite positive number (vendor field 'bp0': -1.0)"
    ]
    assert quarantine("nse_options", "negative_sp0") == [
        "ask_price_0 is not a finite positive number (vendor field 'sp0': -2.0)"
    ]
    assert quarantine("nse_options", "text_price") == [
        "last_price is not a number (vendor field 'price': n/a)"
    ]
    assert quarantine("nse_options", "fractional_qty") == [
        "bid_qty_0 is not a whole number (vendor field 'bq0': 7.5)"
    ]
    assert quarantine("nse_options", "zero_prices") == []
    # a 1970 (or 2099) ts beside a valid timestamp: the timestamp is used, and noted
    for mutation in ("epoch_ts_valid_timestamp", "future_ts_valid_timestamp"):
        assert quarantine("nse_options", mutation) == [], mutation
        assert "note: 1 row(s): time from `timestamp`" in output("nse_options", mutation)
    # lobster: the halt row commits; a time past midnight is quarantined
    assert any(
        "not a time of the session day" in r for r in quarantine("lobster_messages", "future_time")
    )
    assert any(
        "not a time of the session day" in r for r in quarantine("lobster_messages", "epoch_time")
    )
    assert any(
        "not a positive price" in r for r in quarantine("lobster_messages", "negative_price")
    )
    assert any("not a positive price" in r for r in quarantine("lobster_messages", "zero_price"))
    assert quarantine("lobster_messages", "ok") == []
    # nothing committed: exit 11 with a one-line warning
    for seed, mutation in (
        ("binance_aggtrades", "header_only"),
        ("csv_generic", "header_only"),
        ("nse_options", "zero_rows"),
        ("binance_trades", "zip_empty_member"),
    ):
        assert code(seed, mutation) == NothingCommittedError.exit_code, (seed, mutation)
        assert "warning: 0 rows committed" in output(seed, mutation)
    # actionable errors for input that is not text
    assert "UTF-16 text; convert it to UTF-8" in output("csv_generic", "utf16")
    assert "gzip-compressed; its name should end in .gz" in output(
        "binance_trades", "gzip_misnamed"
    )
    assert code("binance_trades", "gzip_named") == 0
    assert "binary data" in output("tardis_trades", "binary_junk") or "not UTF-8" in output(
        "tardis_trades", "binary_junk"
    )
    # a Binance zip as downloaded (member under a folder, a README beside it) ingests
    assert code("binance_trades", "zip_odd_members") == 0
