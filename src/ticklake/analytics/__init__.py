"""Analytics: the metric registry, metric families, multi-pass pipelines, output targets."""

from ticklake.analytics.registry import (
    Metric,
    MetricParams,
    NoParams,
    UnknownMetricError,
    all_metrics,
    get_metric,
    metric,
)

__all__ = [
    "Metric",
    "MetricParams",
    "NoParams",
    "UnknownMetricError",
    "all_metrics",
    "get_metric",
    "metric",
]
