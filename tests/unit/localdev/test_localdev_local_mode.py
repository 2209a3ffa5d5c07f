"""Local mode's fixed inputs agree with each other: the sample RerankerDeployment is a valid
spec, asks for the claim and directory local mode offers, and needs no GPU; and its flags."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

import rerank_operator
from rerank_operator.api.v1alpha1 import parse_spec
from rerank_localdev import local_mode, local_stack


def test_the_sample_is_valid_and_matches_what_local_mode_offers():
    sample = yaml.safe_load(local_stack.SAMPLE.read_text())
    spec = parse_spec(sample["spec"])
    assert spec.model.pvc is not None
    assert spec.model.pvc.claim_name == local_stack.MODEL_CLAIM
    assert spec.model.pvc.path == local_stack.MODEL_DIR_NAME
    # A CPU engine: it runs on any node, the simulated GPU node only shows GPU scheduling.
    assert spec.engine.device == "cpu" and spec.engine.gpus == 0
    assert any(not n.get("gpus") for n in local_stack.NODES)
    assert spec.ui.enabled


@pytest.mark.parametrize(("argv", "smoke"), [([], False), (["--smoke"], True)])
def test_flags(argv, smoke):
    args = local_mode.parse_args(argv + ["--port", "18000", "--ui-port", "17860"])
    assert (args.smoke, args.port, args.ui_port) == (smoke, 18000, 17860)


def test_smoke_and_keep_running_exclude_each_other():
    with pytest.raises(SystemExit):
        local_mode.parse_args(["--smoke", "--keep-running"])


def _imported_modules(path: Path, package: str) -> set[str]:
    """The modules ``path`` imports, its relative imports (one level) read as modules of ``package``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = f"{package}." if node.level else ""
            found.update([f"{base}{node.module}"] if node.module else [f"{base}{alias.name}" for alias in node.names])
    return found


def test_the_operator_imports_nothing_of_the_development_tooling():
    operator = Path(rerank_operator.__file__).parent
    importers = {str(path.relative_to(operator)) for path in operator.rglob("*.py")
                 if any(m.split(".")[0] == "rerank_localdev" for m in _imported_modules(path, "rerank_operator"))}
    assert importers == set()


def test_the_stack_imports_neither_entry_point_nor_real_node():
    # local_mode chooses and runs a stack; real_local builds on local_stack; local_stack knows neither.
    localdev = Path(local_stack.__file__).parent
    stack = _imported_modules(localdev / "local_stack.py", "rerank_localdev")
    assert not {"rerank_localdev.local_mode", "rerank_localdev.real_local"} & stack
    assert "rerank_localdev.local_mode" not in _imported_modules(localdev / "real_local.py", "rerank_localdev")
