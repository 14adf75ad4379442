"""Publish a finished backtest run into gold datasets: results as datasets.

``publish_run(lake, run)`` turns a complete run's files into rows of the canonical
``fills``, ``positions``, ``pnl`` and (for runs with a per-second P&L path)
``portfolio_snapshots`` schemas and writes them through the lake's atomic commit into
``gold.<name>_fills``, ``gold.<name>_positions``, ``gold.<name>_pnl`` and
``gold.<name>_portfolio_snapshots`` (``name`` defaults to ``backtest``).

Every row carries ``run_id``, so several runs share one dataset and SQL compares them;
publishing writes with ``mode="replace", replace_by=("run_id",)``, so publishing the
same run again replaces that run's rows (the partitions stay byte for byte the same)
and leaves the other runs' rows alone. Each partition's lineage names the run's files
(``runs/<run_id>/trades.parquet`` with the sha256 its ledger recorded) and the spec
hash; every row holds the spec hash too (a day shared by several runs has one manifest,
whose ``spec_hash`` is the last published run's: the column is the per-row truth).

No ``orders`` dataset is written: the engine fills each order completely at the second
it decides to trade, so its orders are its fills (``fills`` is the order log).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from ticklake.backtest.run_ledger import PNL_FILE, RUNS_DIR, load_ledger, resolve_run
from ticklake.errors import ConfigError, CorruptPartitionError, InvalidNameError, LakeError
from ticklake.lake import Lake
from ticklake.lake.layout import check_dataset_name
from ticklake.lake.manifest import SourceRef, sha256_file
from ticklake.schemas import get_schema

DEFAULT_NAME = "backtest"
LAYER = "gold"
#: The kinds a run publishes, in order; ``portfolio_snapshots`` only with a P&L path.
KINDS = ("fills", "positions", "pnl", "portfolio_snapshots")

#: The engine's fill reasons, coarsely (``reason_group``).
REASON_GROUPS = {
    "entry": "entry",
    "rebalance_open": "re_target",
    "rebalance_close": "re_target",
    "exit_time": "exit",
    "exit_condition": "exit",
    "leg_stop": "stop",
    "stop_loss": "stop",
    "trailing_stop": "stop",
    "leg_target": "target",
    "target": "target",
    "forced_end_of_day": "forced_close",
    "marked_end_of_day": "forced_close",
}
OPENING_REASONS = ("entry", "rebalance_open")
SECOND_NS = 1_000_000_000


@dataclass(frozen=True)
class PublishedDataset:
    """One dataset a publish wrote: its kind, qualified name and what changed."""

    kind: str
    dataset: str
    rows: int
    partitions: int
    partitions_changed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dataset": self.dataset,
            "rows": self.rows,
            "partitions": self.partitions,
            "partitions_changed": self.partitions_changed,
        }


@dataclass(frozen=True)
class PublishResult:
    """What ``publish_run`` wrote for one run."""

    run_id: str
    spec_hash: str
    name: str
    datasets: tuple[PublishedDataset, ...]
    options_dataset: str = "OPTIONS"

    def dataset(self, kind: str) -> str:
        """The qualified dataset name of ``kind`` (``"fills"`` -> ``gold.backtest_fills``)."""
        return f"{LAYER}.{dataset_name(self.name, kind)}"

    @property
    def example_sql(self) -> str:
        """A query joining the run's fills with the quotes they traded against."""
        return example_sql(self.dataset("fills"), self.run_id, self.options_dataset)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "spec_hash": self.spec_hash,
            "name": self.name,
            "datasets": [d.to_dict() for d in self.datasets],
            "options_dataset": self.options_dataset,
            "example_sql": self.example_sql,
        }


def dataset_name(name: str, kind: str) -> str:
    """``<name>_<kind>``, checked as a dataset name."""
    return check_dataset_name(f"{name}_{kind}")


