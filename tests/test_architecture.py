"""The house's shape, kept by the suite: imports point one way
(docs/architecture.md), the proxy's runtime stays off the ORM, and files and
functions stay small enough to read.

import-linter's contracts live in pyproject.toml (`make check` runs them
too); the cycle checks use grimp, the graph builder import-linter runs on.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
APPS = ("portal", "accounts", "catalog", "usage", "apiproxy", "chat", "ops")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _is_production(module: str) -> bool:
    parts = module.split(".")
    return "tests" not in parts and "migrations" not in parts


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*APPS, cache_dir=None)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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

    for node in list(edges):
        if node not in index:
            visit(node)
    return found


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_no_two_apps_import_each_other() -> None:
    graph = _graph()
    edges: dict[str, set[str]] = {app: set() for app in APPS}
    for module in graph.modules:
        if not _is_production(module):
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            source, target = module.split(".")[0], imported.split(".")[0]
            if source != target and _is_production(imported):
                edges[source].add(target)
    # portal is two layers: infrastructure at the bottom, wiring at the top;
    # the layers contract keeps those apart, so only the apps are checked here.
    edges.pop("portal")
    for targets in edges.values():
        targets.discard("portal")
    assert _cycles(edges) == []


def test_no_module_of_the_proxy_runtime_takes_part_in_a_cycle() -> None:
    graph = _graph()
    runtime = {m for m in graph.find_descendants("apiproxy") if _is_production(m)}
    edges = {
        module: {
            imported
            for imported in graph.find_modules_directly_imported_by(module)
            if imported in runtime
        }
        for module in runtime
    }
    assert _cycles(edges) == []


def _production_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [
        ROOT / name
        for name in listed
        if not name.startswith(("tests/", "bench/"))
        and "/tests/" not in name
        and "/migrations/" not in name
        and (ROOT / name).exists()
    ]


def test_no_file_outside_tests_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in _production_files()
        if (n := len(path.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert long == {}


def test_no_function_outside_tests_is_over_60_lines() -> None:
    long = []
    for path in _production_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > MAX_FUNCTION_LINES:
                    name = path.relative_to(ROOT)
                    long.append(f"{name}:{node.lineno} {node.name} ({lines})")
    assert long == []
