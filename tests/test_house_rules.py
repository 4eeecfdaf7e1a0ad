"""The house rules, checked from source: no import cycles, the sweep never reaches into the run,
and no module grows past 400 lines of code.

Read from the source with `ast` and `tokenize`, not from `sys.modules`, so that lazy imports
inside functions count as much as those at the top. Imports under `if TYPE_CHECKING:` do not:
they exist only for the type checker, never at run time.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "linesweep"
MOST_CODE_LINES = 400


def module_files() -> dict[str, Path]:
    files = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _run_time_nodes(tree: ast.AST):
    """Every node of `tree` except those inside `if TYPE_CHECKING:` blocks."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        todo.extend(
            child for child in ast.iter_child_nodes(node) if not _is_type_checking_block(child)
        )


def _resolve(name: str, node: ast.ImportFrom, files: dict[str, Path]) -> str:
    """The absolute module a (possibly relative) `from ... import` names."""
    if node.level == 0:
        return node.module or ""
    package = name.split(".") if files[name].name == "__init__.py" else name.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """Each linesweep module -> the linesweep modules it imports at run time, anywhere in it."""
    files = module_files()
    graph = {}
    for name, path in files.items():
        imported = set()
        for node in _run_time_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                module = _resolve(name, node, files)
                for alias in node.names:  # `from linesweep.run import task`: a module
                    full = f"{module}.{alias.name}"
                    imported.add(full if full in files else module)
        graph[name] = {m for m in imported if m in files and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def reached(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for module in graph[todo.pop()] - seen:
            seen.add(module)
            todo.append(module)
    return seen


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    docstring_lines = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = body[0] if body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docstring_lines |= set(range(first.lineno, first.end_lineno + 1))
    lines = set()
    skipped = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skipped and token.type != tokenize.ENDMARKER:
            lines |= set(range(token.start[0], token.end[0] + 1))
    return len(lines - docstring_lines)


def test_the_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert len(graph) > 80
    assert "linesweep.run.pipeline" in graph["linesweep.run.batch"]  # a sanity anchor


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_a_cycle_would_be_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_sweep_imports_nothing_from_the_run():
    """The sweeper knows only Hydra's JobReturn; the run is reached through a config-named task."""
    graph = import_graph()
    sweep = [m for m in graph if m.startswith("linesweep.sweep")]
    assert len(sweep) > 10
    crossing = {
        module: sorted(m for m in reached(graph, module) if m.startswith("linesweep.run"))
        for module in sweep
    }
    assert {module: found for module, found in crossing.items() if found} == {}


def test_core_imports_only_core():
    graph = import_graph()
    leaving = {
        module: sorted(m for m in graph[module] if not m.startswith("linesweep.core"))
        for module in graph
        if module.startswith("linesweep.core")
    }
    assert {module: found for module, found in leaving.items() if found} == {}


def test_no_module_has_more_than_400_lines_of_code():
    sizes = {name: code_lines(path.read_text()) for name, path in module_files().items()}
    assert max(sizes.values()) > 100  # counting works
    assert {name: n for name, n in sizes.items() if n > MOST_CODE_LINES} == {}


def test_code_lines_leave_out_docstrings_comments_and_blanks():
    source = '"""Module.\n\nMore."""\n\n# a comment\ndef f():\n    """Doc."""\n    return 1  # x\n'
    assert code_lines(source) == 2


def test_status_words_are_written_only_in_core_status():
    """Every status a run or a sweep writes or shows is a `Status` member: a string literal
    that is exactly one of their values, anywhere else in the package, is a second vocabulary."""
    from linesweep.core.status import Status

    words = {s.value for s in Status}
    found = {}
    for name, path in module_files().items():
        if name == "linesweep.core.status":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        literals = [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in words and id(node) not in docstrings
        ]
        if literals:
            found[name] = sorted(set(literals))
    assert found == {}


def module_map() -> dict[str, set[str]]:
    """docs/internals.md's module map: each package's folder -> the files its table names."""
    named: dict[str, set[str]] = {}
    folder = None
    for line in (ROOT / "docs" / "internals.md").read_text().splitlines():
        if line.startswith("### "):
            folder = line.removeprefix("### ").split(":")[0].strip("`")
        elif folder and line.startswith("| `"):
            named.setdefault(folder, set()).add(line.split("`")[1])
    return named


def test_the_module_map_names_every_module_and_only_those():
    """A newcomer finds every module in docs/internals.md, each with what it is for."""
    files: dict[str, set[str]] = {}
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "hydra_plugins").rglob("*.py")]:
        folder = str(path.parent.relative_to(ROOT)) + "/"
        if folder != "linesweep/conf/":  # the configs' package (a link to conf/ in a checkout)
            files.setdefault(folder, set()).add(path.name)
    named = module_map()
    assert "linesweep/sweep/" in named and "trial_server.py" in files["linesweep/sweep/"]
    unnamed = {f: sorted(names - named.get(f, set())) for f, names in files.items()}
    gone = {f: sorted(names - files.get(f, set())) for f, names in named.items()}
    assert {f: names for f, names in unnamed.items() if names} == {}
    assert {f: names for f, names in gone.items() if names} == {}
