"""Strategy templates shipped with ticklake: one YAML file per template in this package.

A template is an ordinary strategy file (see ``docs/backtest.md`` and
``docs/conditions.md``); one with a ``sweep:`` section is a parameter sweep. Adding a
template is adding a ``NAME.yml`` here (with a one-paragraph ``description``) — the
listing, ``ticklake strategies``, the web API and the template tests pick it up.

Examples:
    >>> "atm_straddle_hourly" in template_names()
    True
    >>> info = template_info("iron_fly_wing_sweep")
    >>> info.sweep_axes
    {'wing': [1, 2, 3, 4]}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ticklake.errors import ConfigError

TEMPLATE_DIR = Path(__file__).resolve().parent
#: What ``StrategySpec.name`` accepts; a copy's file name is this plus ``.yml``.
STRATEGY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NAME_LINE = re.compile(r"^name:.*$", re.MULTILINE)
_FIRST_SENTENCE = re.compile(r"^(.*?[.!?])(?:\s|$)")


@dataclass(frozen=True)
class TemplateInfo:
    """A template's name, file, description and sweep axes (empty for a single strategy)."""

    name: str
    path: Path
    description: str
    sweep_axes: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """The description's first sentence."""
        match = _FIRST_SENTENCE.match(self.description)
        return match.group(1) if match else self.description

    @property
    def grid_size(self) -> int:
        """Variants before constraints (1 for a single strategy)."""
        size = 1
        for values in self.sweep_axes.values():
            size *= len(values)
        return size


def template_names() -> list[str]:
    """The shipped templates' names, sorted."""
    return sorted(p.stem for p in TEMPLATE_DIR.glob("*.yml"))


def template_path(name: str) -> Path:
    """The YAML file of template ``name``."""
    path = TEMPLATE_DIR / f"{name}.yml"
    if not STRATEGY_NAME.match(name) or not path.is_file():
        raise ConfigError(
            f"no strategy template {name!r}; templates: {', '.join(template_names())}", name=name
        )
    return path


def template_text(name: str) -> str:
    """The template's YAML text, comments included."""
    return template_path(name).read_text(encoding="utf-8")


def template_data(name: str) -> dict[str, Any]:
    """The template parsed as plain data (``sweep:`` and ``constraints:`` included)."""
    data = yaml.safe_load(template_text(name))
    if not isinstance(data, dict):
        raise ConfigError(f"template {name!r}: {template_path(name)} is not a mapping", name=name)
    return data


def template_info(name: str) -> TemplateInfo:
    """Name, path, description and sweep axes of template ``name``."""
    data = template_data(name)
    axes = data.get("sweep") or {}
    return TemplateInfo(
        name=name,
        path=template_path(name),
        description=" ".join(str(data.get("description", "")).split()),
        sweep_axes={str(k): list(v) for k, v in axes.items()},
    )


def list_templates() -> list[TemplateInfo]:
    """Every shipped template, sorted by name."""
    return [template_info(name) for name in template_names()]


def copy_template(template: str, name: str, directory: Path | str = Path("strategies")) -> Path:
    """Write template ``template`` as ``directory/name.yml`` with ``name: name``.

    The copy keeps the template's comments and layout; only its ``name:`` line changes.
    An existing file is never overwritten.
    """
    if not STRATEGY_NAME.match(name):
        raise ConfigError(
            f"strategy name {name!r}: use 1-64 letters, digits, '_', '.' or '-', e.g. my_straddle",
            name=name,
        )
    text = template_text(template)
    text, count = _NAME_LINE.subn(f"name: {name}", text, count=1)
    if count != 1:
        raise ConfigError(f"template {template!r} has no top-level 'name:' line", name=template)
    directory = Path(directory)
    target = directory / f"{name}.yml"
    if target.exists():
        raise ConfigError(
            f"{target} already exists; choose another name or --out directory "
            "(ticklake never overwrites a strategy file)",
            path=str(target),
        )
    directory.mkdir(parents=True, exist_ok=True)
    try:
        # Exclusive create: a file that appeared since the check above is not overwritten.
        with target.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise ConfigError(
            f"{target} already exists; choose another name or --out directory", path=str(target)
        ) from None
    return target
