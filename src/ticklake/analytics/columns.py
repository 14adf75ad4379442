"""Which columns a pipeline produces, and which metric makes a column.

``pipeline_columns`` names each pass's output columns without reading data: it binds the
modules as a run does (``resolve_modules``) and takes each expression's output name from
Polars (``Expr.meta.output_name``), so a listing says exactly what a run writes for
bucket and series metrics. A frame metric returns a frame of its own: its declared
``output`` is listed and flagged. Pre- and post-processors are listed with their pass
(they may add or rename columns).

``metrics_for_column`` finds the metrics whose output template (``ema_{window}_{column}``)
matches a column name, with the parameters the name spells.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ticklake.analytics.pipeline import PipelineSpec, resolve_modules
from ticklake.analytics.registry import Metric, all_metrics, get_metric

#: Columns every pass's output has besides its metrics.
KEY_COLUMNS = ("instrument", "ts")


@dataclass(frozen=True)
class ProducedColumn:
    pass_name: str
    dataset: str
    column: str
    metric: str
    module: int  # 1-based module index within the pass
    kind: str  # bucket | series | frame
    declared_only: bool = False  # a frame metric's declared output (it may add others)


@dataclass(frozen=True)
class PassColumns:
    pass_name: str
    dataset: str
    columns: tuple[ProducedColumn, ...]
    processors: tuple[str, ...] = field(default=())


def pipeline_columns(spec: PipelineSpec) -> list[PassColumns]:
    """The columns each pass of ``spec`` writes, in module order (see the module docstring)."""
    out = []
    for pass_spec in spec.passes:
        produced: list[ProducedColumn] = []
        dataset = spec.output_dataset(pass_spec)
        for module in resolve_modules(spec, pass_spec):
            metric = get_metric(module.metric_name)
            names: list[str]
            declared = False
            if metric.kind == "bucket":
                exprs = metric.expressions(module.params)
                names = (
                    [metric.output_name(module.params)]
                    if len(exprs) == 1
                    else [e.meta.output_name() for e in exprs]
                )
            elif metric.kind == "series":
                names = [metric.series(module.params).meta.output_name()]
            else:
                names, declared = [metric.output_name(module.params)], True
            produced += [
                ProducedColumn(
                    pass_spec.name, dataset, name, metric.name, module.index, metric.kind, declared
                )
                for name in names
            ]
        processors = tuple(
            f"{stage}: {_processor_name(p)}"
            for stage, items in (("pre", pass_spec.preprocess), ("post", pass_spec.postprocess))
            for p in items
        )
        out.append(PassColumns(pass_spec.name, dataset, tuple(produced), processors))
    return out


def _processor_name(processor: Any) -> str:
    for attribute in ("kind", "name", "type"):
        value = getattr(processor, attribute, None)
        if isinstance(value, str):
            return value
    return type(processor).__name__


@dataclass(frozen=True)
class ColumnMatch:
    metric: Metric
    parameters: dict[str, str]  # placeholder -> the text the column name holds


def _template_regex(template: str) -> re.Pattern[str]:
    """``ema_{window}_{column}`` → ``^ema_(?P<window>.+?)_(?P<column>.+?)$`` (a repeated
    placeholder must repeat its text)."""
    pattern, seen = [], set()
    for i, text in enumerate(re.split(r"\{(\w+)(?::[^}]*)?\}", template)):
        if i % 2 == 0:
            pattern.append(re.escape(text))
        elif text in seen:
            pattern.append(f"(?P={text})")
        else:
            seen.add(text)
            pattern.append(f"(?P<{text}>.+?)")
    return re.compile(f"^{''.join(pattern)}$")


def metrics_for_column(column: str) -> list[ColumnMatch]:
    """Metrics whose output template matches ``column`` (exact names first)."""
    exact, templated = [], []
    for metric in all_metrics():
        if metric.output == column:
            exact.append(ColumnMatch(metric, {}))
            continue
        if "{" not in metric.output:
            continue
        regex = _template_regex(metric.output)
        match = regex.match(column)
        if match is not None:
            templated.append(ColumnMatch(metric, dict(match.groupdict())))
    return exact + templated


__all__ = [
    "KEY_COLUMNS",
    "ColumnMatch",
    "PassColumns",
    "ProducedColumn",
    "metrics_for_column",
    "pipeline_columns",
]
