"""Statistical questions about windows of the day (``ticklake stats windows``)."""

from ticklake.stats.spec import MeasureSpec, TimeWindow, WindowStatisticsSpec, parse_weekdays
from ticklake.stats.windows import WindowStats, run_window_statistics, window_statistics

__all__ = [
    "MeasureSpec",
    "TimeWindow",
    "WindowStatisticsSpec",
    "WindowStats",
    "parse_weekdays",
    "run_window_statistics",
    "window_statistics",
]
