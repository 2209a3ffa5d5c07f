"""Dependency updates the way maintained projects take them: .github/renovate.json, linted like the release
workflow (Renovate cannot run here). Renovate's own renovate-config-validator (installed from the committed
npm lock, rerank_localdev.tools) checks the options; the regex managers are checked here against the files
they are meant to read, so that a pin nobody's manager sees cannot creep in."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from rerank_localdev import tools

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / ".github" / "renovate.json"


def validate(directory: Path) -> subprocess.CompletedProcess[str]:
    """renovate-config-validator on the repository config it finds in `directory` (strict: no migrations)."""
    return subprocess.run([str(tools.renovate_config_validator()), "--strict"], cwd=directory,
                          capture_output=True, text=True, timeout=120)


def config() -> dict:
    return json.loads(CONFIG.read_text())


def python_regex(javascript: str) -> re.Pattern[str]:
    return re.compile(javascript.replace("(?<", "(?P<"))


def manager_files(manager: dict) -> list[Path]:
    patterns = [python_regex(p.strip("/")) for p in manager["managerFilePatterns"]]
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return [REPO / f for f in files if any(p.search(f) for p in patterns)]


def test_renovate_config_passes_renovates_validator():
    proc = validate(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validating .github/renovate.json" in proc.stdout


def test_the_validator_catches_a_misspelt_option(tmp_path: Path):
    broken = config()
    broken["lockFileMaintainance"] = broken.pop("lockFileMaintenance")
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "renovate.json").write_text(json.dumps(broken))
    proc = validate(tmp_path)
    assert proc.returncode != 0 and "lockFileMaintainance" in proc.stdout, proc.stdout


def test_every_go_pin_in_versions_py_is_seen_by_the_regex_manager():
    manager = next(m for m in config()["customManagers"] if "versions" in m["managerFilePatterns"][0])
    [versions_py] = manager_files(manager)
    text = versions_py.read_text()
    seen = {m.group("currentValue") for s in manager["matchStrings"] for m in python_regex(s).finditer(text)}
    pins = set(re.findall(r'^[A-Z_]+ = "(v\d+\.\d+\.\d+)"$', text, re.M))
    assert pins and pins == seen, f"pins without a `# renovate:` line: {sorted(pins - seen)}"


def test_every_image_base_is_seen_by_the_regex_manager():
    manager = next(m for m in config()["customManagers"] if "Dockerfile" in m["managerFilePatterns"][0])
    dockerfiles = manager_files(manager)
    assert {d.parent.name for d in dockerfiles} == {d.parent.name for d in REPO.glob("images/*/Dockerfile")}
    for dockerfile in dockerfiles:
        [match] = [m for s in manager["matchStrings"] for m in python_regex(s).finditer(dockerfile.read_text())]
        assert (match.group("depName"), match.group("currentValue").startswith("3.11.")) == ("python", True)


@pytest.mark.parametrize("manager", ["pep621", "github-actions", "npm", "custom.regex"])
def test_every_kind_of_pin_has_its_manager(manager: str):
    """The Python lock, the workflows' actions, the validator's own pin and the regex-managed ones."""
    assert manager in config()["enabledManagers"]


def test_the_lock_is_refreshed_within_its_ranges():
    assert config()["lockFileMaintenance"]["enabled"] is True
