"""The package's shape, checked from the source text alone (pure ``ast``: nothing of asrquant is imported).

* one folder per model family under ``src/asrquant/models/``, each with the same role-named files;
* ``src/asrquant/families.py`` is the only place outside those folders that knows family names;
* the family folders' ``__init__.py`` files stay empty, so the torch-free paths stay torch-free;
* no import cycles between modules of the package, and no imports from one family folder of another.
"""

from __future__ import annotations

import ast
from collections import defaultdict, deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from asrquant import families

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = "asrquant"

# Family name (as configs and manifests spell it) -> its folder under src/asrquant/models/, and
# the role files every family folder has (models/<folder>/<role>.py), as asrquant.families says
# (torch-free: importing it loads no family).
FAMILIES = {f.name: f.package for f in families.FAMILIES.values()}
ROLES = families.ROLES
# The one module outside the family folders that may branch on a family.
FAMILY_SWITCH = f"{PACKAGE}.families"
# Helpers named after a family (is_whisper..., is_qwen3_asr...) are family branches too.
FAMILY_HELPERS = tuple(f"is_{folder}" for folder in FAMILIES.values())


# --- reading the package ----------------------------------------------------------------------------


@lru_cache(maxsize=None)
def modules() -> dict[str, Path]:
    """Dotted name -> file for every module of the package.

    A package's name maps to its ``__init__.py``: that is the file Python runs when the package is imported.
    """
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


@lru_cache(maxsize=None)
def parse(name: str) -> ast.Module:
    return ast.parse(modules()[name].read_text(encoding="utf-8"), filename=str(modules()[name]))


def rel(path: Path) -> str:
    """A path as the developer types it from the repository root."""
    return path.relative_to(REPO).as_posix()


def family_folder(name: str) -> str | None:
    """The family folder a module lives in (``asrquant.models.<folder>...``), or None."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[:2] == [PACKAGE, "models"]:
        package = ".".join(parts[:3])
        if package in modules() and modules()[package].name == "__init__.py":
            return parts[2]
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_statements(nodes, scope: str = "", lazy: bool = False):
    """Yield (statement, scope, lazy) for every import among ``nodes`` and below them that can run.

    Imports inside functions and methods count: they run later, but they still tie the two modules
    together (and a lazy import is how a cycle hides). Imports under ``if TYPE_CHECKING:`` are
    skipped: that block never runs, so it creates no dependency at run time (its ``else:`` does run).
    """
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, scope, lazy
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from import_statements(node.orelse, scope, lazy)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            inner = f"{scope}.{node.name}" if scope else node.name
            is_function = not isinstance(node, ast.ClassDef)  # a class body runs at import time
            yield from import_statements(ast.iter_child_nodes(node), inner, lazy or is_function)
        else:
            yield from import_statements(ast.iter_child_nodes(node), scope, lazy)


def imported_names(stmt: ast.Import | ast.ImportFrom, importer: str) -> list[str]:
    """The dotted names one import statement loads, resolved the way the import system does.

    ``from a.b import c`` loads ``a.b.c`` when that is a module of the package, else it reads the
    name ``c`` from ``a.b``. Relative imports count from the importer's package (``pkg/__init__.py``
    is the package itself, so ``from . import x`` there means ``pkg.x``).
    """
    if isinstance(stmt, ast.Import):
        return [alias.name for alias in stmt.names]
    if stmt.level:
        package = importer if modules()[importer].name == "__init__.py" else importer.rpartition(".")[0]
        parts = package.split(".")
        parts = parts[:len(parts) - (stmt.level - 1)]
        base = ".".join(parts + ([stmt.module] if stmt.module else []))
    else:
        base = stmt.module or ""
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base for alias in stmt.names]


def resolve(name: str) -> str | None:
    """The package module a dotted name lands in: the longest prefix that is a module, None outside."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    parts = name.split(".")
    while parts and ".".join(parts) not in modules():
        parts.pop()
    return ".".join(parts) or None


