"""The API package's layout: one module per sub-spec, the mirrored core types in one, and no import cycle
among them (the top-level spec imports its parts; no part imports the top-level spec)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import rerank_operator.api

API = Path(rerank_operator.api.__file__).parent
# What builds on the top-level spec rather than being part of it.
ABOVE_THE_SPEC = {"__init__", "crd"}


def api_imports(path: Path) -> set[str]:
    """The modules of this package that ``path`` imports (relative imports only: the package's own style)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.update([node.module] if node.module else [alias.name for alias in node.names])
    return {name.split(".")[0] for name in found}


def test_no_part_of_the_spec_imports_the_top_level_spec():
    importers = {path.stem for path in API.glob("*.py") if "v1alpha1" in api_imports(path)}
    assert importers <= ABOVE_THE_SPEC


def test_the_api_modules_import_each_other_without_a_cycle():
    graph = {path.stem: api_imports(path) for path in API.glob("*.py")}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle among rerank_operator.api's modules: {exc.args[1]}") from None


def test_every_sub_spec_has_its_module():
    assert {"base", "core", "model", "engine", "autoscaling", "scheduling", "ui", "gateway", "status",
            "v1alpha1"} <= {path.stem for path in API.glob("*.py")}
