"""Analytics pipeline specs: run-level settings and an ordered list of passes.

A pipeline is data (YAML, JSON, or a Python module exposing ``PIPELINE``). Every model
is frozen and rejects unknown keys, so a typo is an error naming the key. A pass reads
a lake dataset or an earlier pass's output, runs pre-processors, computes its modules
(metrics from the one registry) per instrument and time bucket, runs post-processors
and writes its targets. See ``docs/analytics.md``.

Examples:
    >>> spec = PipelineSpec.model_validate({
    ...     "name": "minute_stats",
    ...     "passes": [
    ...         {"name": "minute", "input": "quotes",
    ...          "modules": [{"metric": "spread_bps"}]},
    ...         {"name": "five", "input": "minute", "modules": [],
    ...          "postprocess": [{"kind": "reaggregate", "bucket": {"width": "5m"},
    ...                           "columns": {"spread_bps": {"how": "mean"}}}]},
    ...     ],
    ... })
    >>> spec.passes[1].reads_pass(spec), spec.output_dataset(spec.passes[1])
    ('minute', 'minute_stats_five')
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ticklake.analytics.buckets import BucketSpec
from ticklake.errors import ConfigError, TicklakeError

#: ``auto`` or ``[N]D|W|M|Q|Y`` (checked by ``analytics.run.parse_frequency``).
BatchFrequency = Annotated[str, Field(pattern=r"^(auto|([1-9][0-9]{0,3})?[DWMQYdwmqy])$")]
_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,40}$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- modules
class ModuleSpec(_Spec):
    """One module of a pass: a registered metric with parameters, or a whole family."""

    metric: str | None = Field(None, description="registered metric name (or alias)")
    family: str | None = Field(None, description="every metric of this family, defaults")
    params: dict[str, Any] = Field(default_factory=dict, description="metric parameters")

    @model_validator(mode="after")
    def _one_of(self) -> ModuleSpec:
        if (self.metric is None) == (self.family is None):
            raise ValueError("a module names exactly one of 'metric' or 'family'")
        if self.family is not None and self.params:
            raise ValueError(
                f"family {self.family!r} takes every metric with its defaults; list a metric "
                "with 'metric:' to give parameters"
            )
        return self


# ----------------------------------------------------------------------- preprocess
class AggressorSideSpec(_Spec):
    """Classify each trade's aggressor side by the quote rule, tick rule as fallback.

    A trade above the prevailing mid is a buy, below it a sell; at the mid (or with no
    quote younger than ``max_quote_age``) the tick rule decides: up-tick buy, down-tick
    sell, zero tick repeats the last non-zero tick. The prevailing quote is the last
    one strictly **before** the trade (a quote at the trade's own timestamp may already
    reflect it).
    """

    kind: Literal["aggressor_side"]
    quotes: str = Field(description="lake dataset with bid/ask (quotes or L2 snapshots)")
    max_quote_age: str | None = Field("1m", description="older quotes are ignored (Polars)")
    keep_vendor_side: bool = Field(True, description="keep a non-null vendor side as is")


class ConsolidatedBboSpec(_Spec):
    """Consolidate quotes across venues: max bid / min ask per instrument per instant.

    Each venue's last quote (as-of, backward) counts until ``max_quote_age``; sizes are
    summed over the venues quoting the best price. Output columns: ``bid_price``,
    ``bid_size``, ``ask_price``, ``ask_size``, ``bid``, ``ask`` and ``venues_at_bid`` /
    ``venues_at_ask``.
    """

    kind: Literal["consolidated_bbo"]
    max_quote_age: str | None = Field(None, description="drop a venue's quote older than")


class BookFromOrdersSpec(_Spec):
    """Rebuild L2 book snapshots from L3 order events (the L3 family's replay)."""

    kind: Literal["l3_to_l2"]
    levels: int = Field(10, ge=1, le=50)


class OptionGridSpec(_Spec):
    """Prepare option snapshots for the option metrics: one row per contract snapshot.

    Adds ``instrument`` (the contract symbol), ``bid``/``ask`` (level 0), ``price``
    (last traded), ``spot`` (the underlying's last price at or before the snapshot,
    as-of backward, at most ``max_spot_age`` old), ``is_call`` and ``years_to_expiry``
    (to ``expiry_time`` on the expiry date in the run's zone, 365-day years; null at or
    after expiry).
    """

    kind: Literal["option_grid"]
    underlying: str = Field(description="lake dataset of the underlying (prices schema)")
    expiry_time: str = Field("15:30", pattern=r"^\d{2}:\d{2}$", description="local HH:MM")
    max_spot_age: str | None = Field("1m", description="older spot prices are not used")


class RenameSpec(_Spec):
    """Rename columns, e.g. ``bid_price: bid`` so L1 metrics run on quotes."""

    kind: Literal["rename"]
    columns: dict[str, str]


PreprocessSpec = Annotated[
    AggressorSideSpec | ConsolidatedBboSpec | BookFromOrdersSpec | OptionGridSpec | RenameSpec,
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------------- postprocess
class AggregationSpec(_Spec):
    """How one column re-aggregates: ``sum``, ``first``, ``last``, ``min``, ``max``,
    ``mean`` (optionally weighted by another column)."""

    how: Literal["sum", "first", "last", "min", "max", "mean"]
    weight: str | None = Field(None, description="weight column (mean only)")
    source: str | None = Field(None, description="input column (default: same name)")

    @model_validator(mode="after")
    def _weight_only_for_mean(self) -> AggregationSpec:
        if self.weight is not None and self.how != "mean":
            raise ValueError(f"'weight' applies to how='mean' only, not {self.how!r}")
        return self


class ReaggregateSpec(_Spec):
    """Re-aggregate bucketed rows to a wider bucket and/or instrument groups.

    Each input bucket maps to the output bucket containing its whole interval (its
    midpoint is bucketed with the output spec): never ``truncate`` on end labels.
    """

    kind: Literal["reaggregate"]
    bucket: BucketSpec | None = Field(None, description="output bucket (default: the pass's)")
    instrument_groups: dict[str, str] | None = Field(
        None, description="instrument -> group; the group becomes the 'instrument' column"
    )
    columns: dict[str, AggregationSpec] = Field(description="output column -> aggregation")
    drop_unlisted: bool = Field(False, description="drop input columns not in 'columns'")


class CrossSectionSpec(_Spec):
    """Cross-sectional factors per bucket across instruments: z-score or rank."""

    kind: Literal["cross_section"]
    columns: tuple[str, ...]
    method: Literal["zscore", "rank", "percentile_rank"] = "zscore"


PostprocessSpec = Annotated[ReaggregateSpec | CrossSectionSpec, Field(discriminator="kind")]


# -------------------------------------------------------------------------- targets
class LakeTargetSpec(_Spec):
    """The lake gold dataset (always written: it is the commit point of a run)."""

    type: Literal["lake"]
    dataset: str | None = Field(None, description="gold dataset (default {pipeline}_{pass})")
    mode: Literal["merge", "replace"] = Field(
        "merge",
        description="merge upserts on (instrument, ts); replace rebuilds the (day, "
        "instrument) slices a run computes, so rows it no longer produces disappear",
    )


class DeltaTargetSpec(_Spec):
    """A Delta Lake table, partitioned by ``date`` (the gold partition day)."""

    type: Literal["delta"]
    path: str = Field(description="table directory; {pipeline} and {pass} are filled in")
    mode: Literal["overwrite", "append"] = Field(
        "overwrite", description="overwrite replaces the batch's days (idempotent re-runs)"
    )


class PostgresTargetSpec(_Spec):
    """A PostgreSQL table, upserted on (instrument, ts) through a staging table."""

    type: Literal["postgres"]
    dsn: str | None = Field(None, description="libpq connection string")
    dsn_env: str | None = Field(None, description="environment variable holding the DSN")
    table: str = Field("{pipeline}_{pass}", description="table name template")
    db_schema: str | None = Field(None, description="PostgreSQL schema (default search_path)")

    @model_validator(mode="after")
    def _dsn(self) -> PostgresTargetSpec:
        if (self.dsn is None) == (self.dsn_env is None):
            raise ValueError("a postgres target needs exactly one of 'dsn' or 'dsn_env'")
        return self


class DuckdbTargetSpec(_Spec):
    """A table in a DuckDB database file, replaced per (instrument, ts)."""

    type: Literal["duckdb"]
    path: str = Field(description="database file; {pipeline} and {pass} are filled in")
    table: str = Field("{pipeline}_{pass}", description="table name template")


TargetSpec = Annotated[
    LakeTargetSpec | DeltaTargetSpec | PostgresTargetSpec | DuckdbTargetSpec,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- passes
class PassSpec(_Spec):
    """One pass: input → preprocess → modules per bucket → postprocess → targets."""

    name: str = Field(pattern=_NAME_PATTERN)
    input: str = Field(description="lake dataset ('trades', 'silver.trades') or a pass name")
    bucket: BucketSpec | None = Field(None, description="default: the pipeline's bucket")
    columns: tuple[str, ...] | None = Field(None, description="input columns to read")
    warmup_days: int = Field(
        0, ge=0, le=31, description="calendar days before each day that series metrics see"
    )
    preprocess: tuple[PreprocessSpec, ...] = ()
    modules: tuple[ModuleSpec, ...] = Field(
        description="metrics; empty = pass the (already bucketed) input rows through"
    )
    postprocess: tuple[PostprocessSpec, ...] = ()
    targets: tuple[TargetSpec, ...] | None = Field(None, description="default: pipeline's")
    dense: bool = Field(
        False,
        description="a row for every bucket of the session (empty ones: empty = true)",
    )
    session: str | None = Field(
        None,
        pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$",
        description="with dense: the session, HH:MM-HH:MM local (default: each "
        "instrument's first to last bucket of the day)",
    )

    def reads_pass(self, pipeline: PipelineSpec) -> str | None:
        """The earlier pass this pass reads, or None when it reads a lake dataset."""
        earlier = [p.name for p in pipeline.passes[: pipeline.passes.index(self)]]
        return self.input if self.input in earlier else None


class PipelineSpec(_Spec):
    """A whole analytics pipeline: run-level settings and passes."""

    name: str = Field(pattern=_NAME_PATTERN)
    description: str = ""
    universe: tuple[str, ...] | Literal["all"] = Field(
        "all", description="instruments to compute, or 'all'"
    )
    start: date | None = Field(None, description="first day (default: first input day)")
    end: date | None = Field(None, description="last day, inclusive (default: last day)")
    timezone: str | None = Field(
        None, description="days and bucket alignment (default: the first input's zone)"
    )
    bucket: BucketSpec = BucketSpec()
    targets: tuple[TargetSpec, ...] = ()
    executor: Literal["serial", "process", "ray"] | None = None
    workers: int | None = Field(None, ge=1)
    batch_frequency: BatchFrequency = "auto"
    metric_modules: tuple[str, ...] = Field(
        (), description="Python modules to import first (metrics not installed as a plugin)"
    )
    passes: tuple[PassSpec, ...] = Field(min_length=1)

    @field_validator("universe", mode="before")
    @classmethod
    def _universe(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                raise ValueError("universe is empty; list instruments or write 'all'")
            return tuple(value)
        return value

    @model_validator(mode="after")
    def _passes(self) -> PipelineSpec:
        seen: list[str] = []
        all_names = [p.name for p in self.passes]
        for p in self.passes:
            if p.name in seen:
                raise ValueError(f"pass name {p.name!r} is used twice")
            if p.input == p.name or (p.input in all_names and p.input not in seen):
                raise ValueError(
                    f"pass {p.name!r} reads pass {p.input!r}, which does not run before it; "
                    "order the passes so inputs come first"
                )
            seen.append(p.name)
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def pass_named(self, name: str) -> PassSpec:
        for p in self.passes:
            if p.name == name:
                return p
        raise ConfigError(f"pipeline {self.name!r} has no pass {name!r}", pass_name=name)

    def bucket_of(self, spec: PassSpec) -> BucketSpec:
        return spec.bucket or self.bucket

    def output_bucket_of(self, spec: PassSpec) -> BucketSpec:
        """The bucket of a pass's output rows (after any re-aggregation)."""
        bucket = self.bucket_of(spec)
        for post in spec.postprocess:
            if isinstance(post, ReaggregateSpec) and post.bucket is not None:
                bucket = post.bucket
        return bucket

    def targets_of(self, spec: PassSpec) -> tuple[TargetSpec, ...]:
        return self.targets if spec.targets is None else spec.targets

    def output_dataset(self, spec: PassSpec) -> str:
        """The gold dataset a pass commits to."""
        for target in self.targets_of(spec):
            if isinstance(target, LakeTargetSpec) and target.dataset:
                return self.fill(target.dataset, spec)
        return f"{self.name}_{spec.name}"

    def gold_mode(self, spec: PassSpec) -> Literal["merge", "replace"]:
        """How a pass's rows go into its gold dataset: ``merge`` unless a lake target says."""
        for target in self.targets_of(spec):
            if isinstance(target, LakeTargetSpec):
                return target.mode
        return "merge"

    def fill(self, template: str, spec: PassSpec) -> str:
        """Fill ``{pipeline}`` and ``{pass}`` in a target path or table name."""
        return template.replace("{pipeline}", self.name).replace("{pass}", spec.name)

    def to_json(self) -> str:
        # Key order is kept: it is the column order of re-aggregated outputs.
        return self.model_dump_json()

    def spec_hash(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _format_validation(exc: ValidationError, where: str) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown key {loc!r}")
        else:
            problems.append(f"{loc}: {err['msg']}")
    return f"{where}: " + "; ".join(problems)


def parse_pipeline(data: Any, *, source: str = "pipeline") -> PipelineSpec:
    """Validate a pipeline from a dict (or return a PipelineSpec as is)."""
    if isinstance(data, PipelineSpec):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a pipeline is a mapping, not {type(data).__name__}")
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, source), source=source) from None


def load_pipeline(path: str | Path) -> PipelineSpec:
    """Load a pipeline from YAML/JSON, a ``.py`` file or a dotted module with ``PIPELINE``."""
    text = str(path)
    file = Path(text)
    if file.suffix in (".yml", ".yaml", ".json"):
        if not file.is_file():
            raise ConfigError(f"pipeline file {text} does not exist", path=text)
        try:
            data = yaml.safe_load(file.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{text}: not valid YAML: {exc}", path=text) from None
        return parse_pipeline(data, source=text)
    if file.suffix == ".py":
        if not file.is_file():
            raise ConfigError(f"pipeline file {text} does not exist", path=text)
        module_spec = importlib.util.spec_from_file_location(
            f"_ticklake_pipeline_{file.stem}", file
        )
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(text)
        except ImportError as exc:
            raise ConfigError(
                f"pipeline {text!r} is neither a .yml/.yaml/.json/.py file nor an importable "
                f"module ({exc})",
                path=text,
            ) from None
    if not hasattr(module, "PIPELINE"):
        raise ConfigError(f"{text}: the module defines no PIPELINE", path=text)
    return parse_pipeline(module.PIPELINE, source=text)


def import_metric_modules(spec: PipelineSpec) -> None:
    """Import the pipeline's own metric modules (they register metrics on import)."""
    for name in spec.metric_modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # reported with the module name, never swallowed
            raise ConfigError(
                f"pipeline {spec.name!r}: metric module {name!r} failed to import: "
                f"{type(exc).__name__}: {exc}",
                module=name,
            ) from exc


class ResolvedModule(BaseModel):
    """A module bound to its registry entry and validated parameters."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    pass_name: str
    index: int
    metric_name: str
    params: Any
    where: str


def resolve_modules(pipeline: PipelineSpec, spec: PassSpec) -> list[ResolvedModule]:
    """Bind each module to its metric; errors name the pass and the module."""
    from ticklake.analytics.registry import UnknownMetricError, all_metrics, get_metric

    out: list[ResolvedModule] = []
    outputs: dict[str, str] = {}
    for index, module in enumerate(spec.modules, start=1):
        if module.family is not None:
            members = all_metrics(module.family)
            if not members:
                raise ConfigError(
                    f"pass {spec.name!r}, module {index}: no metrics in family {module.family!r}",
                    pass_name=spec.name,
                )
            chosen = [(m, m.parse_params({})) for m in members]
            label = f"family {module.family!r}"
        else:
            assert module.metric is not None
            label = f"metric {module.metric!r}"
            try:
                metric = get_metric(module.metric)
                chosen = [(metric, metric.parse_params(module.params))]
            except (UnknownMetricError, ConfigError) as exc:
                raise ConfigError(
                    f"pipeline {pipeline.name!r}, pass {spec.name!r}, module {index} ({label}): "
                    f"{exc.message}",
                    pass_name=spec.name,
                    module=index,
                ) from None
        for metric, params in chosen:
            where = f"pass {spec.name!r}, module {index} ({label}, metric {metric.name!r})"
            output = metric.output_name(params)
            if output in outputs:
                raise ConfigError(
                    f"{where}: output column {output!r} is also produced by {outputs[output]}; "
                    "give one of them different parameters or drop it",
                    pass_name=spec.name,
                )
            outputs[output] = where
            out.append(
                ResolvedModule(
                    pass_name=spec.name,
                    index=index,
                    metric_name=metric.name,
                    params=params,
                    where=where,
                )
            )
    return out


def validate_pipeline(spec: PipelineSpec) -> None:
    """Import metric modules and resolve every pass's modules (fail before running)."""
    import_metric_modules(spec)
    for p in spec.passes:
        resolve_modules(spec, p)


__all__ = [
    "AggregationSpec",
    "AggressorSideSpec",
    "BookFromOrdersSpec",
    "ConsolidatedBboSpec",
    "CrossSectionSpec",
    "DeltaTargetSpec",
    "DuckdbTargetSpec",
    "LakeTargetSpec",
    "ModuleSpec",
    "OptionGridSpec",
    "PassSpec",
    "PipelineSpec",
    "PostgresTargetSpec",
    "ReaggregateSpec",
    "RenameSpec",
    "TicklakeError",
    "import_metric_modules",
    "load_pipeline",
    "parse_pipeline",
    "resolve_modules",
    "validate_pipeline",
]
