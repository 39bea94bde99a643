"""The project's import graph: no cycles, and the packages' layering holds.

The graph is read from the source with `ast` (nothing is imported, so this is fast and
needs no TensorFlow): every `import x` and `from x import y` in the packages, at module
level or inside a function, is an edge to the project module it names. `from pkg import
name` is an edge to `pkg.name` when that is a module, else to `pkg`. A module's edges to
its own package's `__init__` implied by Python's import system are not added: a package
that imports its submodules would otherwise always be a cycle.
"""

from __future__ import annotations

import ast
import collections
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("mnas_tf", "latency", "export", "search")

# Layering: a package on the left never imports one on the right.
FORBIDDEN = {
    "mnas_tf": ("search", "latency", "export"),
    "latency": ("search",),
}

# Known edges left out of the cycle check, each one a cycle somebody else is fixing. An
# entry is (importer, imported); the test fails once the edge is gone, so the entry is
# removed with the fix.
ALLOWED_CYCLE_EDGES: set = set()


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, ROOT)[:-len(".py")].split(os.sep)
    if rel[-1] == "__init__":
        rel = rel[:-1]
    return ".".join(rel)


def _project_modules() -> dict:
    """{module name: file path} of every .py module in the packages."""
    modules = {}
    for package in PACKAGES:
        for directory, dirs, files in os.walk(os.path.join(ROOT, package)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    modules[_module_name(path)] = path
    return modules


def _known(name: str, modules) -> str | None:
    """`name`, or its longest prefix that is a project module; None outside the project."""
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def _imports(module: str, path: str, modules) -> dict:
    """{imported project module: first line importing it} of one module's source."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    is_package = os.path.basename(path) == "__init__.py"
    found: dict = {}

    def add(target, line):
        if target is not None and target != module:
            found.setdefault(target, line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(_known(alias.name, modules), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, `level - 1` up
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                full = f"{source}.{alias.name}"
                add(full if full in modules else _known(source, modules), node.lineno)
    return found


def import_graph() -> tuple[dict, dict]:
    """({module: sorted imported modules}, {(importer, imported): line}) of the project."""
    modules = _project_modules()
    graph, lines = {}, {}
    for module, path in modules.items():
        edges = _imports(module, path, modules)
        graph[module] = sorted(edges)
        for target, line in edges.items():
            lines[(module, target)] = line
    return graph, lines


def _strongly_connected(graph) -> list:
    """Tarjan's components (iterative), each a sorted list of modules."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
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
                    work.append((child, iter(graph.get(child, ()))))
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
                    components.append(sorted(component))
    return components


def _shortest_path(graph, start, goal, allowed) -> list:
    """Shortest start .. goal path through modules in `allowed` (breadth first)."""
    previous = {start: None}
    queue = collections.deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = []
            while node is not None:
                path.append(node)
                node = previous[node]
            return path[::-1]
        for child in graph.get(node, ()):
            if child in allowed and child not in previous:
                previous[child] = node
                queue.append(child)
    return []


def find_cycles(graph) -> list:
    """Import cycles as module chains [a, b, ..., a]: for every edge inside a strongly
    connected component, the shortest cycle through it (each cycle once)."""
    cycles, seen = [], set()
    for component in _strongly_connected(graph):
        members = set(component)
        if len(component) == 1 and component[0] not in graph.get(component[0], ()):
            continue
        for source in component:
            for target in graph[source]:
                if target not in members:
                    continue
                chain = [source] + _shortest_path(graph, target, source, members)
                ring = chain[:-1]
                first = ring.index(min(ring))
                key = tuple(ring[first:] + ring[:first])
                if key not in seen:
                    seen.add(key)
                    cycles.append(list(key) + [key[0]])
    return cycles


def _describe(chain, lines) -> str:
    return " -> ".join(
        f"{a} (line {lines[(a, b)]})" for a, b in zip(chain, chain[1:])) + f" -> {chain[-1]}"


@pytest.fixture(scope="module")
def graph_and_lines():
    return import_graph()


def test_the_graph_sees_every_package(graph_and_lines):
    graph, lines = graph_and_lines
    for package in PACKAGES:
        assert package in graph
    # edges the graph must find: a function-level import and a `from pkg import module`
    assert ("export.tflite", "export.detector") in lines
    assert ("export.tflite", "mnas_tf.console") in lines


def test_no_import_cycles(graph_and_lines):
    graph, lines = graph_and_lines
    pruned = {m: [t for t in targets if (m, t) not in ALLOWED_CYCLE_EDGES]
              for m, targets in graph.items()}
    cycles = find_cycles(pruned)
    assert not cycles, "import cycles (each 'a (line N) -> b': a imports b at line N):\n" + \
        "\n".join("  " + _describe(c, lines) for c in cycles)


def test_allowed_cycle_edges_still_exist(graph_and_lines):
    _, lines = graph_and_lines
    gone = sorted(ALLOWED_CYCLE_EDGES - set(lines))
    assert not gone, f"these allow-listed edges no longer exist; remove them: {gone}"


def test_layering(graph_and_lines):
    _, lines = graph_and_lines
    broken = [f"{a} imports {b} (line {line})" for (a, b), line in sorted(lines.items())
              if b.split(".")[0] in FORBIDDEN.get(a.split(".")[0], ())]
    assert not broken, "layering broken (" + "; ".join(
        f"{k} must not import {', '.join(v)}" for k, v in FORBIDDEN.items()) + "):\n" + \
        "\n".join("  " + b for b in broken)


def test_cycle_finder_reports_chains():
    graph = {"a": ["b"], "b": ["c", "a"], "c": ["a"], "d": ["d"], "e": ["a"]}
    assert sorted(find_cycles(graph)) == [["a", "b", "a"], ["a", "b", "c", "a"],
                                          ["d", "d"]]
