"""The facade: what :func:`ticklake.open_lake` returns, one method per stage.

A :class:`LakeSession` is the storage :class:`~ticklake.lake.Lake` (datasets, ``write``,
``scan``, ``partitions``, ...) plus the verbs of the stages above it: ``ingest``,
``validate``, ``bars``, ``analytics``, ``backtest``, ``sweep``, ``sql``, ``verify`` and
the rest. Each verb delegates to its stage package and takes the same keyword options
as the function it names; the CLI and the web app call these methods, so a script, the
terminal and the dashboard do the same thing.

The layer rule (``docs/architecture.md``): ``lake/`` knows no stage, stages know no
facade, the facade knows every stage, the CLI and web sit on the facade. Stage
functions take the storage ``Lake``; a ``LakeSession`` is one, so it can be passed
anywhere a ``Lake`` is expected.

Stage modules are imported inside the verbs, not at the top: ``import ticklake`` (and
every worker process that unpickles a task) would otherwise pay for Numba kernels,
DuckDB and the metric registry it may never use.

Examples:
    >>> import tempfile, polars as pl
    >>> from datetime import datetime, timezone
    >>> lake = init_lake(tempfile.mkdtemp() + "/lake")
    >>> frame = pl.DataFrame({
    ...     "ts": [datetime(2024, 1, 2, 10, tzinfo=timezone.utc)],
    ...     "instrument": ["BTCUSDT"], "price": [42000.0],
    ... })
    >>> lake.ingest(frame, "btc", schema="prices").rows_committed
    1
    >>> lake.sql("select price from bronze.btc").item()
    42000.0
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from ticklake.errors import ConfigError, SchemaMismatchError
from ticklake.lake import Lake
from ticklake.lake import init_lake as _init_storage
from ticklake.lake.lake import default_lake_path

if TYPE_CHECKING:
    from ticklake.analytics.pipeline import PipelineSpec
    from ticklake.analytics.run import PipelineRun
    from ticklake.backtest.day_cache import CacheStatus
    from ticklake.backtest.estimate import Estimate
    from ticklake.backtest.publish import PublishResult
    from ticklake.backtest.runner import RunResult
    from ticklake.backtest.spec import StrategySpec
    from ticklake.backtest.sweep import SweepResult, SweepSpec
    from ticklake.bars import BarsSummary, SliceResult
    from ticklake.ingest.pipeline import IngestSummary
    from ticklake.lake.maintenance import VerifyReport
    from ticklake.lake.repack import RepackReport
    from ticklake.lake.sql import QueryResult
    from ticklake.quality import ValidationReport
    from ticklake.quality.quarantine import PromoteResult
    from ticklake.stats import WindowStats
    from ticklake.warehouse.build import ModelBuild, ModelPlan, Project
    from ticklake.warehouse.dbt import DbtFiles
    from ticklake.warehouse.migrate import MigrationReport, ViewsReport
    from ticklake.warehouse.sqlfile import SqlRunResult

__all__ = ["LakeSession", "init_lake", "open_lake"]


def open_lake(path: Path | str | None = None, **overrides: Any) -> LakeSession:
    """Open an existing lake (``path``, else ``$TICKLAKE_LAKE``, else ``./lake``).

    ``overrides`` set lake settings for this session only (e.g. ``execution={...}``).
    """
    return LakeSession(Path(path) if path is not None else default_lake_path(), overrides=overrides)


def init_lake(path: Path | str, *, exist_ok: bool = False) -> LakeSession:
    """Create a lake at ``path`` (a directory with ``ticklake.toml``) and open it."""
    return LakeSession(_init_storage(path, exist_ok=exist_ok).root)


class LakeSession(Lake):
    """A lake and every stage's verbs on it (see the module docstring)."""

    def __repr__(self) -> str:
        return f"LakeSession({str(self.root)!r})"

    # ------------------------------------------------------------------ ingest
    def ingest(
        self,
        source: Any,
        dataset: str,
        *,
        schema: str | None = None,
        format: str | None = None,
        mapping: Any = None,
        on_failure: str = "raise",
        **options: Any,
    ) -> IngestSummary:
        """Ingest a frame (pandas / Polars / Arrow, with ``schema=``) or files (``format=``).

        Frames go through the mapping, the row checks and the quarantine like files do.
        ``source`` is a path or a list of paths for files; the other options are those
        of :func:`ticklake.ingest.pipeline.ingest_files` (``layer``, ``timezone``,
        ``force``, ``executor``, ``workers``, ``progress``, ``options``).

        ``mapping`` (for the generic ``csv`` / ``jsonl`` / ``parquet`` / ``arrow`` formats
        and for frames) is a :class:`~ticklake.ingest.mapping.Mapping`, its plain ``dict``
        (the YAML's content) or the path of a mapping YAML file.

        A file that cannot be read is never half-committed. With ``on_failure="raise"``
        (the default) such a file raises :class:`~ticklake.errors.IngestError` once every
        other file is committed, naming the failed files; the summary of the whole run is
        ``exc.summary``. ``on_failure="return"`` returns the summary instead (check
        ``summary.failed``; the CLI does, and exits 9). An ingest that read files but
        committed no row returns normally with ``summary.nothing_committed`` true (the
        CLI exits 11, :class:`~ticklake.errors.NothingCommittedError`).
        """
        from ticklake.errors import IngestError
        from ticklake.ingest.mapping import Mapping
        from ticklake.ingest.pipeline import ingest_files, ingest_frame

        if on_failure not in ("raise", "return"):
            raise ConfigError(f"on_failure must be 'raise' or 'return', not {on_failure!r}")
        if isinstance(mapping, dict):
            mapping = Mapping.from_dict(mapping, source="lake.ingest(mapping=...)")
        elif mapping is not None and not isinstance(mapping, Mapping):
            mapping = Mapping.from_yaml(Path(mapping))
        if format is not None:
            if mapping is not None:
                from dataclasses import replace

                from ticklake.ingest.readers import ReaderOptions

                given = options.get("options") or ReaderOptions()
                options["options"] = replace(given, extra={**given.extra, "mapping": mapping})
            paths = source if isinstance(source, list | tuple) else [source]
            summary = ingest_files(self, format, list(paths), dataset, **options)
            if summary.failed and on_failure == "raise":
                first = summary.failed[0]
                more = len(summary.failed) - 1
                raise IngestError(
                    f"{len(summary.failed)} of {len(summary.files)} file(s) failed; nothing of "
                    f"them was committed (the other files were). First: {first.error}"
                    + (f" (and {more} more: see exc.summary.failed)" if more else ""),
                    summary=summary,
                    failed=[f.label for f in summary.failed],
                )
            return summary
        if schema is None:
            raise SchemaMismatchError(
                "lake.ingest(frame, ...) needs schema= (e.g. schema='trades'); for files pass "
                "format= (e.g. format='csv')",
                dataset=dataset,
            )
        return ingest_frame(self, source, dataset, schema=schema, mapping=mapping, **options)

    def ingest_raw(self, source: Path | str, prefix: str = "binance", **options: Any) -> Any:
        """Route a collector's raw parts into ``<prefix>_trades``, ``_agg_trades``,
        ``_quotes``, ``_book_updates``, ``_funding``, ``_klines_<interval>``
        (:func:`ticklake.collect.route.route_raw`; returns its ``RouteSummary``)."""
        from ticklake.collect.route import route_raw

        return route_raw(self, source, prefix, **options)

    # ----------------------------------------------------------------- quality
    def validate(self, dataset: str, **options: Any) -> ValidationReport:
        """Run the quality rules on a dataset (:func:`ticklake.quality.validate_dataset`)."""
        from ticklake.quality import validate_dataset

        return validate_dataset(self, dataset, **options)

    def quarantine(
        self, report: ValidationReport, report_path: str | None = None
    ) -> dict[date, list[str]]:
        """Record a report's failing days in the quarantine (``validate --quarantine-failing``)."""
        from ticklake.quality.quarantine import record_quarantine

        return record_quarantine(self, report, report_path)

    def promote(self, dataset: str, days: list[date], **options: Any) -> PromoteResult:
        """Copy validated days bronze → silver (:func:`ticklake.quality.quarantine.promote`)."""
        from ticklake.quality.quarantine import promote

        return promote(self, dataset, days, **options)

    # -------------------------------------------------------------------- bars
    def bars(self, dataset: str, interval: str, **options: Any) -> BarsSummary:
        """Build silver bars from a dataset (:func:`ticklake.bars.build_bars`)."""
        from ticklake.bars import build_bars

        return build_bars(self, dataset, interval, **options)

    def rollup(self, dataset: str, interval: str, **options: Any) -> BarsSummary:
        """Roll bars up to a coarser interval (:func:`ticklake.bars.rollup_bars`)."""
        from ticklake.bars import rollup_bars

        return rollup_bars(self, dataset, interval, **options)

    def export_slice(self, dataset: str, out: Path | str, **options: Any) -> SliceResult:
        """Write a slice of a dataset to a file (:func:`ticklake.bars.export_slice`)."""
        from ticklake.bars import export_slice

        return export_slice(self, dataset, out, **options)

    # --------------------------------------------------------------- analytics
    def analytics(
        self, pipeline: PipelineSpec | Path | str | dict[str, Any], **options: Any
    ) -> PipelineRun:
        """Run an analytics pipeline (a spec, a YAML path or its dict) over the lake.

        Options are those of :func:`ticklake.analytics.run.run_pipeline`.
        """
        from ticklake.analytics.pipeline import PipelineSpec, load_pipeline, parse_pipeline
        from ticklake.analytics.run import run_pipeline

        if isinstance(pipeline, dict):
            spec = parse_pipeline(pipeline)
        elif isinstance(pipeline, PipelineSpec):
            spec = pipeline
        else:
            spec = load_pipeline(pipeline)
        return run_pipeline(self, spec, **options)

    def window_statistics(self, dataset: str, **options: Any) -> WindowStats:
        """Statistics of time windows across days (:func:`ticklake.stats.window_statistics`)."""
        from ticklake.stats import window_statistics

        return window_statistics(self, dataset, **options)

    # ---------------------------------------------------------------- backtest
    def backtest(
        self,
        spec: StrategySpec | Path | str | dict[str, Any],
        *,
        overrides: dict[str, Any] | None = None,
        **options: Any,
    ) -> RunResult:
        """Backtest a strategy (a spec, a YAML path or its dict); returns the run.

        ``overrides`` apply dotted keys to a YAML path (``{"time.start": "2024-01-08"}``).
        Options are those of :func:`ticklake.backtest.runner.run_backtest`.
        """
        from ticklake.backtest.runner import run_backtest
        from ticklake.backtest.spec import StrategySpec, load_spec, parse_spec

        if overrides and not isinstance(spec, Path | str):
            raise ConfigError("overrides apply to a strategy file; edit the spec itself instead")
        if isinstance(spec, dict):
            strategy = parse_spec(spec)
        elif isinstance(spec, StrategySpec):
            strategy = spec
        else:
            strategy = load_spec(spec, overrides=overrides)
        return run_backtest(self, strategy, **options)

    def estimate(
        self, spec: StrategySpec | Path | str | dict[str, Any], **options: Any
    ) -> Estimate:
        """Predict a backtest's wall time from a few timed days (nothing is written).

        Options are those of :func:`ticklake.backtest.estimate.estimate_run`.
        """
        from ticklake.backtest.estimate import estimate_run
        from ticklake.backtest.spec import StrategySpec, load_spec, parse_spec

        if isinstance(spec, dict):
            strategy = parse_spec(spec)
        elif isinstance(spec, StrategySpec):
            strategy = spec
        else:
            strategy = load_spec(spec)
        return estimate_run(self, strategy, **options)

    def day_cache(self, *, clear: bool = False) -> CacheStatus:
        """The hot day cache's entries, size and bound (``clear`` deletes every entry first).

        Works whether ``backtest.day_cache`` is on or off (an off cache may still hold
        the entries of earlier runs).
        """
        from ticklake.backtest.day_cache import DayCache

        cache = DayCache.of(self, enabled=True)
        assert cache is not None
        if clear:
            cache.clear()
        return cache.status()

    def sweep(self, sweep: SweepSpec | Path | str | dict[str, Any], **options: Any) -> SweepResult:
        """Run a parameter sweep (a sweep spec, a YAML path or its dict).

        Options are those of :func:`ticklake.backtest.sweep.run_sweep`.
        """
        from ticklake.backtest.sweep import SweepSpec, load_sweep, run_sweep, sweep_from_data

        if isinstance(sweep, dict):
            spec = sweep_from_data(sweep)
        elif isinstance(sweep, SweepSpec):
            spec = sweep
        else:
            loaded = load_sweep(sweep)
            if loaded is None:
                raise ConfigError(f"{sweep} has no sweep: section; use lake.backtest() for it")
            spec = loaded
        return run_sweep(self, spec, **options)

    def resume(self, run: str, **options: Any) -> RunResult:
        """Finish an interrupted backtest or sweep run, keeping its finished days."""
        from ticklake.backtest.runner import resolve_run, resume_backtest
        from ticklake.backtest.sweep import is_sweep_run, resume_sweep

        run_dir = resolve_run(self, run)
        if is_sweep_run(run_dir):
            return resume_sweep(self, str(run_dir), **options)
        return resume_backtest(self, str(run_dir), **options)

    # -------------------------------------------------------------- SQL, admin
    def sql(self, query: str) -> pl.DataFrame:
        """Run trusted SQL (DuckDB) over views of every dataset (``ticklake.lake.sql``)."""
        from ticklake.lake.sql import run_sql

        return run_sql(self, query)

    def query_untrusted(self, query: str, **options: Any) -> QueryResult:
        """Run untrusted SQL through the locked, read-only path (``max_rows``, timeout)."""
        from ticklake.lake.sql import run_untrusted_sql

        return run_untrusted_sql(self, query, **options)

    def refresh_warehouse(self) -> Path:
        """(Re)write ``warehouse.duckdb`` with a view per dataset; returns its path."""
        from ticklake.warehouse.db import Warehouse

        return Warehouse(self).refresh()

    def verify(self, *, repair: bool = False) -> VerifyReport:
        """Recompute hashes and look for torn, orphan or stray files."""
        from ticklake.lake.maintenance import verify_lake

        return verify_lake(self, repair=repair)

    def vacuum(self) -> list[str]:
        """Remove orphan temp files and empty partition directories safely."""
        from ticklake.lake.maintenance import vacuum_lake

        return vacuum_lake(self)

    def repack(self, dataset: str, **options: Any) -> RepackReport:
        """Rewrite a dataset's partitions with a new sort / row-group size."""
        from ticklake.lake.repack import repack

        return repack(self, dataset, **options)

    # ----------------------------------------------------- warehouse: SQL files, migrations
    def sql_run(
        self,
        sql: Path | str,
        variables: dict[str, str] | None = None,
        *,
        source: str | None = None,
    ) -> SqlRunResult:
        """Run SQL on the warehouse, every statement in one transaction.

        ``sql`` is a file when it is a :class:`~pathlib.Path`, SQL text when it is a
        ``str`` (``source`` names it in error messages, default ``<sql>``). ``${name}``
        variables are bound from ``variables`` (:mod:`ticklake.warehouse.sqlfile`). The
        result lists the objects created, replaced and dropped, the rows changed and
        the last statement's rows (``frame``) when it returns rows.
        """
        from ticklake.warehouse.sqlfile import run_sql_file, run_sql_text

        if isinstance(sql, Path):
            return run_sql_file(self, sql, variables)
        return run_sql_text(self, sql, source=source or "<sql>", variables=variables)

    def warehouse_query(self, sql: str, *, write: bool = False) -> SqlRunResult:
        """``ticklake query``: read-only over the lake views and the warehouse's user
        objects (a write statement is refused), or with ``write=True`` on the warehouse
        in one transaction. Without a warehouse file yet, a read runs as :meth:`sql`."""
        from ticklake.warehouse.db import Warehouse
        from ticklake.warehouse.sqlfile import (
            SqlRunResult,
            check_read_only,
            parse_sql,
            query_read_only,
            run_sql_text,
        )

        if write:
            return run_sql_text(self, sql, source="<query>")
        if Warehouse(self).path.exists():
            return query_read_only(self, sql, source="<query>")
        statements = parse_sql(sql, "<query>")
        check_read_only(statements, "<query>")
        return SqlRunResult(source="<query>", statements=len(statements), frame=self.sql(sql))

    def migrate(
        self, *, project: Path | str | None = None, dry_run: bool = False
    ) -> MigrationReport:
        """Apply the SQL project's pending migrations (:mod:`ticklake.warehouse.migrate`)."""
        from ticklake.warehouse.migrate import migrate

        return migrate(self, project=project, dry_run=dry_run)

    def sql_views(self, *, project: Path | str | None = None) -> ViewsReport:
        """(Re)create the SQL project's ``views/*.sql`` in one transaction."""
        from ticklake.warehouse.migrate import create_views

        return create_views(self, project=project)

    def dbt_files(self, out: Path | str, **options: Any) -> DbtFiles:
        """Write a dbt-duckdb ``profiles.yml`` and ``sources.yml`` for this lake."""
        from ticklake.warehouse.dbt import write_dbt_files

        return write_dbt_files(self, Path(out), **options)

    # ---------------------------------------------------------- warehouse: models (DAG)
    def sql_project(self, directory: Path | str | None = None) -> Project:
        """The SQL project folder (default ``<lake>/sql/``) with its models resolved."""
        from ticklake.warehouse.build import Project

        return Project(self, Path(directory) if directory else None)

    def sql_init(
        self, examples: str | None = None, directory: Path | str | None = None
    ) -> list[Path]:
        """Create the SQL project folder; copy an example set (``nse``, ``crypto``) into it.

        Returns the model files copied.
        """
        from ticklake.warehouse.build import default_project_dir
        from ticklake.warehouse.examples import copy_examples

        folder = Path(directory) if directory else default_project_dir(self)
        for sub in ("views", "models", "migrations"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return copy_examples(examples, folder) if examples else []

    def sql_plan(self, directory: Path | str | None = None, **options: Any) -> list[ModelPlan]:
        """Each model in build order, what it reads and what is stale (``start``, ``end``)."""
        return self.sql_project(directory).plan(**options)

    def sql_build(
        self, models: list[str] | None = None, directory: Path | str | None = None, **options: Any
    ) -> list[ModelBuild]:
        """Build the stale models (and what they read); ``start``, ``end``, ``full_refresh``."""
        return self.sql_project(directory).build(models, **options)

    # ------------------------------------------------------ PostgreSQL in, exports out
    def ingest_postgres(
        self, query: str, dataset: str, *, schema: str, watermark: str, **options: Any
    ) -> Any:
        """Load a PostgreSQL query's new rows into a dataset, incrementally by ``watermark``
        (:func:`ticklake.warehouse.postgres.ingest_postgres`: ``dsn`` / ``dsn_env``,
        ``layer``, ``timezone``, ``batch_rows``, ``full``, ``progress``); returns its
        ``PostgresIngestSummary``."""
        from ticklake.warehouse.postgres import ingest_postgres

        return ingest_postgres(self, query, dataset, schema=schema, watermark=watermark, **options)

    def export(self, dataset: str | None = None, **options: Any) -> Any:
        """Export a dataset (or ``sql=``'s result) ``to=`` postgres, ``duckdb:FILE[:TABLE]``,
        ``parquet:DIR``, ``delta:DIR`` or ``csv:FILE`` (:func:`ticklake.warehouse.export.export`:
        ``table``, ``dsn`` / ``dsn_env``, ``key``, ``mode``, ``start``, ``end``, ``numeric``,
        ``progress``); returns its ``ExportSummary``."""
        from ticklake.warehouse.export import export

        return export(self, dataset, **options)

    # ------------------------------------------------------------ results as datasets
    def publish_run(self, run: str, as_name: str | None = None) -> PublishResult:
        """Write a finished backtest run into gold datasets (``gold.<as_name>_fills``,
        ``_positions``, ``_pnl``, ``_portfolio_snapshots``; default ``backtest``), one
        ``run_id`` slice each, replaced on re-publish
        (:func:`ticklake.backtest.publish.publish_run`)."""
        from ticklake.backtest.publish import publish_run

        return publish_run(self, run, as_name=as_name)
