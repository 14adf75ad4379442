"""Time buckets: width, label side and closed side, one definition for every metric.

The default labels a bucket by its **end** and closes it on the **right** — ``(start,
end]`` labelled ``end`` — so a bucket's values are stamped with the moment they are
complete: joining them backward as-of never looks ahead. ``label="start"`` with
``closed="left"`` gives the familiar ``[start, end)`` labelled ``start`` (bars).

Examples:
    >>> import polars as pl
    >>> from datetime import datetime
    >>> b = BucketSpec(width="1m")
    >>> ts = pl.Series([datetime(2024, 1, 1, 0, 0, 30), datetime(2024, 1, 1, 0, 1, 0)])
    >>> pl.select(b.label_expr(pl.lit(ts))).to_series().dt.strftime("%H:%M").to_list()
    ['00:01', '00:01']
"""

from __future__ import annotations

import re
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict

from ticklake.errors import ConfigError

_DURATION_PART = re.compile(r"(\d+)(ns|us|ms|s|m|h|d|w)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 7 * 86_400_000_000_000,
}


def duration_ns(text: str) -> int:
    """Nanoseconds in a fixed Polars duration such as ``5m`` or ``1h30m``.

    Examples:
        >>> duration_ns("1m30s")
        90000000000
    """
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(
            f"duration {text!r} is not a fixed length like '30s', '5m', '1h' or '1d' "
            "(calendar months and years vary in length and cannot be bucket widths here)",
            duration=text,
        )
    return sum(int(n) * _UNIT_NS[u] for n, u in parts)


class BucketSpec(BaseModel):
    """How rows are grouped in time: ``width`` is a Polars duration (``1s``, ``5m``...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: str = "1m"
    label: Literal["end", "start"] = "end"
    closed: Literal["right", "left"] = "right"

    def label_expr(self, ts: pl.Expr) -> pl.Expr:
        """The bucket label of each timestamp."""
        start = ts.dt.truncate(self.width)
        if self.closed == "right":
            # (start, end]: a timestamp exactly on a boundary closes the bucket ending there.
            on_boundary = start == ts
            start = pl.when(on_boundary).then(start.dt.offset_by(f"-{self.width}")).otherwise(start)
        return start.dt.offset_by(self.width) if self.label == "end" else start

    def group_by_dynamic_args(self) -> dict[str, str]:
        """Arguments for ``DataFrame.group_by_dynamic`` matching this spec."""
        return {
            "every": self.width,
            "period": self.width,
            "closed": self.closed,
            "label": "right" if self.label == "end" else "left",
        }
