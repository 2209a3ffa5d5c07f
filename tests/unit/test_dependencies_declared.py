"""Every third-party package a tree of the project imports is declared in pyproject.toml under the extra that
tree installs with (a package that arrives only as somebody else's dependency can vanish with their next
release, as cryptography once nearly did).

A short test on importlib.metadata rather than deptry: each tree here ships in its own image with only its
own extra (the gateway's image has nothing of the operator's), and deptry checks one set of dependencies
against the whole project; mapping trees to extras is what this needs, and it is twenty lines."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
BASE = "base"  # the [project] dependencies: what `pip install rerank-operator` and the operator image have

# What each tree may import, most specific path first. The gateway and UI images hold their extra alone.
ALLOWED = (
    ("operator/rerank_operator/serving/tiny_model.py", (BASE, "engine")),  # builds test models with torch
    ("operator/", (BASE,)),
    ("gateway/", ("gateway",)),
    ("ui/", ("ui",)),
    ("localdev/", (BASE, "localdev")),
    ("bench/", (BASE, "bench")),
    ("tests/", (BASE, *EXTRAS)),
)
SOURCE_TREES = ("operator", "gateway", "ui", "localdev", "bench", "tests")


def declared(extra: str) -> set[str]:
    requirements = PYPROJECT["project"]["dependencies"] if extra == BASE else EXTRAS[extra]
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def local_modules() -> set[str]:
    """Modules of the project's own: packages and scripts anywhere in its trees (tests put some on sys.path)."""
    names = set()
    for tree in SOURCE_TREES:
        for path in (REPO / tree).rglob("*.py"):
            names.add(path.stem)
            names.update(p.name for p in path.relative_to(REPO).parents)
    return names


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def third_party_imports() -> dict[str, set[str]]:
    """{path relative to the repository: top-level modules it imports that neither Python nor the project has}"""
    own = local_modules() | set(sys.stdlib_module_names) | {"__future__"}
    found = {}
    for tree in SOURCE_TREES:
        for path in sorted((REPO / tree).rglob("*.py")):
            modules = {m for m in imported_modules(path) if m not in own and not m.startswith("_")}
            if modules:
                found[str(path.relative_to(REPO))] = modules
    return found


def allowed_extras(relative: str) -> tuple[str, ...]:
    return next(extras for prefix, extras in ALLOWED if relative.startswith(prefix))


def undeclared_imports() -> list[str]:
    distributions = importlib.metadata.packages_distributions()
    problems = []
    for relative, modules in third_party_imports().items():
        extras = allowed_extras(relative)
        allowed = set().union(*(declared(e) for e in extras))
        for module in sorted(modules):
            dists = {canonicalize_name(d) for d in distributions.get(module, [])}
            if not dists:
                problems.append(f"{relative} imports {module}, which no installed distribution provides")
            elif not dists & allowed:
                problems.append(f"{relative} imports {module} ({', '.join(sorted(dists))}), which pyproject.toml "
                                f"does not declare under {' or '.join(f'[{e}]' for e in extras)}")
    return problems


def test_every_imported_package_is_declared_under_the_extra_that_uses_it():
    assert undeclared_imports() == []


def test_the_check_names_the_module_and_the_file(monkeypatch: pytest.MonkeyPatch):
    """The check itself: the gateway importing kubernetes (the operator's, not in the gateway's image) fails."""
    real = third_party_imports()
    monkeypatch.setattr(sys.modules[__name__], "third_party_imports",
                        lambda: {**real, "gateway/rerank_gateway/app.py": {"kubernetes"}})
    assert undeclared_imports() == [
        "gateway/rerank_gateway/app.py imports kubernetes (kubernetes), which pyproject.toml does not declare "
        "under [gateway]"]


def test_every_tree_of_the_project_is_checked():
    python_trees = {p.relative_to(REPO).parts[0] for p in REPO.glob("*/**/*.py")
                    if not p.relative_to(REPO).parts[0].startswith(".")}
    assert python_trees <= set(SOURCE_TREES)
