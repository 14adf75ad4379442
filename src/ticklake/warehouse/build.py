"""Plan and build the SQL project's models (``ticklake sql plan`` / ``sql build``).

- a **view** model is ``CREATE OR REPLACE VIEW main.<name>`` in the warehouse;
- a **table** model is built into ``main.<name>__building`` and swapped in within one
  transaction, so a reader sees the old table or the new one;
- a **dataset** model is a lake dataset ``<layer>.<name>``, built day by day through the
  lake's atomic commit (``mode="replace"``: a rebuilt day holds exactly what the SQL now
  gives). While day D builds, the model's lake inputs (also those read through view
  models) show only day D: their committed files are hard-linked into a private
  snapshot that the warehouse's relative-path views read through ``file_search_path``
  (an input without that day shows as an empty partition). So a by-day model cannot
  mix days or look ahead, and a commit racing the build cannot tear a read.

**Staleness.** A day's fingerprint hashes the model's header and SQL, the SQL of the
view models it reads through, the fingerprints of the table models it reads and the
sha256 of each lake input's partition of that day (a table model: of every day). The
fingerprint is the partition manifest's ``spec_hash`` (and the input partitions its
lineage), so a partition changed outside the build is stale too; days that gave no rows
and view/table models keep theirs in ``_ticklake.model_state``. ``incremental: by_day``
rebuilds only stale days; a dataset model without it rebuilds every day when any is.
Warehouse tables made outside the models (``sql run``, migrations) are read but not
fingerprinted: a model reading only such a table rebuilds when its SQL changes or with
``--full-refresh``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from ticklake.errors import QueryError, SchemaMismatchError
from ticklake.lake.advice import MODEL_DESCRIPTION_PREFIX
from ticklake.lake.lake import Lake
from ticklake.lake.manifest import SourceRef
from ticklake.lake.sql_names import quote_ident, quote_literal
from ticklake.schemas.base import schema_from_frame
from ticklake.warehouse.db import Warehouse
from ticklake.warehouse.materialize import PinnedInputs, day_output, read_state, write_state
from ticklake.warehouse.models import (
    ModelError,
    ModelSpec,
    Resolved,
    build_order,
    check_names,
    load_models,
    resolve,
)


@dataclass
class Closure:
    """Everything a model reads, through view models: what its fingerprint covers."""

    datasets: set[tuple[str, str]] = field(default_factory=set)
    tables: set[str] = field(default_factory=set)  # table models
    views: set[str] = field(default_factory=set)  # view models
    warehouse: set[str] = field(default_factory=set)  # untracked warehouse objects


@dataclass
class ModelPlan:
    spec: ModelSpec
    depends_on: list[str]
    inputs: list[str]
    fingerprints: dict[date | None, str]  # None: the whole model (view, table)
    stale: list[date | None]
    reason: str

    @property
    def is_stale(self) -> bool:
        return bool(self.stale)


@dataclass
class ModelBuild:
    name: str
    materialized: str
    days_built: int = 0
    days_skipped: int = 0
    rows: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


class Project:
    """The SQL project folder of a lake, with its models resolved against the lake."""

    def __init__(self, lake: Lake, directory: Path | None = None) -> None:
        self.lake = lake
        self.directory = Path(directory) if directory else default_project_dir(lake)
        self.warehouse = Warehouse(lake)
        self.models = load_models(self.directory)
        check_names(self.models, lake)
        with self.warehouse.connect() as con:
            objects = {o.qualified for o in self.warehouse.objects(con) if not o.generated}
            self._state = read_state(con)
        outputs = {spec.output for spec in self.models.values()}
        self.resolved: dict[str, Resolved] = resolve(self.models, lake, objects - outputs)
        self.order = build_order(self.models, self.resolved)

    # ---------------------------------------------------------------- closure
    def closure(self, name: str) -> Closure:
        out = Closure()
        resolved = self.resolved[name]
        out.datasets |= resolved.datasets
        out.warehouse |= resolved.warehouse
        for dep in resolved.models:
            spec = self.models[dep]
            if spec.materialized == "dataset":
                out.datasets.add((spec.layer, dep))
            elif spec.materialized == "table":
                out.tables.add(dep)
            else:
                out.views.add(dep)
                inner = self.closure(dep)
                out.datasets |= inner.datasets
                out.tables |= inner.tables
                out.views |= inner.views
                out.warehouse |= inner.warehouse
        return out

    def _shas(self, datasets: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[date, str]]:
        out: dict[tuple[str, str], dict[date, str]] = {}
        known = {(i.layer, i.name) for i in self.lake.datasets()}
        for layer, name in datasets:
            if (layer, name) not in known:
                out[(layer, name)] = {}  # a dataset model not built yet
                continue
            out[(layer, name)] = {
                p.date: p.manifest.file_sha256
                for p in self.lake.partitions(name, layer)
                if p.manifest is not None
            }
        return out

    def _base(self, spec: ModelSpec, closure: Closure) -> hashlib._Hash:
        digest = hashlib.sha256(spec.sql_hash.encode())
        for view in sorted(closure.views):
            digest.update(f"|view {view} {self.models[view].sql_hash}".encode())
        for table in sorted(closure.tables):
            digest.update(f"|table {table} {self._state.get((table, None), ('-', 0))[0]}".encode())
        return digest

    # ------------------------------------------------------------------ plan
    def plan(
        self, *, start: date | None = None, end: date | None = None, full_refresh: bool = False
    ) -> list[ModelPlan]:
        """Each model in build order with its fingerprints and what is stale, and why."""
        plans: list[ModelPlan] = []
        for name in self.order:
            spec = self.models[name]
            closure = self.closure(name)
            shas = self._shas(closure.datasets)
            base = self._base(spec, closure)
            fingerprints: dict[date | None, str] = {}
            if spec.materialized == "dataset":
                days = sorted({d for per_day in shas.values() for d in per_day})
                days = [
                    d for d in days if (start is None or d >= start) and (end is None or d <= end)
                ]
                for day in days:
                    digest = base.copy()
                    for key in sorted(shas):
                        digest.update(f"|{key[0]}.{key[1]} {shas[key].get(day, '-')}".encode())
                    fingerprints[day] = digest.hexdigest()
            else:
                digest = base.copy()
                if spec.materialized == "table":
                    for key in sorted(shas):
                        digest.update(f"|{key[0]}.{key[1]} {sorted(shas[key].items())}".encode())
                fingerprints[None] = digest.hexdigest()
            stale, reason = self._stale(spec, fingerprints, full_refresh)
            stale, reason = _upstream(spec, stale, reason, fingerprints, plans, self.resolved[name])
            plans.append(
                ModelPlan(
                    spec=spec,
                    depends_on=sorted(self.resolved[name].models),
                    inputs=sorted(f"{a}.{b}" for a, b in self.resolved[name].datasets)
                    + sorted(self.resolved[name].warehouse),
                    fingerprints=fingerprints,
                    stale=stale,
                    reason=reason,
                )
            )
        return plans

    def _stale(
        self, spec: ModelSpec, fingerprints: dict[date | None, str], full_refresh: bool
    ) -> tuple[list[date | None], str]:
        if full_refresh:
            return list(fingerprints), "full refresh"
        if spec.materialized != "dataset":
            recorded = self._state.get((spec.name, None))
            if recorded is None:
                return [None], "never built"
            if recorded[0] != fingerprints[None]:
                return [None], "its SQL or inputs changed"
            return [], "fresh"
        if not fingerprints:
            return [], "no input days"
        built = self._built_days(spec)
        stale: list[date | None] = []
        reasons: set[str] = set()
        for day, fingerprint in fingerprints.items():
            assert day is not None
            recorded = self._state.get((spec.name, day))
            on_disk = built.get(day)
            if on_disk == fingerprint or (
                on_disk is None and recorded is not None and recorded == (fingerprint, 0)
            ):
                continue
            stale.append(day)
            if recorded is None and on_disk is None:
                reasons.add("never built")
            elif on_disk is None and recorded is not None and recorded[1] > 0:
                reasons.add("partition missing")
            else:
                reasons.add("SQL or inputs changed")
        if stale and spec.incremental != "by_day":
            return list(fingerprints), "; ".join(sorted(reasons)) + " (not incremental: every day)"
        return stale, "; ".join(sorted(reasons)) or "fresh"

    def _built_days(self, spec: ModelSpec) -> dict[date, str | None]:
        if (spec.layer, spec.name) not in {(i.layer, i.name) for i in self.lake.datasets()}:
            return {}
        return {
            p.date: p.manifest.lineage.spec_hash
            for p in self.lake.partitions(spec.name, spec.layer)
            if p.manifest is not None
        }

    # ----------------------------------------------------------------- build
    def build(
        self,
        models: list[str] | None = None,
        *,
        start: date | None = None,
        end: date | None = None,
        full_refresh: bool = False,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> list[ModelBuild]:
        """Build the stale models (``models`` and what they read) in dependency order."""
        wanted = self._selection(models)
        self.warehouse.refresh()  # views over datasets made since the last refresh
        results = []
        for name in self.order:
            if name not in wanted:
                continue
            # plan again before each model: the ones built before it changed its inputs
            plan = next(p for p in self.plan(start=start, end=end, full_refresh=full_refresh)
                        if p.spec.name == name)  # fmt: skip
            results.append(self._build_one(plan, progress))
        return results

    def _selection(self, models: list[str] | None) -> set[str]:
        if not models:
            return set(self.models)
        unknown = [m for m in models if m not in self.models]
        if unknown:
            raise ModelError(
                f"unknown model {', '.join(unknown)}; models in {self.directory / 'models'}: "
                f"{', '.join(sorted(self.models)) or 'none'}"
            )
        wanted: set[str] = set()
        todo = list(models)
        while todo:
            name = todo.pop()
            if name not in wanted:
                wanted.add(name)
                todo.extend(self.resolved[name].models)
        return wanted

    def _build_one(
        self, plan: ModelPlan, progress: Callable[[str, int, int], None] | None
    ) -> ModelBuild:
        spec = plan.spec
        result = ModelBuild(spec.name, spec.materialized)
        started = time.monotonic()
        if not plan.stale:
            result.days_skipped = len(plan.fingerprints)
        elif spec.materialized == "dataset":
            self._build_dataset(plan, result, progress)
        else:
            self._build_relation(plan, result)
        result.seconds = time.monotonic() - started
        return result

    def _build_relation(self, plan: ModelPlan, result: ModelBuild) -> None:
        spec = plan.spec
        closure = self.closure(spec.name)
        target = f"main.{quote_ident(spec.name)}"
        with (
            self._pinned(closure.datasets, None) as root,
            self.warehouse.connect(write=True) as con,
        ):
            kind = _relation_kind(con, spec.name)
            con.execute(f"SET file_search_path={quote_literal(str(root))}")
            con.execute("BEGIN")
            try:
                if spec.materialized == "view":
                    if kind == "table":
                        con.execute(f"DROP TABLE {target}")
                    con.execute(f"CREATE OR REPLACE VIEW {target} AS {spec.sql}")
                else:
                    building = f"main.{quote_ident(spec.name + '__building')}"
                    con.execute(f"DROP TABLE IF EXISTS {building}")
                    con.execute(f"CREATE TABLE {building} AS {spec.sql}")
                    if kind is not None:
                        con.execute(f"DROP {kind.upper()} {target}")
                    con.execute(f"ALTER TABLE {building} RENAME TO {quote_ident(spec.name)}")
                    count = con.execute(f"SELECT count(*) FROM {target}").fetchone()
                    result.rows = int(count[0]) if count else 0
                write_state(con, spec.name, {None: (plan.fingerprints[None], result.rows)})
                con.execute("COMMIT")
            except duckdb.Error as exc:
                con.execute("ROLLBACK")
                raise _model_failed(spec, exc) from None
            finally:
                con.execute(f"SET file_search_path={quote_literal(str(self.lake.root))}")
        self._state[(spec.name, None)] = (plan.fingerprints[None], result.rows)
        result.days_built = 1

    def _build_dataset(
        self,
        plan: ModelPlan,
        result: ModelBuild,
        progress: Callable[[str, int, int], None] | None,
    ) -> None:
        spec = plan.spec
        closure = self.closure(spec.name)
        inputs = sorted(closure.datasets)
        shas = self._shas(inputs)
        zone = self._zone(spec, inputs)
        built: dict[date | None, tuple[str, int]] = {}
        days = [d for d in plan.stale if d is not None]
        result.days_skipped = len(plan.fingerprints) - len(days)
        existing = self._built_days(spec)
        try:
            for number, day in enumerate(days, 1):
                fingerprint = plan.fingerprints[day]
                with self._pinned(inputs, day) as root, self.warehouse.connect() as con:
                    con.execute(f"SET file_search_path={quote_literal(str(root))}")
                    try:
                        query = f"SELECT * FROM ({spec.sql}) AS model"
                        table = con.sql(query).to_arrow_table()
                    except duckdb.Error as exc:
                        raise _model_failed(spec, exc, day) from None
                frame = day_output(spec, pl.DataFrame(table), day, zone)
                if frame.height == 0 and day in existing:
                    result.warnings.append(
                        f"{day}: the SQL now gives no rows, but the partition of an earlier "
                        f"build remains ({spec.layer}.{spec.name} date={day}); the lake "
                        "cannot delete a day yet, so it is kept and the day stays stale"
                    )
                    continue
                if frame.height:
                    sources = [
                        SourceRef(
                            path=f"{layer}/{name}/date={day}", sha256=shas[(layer, name)][day]
                        )
                        for layer, name in inputs
                        if day in shas[(layer, name)]
                    ]
                    try:
                        self.lake.write(
                            spec.name,
                            frame,
                            layer=spec.layer,
                            schema=schema_from_frame(
                                spec.name,
                                frame,
                                key=spec.key,
                                ts_column=spec.ts_column,
                                description=f"{MODEL_DESCRIPTION_PREFIX}{spec.name}"
                                + (f": {spec.description}" if spec.description else ""),
                            ),
                            timezone=zone[0],
                            day_offset=zone[1],
                            sources=sources,
                            spec_hash=fingerprint,
                            mode="replace",
                        )
                    except SchemaMismatchError as exc:
                        raise ModelError(
                            f"{spec.where}: model {spec.name}: its columns no longer match the "
                            f"dataset {spec.layer}.{spec.name} ({exc}); rename the model to "
                            "build a new dataset",
                            path=str(spec.path),
                        ) from None
                built[day] = (fingerprint, frame.height)
                result.rows += frame.height
                result.days_built += 1
                if progress is not None:
                    progress(spec.name, number, len(days))
        finally:
            if built:
                with self.warehouse.connect(write=True) as con:  # also adds the new view
                    write_state(con, spec.name, built)
                self._state.update({(spec.name, d): v for d, v in built.items()})

    def _zone(self, spec: ModelSpec, inputs: list[tuple[str, str]]) -> tuple[str, str | None]:
        """The output's time zone and day offset: its own, else its first lake input's."""
        known = {(i.layer, i.name): i for i in self.lake.datasets()}
        info = known.get((spec.layer, spec.name))
        if info is None:
            info = next((known[i] for i in inputs if i in known), None)
        if info is None:
            return self.lake.settings.lake.default_timezone, None
        return info.timezone, info.day_offset

    # ------------------------------------------------------------- snapshots
    def _pinned(self, datasets: Iterable[tuple[str, str]], day: date | None) -> PinnedInputs:
        return PinnedInputs(self.lake, sorted(datasets), day)


# ----------------------------------------------------------------- helpers
def _upstream(
    spec: ModelSpec,
    stale: list[date | None],
    reason: str,
    fingerprints: dict[date | None, str],
    plans: list[ModelPlan],
    resolved: Resolved,
) -> tuple[list[date | None], str]:
    """Add what a stale input model will change: its days (a dataset read by a dataset
    model), else everything."""
    upstream = [p for p in plans if p.spec.name in resolved.models and p.is_stale]
    if not upstream:
        return stale, reason
    names = ", ".join(p.spec.name for p in upstream)
    if spec.materialized != "dataset":
        return [None], f"input model {names} is stale" if not stale else reason
    days = set(stale)
    for plan in upstream:
        if plan.spec.materialized == "dataset":
            days |= set(plan.stale) & set(fingerprints)
        else:
            days |= set(fingerprints)
    if spec.incremental != "by_day":
        days = set(fingerprints)
    added = days - set(stale)
    if not added:
        return stale, reason
    note = f"input model {names} is stale"
    return sorted(days, key=lambda d: d or date.min), f"{reason}; {note}" if stale else note


def default_project_dir(lake: Lake) -> Path:
    """``warehouse.project_dir`` of the lake's settings (relative to the lake), else ``sql/``."""
    settings = getattr(lake.settings, "warehouse", None)
    configured = getattr(settings, "project_dir", None)
    path = Path(configured) if configured else Path("sql")
    return path if path.is_absolute() else lake.root / path


def _relation_kind(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    row = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_catalog = "
        "current_database() AND table_schema = 'main' AND table_name = ?",
        [name],
    ).fetchone()
    if row is None:
        return None
    return "view" if row[0] == "VIEW" else "table"


def _model_failed(spec: ModelSpec, exc: duckdb.Error, day: date | None = None) -> QueryError:
    when = f" building {day}" if day else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return QueryError(
        f"{spec.where}: model {spec.name} failed{when}: {first}; nothing of this "
        "model was changed" + (" for that day" if day else ""),
        model=spec.name,
        path=str(spec.path),
    )
