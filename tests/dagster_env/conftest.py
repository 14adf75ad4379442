"""The Dagster tests run in the Dagster venv (``make install-dagster``), not the main one.

``tests/unit/test_dagster.py`` runs them there by subprocess. Where Dagster is not
importable (the main venv) nothing here is collected.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("dagster") is None:
    collect_ignore_glob = ["*.py"]
