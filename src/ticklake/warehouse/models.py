"""SQL models: one SELECT per file, a small header, dependencies read from the SQL.

A model file ``<project>/models/<name>.sql``::

    -- materialized: dataset        view | table | dataset
    -- layer: gold                  silver | gold (datasets only; default gold)
    -- key: instrument, ts          the dataset's key (datasets only)
    -- partition: date              datasets are day-partitioned (the only choice)
    -- incremental: by_day          rebuild only the days whose inputs changed
    -- ts: ts                       the UTC time column (datasets; default ts)
    SELECT ...

Header lines are ``-- name: value`` comments before the first statement line; any other
comment is free text. There is no ``ref()`` macro: the tables a model reads are found by
parsing its SQL with sqlglot (CTE names excluded) and resolved against, in order, the
other models (``name`` or, for a dataset model, ``<layer>.<name>``), the lake's datasets
(``<layer>.<dataset>`` or an unambiguous bare name) and the warehouse's own tables and
views (made by ``sql run`` or migrations). A name that is none of these is an error that
names the file and line.

Examples:
    >>> spec = parse_model_text("daily", "-- materialized: table\\nSELECT 1 AS x")
    >>> spec.materialized, spec.sql
    ('table', 'SELECT 1 AS x')
"""

from __future__ import annotations

import difflib
import graphlib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb
import sqlglot
from sqlglot import exp

from ticklake.errors import ConfigError
from ticklake.lake.lake import Lake

Materialized = Literal["view", "table", "dataset"]
_HEADER = re.compile(r"^\s*--\s*([a-z_]+)\s*:\s*(.*?)\s*$")
_KEYS = {"materialized", "layer", "key", "partition", "incremental", "ts", "description"}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ModelError(ConfigError):
    """A model file is malformed, names an unknown table, or the models form a cycle."""


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model file."""

    name: str
    path: Path
    sql: str
    line: int  # the 1-based line of the SQL's first line in the file
    materialized: Materialized = "view"
    layer: str = "gold"
    key: tuple[str, ...] = ()
    incremental: Literal["by_day"] | None = None
    ts_column: str = "ts"
    description: str = ""

    @property
    def sql_hash(self) -> str:
        header = f"{self.materialized}|{self.layer}|{self.key}|{self.ts_column}|"
        return hashlib.sha256((header + self.sql).encode()).hexdigest()

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def output(self) -> str:
        """Where the model lands: ``<layer>.<name>`` (a dataset) or ``main.<name>``."""
        return (
            f"{self.layer}.{self.name}" if self.materialized == "dataset" else f"main.{self.name}"
        )


@dataclass(frozen=True)
class TableRef:
    schema: str  # "" when the SQL gave none
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass
class Resolved:
    """What one model reads: other models, lake datasets, warehouse objects."""

    models: set[str] = field(default_factory=set)
    datasets: set[tuple[str, str]] = field(default_factory=set)  # (layer, name)
    warehouse: set[str] = field(default_factory=set)  # schema.name


def parse_model_text(name: str, text: str, path: Path | None = None) -> ModelSpec:
    """Parse a model's header and SQL (see the module docstring)."""
    path = path or Path(f"{name}.sql")
    if not _NAME.match(name):
        raise ModelError(
            f"{path}: model name {name!r} must be lower case letters, digits and _ "
            "(rename the file)",
            path=str(path),
        )
    header: dict[str, str] = {}
    lines = text.splitlines()
    first = 0
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            first = number
            break
        match = _HEADER.match(line)
        if match and match.group(1) in _KEYS:
            header[match.group(1)] = match.group(2)
        elif match and difflib.get_close_matches(match.group(1), _KEYS, n=1, cutoff=0.75):
            # a typo of a header (materialised:, increment:) would otherwise be free text
            close = difflib.get_close_matches(match.group(1), _KEYS, n=1, cutoff=0.75)[0]
            raise ModelError(
                f"{path}:{number + 1}: unknown header {match.group(1)!r}; did you mean "
                f"{close!r}? (headers: {', '.join(sorted(_KEYS))})",
                path=str(path),
            )
    else:
        raise ModelError(f"{path}: the model has no SQL (one SELECT)", path=str(path))
    sql = "\n".join(lines[first:]).strip().rstrip(";").strip()
    where = f"{path}:{first + 1}"
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise ModelError(f"{where}: model {name} does not parse: {exc}", path=str(path)) from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise ModelError(
            f"{where}: model {name} must be exactly one SELECT (got "
            f"{', '.join(s.type.name for s in statements)}); put DDL in migrations/",
            path=str(path),
        )
    materialized = header.get("materialized", "view")
    if materialized not in ("view", "table", "dataset"):
        raise ModelError(
            f"{path}: materialized must be view, table or dataset, not {materialized!r}",
            path=str(path),
        )
    layer = header.get("layer", "gold")
    if layer not in ("silver", "gold"):
        raise ModelError(f"{path}: layer must be silver or gold, not {layer!r}", path=str(path))
    key = tuple(k.strip() for k in header.get("key", "").split(",") if k.strip())
    incremental = header.get("incremental") or None
    if incremental not in (None, "by_day"):
        raise ModelError(
            f"{path}: incremental must be by_day (or absent), not {incremental!r}", path=str(path)
        )
    partition = header.get("partition", "date")
    if partition != "date":
        raise ModelError(
            f"{path}: datasets are partitioned by trading date only (partition: date), "
            f"not {partition!r}",
            path=str(path),
        )
    if materialized == "dataset" and not key:
        raise ModelError(
            f"{path}: a dataset model needs '-- key: col1, col2' (the columns that identify a "
            "row; rebuilding a day replaces its rows)",
            path=str(path),
        )
    if materialized != "dataset" and (incremental or "key" in header or "layer" in header):
        raise ModelError(
            f"{path}: key, layer and incremental apply to dataset models only "
            f"(this one is materialized: {materialized})",
            path=str(path),
        )
    return ModelSpec(
        name=name,
        path=path,
        sql=sql,
        line=first + 1,
        materialized=materialized,  # type: ignore[arg-type]
        layer=layer,
        key=key,
        incremental=incremental,  # type: ignore[arg-type]
        ts_column=header.get("ts", "ts"),
        description=header.get("description", ""),
    )


