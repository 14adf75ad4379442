"""Built-in readers, one module per format; importing this package registers them all.

Every module in this package except ``base`` defines one or more ``@register_reader``
classes. Modules are discovered, not listed, so adding a format touches one file.
"""

from __future__ import annotations

import importlib
import pkgutil

from ticklake.ingest.readers.base import (
    Batch,
    Reader,
    ReaderOptions,
    get_reader,
    reader_names,
    register_reader,
)

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name != "base" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["Batch", "Reader", "ReaderOptions", "get_reader", "reader_names", "register_reader"]
