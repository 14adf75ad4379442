"""The layer rule of docs/architecture.md, checked on the package as it is.

``lint-imports`` (in ``make lint``) checks the layer and sibling-cycle contracts of
pyproject.toml; these tests add what a contract cannot say: no module over the size
one person holds in their head, and no import cycle at all between modules, a package
and its own children included (``acyclic_siblings`` only compares siblings).
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "ticklake"
MAX_MODULE_LINES = 600


def test_no_module_is_over_600_lines() -> None:
    sizes = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert len(sizes) > 100  # the walk found the package
    too_big = {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES}
    assert not too_big, f"split these along their seams: {too_big}"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle_and_a_parent_child_loop() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "p": {"p.x"}, "p.x": {"p"}}
    assert sorted(_cycles(edges)) == [["a", "b", "c"], ["p", "p.x"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_modules() -> None:
    # Deferred (function-level) and TYPE_CHECKING imports count: a cycle is broken by
    # moving the shared thing down, not by hiding an import inside a function.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    graph = grimp.build_graph("ticklake", include_external_packages=False)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert "ticklake.web.app" in edges and "ticklake.lake.lake" in edges
    assert _cycles(edges) == []


@pytest.mark.parametrize(
    "stage", ["ingest", "quality", "bars", "analytics", "backtest", "stats", "web", "cli", "api"]
)
def test_storage_imports_no_stage(stage: str) -> None:
    graph = grimp.build_graph("ticklake", include_external_packages=False)
    chain = graph.find_shortest_chain("ticklake.lake", f"ticklake.{stage}", as_packages=True)
    assert chain is None, f"lake/ reaches {stage} through {chain}"
