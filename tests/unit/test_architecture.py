"""The rules of coursehub's structure, checked so that they stay true.

- Every data-folder file name is spelled in coursehub.paths alone: everything else
  asks the Plan (`plan.paths`) or `layout_paths` for it.
- Code that runs inside JupyterHub (coursehub.hub, coursehub.lti) never imports a
  target: it asks the target's Host (coursehub.hosting).
- The pure modules (the Plan and what compares or renders it) import no target and
  no hub code either.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "coursehub"
PATHS_MODULE = SRC / "paths.py"

FILE_NAMES = (
    "plan.json", "ids.json", "runtime.json", "jupyterhub.sqlite", "jupyterhub_config.py",
    "lti-nonces.sqlite", "lti-course-creations.sqlite", "lti-outcomes.sqlite",
    "lti-people.json", "password-links.sqlite", "passwords.dbm", "gradebook-seen.json",
    "supervisor.json", "supervisor.lock", "apply.lock", "hub.pid", "gradebook.db",
    "submission_receipts.sqlite", "hub.log", "proxy.log", "coursehub.log", "lti-apply.log",
)  # fmt: skip
_NAME = re.compile("|".join(rf"(?<![\w.-]){re.escape(n)}(?![\w.-])" for n in FILE_NAMES))


def modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (prose about the files may name them)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def file_names_spelled(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    skip = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            out += [(node.lineno, m.group()) for m in _NAME.finditer(node.value)]
    return out


def test_the_check_finds_a_file_name_where_it_is_spelled(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text('"""plan.json in prose is fine."""\nX = f"{d}/state/plan.json"\n')
    assert file_names_spelled(sample) == [(2, "plan.json")]
    assert file_names_spelled(PATHS_MODULE)  # the module that owns them spells them all


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_data_folder_file_name_outside_the_paths_module(path):
    if path == PATHS_MODULE:
        return
    assert file_names_spelled(path) == [], (
        f"{path.relative_to(SRC)} spells a data-folder file name: ask plan.paths "
        "(coursehub.paths) instead"
    )


def _package_of(path: Path) -> str:
    """The package a module's relative imports start from (a package's own, for __init__)."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(("coursehub", *parts[:-1]))


def _lazy_nodes(tree: ast.AST) -> set[int]:
    """ids of the imports a plain `import` of the module never runs: those only a type
    checker reads (`if TYPE_CHECKING:`) and a package's lazy `__getattr__`."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        lazy = isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
        typing_only = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        if lazy or typing_only:
            skipped |= {id(n) for n in ast.walk(node)}
    return skipped


def imported_modules(path: Path, *, eager: bool = False) -> set[str]:
    """Every module `path` imports, absolute, at any level of the code (function-level
    imports included: they hide cycles, they do not remove them). `eager`: leave out
    what only a type checker or a lazy package `__getattr__` imports."""
    package = _package_of(path)
    tree = ast.parse(path.read_text())
    skipped = _lazy_nodes(tree) if eager else set()
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}
    return found


def test_the_import_check_resolves_relative_imports():
    apply = SRC / "targets" / "local" / "host.py"
    assert "coursehub.targets.local.runtime" in imported_modules(apply)
    assert "coursehub.hosting" in imported_modules(apply)


HUB_SIDE = [p for p in modules() if p.relative_to(SRC).parts[0] in ("hub", "lti")]
PURE = [SRC / n for n in ("plan.py", "paths.py", "plandiff.py", "hosting.py", "environment.py")]


@pytest.mark.parametrize("path", HUB_SIDE, ids=lambda p: str(p.relative_to(SRC)))
def test_code_inside_the_hub_imports_no_target(path):
    targets = sorted(m for m in imported_modules(path) if m.startswith("coursehub.targets"))
    assert targets == [], f"{path.relative_to(SRC)} imports {targets}: ask coursehub.hosting"


@pytest.mark.parametrize("path", PURE, ids=lambda p: p.name)
def test_pure_modules_import_no_target_and_no_hub_code(path):
    assert path.exists()
    bad = sorted(
        m
        for m in imported_modules(path)
        if m.startswith(("coursehub.targets", "coursehub.hub", "coursehub.lti", "jupyterhub"))
    )
    assert bad == []


def test_every_target_provides_a_host_for_its_layout():
    from importlib.metadata import entry_points

    from coursehub.hosting import HOSTS_GROUP, Host
    from coursehub.paths import LAYOUTS

    provided = {ep.name: ep.load() for ep in entry_points(group=HOSTS_GROUP)}
    assert set(provided) == set(LAYOUTS)
    wanted = {n for n in vars(Host) if not n.startswith("_")}
    for cls in provided.values():
        assert wanted <= set(vars(cls)), f"{cls.__name__} lacks {wanted - set(vars(cls))}"


def test_no_import_cycle_in_coursehub():
    """Function-level imports hide a cycle, they do not remove it: none at all."""
    names = {}
    for p in modules():
        parts = p.relative_to(SRC).with_suffix("").parts
        names[".".join(("coursehub", *(parts[:-1] if parts[-1] == "__init__" else parts)))] = p
    graph = {}
    for name, p in names.items():
        edges = set()
        for m in imported_modules(p, eager=True):
            while m and m not in names:
                m = m.rpartition(".")[0]
            if m and m != name:
                edges.add(m)
        graph[name] = edges

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            m = todo.pop()
            if m == goal:
                return True
            if m not in seen:
                seen.add(m)
                todo += graph[m]
        return False

    cycles = sorted(
        f"{a} -> {b}"
        for a in graph
        for b in graph[a]
        if not b.startswith(a + ".") and reaches(b, a)
    )
    assert cycles == []


def _imported_names(path: Path) -> list[tuple[int, str, str]]:
    """(line, module, name) of every `from coursehub... import name` in `path`."""
    package = _package_of(path)
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module == "coursehub" or module.startswith("coursehub."):
                out += [(node.lineno, module, a.name) for a in node.names]
    return out


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_every_name_imported_from_coursehub_exists(path):
    """Imports inside functions run only when the function does: a name moved elsewhere
    would fail at that moment, in front of a user. Each one is checked here."""
    import importlib

    missing = []
    for line, module, name in _imported_names(path):
        mod = importlib.import_module(module)
        if not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"line {line}: {module}.{name}")
    assert missing == []