@dataclass(frozen=True)
class Edge:
    """One reason ``src`` imports ``dst``: an import statement, or the ``__init__`` an import runs."""
    src: str
    dst: str
    file: Path
    line: int
    scope: str  # the function/class the import sits in, "" at module level
    lazy: bool  # inside a function: runs when called, not when the module is imported
    via: str | None = None  # implicit edge to a package __init__: the submodule whose import runs it

    def where(self) -> str:
        text = f"{rel(self.file)}:{self.line}"
        if self.scope:
            text += f"  (in {self.scope}{', lazy' if self.lazy else ''})"
        if self.via:
            text += f"  [implicit: importing {self.via} runs {rel(modules()[self.dst])}]"
        return text


@lru_cache(maxsize=None)
def edges() -> tuple[Edge, ...]:
    """Every import edge between modules of the package, explicit and implicit.

    Importing ``asrquant.x.y`` first runs ``asrquant/__init__.py`` and ``asrquant/x/__init__.py``, so
    the importer also depends on those ``__init__`` modules: a cycle can run through them. The
    ``__init__`` of a package that contains the importer is left out of the implicit edges: it has
    already started before the importer runs, so importing a sibling does not run it again.
    """
    found = []
    for name, path in modules().items():
        for stmt, scope, lazy in import_statements(parse(name).body):
            for target in filter(None, map(resolve, imported_names(stmt, name))):
                if target != name:
                    found.append(Edge(name, target, path, stmt.lineno, scope, lazy))
                parts = target.split(".")
                for i in range(1, len(parts)):
                    parent = ".".join(parts[:i])
                    encloses_importer = name == parent or name.startswith(parent + ".")
                    if parent in modules() and not encloses_importer:
                        found.append(Edge(name, parent, path, stmt.lineno, scope, lazy, via=target))
    return tuple(dict.fromkeys(found))  # ``from m import a, b`` is one edge, not two


# --- cycles -----------------------------------------------------------------------------------------


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, those of more than one module (each is a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def shortest_path(graph: dict[str, set[str]], start: str, goal: str, within: set[str]) -> list[str]:
    """Breadth-first path start -> goal using only modules of one component (there always is one)."""
    previous = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            break
        for nxt in sorted(graph[node] & within):
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    path = [goal]
    while path[-1] != start:
        path.append(previous[path[-1]])
    return path[::-1]


def cycles_covering(graph: dict[str, set[str]], group: list[str]) -> list[list[str]]:
    """Short cycles that together use every edge inside one component.

    One cycle per component would hide the rest until it is fixed; every edge of the component lies
    on some cycle, so listing a short cycle through each edge shows all the imports to rethink.
    """
    members = set(group)
    covered: set[tuple[str, str]] = set()
    cycles = []
    for src in group:
        for dst in sorted(graph[src] & members):
            if (src, dst) not in covered:
                cycle = [src] + shortest_path(graph, dst, src, members)
                covered.update(zip(cycle, cycle[1:]))
                cycles.append(cycle)
    return cycles


def test_no_import_cycles():
    by_pair: dict[tuple[str, str], list[Edge]] = defaultdict(list)
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for edge in edges():
        by_pair[edge.src, edge.dst].append(edge)
        graph[edge.src].add(edge.dst)

    report = []
    groups = strongly_connected(graph)
    for number, group in enumerate(groups, 1):
        for cycle in cycles_covering(graph, group):
            lines = [f"cycle {len(report) + 1} (group {number}): " + " -> ".join(cycle)]
            for src, dst in zip(cycle, cycle[1:]):
                lines.append(f"    {src} -> {dst}")
                lines.extend(f"        {edge.where()}" for edge in by_pair[src, dst])
            report.append("\n".join(lines))
    assert not report, (
        f"{len(report)} import cycle(s) in {len(groups)} group(s) of mutually importing modules; "
        "break one edge of each cycle:\n\n" + "\n\n".join(report))


# --- family folders ---------------------------------------------------------------------------------


def test_no_cross_family_imports():
    bad = [f"{edge.where()}: {edge.src} imports {edge.dst}"
           for edge in sorted(edges(), key=lambda edge: (edge.file, edge.line))
           if edge.via is None  # the implicit __init__ edges repeat an explicit one
           and family_folder(edge.src) and family_folder(edge.dst)
           and family_folder(edge.src) != family_folder(edge.dst)]
    assert not bad, (f"{len(bad)} import(s) from one family folder of another; move the shared code out "
                     "of the family folders, or dispatch through families.py:\n  " + "\n  ".join(bad))


def test_family_init_files_are_empty():
    bad = [f"{rel(path)}: {path.read_text(encoding='utf-8').strip().splitlines()[0]!r}..."
           for path in sorted((SRC / PACKAGE / "models").glob("*/__init__.py"))
           if path.read_text(encoding="utf-8").strip()]
    assert not bad, ("family folder __init__.py files must stay empty (importing one role module must "
                     "not run the others):\n  " + "\n  ".join(bad))


def _names_a_family(node: ast.expr) -> bool:
    """A string constant that is a family name, or a tuple/list/set of them (``in ("whisper", ...)``)."""
    if isinstance(node, ast.Constant):
        return node.value in FAMILIES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_names_a_family(item) for item in node.elts)
    return False


