"""The one metric registry: analytics passes, the CLI, the strategy language and the
dashboard all read metrics from here.

A metric is a function decorated with :func:`metric`. The decorator records its name
(full words, unit in the name where there is one), family, title, unit, inputs, typed
parameters (a frozen Pydantic model that rejects unknown keys), output column template
and kind; its docstring is the documentation (first paragraph = description, a
``Formula:`` section, an ``Examples:`` section). Three kinds:

- ``bucket``: ``fn(params) -> list[pl.Expr]`` aggregations evaluated per instrument and
  time bucket (inside ``group_by_dynamic``), e.g. VWAP, spread statistics;
- ``series``: ``fn(params) -> pl.Expr`` over one instrument's time-sorted rows (a 1 s
  grid in backtests), using only current and past rows — e.g. EMA, rolling volume;
- ``frame``: ``fn(frame, params) -> pl.DataFrame`` for path-dependent work done by a
  kernel (book replay, order lifetimes), returning one row per bucket.

Built-in metric modules are found exactly like a third-party package's: through the
entry-point group ``ticklake.metrics`` (see ``pyproject.toml``). Importing a module
registers its metrics. A plugin that fails to import is recorded in
:data:`BROKEN_PLUGINS` and reported by ``ticklake analytics list`` — never swallowed.

Examples:
    >>> m = get_metric("mid_price")
    >>> m.family, m.kind, m.output_name(m.params_model())
    ('l1', 'series', 'mid_price')
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError

from ticklake.errors import ConfigError, TicklakeError

ENTRY_POINT_GROUP = "ticklake.metrics"
MetricKind = Literal["bucket", "series", "frame"]
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class UnknownMetricError(TicklakeError, KeyError):
    exit_code = 4


class MetricParams(BaseModel):
    """Base class of metric parameters: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(MetricParams):
    """A metric without parameters."""


@dataclass(frozen=True)
class Metric:
    name: str
    family: str
    title: str
    unit: str
    kind: MetricKind
    inputs: tuple[str, ...]
    output: str
    params_model: type[MetricParams]
    fn: Callable[..., Any]
    description: str
    formula: str
    example: str
    module: str
    aliases: tuple[str, ...] = field(default=())

    def parse_params(self, values: dict[str, Any] | None = None) -> MetricParams:
        """Validate parameters; errors name the metric, the key and the valid keys."""
        try:
            return self.params_model.model_validate(values or {})
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"]) or "(parameters)"
                problems.append(
                    f"unknown parameter {loc!r}"
                    if err["type"] == "extra_forbidden"
                    else f"{loc}: {err['msg']}"
                )
            valid = ", ".join(self.params_model.model_fields) or "none"
            raise ConfigError(
                f"metric {self.name!r}: {'; '.join(problems)} (parameters: {valid})",
                metric=self.name,
            ) from None

    def output_name(self, params: MetricParams) -> str:
        """The output column for these parameters, e.g. ``ema_5_price``."""
        return self.output.format(**params.model_dump())

    def expressions(self, params: MetricParams) -> list[pl.Expr]:
        if self.kind != "bucket":
            raise ConfigError(f"metric {self.name!r} is a {self.kind} metric, not a bucket one")
        exprs = self.fn(params)
        return [exprs] if isinstance(exprs, pl.Expr) else list(exprs)

    def series(self, params: MetricParams) -> pl.Expr:
        if self.kind != "series":
            raise ConfigError(f"metric {self.name!r} is a {self.kind} metric, not a series one")
        expr = self.fn(params)
        assert isinstance(expr, pl.Expr)
        return expr.alias(self.output_name(params))

    def parameters_schema(self) -> dict[str, Any]:
        return self.params_model.model_json_schema()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "title": self.title,
            "unit": self.unit,
            "kind": self.kind,
            "inputs": list(self.inputs),
            "output": self.output,
            "description": self.description,
            "formula": self.formula,
            "example": self.example,
            "parameters": self.parameters_schema(),
            "aliases": list(self.aliases),
        }


_METRICS: dict[str, Metric] = {}
_ALIASES: dict[str, str] = {}
#: entry points that failed to load: name -> error text
BROKEN_PLUGINS: dict[str, str] = {}
_loaded = False


def _doc_sections(doc: str) -> tuple[str, str, str]:
    text = inspect.cleandoc(doc or "")
    parts = re.split(r"^(Formula|Examples):\s*$", text, flags=re.MULTILINE)
    description = parts[0].strip()
    sections = dict(zip(parts[1::2], (p.strip("\n") for p in parts[2::2]), strict=False))
    return (
        description,
        textwrap.dedent(sections.get("Formula", "")).strip(),
        textwrap.dedent(sections.get("Examples", "")).strip(),
    )


def metric(
    *,
    name: str,
    family: str,
    title: str,
    unit: str,
    inputs: tuple[str, ...],
    kind: MetricKind = "bucket",
    params: type[MetricParams] = NoParams,
    output: str | None = None,
    aliases: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as a metric (see the module docstring)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not _NAME.match(name):
            raise ValueError(f"metric name {name!r} must be snake_case")
        description, formula, example = _doc_sections(fn.__doc__ or "")
        entry = Metric(
            name=name,
            family=family,
            title=title,
            unit=unit,
            kind=kind,
            inputs=tuple(inputs),
            output=output or name,
            params_model=params,
            fn=fn,
            description=description,
            formula=formula,
            example=example,
            module=fn.__module__,
            aliases=tuple(aliases),
        )
        existing = _METRICS.get(name)
        if existing is not None and existing.module != entry.module:
            raise ValueError(
                f"metric {name!r} is registered twice ({existing.module} and {entry.module})"
            )
        _METRICS[name] = entry
        for alias in aliases:
            _ALIASES[alias] = name
        return fn

    return decorate


def load_plugins() -> None:
    """Import every module of the ``ticklake.metrics`` entry-point group once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin is recorded and shown, not hidden
            BROKEN_PLUGINS[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"


def all_metrics(family: str | None = None) -> list[Metric]:
    load_plugins()
    return sorted(
        (m for m in _METRICS.values() if family is None or m.family == family),
        key=lambda m: (m.family, m.name),
    )


def families() -> list[str]:
    return sorted({m.family for m in all_metrics()})


def get_metric(name: str) -> Metric:
    load_plugins()
    key = _ALIASES.get(name, name)
    if key not in _METRICS:
        raise UnknownMetricError(
            f"unknown metric {name!r}. Known metrics: {', '.join(sorted(_METRICS))}"
            + (f". Broken plugins: {', '.join(BROKEN_PLUGINS)}" if BROKEN_PLUGINS else ""),
            metric=name,
        )
    return _METRICS[key]
