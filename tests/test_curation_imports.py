"""Curation modules import without circles: the step registry (`base.py`) imports its plug-ins, the plug-ins
import the leaf `step.py`, and no curation module hides a circle behind a function-local import."""

from __future__ import annotations

import ast
from pathlib import Path

import sailvl

PACKAGE = Path(sailvl.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> list[tuple[str, bool]]:
    """`(imported sailvl module, at module top level)` for every import statement in `path`."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import mod` imports the submodule when there is one, else a name of pkg.
            names = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known]
            names = names or [node.module]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.append((name, id(node) in top))
    return found


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    local: list[str] = []
    for name, path in files.items():
        graph[name] = set()
        for target, at_top in _imports(path, set(files)):
            if target == name or name.startswith(target + "."):
                continue  # a package's own __init__ runs first anyway
            graph[name].add(target)
            if not at_top and name.startswith("sailvl.curation") and target.startswith("sailvl.curation"):
                local.append(f"{name} -> {target}")
    return graph, local


def _cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A shortest import path from `start` back to itself, or None."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for target in sorted(graph.get(node, ())):
                if target == start:
                    return paths[node] + [start]
                if target not in paths:
                    paths[target] = paths[node] + [target]
                    nxt.append(target)
        frontier = nxt
    return None


def test_no_import_circle_through_curation():
    graph, _ = _graph()
    circles = [c for m in sorted(graph) if m.startswith("sailvl.curation") if (c := _cycle_through(graph, m))]
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_curation_modules_import_each_other_at_the_top():
    _, local = _graph()
    assert not local, f"function-local imports between curation modules (a hidden circle): {local}"


def test_step_plugins_import_the_leaf_not_the_registry():
    graph, _ = _graph()
    plugins = [m for m, targets in graph.items() if "sailvl.curation.step" in targets]
    assert {"sailvl.curation.dedup", "sailvl.curation.judge", "sailvl.curation.vlm"} <= set(plugins)
    assert not [t for t in graph["sailvl.curation.step"] if t.startswith("sailvl.curation")]  # a leaf
    assert not [m for m in plugins if "sailvl.curation.base" in graph[m]]
    assert {"sailvl.curation.judge", "sailvl.curation.dedup"} <= graph["sailvl.curation.base"]
