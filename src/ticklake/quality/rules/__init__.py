"""Built-in quality rules, one module per family; importing this package registers them.

Modules are discovered, not listed: adding a rule family touches one file (plus its
test). Each module defines ``@register_rule`` classes (see :mod:`ticklake.quality.base`).
"""

from __future__ import annotations

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