def load_models(project: Path) -> dict[str, ModelSpec]:
    """Every ``models/*.sql`` of the SQL project folder, by name."""
    folder = project / "models"
    if not folder.is_dir():
        return {}
    return {
        path.stem: parse_model_text(path.stem, path.read_text(), path)
        for path in sorted(folder.glob("*.sql"))
    }


def table_refs(spec: ModelSpec) -> list[TableRef]:
    """The tables a model's SQL reads (CTE names excluded), in order of appearance."""
    try:
        tree = sqlglot.parse_one(spec.sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise ModelError(
            f"{spec.where}: model {spec.name}: sqlglot cannot parse it to find its inputs: "
            f"{str(exc).splitlines()[0]}",
            path=str(spec.path),
        ) from None
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    refs: list[TableRef] = []
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function such as read_parquet(...)
        name, schema = table.name.lower(), table.db.lower()
        if not schema and name in ctes:
            continue
        ref = TableRef(schema, name)
        if ref not in refs:
            refs.append(ref)
    return refs


def resolve(
    models: dict[str, ModelSpec], lake: Lake, warehouse_objects: set[str]
) -> dict[str, Resolved]:
    """Resolve every model's table references (see the module docstring)."""
    datasets = {(i.layer, i.name) for i in lake.datasets()}
    bare: dict[str, list[tuple[str, str]]] = {}
    for layer, name in datasets:
        bare.setdefault(name, []).append((layer, name))
    by_output = {spec.output: spec.name for spec in models.values()}
    out: dict[str, Resolved] = {}
    for spec in models.values():
        resolved = Resolved()
        for ref in table_refs(spec):
            qualified = f"{ref.schema or 'main'}.{ref.name}"
            if qualified in by_output or (not ref.schema and ref.name in models):
                dep = by_output.get(qualified) or ref.name
                resolved.models.add(dep)
            elif (ref.schema, ref.name) in datasets:
                resolved.datasets.add((ref.schema, ref.name))
            elif ref.schema in ("", "main") and len(bare.get(ref.name, [])) == 1:
                resolved.datasets.add(bare[ref.name][0])
            elif qualified in warehouse_objects:
                resolved.warehouse.add(qualified)
            else:
                known = sorted(by_output) + sorted(f"{a}.{b}" for a, b in datasets)
                raise ModelError(
                    f"{spec.where}: model {spec.name} reads {ref}, which is no model, lake "
                    f"dataset or warehouse table; known: {', '.join(known) or 'none'}",
                    path=str(spec.path),
                )
        if spec.name in resolved.models:
            raise ModelError(f"{spec.where}: model {spec.name} reads itself", path=str(spec.path))
        out[spec.name] = resolved
    return out


def build_order(models: dict[str, ModelSpec], resolved: dict[str, Resolved]) -> list[str]:
    """The models in dependency order (inputs first); a cycle is an error naming it."""
    sorter = graphlib.TopologicalSorter({n: sorted(resolved[n].models) for n in sorted(models)})
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise ModelError(f"models form a cycle: {cycle}; break it in one of those files") from None


def check_names(models: dict[str, ModelSpec], lake: Lake) -> None:
    """A view/table model may not take a bare name a lake dataset view already uses."""
    bare = {info.name for info in lake.datasets()}
    for spec in models.values():
        if spec.materialized != "dataset" and spec.name in bare:
            raise ModelError(
                f"{spec.path}: model {spec.name} would hide the lake dataset view of the same "
                "name; rename the model file",
                path=str(spec.path),
            )
