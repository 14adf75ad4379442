"""Strategy templates shipped with ticklake (YAML files in this package).

Examples:
    >>> "atm_straddle_hourly" in template_names()
    True
"""

from __future__ import annotations

from pathlib import Path

from ticklake.errors import ConfigError

TEMPLATE_DIR = Path(__file__).resolve().parent


def template_names() -> list[str]:
    return sorted(p.stem for p in TEMPLATE_DIR.glob("*.yml"))


def template_path(name: str) -> Path:
    path = TEMPLATE_DIR / f"{name}.yml"
    if not path.is_file():
        raise ConfigError(
            f"no strategy template {name!r}; templates: {', '.join(template_names())}", name=name
        )
    return path