def example_sql(fills_dataset: str, run_id: str, options_dataset: str = "OPTIONS") -> str:
    """SQL for the fills of ``run_id`` beside the snapshot each traded against (as-of)."""
    quoted_run = run_id.replace("'", "''")
    return (
        "SELECT f.ts, f.leg, f.symbol, f.side, f.quantity, f.price_paise,\n"
        "       q.ts AS quote_ts, q.bid_price_0, q.ask_price_0\n"
        f"FROM {fills_dataset} f\n"
        f"ASOF JOIN {options_dataset} q\n"
        "  ON q.symbol = f.symbol AND q.ts <= f.quote_asof_ts\n"
        f"WHERE f.run_id = '{quoted_run}' AND f.filled\n"
        "ORDER BY f.ts, f.fill_index"
    )


def publish_run(lake: Lake, run: str, *, as_name: str | None = None) -> PublishResult:
    """Write a complete run's fills, positions, daily P&L (and P&L path) into gold.

    ``run`` is a run id or a run directory; ``as_name`` the dataset prefix (default
    ``backtest``: ``gold.backtest_fills`` ...). Raises :class:`ConfigError` (exit 2) for
    a run that does not exist, is a sweep or is not complete, :class:`InvalidNameError`
    (exit 2) for a prefix that makes no valid dataset name, and
    :class:`CorruptPartitionError` (exit 7) when a run file no longer has the sha256 its
    ledger recorded. Publishing the same run again changes nothing.
    """
    name = as_name or DEFAULT_NAME
    for kind in KINDS:
        try:
            dataset_name(name, kind)
        except InvalidNameError as exc:
            raise InvalidNameError(
                f"cannot publish as {name!r}: {exc.message} Give --as / as_name a name like "
                "'straddle_tests' (the datasets become gold.straddle_tests_fills, ...).",
                dataset=exc.fields.get("dataset"),
            ) from None
    run_dir = resolve_run(lake, run)
    ledger = load_ledger(run_dir)
    run_id = str(ledger.get("run_id") or run_dir.name)
    _check_publishable(run_dir, ledger, run_id)
    files = ["trades.parquet", "daily.parquet"]
    if (ledger.get("outputs") or {}).get(PNL_FILE):
        files.append(PNL_FILE)
    sources = _verified_sources(run_dir, ledger, run_id, files)
    context = RunContext.from_ledger(run_id, ledger)
    trades = pl.read_parquet(run_dir / "trades.parquet")
    frames = {
        "fills": fills_frame(trades, context),
        "positions": positions_frame(trades, context),
        "pnl": pnl_frame(pl.read_parquet(run_dir / "daily.parquet"), context),
    }
    if PNL_FILE in files:
        frames["portfolio_snapshots"] = snapshots_frame(
            pl.read_parquet(run_dir / PNL_FILE), context
        )
    written = []
    for kind, frame in frames.items():
        target = dataset_name(name, kind)
        result = lake.write(
            target,
            frame,
            layer=LAYER,
            schema=get_schema(kind),
            timezone=context.timezone,
            sources=sources,
            spec_hash=context.spec_hash,
            mode="replace",
            replace_by=("run_id",),
        )
        written.append(
            PublishedDataset(
                kind=kind,
                dataset=f"{LAYER}.{target}",
                rows=frame.height,
                partitions=len(result.partitions),
                partitions_changed=sum(1 for p in result.partitions if p.changed),
            )
        )
    options = _options_dataset(lake, ledger)
    return PublishResult(run_id, context.spec_hash, name, tuple(written), options)


def _options_dataset(lake: Lake, ledger: dict[str, Any]) -> str:
    """The run's option quotes as ``layer.name`` for SQL (the bare name if not found)."""
    universe = (ledger.get("spec") or {}).get("universe") or {}
    name = str(universe.get("options_dataset") or "OPTIONS")
    try:
        layer, dataset = lake.resolve(name)
    except LakeError:
        return name
    return f"{layer}.{dataset}"


def _check_publishable(run_dir: Path, ledger: dict[str, Any], run_id: str) -> None:
    if ledger.get("kind") == "sweep" or (run_dir / "sweep.json").is_file():
        raise ConfigError(
            f"run {run_id} is a sweep; publish a single run: run the chosen variant on its "
            "own (`ticklake backtest run STRATEGY.yml`) and publish that",
            run_id=run_id,
        )
    if ledger.get("kind", "backtest") != "backtest":
        raise ConfigError(
            f"run {run_id} is of kind {ledger.get('kind')!r}, not a backtest; only backtest "
            "runs are published (list them with `ticklake backtest runs`)",
            run_id=run_id,
        )
    status = ledger.get("status")
    if status != "complete":
        days = ledger.get("days") or {}
        done = sum(1 for entry in days.values() if entry.get("status") == "done")
        raise ConfigError(
            f"run {run_id} is {status}, not complete ({done}/{len(days)} days done), so it "
            f"has no final results to publish; finish it with `ticklake backtest resume "
            f"{run_id}`, then publish again",
            run_id=run_id,
            status=status,
        )


