"""YAML from web requests: ``yaml.safe_load`` semantics, with aliases bounded.

PyYAML composes an alias as a second reference to its anchor's node, so a 440-byte
"billion laughs" document (nine levels of ten aliases each) parses in microseconds and
then explodes when it is walked: converting it to JSON built 10⁹ nodes, kept a server
thread busy for a minute and starved every other request. Here the composed node graph
is measured before anything is built from it: its **expanded size** (every node counted
once per path that reaches it, plus the characters of each scalar) must stay under
:data:`MAX_EXPANDED_SIZE`. A document without aliases is never refused (the request
text is capped well below that size), anchors and aliases used for ordinary sharing
pass, and an alias that refers to its own anchor (a cycle) is refused.

Examples:
    >>> load_yaml("a: &x [1, 2]\\nb: *x")
    {'a': [1, 2], 'b': [1, 2]}
    >>> bomb = "a: &a [x]\\n" + "\\n".join(
    ...     f"b{i}: &b{i} [" + ", ".join([f"*{'a' if i == 0 else f'b{i - 1}'}"] * 10) + "]"
    ...     for i in range(6))
    >>> load_yaml(bomb)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ticklake.errors.ConfigError: YAML aliases expand this document past 1,000,000 nodes ...
"""

from __future__ import annotations

from typing import Any

import yaml

from ticklake.errors import ConfigError

#: Largest expanded size (nodes + scalar characters, aliases counted every time).
MAX_EXPANDED_SIZE = 1_000_000


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes plus scalar characters with aliases expanded; > ``limit`` stops early."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    # Iterative post-order walk: deep nesting must not hit Python's recursion limit.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes and not children_done:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1 + len(str(node.value))
            continue
        children = _children(node)
        if not children_done:
            if key in on_path:
                raise ConfigError(
                    "a YAML alias refers to its own anchor (a recursive document); "
                    "web inputs must be plain trees"
                )
            on_path.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        on_path.discard(key)
        total = 1 + sum(sizes[id(child)] for child in children)
        sizes[key] = min(total, limit + 1)  # saturate: the exact count past the cap is moot
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


class _BoundedSafeLoader(yaml.SafeLoader):
    """SafeLoader that measures the composed document before constructing it."""

    max_expanded_size = MAX_EXPANDED_SIZE

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None and _expanded_size(node, self.max_expanded_size) > (
            self.max_expanded_size
        ):
            raise ConfigError(
                f"YAML aliases expand this document past {self.max_expanded_size:,} nodes and "
                'characters (a "billion laughs" document?); write the repeated parts out or '
                "use fewer aliases",
                max_expanded_size=self.max_expanded_size,
            )
        return node


def load_yaml(text: str, what: str = "YAML") -> Any:
    """Parse one YAML document like ``yaml.safe_load``, refusing alias bombs and cycles."""
    try:
        return yaml.load(text, Loader=_BoundedSafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{what} nests too deeply to read") from None
