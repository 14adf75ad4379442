"""``ticklake demo``: build a small lake from generated data and walk the product.

1. generate a realistic Bank Nifty option chain (1-second snapshots, the users'
   52-column vendor files) and its underlying;
2. ingest both into the lake (atomic day partitions), then ingest again (a no-op);
3. validate the underlying with the quality rules and build 1-minute bars;
4. query the chain with DuckDB SQL;
5. run an analytics pipeline: implied volatility and greeks every 5 minutes, then an
   hourly cross-sectional IV rank, into gold datasets;
6. run an ATM short straddle backtest with hourly re-targeting and write its report;
7. verify every file's hash.

It stays well under a minute on 2 cores.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from ticklake.api import LakeSession, init_lake

DEMO_MARKER = ".ticklake-demo"
DEMO_START = date(2024, 1, 8)
EXAMPLES_DIR = Path(__file__).resolve().parent / "analytics" / "examples"


@dataclass
class DemoReport:
    lake_root: Path
    steps: list[tuple[str, float]] = field(default_factory=list)
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    run_dir: Path | None = None
    report_path: Path | None = None


def _prepare(directory: Path) -> None:
    if (directory / DEMO_MARKER).exists():
        shutil.rmtree(directory)
    elif directory.exists() and any(directory.iterdir()):
        raise FileExistsError(
            f"{directory} exists and is not a ticklake demo directory; choose another --dir"
        )


def run_demo(directory: Path, *, log: Callable[[str], None] = print, days: int = 3) -> DemoReport:
    """Build a demo lake in ``directory`` and return what each step produced."""
    from ticklake.backtest.report import write_report
    from ticklake.backtest.spec import load_spec
    from ticklake.generate import generate_options
    from ticklake.ingest.readers import ReaderOptions
    from ticklake.strategies import template_path

    directory = Path(directory)
    _prepare(directory)
    lake_root = directory / "lake"
    report = DemoReport(lake_root=lake_root)

    t0 = time.perf_counter()
    lake: LakeSession = init_lake(lake_root)
    (directory / DEMO_MARKER).write_text("created by `ticklake demo`; safe to delete\n")
    raw = directory / "vendor"
    summary = generate_options(
        "BANKNIFTY",
        start=DEMO_START,
        days=days,
        out=raw,
        seed=7,
        strikes_each_side=3,
        expiries=("weekly",),
    )
    log(
        f"1. generated {summary.files} per-contract option files ({summary.rows:,} rows of "
        f"1-second snapshots, 52 vendor columns) for {days} trading days in {raw}"
    )
    report.steps.append(("generate", time.perf_counter() - t0))

    t0 = time.perf_counter()
    options = lake.ingest([raw / "options"], "banknifty_options", format="nse_options")
    spot = lake.ingest(
        [raw / "spot"],
        "banknifty_spot",
        format="nse_index",
        options=ReaderOptions(instrument="BANKNIFTY"),
    )
    again = lake.ingest([raw / "options"], "banknifty_options", format="nse_options")
    log(f"2. {options.line()}")
    log(f"   {spot.line()}")
    log(f"   again: {again.line()}")
    report.steps.append(("ingest", time.perf_counter() - t0))

    t0 = time.perf_counter()
    quality = lake.validate("banknifty_spot")
    quality.write_to_lake(lake.root)
    counts = ", ".join(f"{rule.id} {rule.violations}" for rule in quality.rules if rule.violations)
    log(
        f"3. validated bronze.banknifty_spot with {len(quality.rules)} rules: verdict "
        f"{quality.verdict}" + (f" (violations: {counts})" if counts else "")
    )
    bars = lake.bars("banknifty_spot", "1m", out="banknifty_spot_1m", anchor="09:15")
    log(f"   {bars.line()}")
    report.steps.append(("quality+bars", time.perf_counter() - t0))

    t0 = time.perf_counter()
    chain = lake.sql(
        """
        WITH s AS (
          SELECT price FROM bronze.banknifty_spot
          WHERE ts = TIMESTAMPTZ '2024-01-08 04:30:00+00'   -- 10:00:00 IST
        )
        SELECT strike, opt_type, bid_price_0 AS bid, ask_price_0 AS ask, last_price AS last,
               volume, oi, round(abs(strike - (SELECT price FROM s)), 2) AS distance
        FROM bronze.banknifty_options
        WHERE ts = TIMESTAMPTZ '2024-01-08 04:30:00+00'
        ORDER BY distance, opt_type LIMIT 6
        """
    )
    report.tables["chain"] = chain
    log("4. the chain nearest the money at 10:00:00 IST on 2024-01-08 (DuckDB SQL):")
    with pl.Config(tbl_width_chars=160, tbl_cols=12, tbl_hide_dataframe_shape=True):
        log(str(chain))
    report.steps.append(("query", time.perf_counter() - t0))

    t0 = time.perf_counter()
    pipeline = lake.analytics(
        EXAMPLES_DIR / "option_greeks.yml",
        start=summary.dates[0],
        end=summary.dates[-1],
        executor="serial",
    )
    greeks = lake.sql(
        """
        SELECT instrument,
               strftime(timezone('Asia/Kolkata', ts), '%Y-%m-%d %H:%M:%S') AS "ts (IST)",
               round(implied_volatility_mid, 4) AS iv, round(delta_mid, 3) AS delta,
               round(gamma_mid, 6) AS gamma, round(theta_per_day_mid, 2) AS theta_per_day
        FROM gold.option_greeks_greeks
        WHERE ts = TIMESTAMPTZ '2024-01-08 04:30:00+00'
        ORDER BY abs(abs(delta_mid) - 0.5), instrument LIMIT 4
        """
    )
    report.tables["greeks"] = greeks
    rows = ", ".join(f"{name} {count:,} rows" for name, count in pipeline.rows_out.items())
    log(f"5. analytics pipeline option_greeks → gold ({rows}).")
    log("   Greeks nearest the money at 10:00 IST:")
    with pl.Config(tbl_width_chars=160, tbl_hide_dataframe_shape=True):
        log(str(greeks))
    report.steps.append(("analytics", time.perf_counter() - t0))

    t0 = time.perf_counter()
    spec = load_spec(
        template_path("atm_straddle_hourly"),
        overrides={"time.start": str(summary.dates[0]), "time.end": str(summary.dates[-1])},
    )
    result = lake.backtest(spec, executor="serial")
    report.run_dir = result.run_dir
    report.report_path = write_report(result.run_dir)
    totals = result.ledger["totals"]
    daily = result.daily().select(
        "date", "status", "fills", "gross_pnl_paise", "costs_paise", "net_pnl_paise"
    )
    report.tables["daily"] = daily
    log(
        f"6. backtest {spec.name}: {totals['fills']} fills over {totals['traded_days']} days, "
        f"net P&L ₹{totals['net_pnl_paise'] / 100:,.2f} after ₹{totals['costs_paise'] / 100:,.2f}"
        " costs (exact paise):"
    )
    with pl.Config(tbl_width_chars=160, tbl_hide_dataframe_shape=True):
        log(str(daily))
    log(f"   report: {report.report_path}")
    report.steps.append(("backtest", time.perf_counter() - t0))

    t0 = time.perf_counter()
    lake.sql_init("nse")
    built = lake.sql_build(["atm_map", "opening_window"])
    opening = lake.sql(
        """
        SELECT strftime(timezone('Asia/Kolkata', ts), '%Y-%m-%d') AS day, open, close,
               round(window_return * 1e4, 1) AS return_bps, bars
        FROM gold.opening_window ORDER BY ts
        """
    )
    report.tables["opening_window"] = opening
    atm_rows = next(b.rows for b in built if b.name == "atm_map")
    log(
        f"7. SQL models (sql/models/*.sql, dependencies read from the SQL): gold.atm_map "
        f"({atm_rows:,} seconds: spot, ATM strike, CE/PE quotes), gold.opening_window:"
    )
    with pl.Config(tbl_width_chars=160, tbl_hide_dataframe_shape=True):
        log(str(opening))
    report.steps.append(("warehouse", time.perf_counter() - t0))

    t0 = time.perf_counter()
    check = lake.verify()
    log(
        f"8. verified {check.partitions_checked} partitions (sha256 of every file): "
        + ("no problems" if check.ok else f"{len(check.problems)} problem(s)")
    )
    report.steps.append(("verify", time.perf_counter() - t0))
    log(
        f"\nlake: {lake_root}\nnext: ticklake status --lake {lake_root}\n"
        f"      ticklake backtest runs --lake {lake_root}\n"
        f'      ticklake query "select count(*) from bronze.banknifty_options" --lake {lake_root}'
    )
    return report