def _verified_sources(
    run_dir: Path, ledger: dict[str, Any], run_id: str, files: list[str]
) -> list[SourceRef]:
    """The run files as lineage sources, each checked against the ledger's sha256."""
    recorded = ledger.get("outputs") or {}
    sources = []
    for file in files:
        path = run_dir / file
        expected = recorded.get(file)
        actual = sha256_file(path) if path.is_file() else None
        if expected is None or actual != expected:
            raise CorruptPartitionError(
                f"run {run_id}: {path} "
                + ("is missing" if actual is None else "does not match the sha256 in run.json")
                + "; the run's results changed after it finished. Run the strategy again "
                "(or restore the file) before publishing.",
                path=str(path),
                run_id=run_id,
            )
        sources.append(SourceRef(path=f"{RUNS_DIR}/{run_id}/{file}", sha256=actual))
    return sources


@dataclass(frozen=True)
class RunContext:
    """What every published row says about its run."""

    run_id: str
    strategy: str
    spec_hash: str
    underlying: str
    timezone: str
    session_end: time

    @classmethod
    def from_ledger(cls, run_id: str, ledger: dict[str, Any]) -> RunContext:
        spec = ledger.get("spec") or {}
        times = spec.get("time") or {}
        hour, minute = (int(x) for x in str(times.get("session_end") or "15:30").split(":")[:2])
        return cls(
            run_id=run_id,
            strategy=str(ledger.get("name") or spec.get("name") or run_id),
            spec_hash=str(ledger["spec_hash"]),
            underlying=str((spec.get("universe") or {}).get("underlying") or ""),
            timezone=str(times.get("timezone") or "Asia/Kolkata"),
            session_end=time(hour, minute),
        )

    def columns(self) -> list[pl.Expr]:
        return [
            pl.lit(self.run_id).alias("run_id"),
            pl.lit(self.strategy).alias("strategy"),
            pl.lit(self.spec_hash).alias("spec_hash"),
        ]

    def session_end_utc(self, day: date) -> datetime:
        local = datetime.combine(day, self.session_end, tzinfo=ZoneInfo(self.timezone))
        return local.astimezone(ZoneInfo("UTC"))


def _reason_group(column: str) -> pl.Expr:
    return pl.col(column).replace_strict(REASON_GROUPS, default=None, return_dtype=pl.String)


def fills_frame(trades: pl.DataFrame, context: RunContext) -> pl.DataFrame:
    """The run's trades as ``fills`` rows (one per fill and per close at a mark)."""
    if "filled" not in trades.columns:  # runs written before marked closes existed
        trades = trades.with_columns(pl.lit(True).alias("filled"))
    age = pl.col("quote_age_seconds")
    return trades.select(
        "ts",
        "date",
        *context.columns(),
        "fill_index",
        "position_id",
        "leg",
        "symbol",
        pl.lit(context.underlying).alias("underlying"),
        "expiry",
        "strike",
        "opt_type",
        "side",
        pl.when(pl.col("reason").is_in(OPENING_REASONS))
        .then(pl.lit("open"))
        .otherwise(pl.lit("close"))
        .alias("action"),
        "lots",
        "quantity",
        "price_paise",
        (pl.col("price_paise") / 100).alias("price_rupees"),
        (pl.col("quantity") * pl.col("price_paise")).alias("value_paise"),
        "bid_paise",
        "ask_paise",
        "quote_age_seconds",
        pl.when(age >= 0)
        .then(pl.col("ts") - pl.duration(seconds=age))
        .otherwise(None)
        .alias("quote_asof_ts"),
        "spot_paise",
        "underlying_source",
        "reason",
        _reason_group("reason").alias("reason_group"),
        "filled",
        "cash_flow_paise",
        "costs_paise",
        "realized_pnl_paise",
    )


