"""Build the mutated-input corpus in this folder (deterministic; re-run to regenerate).

    .venv/bin/python tests/data/mutated/make_corpus.py

Each seed is a small valid file of one reader's format; each mutation damages it the way
real downloads get damaged (truncation, bit flips, wrong encodings, junk, misnamed
compression, empty / header-only files, wrong field counts, impossible numbers, 1970
and future times, BOM, CRLF, repeated headers, odd zips, 0-row Parquet). Files land in
``files/<seed>/<mutation>/<vendor file name>`` (the name carries what the readers read
from it: instrument, date, contract) and ``manifest.json`` lists each with its format
and CLI options. tests/unit/ingest/test_mutated_corpus.py ingests every one.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import shutil
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).parent
OUT = HERE / "files"

# seed name -> (format, file name, header or None, rows, price field, time field, times)
# "times" gives the (future, 1970) replacements for the time field.
MS_2099, MS_1970 = "4102444800000", "0"
TEXT_SEEDS: dict[str, dict[str, object]] = {
    "binance_trades": {
        "format": "binance_trades",
        "name": "BTCUSDT-trades-2024-01-02.csv",
        "header": None,
        "rows": [
            f"{100 + i},{42000 + i}.5,0.{i + 1},{4200 + i}.05,{1704153600000 + 1000 * i},"
            f"{'true' if i % 2 else 'false'},true"
            for i in range(6)
        ],
        "price": 1,
        "time": 4,
        "times": (MS_2099, MS_1970),
    },
    "binance_aggtrades": {
        "format": "binance_trades",
        "name": "BTCUSDT-aggTrades-2024-01-02.csv",
        "header": "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,"
        "is_buyer_maker",
        "rows": [
            f"{500 + i},{42000 + i}.1,1.{i},{900 + 2 * i},{901 + 2 * i},"
            f"{1704153600000 + 700 * i},{'true' if i % 3 else 'false'}"
            for i in range(6)
        ],
        "price": 1,
        "time": 5,
        "times": (MS_2099, MS_1970),
    },
    "binance_klines": {
        "format": "binance_klines",
        "name": "BTCUSDT-1m-2024-01-02.csv",
        "header": None,
        "rows": [
            f"{1704153600000 + 60000 * i},{42000 + i}.0,{42010 + i}.0,{41990 + i}.0,"
            f"{42005 + i}.0,{10 + i}.5,{1704153659999 + 60000 * i},{441000 + i}.0,{50 + i},"
            f"{5 + i}.25,{220000 + i}.0,0"
            for i in range(5)
        ],
        "price": 1,
        "time": 0,
        "times": (MS_2099, MS_1970),
    },
    "csv_generic": {
        "format": "csv",
        "name": "trades.csv",
        "header": "time,symbol,px,qty,id",
        "rows": [
            f"{1704189600000 + 250 * i},ETHUSD,{2300 + i}.25,{i + 1}.5,t{i}" for i in range(6)
        ],
        "price": 2,
        "time": 0,
        "times": (MS_2099, MS_1970),
        "mapping": "trades-mapping.yaml",
    },
    "nse_index": {
        "format": "nse_index",
        "name": "2024-01-02.csv",
        "header": None,
        "rows": [f"2024-01-02 09:15:0{i},{21700 + i}.35" for i in range(6)],
        "price": 1,
        "time": 0,
        "times": ("2099-01-02 09:15:00", "1970-01-01 05:30:00"),
    },
    "lobster_messages": {
        "format": "lobster_messages",
        "name": "AAPL_2012-06-21_34200000_57600000_message_1.csv",
        "header": None,
        "rows": [
            *(
                f"{34200 + i}.01510507{i},{1 + i % 4},{1001 + i},{100 + i},{5794000 + 100 * i},"
                f"{1 if i % 2 else -1}"
                for i in range(5)
            ),
            "36023.5,7,0,0,-1,-1",  # a trading halt: price -1 is LOBSTER's halt state
        ],
        "price": 4,
        "time": 0,
        "times": ("90000.25", "86400"),
    },
    "tardis_trades": {
        "format": "tardis_trades",
        "name": "trades.csv",
        "header": "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
        "rows": [
            f"bitmex,XBTUSD,{1583020803145000 + 1000 * i},{1583020803307160 + 1000 * i},"
            f"id{i},{'buy' if i % 2 else 'sell'},{8531 + i}.5,{100 + i}"
            for i in range(6)
        ],
        "price": 6,
        "time": 2,
        "times": ("4102444800000000", "0"),
    },
    "databento_mbo": {
        "format": "databento_mbo",
        "name": "mbo.csv",
        "header": "ts_recv,ts_event,instrument_id,publisher_id,action,side,price,size,"
        "order_id,flags,ts_in_delta,sequence,channel_id,symbol",
        "rows": [
            f"{1715126401488989583 + i},{1715126401488989000 + i},5602,1,A,{'B' if i % 2 else 'A'},"
            f"{5214250000000 + 250000000 * i},{i + 1},{6413245568384 + i},0,1,{11 + i},0,ESM4"
            for i in range(6)
        ],
        "price": 6,
        "time": 1,
        "times": ("4102444800000000000", "0"),
    },
}


def _text(seed: dict[str, object], rows: list[str], header: str | None = "keep") -> bytes:
    head = seed["header"] if header == "keep" else header
    lines = ([str(head)] if head else []) + rows
    return ("\n".join(lines) + "\n").encode()


def _set(row: str, index: int, value: str) -> str:
    fields = row.split(",")
    fields[index] = value
    return ",".join(fields)


def _rows(seed: dict[str, object]) -> list[str]:
    return list(seed["rows"])  # type: ignore[call-overload]


def _flip(data: bytes, rng: random.Random, flips: int = 3) -> bytes:
    out = bytearray(data)
    for _ in range(flips):
        pos = rng.randrange(len(out))
        out[pos] ^= 1 << rng.randrange(8)
    return bytes(out)


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buffer.getvalue()


def text_mutations(seed: dict[str, object], rng: random.Random) -> dict[str, tuple[str, bytes]]:
    """mutation -> (file name, bytes)."""
    name = str(seed["name"])
    price, time = int(seed["price"]), int(seed["time"])  # type: ignore[call-overload]
    future, epoch = seed["times"]  # type: ignore[misc]
    good = _text(seed, _rows(seed))

    def with_row(index: int, change: Callable[[str], str]) -> bytes:
        rows = _rows(seed)
        rows[index] = change(rows[index])
        return _text(seed, rows)

    header = seed["header"]
    names_line = ",".join(f"column{i}" for i in range(len(_rows(seed)[0].split(","))))
    out: dict[str, tuple[str, bytes]] = {
        "ok": (name, good),
        "truncated_half": (name, good[: len(good) // 2]),
        "truncated_mid_line": (name, good[:-9]),
        "utf16": (name, good.decode().encode("utf-16")),
        "latin1_byte": (name, with_row(1, lambda r: r + "\xe9").replace(b"\xc3\xa9", b"\xe9")),
        "binary_junk": (name, bytes(rng.randrange(256) for _ in range(600))),
        "gzip_misnamed": (name, gzip.compress(good, mtime=0)),
        "gzip_named": (name + ".gz", gzip.compress(good, mtime=0)),
        "empty": (name, b""),
        "header_only": (name, (str(header) + "\n").encode() if header else b"\n"),
        "short_row": (name, with_row(2, lambda r: r.rsplit(",", 1)[0])),
        "long_row": (name, with_row(2, lambda r: r + ",extra")),
        "huge_price": (name, with_row(1, lambda r: _set(r, price, "1e308"))),
        "digits40_price": (name, with_row(1, lambda r: _set(r, price, "9" * 40))),
        "negative_price": (name, with_row(1, lambda r: _set(r, price, "-" + r.split(",")[price]))),
        "zero_price": (name, with_row(1, lambda r: _set(r, price, "0"))),
        "nan_price": (name, with_row(1, lambda r: _set(r, price, "NaN"))),
        "inf_price": (name, with_row(1, lambda r: _set(r, price, "inf"))),
        "future_time": (name, with_row(1, lambda r: _set(r, time, str(future)))),
        "epoch_time": (name, with_row(1, lambda r: _set(r, time, str(epoch)))),
        "bom": (name, b"\xef\xbb\xbf" + good),
        "crlf": (name, good.replace(b"\n", b"\r\n")),
        "repeated_header": (
            name,
            # a header line in the middle (headerless formats: column names as text)
            _text(seed, [*_rows(seed)[:3], str(header or names_line), *_rows(seed)[3:]]),
        ),
        "zip_odd_members": (
            Path(name).stem + ".zip",
            _zip([(f"nested/dir/{name}", good), ("README.txt", b"not data\n"), ("x/", b"")]),
        ),
        "zip_empty_member": (Path(name).stem + ".zip", _zip([(name, b"")])),
    }
    for k in range(3):
        out[f"bitflip_{k}"] = (name, _flip(good, rng))
    return out


OPTION_NAME = "banknifty2411048000ce.parquet"


def _option_table(rows: int = 6) -> dict[str, list[object]]:
    base = datetime(2024, 1, 9, 9, 15, 0)
    ts = [base.replace(second=i) for i in range(rows)]
    data: dict[str, list[object]] = {
        "timestamp": [t.replace(microsecond=300_000) for t in ts],
        "price": [410.5 + i for i in range(rows)],
        "qty": [15] * rows,
        "volume": [1500 + 15 * i for i in range(rows)],
        "oi": [90000 + i for i in range(rows)],
    }
    for side, pfx in (("bid", "b"), ("ask", "s")):
        for level in range(5):
            step = -1 if side == "bid" else 1
            data[f"{pfx}p{level}"] = [410.0 + i + step * (0.5 + level) for i in range(rows)]
            data[f"{pfx}q{level}"] = [30 * (level + 1)] * rows
    data["bp4"] = [0.0] * rows  # a missing level: price 0 (legitimately "none")
    data["bq4"] = [0] * rows
    data["ts"] = ts
    data["symbol"] = ["BANKNIFTY2411048000CE"] * rows
    return data


def _write_parquet(
    path: Path, data: dict[str, list[object]], types: dict[str, pa.DataType]
) -> None:
    arrays = {
        name: pa.array(
            values, types.get(name, pa.timestamp("ns") if name in ("ts", "timestamp") else None)
        )
        for name, values in data.items()
    }
    pq.write_table(pa.table(arrays), path)


def option_mutations(folder: Path, rng: random.Random) -> list[str]:
    """Write the nse_options mutations into ``folder/<mutation>/``; return their names."""
    cases: dict[str, tuple[dict[str, list[object]], dict[str, pa.DataType]]] = {}

    def case(
        name: str,
        change: Callable[[dict[str, list[object]]], None],
        types: dict[str, pa.DataType] | None = None,
    ) -> None:
        data = _option_table()
        change(data)
        cases[name] = (data, types or {})

    def setter(column: str, row: int, value: object) -> Callable[[dict[str, list[object]]], None]:
        def change(data: dict[str, list[object]]) -> None:
            data[column][row] = value

        return change

    case("ok", lambda d: None)
    case("negative_price", setter("price", 1, -410.5))
    case("negative_bp0", setter("bp0", 2, -1.0))
    case("negative_sp0", setter("sp0", 3, -2.0))
    case("nan_price", setter("price", 1, float("nan")))
    case("inf_sp0", setter("sp0", 1, float("inf")))
    case("minus_inf_bp0", setter("bp0", 1, float("-inf")))
    case("huge_price", setter("price", 1, 1e308))
    case("zero_prices", lambda d: [d[c].__setitem__(1, 0.0) for c in ("price", "bp0", "sp0")])
    case("fractional_qty", setter("bq0", 1, 7.5), {"bq0": pa.float64()})
    case("negative_volume", setter("volume", 4, -5))
    case("epoch_ts_valid_timestamp", setter("ts", 2, datetime(1970, 1, 1, 5, 30)))
    case("future_ts_valid_timestamp", setter("ts", 3, datetime(2099, 1, 9, 9, 15)))
    case(
        "all_times_bad",
        lambda d: [d[c].__setitem__(1, datetime(1970, 1, 1, 5, 30)) for c in ("ts", "timestamp")],
    )

    def text_price(data: dict[str, list[object]]) -> None:
        data["price"] = [str(v) for v in data["price"]]
        data["price"][2] = "n/a"
        data["price"][3] = ""

    case("text_price", text_price, {"price": pa.string()})
    case("zero_rows", lambda d: [v.clear() for v in d.values()])
    names = []
    for name, (data, types) in cases.items():
        target = folder / name
        target.mkdir(parents=True)
        _write_parquet(target / OPTION_NAME, data, types)
        names.append(name)
    good = (folder / "ok" / OPTION_NAME).read_bytes()
    for name, blob in (
        ("truncated_half", good[: len(good) // 2]),
        ("bitflip_0", _flip(good, rng, 2)),
        ("bitflip_1", _flip(good, rng, 2)),
        ("csv_named_parquet", b"timestamp,price\n2024-01-09 09:15:00,410.5\n"),
        ("empty", b""),
    ):
        (folder / name).mkdir(parents=True)
        (folder / name / OPTION_NAME).write_bytes(blob)
        names.append(name)
    return names


MAPPING = """\
schema: trades
columns: {price: px, size: qty, trade_id: id, instrument: symbol}
time: {column: time, unit: ms}
constants: {venue: test}
"""


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    (HERE / "trades-mapping.yaml").write_text(MAPPING)
    manifest = []
    for seed_name, seed in TEXT_SEEDS.items():
        rng = random.Random(seed_name)
        for mutation, (file_name, data) in text_mutations(seed, rng).items():
            target = OUT / seed_name / mutation / file_name
            target.parent.mkdir(parents=True)
            target.write_bytes(data)
            options = ["--mapping", str(seed["mapping"])] if "mapping" in seed else []
            manifest.append(
                {
                    "path": str(target.relative_to(HERE)),
                    "seed": seed_name,
                    "mutation": mutation,
                    "format": seed["format"],
                    "options": options,
                }
            )
    rng = random.Random("nse_options")
    for mutation in option_mutations(OUT / "nse_options", rng):
        manifest.append(
            {
                "path": f"files/nse_options/{mutation}/{OPTION_NAME}",
                "seed": "nse_options",
                "mutation": mutation,
                "format": "nse_options",
                "options": [],
            }
        )
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"{len(manifest)} files, {total:,} bytes")


if __name__ == "__main__":
    main()
