"""The troubleshooting page documents exactly the reasons the operator sets (rerank_operator.reasons), each under
its own heading that says which condition or event carries it; and no module writes a reason outside that list."""

from __future__ import annotations

import ast
import re

from rerank_operator import reasons
from tests.docs.manual import REPO, page

OPERATOR = REPO / "operator" / "rerank_operator"
# The kubelet's and the scheduler's own words, which the status reads from pods and passes on as its reason.
KUBERNETES_WORDS = {reasons.OOM_KILLED, reasons.CRASH_LOOP_BACK_OFF, reasons.IMAGE_PULL_BACK_OFF, reasons.UNSCHEDULABLE}


def sections() -> dict[str, str]:
    reasons_part = page("troubleshooting.md").split("\n## Reasons\n", 1)[1].split("\n## ", 1)[0]
    found = re.split(r"^### (\w+)\n", reasons_part, flags=re.M)[1:]
    return dict(zip(found[::2], found[1::2]))


def test_every_reason_the_operator_sets_is_documented_and_nothing_else():
    documented = sections()
    assert len(documented) == len(set(documented))
    assert sorted(documented) == sorted(reasons.ALL)


def test_each_reason_names_the_conditions_and_events_that_carry_it():
    documented = sections()
    for condition, carried in reasons.BY_CONDITION.items():
        for reason in carried:
            assert f"`{condition}`" in documented[reason], f"{reason}: does not say it is a {condition} reason"
    for reason in reasons.EVENT_REASONS:
        assert "event" in documented[reason], f"{reason}: does not say it is posted as an event"


def test_reasons_are_written_in_their_one_home():
    """A reason written as a literal elsewhere would not be in the list the manual is held to."""
    written = {}
    for path in OPERATOR.rglob("*.py"):
        if path.name == "reasons.py" or "api" in path.relative_to(OPERATOR).parts:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in reasons.ALL and id(node) not in docstrings \
                    and node.value not in KUBERNETES_WORDS:
                written.setdefault(str(path.relative_to(REPO)), []).append(node.value)
    assert written == {}