def positions_frame(trades: pl.DataFrame, context: RunContext) -> pl.DataFrame:
    """One row per round trip: the opening fill joined with its close (same day, id)."""
    if "filled" not in trades.columns:
        trades = trades.with_columns(pl.lit(True).alias("filled"))
    opening = pl.col("reason").is_in(OPENING_REASONS)
    opens = trades.filter(opening)
    closes = trades.filter(~opening).select(
        "date",
        "position_id",
        pl.col("ts").alias("close_ts"),
        pl.col("price_paise").alias("close_price_paise"),
        pl.col("reason").alias("close_reason"),
        (~pl.col("filled")).alias("closed_at_mark"),
        pl.col("cash_flow_paise").alias("close_cash_paise"),
        pl.col("costs_paise").alias("close_costs_paise"),
    )
    joined = opens.join(closes, on=["date", "position_id"], how="inner", validate="1:1")
    if joined.height != opens.height or closes.height != opens.height:
        raise ConfigError(
            f"run {context.run_id}: trades.parquet has {opens.height} opening and "
            f"{closes.height} closing fills that do not pair up by (date, position_id); "
            "the file does not come from this engine version",
            run_id=context.run_id,
        )
    gross = pl.col("cash_flow_paise") + pl.col("close_cash_paise")
    costs = pl.col("costs_paise") + pl.col("close_costs_paise")
    return joined.select(
        "ts",
        "close_ts",
        "date",
        *context.columns(),
        "position_id",
        "leg",
        "symbol",
        "expiry",
        "strike",
        "opt_type",
        pl.when(pl.col("side") == "buy")
        .then(pl.lit("long"))
        .otherwise(pl.lit("short"))
        .alias("direction"),
        "lots",
        "quantity",
        pl.col("price_paise").alias("open_price_paise"),
        "close_price_paise",
        pl.col("reason").alias("open_reason"),
        "close_reason",
        _reason_group("close_reason").alias("close_reason_group"),
        "closed_at_mark",
        ((pl.col("close_ts") - pl.col("ts")).dt.total_seconds()).alias("holding_seconds"),
        gross.alias("gross_pnl_paise"),
        costs.alias("costs_paise"),
        (gross - costs).alias("net_pnl_paise"),
    ).sort("ts", "position_id")


def pnl_frame(daily: pl.DataFrame, context: RunContext) -> pl.DataFrame:
    """One row per planned day: the day's P&L, the run's equity and drawdown after it."""
    daily = daily.sort("date")
    for column in ("marked_closes", "marked_pnl_paise"):
        if column not in daily.columns:  # runs written before marked closes existed
            daily = daily.with_columns(pl.lit(0, dtype=pl.Int64).alias(column))
    ends = [context.session_end_utc(day) for day in daily["date"].to_list()]
    equity = pl.col("net_pnl_paise").cum_sum()
    return daily.with_columns(pl.Series("ts", ends, dtype=pl.Datetime("ns", "UTC"))).select(
        "ts",
        "date",
        *context.columns(),
        "status",
        "skip_reason",
        "fills",
        "round_trips",
        "gross_pnl_paise",
        "costs_paise",
        "net_pnl_paise",
        (pl.col("net_pnl_paise") / 100).alias("net_pnl_rupees"),
        "marked_closes",
        "marked_pnl_paise",
        equity.alias("equity_paise"),
        (pl.max_horizontal(equity.cum_max(), pl.lit(0)) - equity).alias("drawdown_paise"),
        pl.col("max_drawdown_paise").alias("intraday_max_drawdown_paise"),
        "exposure_seconds",
        "underlying_source",
        "expiry",
    )


def snapshots_frame(path: pl.DataFrame, context: RunContext) -> pl.DataFrame:
    """The per-second P&L path as ``portfolio_snapshots`` rows."""
    return path.select(
        "ts",
        "date",
        *context.columns(),
        pl.col("pnl_paise").alias("day_gross_pnl_paise"),
        "in_position",
    )


__all__ = [
    "DEFAULT_NAME",
    "KINDS",
    "PublishResult",
    "PublishedDataset",
    "dataset_name",
    "example_sql",
    "publish_run",
]
