"""The import graph of the source tree: no cycle, and the engine never imports what it runs.

An AST pass over every module (imports inside functions and under TYPE_CHECKING count: a
cycle there still ties the modules together for a reader and a type checker)."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers.paths import REPO

PACKAGES = {"api": "emoprep", "pipeline": "emoprep.pipeline", "stages": "emoprep.stages",
            "manifests": "emoprep.manifests"}


def modules(root: Path = REPO) -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in (root / folder).rglob("*.py"):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the emoprep modules it imports (a name imported from a package counts as the
    submodule when there is one, else as the package)."""
    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name.startswith("emoprep"):
                    target = owner(name)
                    if target and target != mod:
                        targets.add(target)
        graph[mod] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
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


def test_the_source_tree_has_no_import_cycle():
    assert cycles(import_graph(modules())) == []


def test_the_cycle_finder_finds_a_planted_cycle(tmp_path):
    for folder in PACKAGES:
        (tmp_path / folder).mkdir()
    (tmp_path / "pipeline" / "a.py").write_text("from emoprep.pipeline.b import x\n")
    (tmp_path / "pipeline" / "b.py").write_text("def f():\n    from emoprep.pipeline import a\n")
    (tmp_path / "pipeline" / "c.py").write_text("import emoprep.pipeline.a\n")
    assert cycles(import_graph(modules(tmp_path))) == [["emoprep.pipeline.a", "emoprep.pipeline.b"]]


def test_layers_import_only_downwards():
    """The engine imports no stage and no reader (the composition root, `api/`, hands them
    in); the data contracts and readers import no stage."""
    graph = import_graph(modules())
    upward = sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                    if (m.startswith("emoprep.pipeline") and (t == "emoprep" or t.startswith(
                        ("emoprep.stages", "emoprep.manifests", "emoprep.cli", "emoprep.commands",
                         "emoprep.composition"))))
                    or (m.startswith("emoprep.manifests") and t.startswith("emoprep.stages")))
    assert upward == []
