"""Facts the project states once: a second copy drifts from the first without any test noticing.

The default instruction is the prompt (Qwen3-Reranker scores worse, silently, under any other wording): the
operator's home for it is ``serving/prompt.py``. The UI ships in its own image without the operator's
package, so it keeps a copy, and only here do the two meet."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from rerank_operator.api import v1alpha1
from rerank_operator.serving import prompt
from rerank_ui import config as ui_config

REPO = Path(__file__).resolve().parents[2]
PRODUCT_TREES = ("operator", "gateway", "ui", "localdev")
INSTRUCTION_HOMES = {"operator/rerank_operator/serving/prompt.py", "ui/rerank_ui/config.py"}


def python_files(*trees: str) -> list[Path]:
    return sorted(path for tree in trees for path in (REPO / tree).rglob("*.py"))


def test_the_ui_prefills_the_operators_default_instruction():
    assert ui_config.DEFAULT_INSTRUCTION == prompt.DEFAULT_INSTRUCTION
    assert ui_config.Settings().default_instruction == prompt.DEFAULT_INSTRUCTION
    assert v1alpha1.DEFAULT_INSTRUCTION is prompt.DEFAULT_INSTRUCTION


def test_the_default_instruction_is_written_in_its_two_homes_only():
    written = {
        str(path.relative_to(REPO)): path.read_text().count(prompt.DEFAULT_INSTRUCTION)
        for path in python_files(*PRODUCT_TREES)
    }
    assert {path: count for path, count in written.items() if count} == dict.fromkeys(INSTRUCTION_HOMES, 1)


def test_the_spec_resolves_the_instruction_as_the_prompt_does():
    for instruction in (None, "Find the clause that answers the question"):
        spec = v1alpha1.parse_spec({} if instruction is None else {"instruction": instruction})
        assert spec.effective_instruction == prompt.effective_instruction(instruction)


def test_no_two_operator_modules_define_a_function_of_the_same_name():
    # Two functions of one name (two `engine_env`s once) leave a reader to guess which one a call reaches.
    defined = defaultdict(list)
    for path in python_files("operator"):
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                defined[node.name].append(str(path.relative_to(REPO)))
    assert {name: paths for name, paths in defined.items() if len(paths) > 1} == {}