def _mentions_family(node: ast.expr) -> bool:
    return "family" in ast.unparse(node).lower()


def family_branches(name: str) -> list[tuple[int, str]]:
    """(line, what) for every family branch in one module.

    A branch is a comparison (or ``match``) of something family-ish (its source text says "family")
    with a family name, or any use of an ``is_<family>...`` helper: both decide by family outside
    families.py.
    """
    source = modules()[name].read_text(encoding="utf-8")
    found = set()
    for node in ast.walk(parse(name)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_names_a_family(a) and any(_mentions_family(b) for b in operands if b is not a)
                   for a in operands):
                found.add((node.lineno, " ".join(ast.get_source_segment(source, node).split())))
        elif isinstance(node, ast.Match) and _mentions_family(node.subject):
            for case in node.cases:
                if isinstance(case.pattern, ast.MatchValue) and _names_a_family(case.pattern.value):
                    found.add((case.pattern.lineno, f"match {ast.unparse(node.subject)}: "
                                                    f"case {ast.unparse(case.pattern.value)}"))
        texts = []
        if isinstance(node, ast.Name):
            texts = [node.id]
        elif isinstance(node, ast.Attribute):
            texts = [node.attr]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            texts = [node.name]
        elif isinstance(node, ast.alias):
            texts = [node.name.rpartition(".")[2]]
        for text in texts:
            if any(helper in text for helper in FAMILY_HELPERS):
                found.add((node.lineno, f"uses {text}"))
    return sorted(found)


def test_no_family_branches_outside_family_folders():
    bad = [f"{rel(modules()[name])}:{line}: {what}"
           for name in sorted(modules())
           if name != FAMILY_SWITCH and family_folder(name) is None
           for line, what in family_branches(name)]
    assert not bad, (f"{len(bad)} family branch(es) outside {FAMILY_SWITCH} and the family folders; "
                     "ask families.py (or call the family's role module) instead:\n  " + "\n  ".join(bad))


def test_family_folders_have_the_same_role_files():
    folders = {folder: SRC / PACKAGE / "models" / folder for folder in FAMILIES.values()}
    missing = [f"{rel(path)}/ is missing (no such family folder)" for path in folders.values()
               if not path.is_dir()]
    # Every role some family folder has (whisper's, and any other's) must be in every family folder.
    present = [role for role in ROLES if any((path / f"{role}.py").is_file() for path in folders.values())]
    for role in present:
        having = [folder for folder, path in folders.items() if (path / f"{role}.py").is_file()]
        missing += [f"{rel(path)}/{role}.py is missing ({', '.join(having)} has it)"
                    for folder, path in folders.items() if path.is_dir() and folder not in having]
    assert not missing, "family folders differ in their role files:\n  " + "\n  ".join(missing)
