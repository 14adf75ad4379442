"""Synthetic market data in real vendor formats, for demos, tests and benchmarks."""

from ticklake.generate.options import (
    VENDOR_COLUMNS,
    VENDOR_SCHEMA,
    GenerateSummary,
    generate_options,
)

__all__ = ["VENDOR_COLUMNS", "VENDOR_SCHEMA", "GenerateSummary", "generate_options"]
