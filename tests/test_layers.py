"""The package's shape: no import cycles, and dependencies that point one way.

cli -> api -> {training, tasks} -> {models, data} -> {io, errors}. Imports inside functions count
too: a lazy import only hides a cycle from the interpreter, not from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "aekit"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The aekit modules a file imports (``from aekit.x import y`` counts as aekit.x.y when that is a module)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("aekit")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aekit") and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            out |= subs or {node.module}
    return {m for m in out if m in known}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports_of(p, known) - {m} for m, p in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(g.get(m, ())):
            if state.get(n) == 1:
                return [*stack[stack.index(n):], n]
            if n not in state and (c := visit(n)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_no_import_cycles():
    g = graph()
    assert find_cycle(g) is None, " -> ".join(find_cycle(g) or [])


def test_dependencies_point_one_way():
    g = graph()
    api_users = sorted(m for m, deps in g.items() if "aekit.api" in deps)
    assert all(m.startswith(("aekit.cli", "aekit.serve")) or m in ("aekit", "aekit.report", "aekit.demo")
               for m in api_users), api_users
    below_training = [m for m in g if m.startswith(("aekit.models", "aekit.data", "aekit.tasks", "aekit.io",
                                                     "aekit.errors", "aekit.metrics", "aekit.plots"))]
    bad = {m: sorted(d for d in g[m] if d.startswith(("aekit.training", "aekit.api", "aekit.run", "aekit.cli")))
           for m in below_training}
    assert not any(bad.values()), {m: d for m, d in bad.items() if d}
    training_up = {m: sorted(d for d in g[m] if d.startswith(("aekit.api", "aekit.run", "aekit.cli")))
                   for m in g if m.startswith("aekit.training")}
    assert not any(training_up.values()), {m: d for m, d in training_up.items() if d}


def test_functions_are_short():
    """No function in src/aekit is longer than 80 lines (docstring included)."""
    long = []
    for m, p in modules().items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{m}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not long, long
