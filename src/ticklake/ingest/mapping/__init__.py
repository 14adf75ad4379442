"""Ingest mappings: how a source table's columns become a canonical schema.

A :class:`Mapping` is data, written by hand or proposed by :func:`infer_mapping`
(``ticklake ingest FILE --infer``) and edited::

    schema: trades
    columns: {price: px, size: qty, trade_id: id, side: taker_side}
    time: {column: time, unit: ms}
    constants: {instrument: BTCUSDT, venue: binance}

:func:`apply_mapping` turns one frame of source rows into canonical rows plus rejected
rows (bad time, non-numeric price, missing required value), each with its source row
number, the raw row as text and a reason naming the column.

Time rules: epoch numbers are UTC (``unit`` s/ms/us/ns, or ``auto`` to pick the unit by
magnitude); strings are parsed with ``format`` (or polars' inference) and, when naive,
read in ``timezone`` (default UTC). A local time that does not exist or is ambiguous
(DST change) is rejected, never guessed. Bars get ``ts_end`` from a mapped column or
from ``interval`` and ``label`` (``open``: the stamp is the bar's start, ``close``: its
end).

Examples:
    >>> import polars as pl
    >>> m = Mapping.model_validate({
    ...     "schema": "trades", "columns": {"price": "px", "size": "qty"},
    ...     "time": {"column": "t", "unit": "ms"}, "constants": {"instrument": "X"}})
    >>> src = pl.DataFrame({"t": [1_600_000_000_000, None], "px": ["1.5", "2"], "qty": [1, 2]})
    >>> batch = apply_mapping(src, m, source="demo", first_row=1)
    >>> batch.frame["price"].to_list(), batch.rejected["reason"].to_list()
    ([1.5], ["missing ts: source column 't' is empty"])
"""

from ticklake.ingest.mapping.coercion import apply_mapping, resolve_auto_unit, to_polars
from ticklake.ingest.mapping.inference import (
    TIME_FORMATS,
    guess_time_format,
    infer_mapping,
    mapping_for_frame,
    sniff_csv,
)
from ticklake.ingest.mapping.model import (
    UNIT_NANOSECONDS,
    CsvSpec,
    EpochUnit,
    Mapping,
    TimeSpec,
    detect_epoch_unit,
    interval_to_polars,
    render_yaml,
)

__all__ = [
    "TIME_FORMATS",
    "UNIT_NANOSECONDS",
    "CsvSpec",
    "EpochUnit",
    "Mapping",
    "TimeSpec",
    "apply_mapping",
    "detect_epoch_unit",
    "guess_time_format",
    "infer_mapping",
    "interval_to_polars",
    "mapping_for_frame",
    "render_yaml",
    "resolve_auto_unit",
    "sniff_csv",
    "to_polars",
]
