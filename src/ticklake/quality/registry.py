"""The rule registry: ``@register_rule``, lookup by id, name or family, selection.

Built-in rules live one family per module in ``ticklake/quality/rules/``; importing
that package registers them all, so adding a rule touches one file plus its test.

Examples:
    >>> get_rule_class("R1").name
    'ohlc_order'
    >>> [r.id for r in select_rule_classes(["R5"])][:2]
    ['R5.alignment', 'R5.duplicates']
"""

from __future__ import annotations

from collections.abc import Iterable

import ticklake.quality.rules  # noqa: F401  (importing registers the built-in families)
from ticklake.errors import ConfigError
from ticklake.quality.base import REGISTERED_RULES, Rule, register_rule

__all__ = ["get_rule_class", "register_rule", "rule_classes", "select_rule_classes"]


def rule_classes() -> list[type[Rule]]:
    """Every registered rule, ordered by id."""
    return sorted(REGISTERED_RULES.values(), key=lambda r: _sort_key(r.id))


#: Families in report order: the classic rulepack first, then sessions, prices, quotes,
#: options and order events. Unknown families sort after these.
FAMILY_ORDER = ("R", "S", "P", "Q", "O", "L")


def _sort_key(rule_id: str) -> tuple[int, str, int, str]:
    head, _, tail = rule_id.partition(".")
    letters = head.rstrip("0123456789")
    digits = head[len(letters) :]
    rank = FAMILY_ORDER.index(letters) if letters in FAMILY_ORDER else len(FAMILY_ORDER)
    return rank, letters, int(digits or 0), tail


def get_rule_class(id_or_name: str) -> type[Rule]:
    """Return the rule whose id or name is ``id_or_name`` (case-insensitive)."""
    wanted = id_or_name.strip().lower()
    for cls in rule_classes():
        if wanted in (cls.id.lower(), cls.name.lower()):
            return cls
    raise ConfigError(
        f"unknown quality rule {id_or_name!r}; known rules: "
        f"{', '.join(c.id for c in rule_classes())}. Run `ticklake validate --list-rules`.",
        rule=id_or_name,
    )


def select_rule_classes(selectors: Iterable[str] | None) -> list[type[Rule]]:
    """Rules chosen by ids, names or families; None: all.

    A family is a letter (``S`` -> S1..S5) or an id with sub-rules (``R5`` -> R5.gaps, ...).
    """
    everything = rule_classes()
    if selectors is None:
        return everything
    chosen: dict[str, type[Rule]] = {}
    for raw in selectors:
        selector = raw.strip()
        if not selector:
            continue
        wanted = selector.lower()
        family = [
            c
            for c in everything
            if c.id.lower().startswith(wanted + ".")
            or (wanted.isalpha() and c.id.lower().split(".")[0].rstrip("0123456789") == wanted)
        ]
        if family:
            chosen.update({c.id: c for c in family})
        else:
            cls = get_rule_class(selector)
            chosen[cls.id] = cls
    return sorted(chosen.values(), key=lambda r: _sort_key(r.id))
