"""compare reads what runs and sweeps wrote, and imports neither: its import graph, from source.

Every import counts, the lazy ones inside functions too (ast, not `sys.modules`): compare used to
rebuild models from weights through seven lazy `linesweep.run` imports, and to ask
`linesweep.sweep.results` for trial states.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOUNDARY = ("linesweep.run", "linesweep.sweep")


def import_graph() -> dict[str, set[str]]:
    """Each linesweep module -> the linesweep modules its source imports, anywhere in it."""
    files = {}
    for path in sorted((ROOT / "linesweep").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in files.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:  # `from linesweep.compare import plots`: a module
                    full = f"{node.module}.{alias.name}"
                    imported.add(full if full in files else node.module)
        graph[name] = {m for m in imported if m in files and m != name}
    return graph


def reached(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for module in graph[todo.pop()] - seen:
            seen.add(module)
            todo.append(module)
    return seen


def test_compare_imports_nothing_from_the_run_or_the_sweep():
    graph = import_graph()
    compare = [m for m in graph if m.startswith("linesweep.compare")]
    assert len(compare) > 20 and "linesweep.draw" in graph
    crossing = {
        module: sorted(m for m in reached(graph, module) if m.startswith(BOUNDARY))
        for module in compare
    }
    assert {module: found for module, found in crossing.items() if found} == {}
    assert "linesweep.run.drawing" in reached(graph, "linesweep.draw")  # the run draws


def test_compares_modules_import_no_cycle():
    graph = import_graph()
    for module in (m for m in graph if m.startswith("linesweep.compare")):
        assert module not in reached(graph, module), module


def test_no_linesweep_module_imports_itself_through_others():
    """Not even for a type: the answer's records sit below both its computation and its words
    (linesweep/core/answer_model.py), so neither imports the other for them."""
    graph = import_graph()
    assert [module for module in sorted(graph) if module in reached(graph, module)] == []
