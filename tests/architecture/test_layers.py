"""The rooms import downward only, and no two modules import each other.

Data flows events -> streaming -> batch (dbt, orchestration) -> ml / analytics -> dashboards. Code imports go
down this ladder (a room may import any room below it, never one above or beside it):

    ecom           the front door: CLI, demo (assembles every room's commands)
    bench          every benchmark
    orchestration  Dagster: assembles every room's assets, runs dbt
    expectations   Great Expectations suites and runner   |  dashboards  dashboard specs, Metabase provisioning
    analytics      RFM, cohorts, lifetime value, recommendations
    streaming      speed layer + batch landing (scores with ml's features and registered model)
    ml             THE feature definition, the model, training, the registry
    events         contract, simulator, producer, replay
    stack          the local services' launcher
    kernel         settings, errors, db, spark session, stats

The feature definition sits below the stream because the stream scores with it; the stream may use what
scores (features, model, registry, explain, data loaders) and never what trains (`ml.train`, `ml.bootstrap`).
Pure AST: nothing is imported to check it, and every `import` counts, also inside a function.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from kernel.settings import REPO_ROOT

LADDER: list[set[str]] = [
    {"kernel"},
    {"stack"},
    {"events"},
    {"ml"},
    {"streaming"},
    {"analytics"},
    {"expectations", "dashboards"},
    {"orchestration"},
    {"bench"},
    {"ecom"},
]
RANK = {room: i for i, rooms in enumerate(LADDER) for room in rooms}
# modules a lower room may not import even though their room is below it
FORBIDDEN = {"streaming": ("ml.train", "ml.bootstrap")}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every absolute module name `source` imports (relative imports resolved against `module`)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            out.add(target)
            out.update(f"{target}.{alias.name}" for alias in node.names)
    return out


def violations(graph: dict[str, set[str]]) -> list[str]:
    """`a -> b` for every import of a higher (or sibling) room, or of a module FORBIDDEN to `a`'s room."""
    found = []
    for module, targets in sorted(graph.items()):
        room = module.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if other not in RANK or other == room:
                continue
            if RANK[other] >= RANK[room]:
                found.append(f"{module} -> {target} ({room} may not import {other})")
            elif any(target == f or target.startswith(f + ".") for f in FORBIDDEN.get(room, ())):
                found.append(f"{module} -> {target} ({room} may not import what trains)")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of project modules that import each other, directly or round a loop (Tarjan's SCC)."""
    nodes = set(graph)
    edges = {m: {t for t in graph[m] if t in nodes and t != m} for m in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def project_graph(root: Path = REPO_ROOT) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for room in RANK:
        for path in sorted((root / room).rglob("*.py")):
            name = module_name(path, root)
            found = imports_of(path.read_text(), name, path.name == "__init__.py")
            # `from ml import registry` names the module ml.registry, not the package ml
            graph[name] |= {t for t in found if t != name}
    return graph


def test_every_room_is_on_the_ladder():
    rooms = {p.parent.name for p in REPO_ROOT.glob("*/__init__.py")} - {"tests"}
    assert rooms == set(RANK), f"a Python room is missing from (or extra in) the ladder: {rooms ^ set(RANK)}"


def test_no_room_imports_a_higher_one():
    assert violations(project_graph()) == []


def test_no_two_modules_import_each_other():
    graph = project_graph()
    # a package's __init__ importing its own submodules is not a loop a reader has to untangle
    pruned = {
        m: {t for t in ts if not m.startswith(t + ".") and not t.startswith(m + ".")}
        for m, ts in graph.items()
    }
    assert cycles(pruned) == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("streaming.speed.scoring", "from ml.bootstrap import ensure_bootstrap_champion", 1),
        ("streaming.speed.scoring", "def f():\n    from ml import train", 1),
        ("ml.data", "from streaming.landing.master import insert_master_rows", 1),
        ("events.replay", "import orchestration.batch", 1),
        ("expectations.suites", "from dashboards.spec import load_specs", 1),
        ("streaming.speed.scoring", "from ml.features import history_context", 0),
        ("bench.stream", "from streaming.speed.query import StreamConfig", 0),
        ("kernel.db", "import psycopg", 0),
    ],
)
def test_the_checker_sees_an_upward_import(module, source, expected):
    """The checks above would fail on these (the test of the test: an upward import is reported)."""
    graph = {module: imports_of(source, module)}
    assert bool(violations(graph)) == bool(expected)


def test_the_checker_sees_a_loop():
    graph = {"ml.registry": {"ml.train"}, "ml.train": {"ml.registry"}, "ml.model": set()}
    assert cycles(graph) == [["ml.registry", "ml.train"]]
