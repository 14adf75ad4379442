"""Issue 13: bad values are quarantined with a reason, never silently changed; an ingest
that commits nothing exits 11; errors say what the input is and what to do.

Oracles are hand-written values; each boundary a rule documents is tested exactly at it.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app
from ticklake.errors import IngestError, MappingError, NothingCommittedError
from ticklake.ingest.readers import ReaderOptions, get_reader
from ticklake.ingest.source_io import check_text_head
from ticklake.ingest.sources import expand_inputs
from ticklake.ingest.validate import FUTURE_SKEW, MAX_PRICE, MAX_QUANTITY, split_valid
from ticklake.lake.layout import QUARANTINE_DIR
from ticklake.schemas import get_schema

runner = CliRunner()
NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


def _quarantine(root: Path, dataset: str) -> pl.DataFrame:
    parts = sorted((root / QUARANTINE_DIR / dataset).rglob("*.parquet"))
    return pl.concat([pl.read_parquet(p) for p in parts]) if parts else pl.DataFrame()


# --------------------------------------------------------------------- row checks
def _trades(**columns: list[object]) -> pl.DataFrame:
    n = len(next(iter(columns.values())))
    base = {
        "ts": [datetime(2024, 1, 2, tzinfo=UTC)] * n,
        "instrument": ["BTCUSDT"] * n,
        "trade_id": [str(i) for i in range(n)],
        "price": [100.0] * n,
        "size": [1.0] * n,
    }
    return get_schema("trades").conform(pl.DataFrame({**base, **columns}))


def test_price_cap_is_exact_at_the_documented_bound() -> None:
    below = float(np.nextafter(MAX_PRICE, 0))
    frame = _trades(price=[below, MAX_PRICE, 1e308, 1e39, 1.6e9])
    ok, bad = split_valid(frame, get_schema("trades"), now=NOW)
    assert ok["price"].to_list() == [below, 1.6e9]  # BTC in IDR is a real price
    assert bad["price"].to_list() == [MAX_PRICE, 1e308, 1e39]
    assert all("below the 1e+12 plausibility cap" in r for r in bad["reason"])


def test_quantity_cap_and_zero_quantity() -> None:
    below = float(np.nextafter(MAX_QUANTITY, 0))
    frame = _trades(size=[0.0, below, MAX_QUANTITY])
    ok, bad = split_valid(frame, get_schema("trades"), now=NOW)
    assert ok["size"].to_list() == [0.0, below]
    assert bad["size"].to_list() == [MAX_QUANTITY]


def test_future_time_bound_is_ingest_time_plus_skew_exclusive() -> None:
    edge = NOW + FUTURE_SKEW
    frame = _trades(ts=[edge - timedelta(microseconds=1), edge, datetime(2099, 1, 1, tzinfo=UTC)])
    ok, bad = split_valid(frame, get_schema("trades"), now=NOW)
    assert ok["ts"].to_list() == [edge - timedelta(microseconds=1)]
    assert bad.height == 2
    assert all("after the ingest time 2024-06-01 12:00 UTC" in r for r in bad["reason"])


def test_quote_sizes_and_order_counts_may_not_be_negative() -> None:
    quotes = get_schema("quotes").conform(
        pl.DataFrame(
            {
                "ts": [datetime(2024, 1, 2, tzinfo=UTC)] * 2,
                "instrument": ["X"] * 2,
                "seq": [1, 2],
                "bid_price": [1.0, 1.0],
                "bid_size": [0.0, -1.0],
            }
        )
    )
    ok, bad = split_valid(quotes, get_schema("quotes"), now=NOW)
    assert ok.height == 1 and bad["reason"].to_list() == ["bid_size is negative or not finite"]


# ------------------------------------------------------------------- nse_options
def _option_file(path: Path, **changes: list[object]) -> Path:
    ts = [datetime(2024, 1, 9, 9, 15, i) for i in range(4)]
    data: dict[str, object] = {
        "timestamp": pa.array([t + timedelta(milliseconds=300) for t in ts], pa.timestamp("ns")),
        "price": [410.5, 411.5, 412.5, 413.5],
        "volume": [15, 30, 45, 60],
        "oi": [900, 900, 915, 915],
        "bp0": [410.0, 411.0, 412.0, 0.0],
        "bq0": [30, 30, 30, 0],
        "sp0": [411.0, 412.0, 413.0, 414.0],
        "sq0": [15, 15, 15, 15],
        "ts": pa.array(ts, pa.timestamp("ns")),
        "symbol": ["BANKNIFTY2411048000CE"] * 4,
    }
    data.update(changes)
    pq.write_table(pa.table(data), path)
    return path


def _read_options(path: Path, **options: object) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    reader = get_reader("nse_options")
    batches = list(reader.read(path, ReaderOptions(**options)))  # type: ignore[arg-type]
    notes: dict[str, int] = {}
    for batch in batches:
        for k, v in batch.notes.items():
            notes[k] = notes.get(k, 0) + v
    return pl.concat([b.frame for b in batches]), pl.concat([b.rejected for b in batches]), notes


def test_nse_options_negative_and_text_values_are_quarantined(tmp_path: Path) -> None:
    path = _option_file(
        tmp_path / "banknifty2411048000ce.parquet",
        price=pa.array(["410.5", "-1", "abc", ""]),
        bp0=[-0.05, 411.0, 412.0, 0.0],
    )
    frame, rejected, _ = _read_options(path)
    # row 1: bp0 negative; row 2: price -1; row 3: price 'abc'; row 4: empty price = none
    assert rejected["source_row"].to_list() == [1, 2, 3]
    assert rejected["reason"].to_list() == [
        "bid_price_0 is not a finite positive number (vendor field 'bp0': -0.05)",
        "last_price is not a finite positive number (vendor field 'price': -1)",
        "last_price is not a number (vendor field 'price': abc)",
    ]
    assert "bp0=-0.05" in rejected["raw"][0]
    # the one committed row: empty price and bp0 0 are "none" (null), nothing else
    assert frame.select("last_price", "bid_price_0", "bid_qty_0", "ask_price_0").rows() == [
        (None, None, None, 414.0)
    ]


def test_nse_options_minus_inf_and_fractional_quantities_are_quarantined(tmp_path: Path) -> None:
    path = _option_file(
        tmp_path / "banknifty2411048000ce.parquet",
        sp0=[411.0, float("-inf"), 413.0, 414.0],
        bq0=[30.0, 30.0, 7.5, 0.0],
    )
    frame, rejected, _ = _read_options(path)
    assert rejected["source_row"].to_list() == [2, 3]
    assert rejected["reason"][0].startswith("ask_price_0 is not a finite positive number")
    assert rejected["reason"][1] == "bid_qty_0 is not a whole number (vendor field 'bq0': 7.5)"
    assert frame["bid_qty_0"].to_list() == [30, None]  # row 4: level price 0 -> no quantity


@pytest.mark.parametrize("full", [False, True])
def test_implausible_ts_falls_back_to_a_valid_timestamp_and_says_so(
    tmp_path: Path, full: bool
) -> None:
    ts = [datetime(2024, 1, 9, 9, 15, i) for i in range(4)]
    ts[1] = datetime(1970, 1, 1, 5, 30)  # epoch 0 in IST
    ts[2] = datetime(2099, 1, 9, 9, 15)
    path = _option_file(
        tmp_path / "banknifty2411048000ce.parquet", ts=pa.array(ts, pa.timestamp("ns"))
    )
    frame, rejected, notes = _read_options(path, keep_all_columns=full)
    assert rejected.height == 0
    ist = timedelta(hours=5, minutes=30)
    assert frame["ts"].to_list() == [
        (datetime(2024, 1, 9, 9, 15, 0) - ist).replace(tzinfo=UTC),
        (datetime(2024, 1, 9, 9, 15, 1, 300_000) - ist).replace(tzinfo=UTC),  # timestamp
        (datetime(2024, 1, 9, 9, 15, 2, 300_000) - ist).replace(tzinfo=UTC),  # timestamp
        (datetime(2024, 1, 9, 9, 15, 3) - ist).replace(tzinfo=UTC),
    ]
    assert notes == {"time from `timestamp` (ts missing, unparseable or implausible)": 2}
    if full:  # the lineage column keeps the vendor's other time, as written
        assert frame["vendor_ts"][1] == (datetime(1970, 1, 1, 5, 30) - ist).replace(tzinfo=UTC)


def test_fallback_is_recorded_in_the_sources_ledger(tmp_path: Path) -> None:
    ts = [datetime(2024, 1, 9, 9, 15, i) for i in range(4)]
    ts[0] = datetime(1970, 1, 1, 5, 30)
    source = _option_file(
        tmp_path / "banknifty2411048000ce.parquet", ts=pa.array(ts, pa.timestamp("ns"))
    )
    lake = ticklake.init_lake(tmp_path / "lake")
    summary = lake.ingest(source, "opt", format="nse_options")
    assert summary.rows_committed == 4 and summary.rows_quarantined == 0
    (record,) = lake.ingested_sources("opt").values()
    assert record["notes"] == {"time from `timestamp` (ts missing, unparseable or implausible)": 1}


# ----------------------------------------------------------------------- lobster
def _lobster(path: Path, lines: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    path.write_text("\n".join(lines) + "\n")
    batches = list(get_reader("lobster_messages").read(path, ReaderOptions()))
    return pl.concat([b.frame for b in batches]), pl.concat([b.rejected for b in batches])


def test_lobster_time_of_day_boundary_and_prices(tmp_path: Path) -> None:
    frame, rejected = _lobster(
        tmp_path / "AAPL_2012-06-21_34200000_57600000_message_1.csv",
        [
            "86399.999999999,1,11,100,5794000,1",  # last ns of the day: kept
            "86400,1,12,100,5794000,1",  # next midnight: not a time of this day
            "90000.5,1,13,100,5794000,1",
            "34200.5,1,14,100,0,1",  # price 0
            "34200.6,1,15,100,-5794000,-1",  # negative price
            "34200.7,1,16,100,9999999999,-1",  # the empty-level dummy
            "36023,7,0,0,-1,-1",  # a halt: price -1 is the halt state (LOBSTER ReadMe)
            "36323,7,0,0,0,-1",  # quoting resumes: price 0
        ],
    )
    assert frame["seq"].to_list() == [1, 7, 8]
    # 86399.999999999 s after midnight EDT (UTC-4) is 1 ns before 04:00 UTC next day
    next_midnight_ns = int(datetime(2012, 6, 22, 4, tzinfo=UTC).timestamp()) * 10**9
    assert frame["ts"].dt.epoch("ns")[0] == next_midnight_ns - 1
    assert frame["flags"].to_list()[1:] == [-1, 0] and frame["price"].to_list()[1:] == [None, None]
    reasons = dict(zip(rejected["source_row"], rejected["reason"], strict=True))
    assert sorted(reasons) == [2, 3, 4, 5, 6]
    assert "not a time of the session day" in reasons[2] and "86400" in reasons[2]
    assert "not a time of the session day" in reasons[3]
    assert "not a positive price" in reasons[4] and "not a positive price" in reasons[5]
    assert "dummy price of an empty book level" in reasons[6]


# ------------------------------------------------------------------- text input
@pytest.mark.parametrize(
    ("head", "says"),
    [
        (gzip.compress(b"a,b\n1,2\n", mtime=0), "gzip-compressed; its name should end in .gz"),
        ("a,b\n1,2\n".encode("utf-16"), "UTF-16 text; convert it to UTF-8"),
        ("a,b\n1,2\n".encode("utf-16-le"), "UTF-16 text"),
        (b"PK\x03\x04rest", "a zip archive"),
        (b"PAR1\x00\x00", "a Parquet file, not text"),
        (b"\x00\x01\x02binary", "binary data"),
        (b"a,b\n1,caf\xe9\n", "not UTF-8 text (byte 0xe9 on line 2)"),
    ],
)
def test_input_that_is_not_text_is_named_with_the_fix(head: bytes, says: str) -> None:
    with pytest.raises(IngestError, match=r"^data\.csv: the file is ") as info:
        check_text_head(Path("data.csv"), head)
    assert says in str(info.value)


def test_utf8_bom_and_a_character_cut_at_the_end_are_text() -> None:
    check_text_head(Path("x.csv"), b"\xef\xbb\xbfa,b\n1,caf\xc3")


def _mapping(tmp_path: Path) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(
        "schema: trades\ncolumns: {price: px, size: qty}\ntime: {column: t, unit: ms}\n"
        "constants: {instrument: X}\n"
    )
    return path


def test_generic_csv_rows_with_missing_or_extra_fields_are_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "t,px,qty\n1704153600000,1.5,2\n1704153601000,1.6\n1704153602000,1.7,3,9\n"
        '1704153603000,"1.8",4\n'
    )
    options = ReaderOptions(extra={"mapping": _mapping(tmp_path)})
    batches = list(get_reader("csv").read(path, options))
    rejected = pl.concat([b.rejected for b in batches])
    frame = pl.concat([b.frame for b in batches])
    assert frame["price"].to_list() == [1.5, 1.8]
    assert dict(zip(rejected["source_row"], rejected["reason"], strict=True)) == {
        3: "expected 3 fields, got 2",
        4: "expected 3 fields, got 4",
    }


def test_duplicate_header_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("t,px,px\n1704153600000,1.5,2\n")
    with pytest.raises(IngestError, match=r"header names column\(s\) 'px' more than once"):
        list(get_reader("csv").read(path, ReaderOptions(extra={"mapping": _mapping(tmp_path)})))


def test_preset_errors_do_not_blame_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-trades-2024-01-01.csv"
    path.write_text("a,b,c\nx,y,z\n")
    with pytest.raises(MappingError) as info:
        list(get_reader("binance_trades").read(path, ReaderOptions()))
    assert "format 'binance_trades' needs a column" in str(info.value)
    assert "mapping" not in str(info.value)


def test_the_advised_infer_command_is_real(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("time,price,qty\n2024-01-02 10:00:00,1.5,2\n")
    with pytest.raises(MappingError) as info:
        list(get_reader("csv").read(path, ReaderOptions()))
    advised = str(info.value).split("`")[1]  # the command in backquotes
    assert advised.startswith("ticklake ingest csv FILE --infer --schema trades")
    args = advised.split(">")[0].split()[1:]
    result = runner.invoke(app, [str(path) if a == "FILE" else a for a in args])
    assert result.exit_code == 0, result.output
    assert "schema: trades" in result.output


# -------------------------------------------------------------------------- zips
def test_a_binance_zip_as_downloaded_reads_under_the_members_own_name(tmp_path: Path) -> None:
    archive = tmp_path / "BTCUSDT-trades-2024-01-02.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(
            "BTCUSDT-trades-2024-01-02.csv", "1,42000.5,0.1,4200.05,1704153600000,true,true\n"
        )
    (source,) = expand_inputs(
        [archive], suffixes=(".csv",), reads_zip=False, staging=tmp_path / "s"
    )
    assert source.path.name == "BTCUSDT-trades-2024-01-02.csv"
    assert source.label == f"{archive}!BTCUSDT-trades-2024-01-02.csv"
    lake = tmp_path / "lake"
    ticklake.init_lake(lake)
    result = runner.invoke(
        app, ["ingest", "binance_trades", str(archive), "-d", "t", "--lake", str(lake)]
    )
    assert result.exit_code == 0, result.output
    assert ticklake.open_lake(lake).read("t")["price"].to_list() == [42000.5]


def test_errors_name_the_archive_and_member_never_the_staging_path(tmp_path: Path) -> None:
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("folder/trades.csv", "1,42000.5,0.1,4200.05,1704153600000,true,true\n")
    lake = tmp_path / "lake"
    ticklake.init_lake(lake)
    result = runner.invoke(
        app, ["ingest", "binance_trades", str(archive), "-d", "t", "--lake", str(lake)]
    )
    assert result.exit_code == IngestError.exit_code
    assert f"failed {archive}!folder/trades.csv: cannot tell the instrument" in result.output
    assert "_staging" not in result.output


# -------------------------------------------------------------- nothing committed
def _empty_parquet(path: Path) -> Path:
    pq.write_table(
        pa.table(
            {
                "t": pa.array([], pa.int64()),
                "px": pa.array([], pa.float64()),
                "qty": pa.array([], pa.float64()),
            }
        ),
        path,
    )
    return path


@pytest.mark.parametrize(
    "case", ["header_only", "all_rejected", "zero_row_parquet", "empty_member"]
)
def test_an_ingest_that_commits_nothing_exits_11_with_one_warning(
    tmp_path: Path, case: str
) -> None:
    lake = tmp_path / "lake"
    ticklake.init_lake(lake)
    mapping = ["--mapping", str(_mapping(tmp_path))]
    if case == "header_only":
        path = tmp_path / "t.csv"
        path.write_text("t,px,qty\n")
        args = ["csv", str(path), *mapping]
    elif case == "all_rejected":
        path = tmp_path / "t.csv"
        path.write_text("t,px,qty\n1704153600000,-1,2\n1704153600001,abc,2\n")
        args = ["csv", str(path), *mapping]
    elif case == "zero_row_parquet":
        args = ["parquet", str(_empty_parquet(tmp_path / "t.parquet")), *mapping]
    else:
        path = tmp_path / "BTCUSDT-trades-2024-01-02.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("BTCUSDT-trades-2024-01-02.csv", b"")
        args = ["binance_trades", str(path)]
    result = runner.invoke(app, ["ingest", *args, "-d", "t", "--lake", str(lake)])
    assert result.exit_code == NothingCommittedError.exit_code == 11, result.output
    warnings = [line for line in result.output.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "0 rows committed to bronze.t" in warnings[0]
    again = runner.invoke(app, ["ingest", *args, "-d", "t", "--lake", str(lake)])
    assert again.exit_code == 0, again.output  # already ingested: nothing to do is success


# ---------------------------------------------------------------------- the API
def test_api_accepts_a_mapping_as_dict_object_or_path(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"t": [1704153600000], "px": [1.5], "qty": [2.0]}), path)
    as_dict = {
        "schema": "trades",
        "columns": {"price": "px", "size": "qty"},
        "time": {"column": "t", "unit": "ms"},
        "constants": {"instrument": "X"},
    }
    lake = ticklake.init_lake(tmp_path / "lake")
    from ticklake.ingest.mapping import Mapping

    for number, mapping in enumerate((as_dict, Mapping.from_dict(as_dict), _mapping(tmp_path))):
        summary = lake.ingest(path, f"t{number}", format="parquet", mapping=mapping)
        assert summary.rows_committed == 1
        assert lake.read(f"t{number}")["price"].to_list() == [1.5]


def test_api_raises_on_a_failed_file_with_the_summary(tmp_path: Path) -> None:
    good = tmp_path / "in" / "BTCUSDT-trades-2024-01-02.csv"
    good.parent.mkdir()
    good.write_text("1,42000.5,0.1,4200.05,1704153600000,true,true\n")
    (tmp_path / "in" / "BTCUSDT-trades-2024-01-03.csv").write_bytes(gzip.compress(b"x"))
    lake = ticklake.init_lake(tmp_path / "lake")
    with pytest.raises(IngestError, match=r"1 of 2 file\(s\) failed.*gzip-compressed") as info:
        lake.ingest(tmp_path / "in", "t", format="binance_trades")
    summary = info.value.summary  # type: ignore[attr-defined]
    assert summary.rows_committed == 1 and len(summary.failed) == 1
    assert lake.read("t")["price"].to_list() == [42000.5]  # the good file is committed
    returned = lake.ingest(tmp_path / "in", "t", format="binance_trades", on_failure="return")
    assert len(returned.failed) == 1


def test_csv_text_in_a_zip_stream_is_checked_too() -> None:
    # The text check runs on what the reader sees after decompression.
    with pytest.raises(IngestError, match="UTF-16"):
        check_text_head(Path("x.csv"), io.BytesIO("a,b\n".encode("utf-16")).read())
