"""One lock for everything the project installs (uv.lock): it agrees with pyproject.toml, every image's Python
layer is exported from it, and scripts/bootstrap.sh installs from it alone, refusing a lock that is out of
date and leaving the previous venv as it was when an install fails."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
LOCK = tomllib.loads((REPO / "uv.lock").read_text())

# Each image's Dockerfile installs images/<image>/requirements.txt, the export of its group (scripts/lock.sh
# names it, and the export's header repeats the command); the group lists what the extra (or the base
# dependencies, for the operator) lists.
IMAGE_REQUIREMENTS = sorted(REPO.glob("images/*/requirements.txt"))
GROUP_SOURCES = {"image-operator": PYPROJECT["project"]["dependencies"],
                 "image-gateway": PYPROJECT["project"]["optional-dependencies"]["gateway"],
                 "image-ui": PYPROJECT["project"]["optional-dependencies"]["ui"],
                 "image-engine": PYPROJECT["project"]["optional-dependencies"]["engine"]}


def uv() -> str:
    """The uv that uv.lock pins, as scripts/uv.sh installs it (bootstrap ran before the tests)."""
    out = subprocess.run(["bash", "-c", '. scripts/uv.sh && echo "$UV"'], cwd=REPO, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def locked_version(name: str) -> str:
    return next(p["version"] for p in LOCK["package"] if p["name"] == name)


def test_lock_agrees_with_pyproject():
    result = subprocess.run([uv(), "lock", "--check"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f"uv.lock is out of date: run `make lock`\n{result.stderr}"


def exported_group(path: Path) -> str:
    """The group scripts/lock.sh exported into `path`, read from the command uv wrote in its header."""
    command = re.search(r"^#    (uv export .*)$", path.read_text(), re.M)
    assert command, f"{path.relative_to(REPO)} was not written by `make lock`"
    return re.search(r"--only-group (\S+)", command.group(1)).group(1)


def test_every_image_installs_an_image_group():
    assert {p.parent.name for p in IMAGE_REQUIREMENTS} == {p.parent.name for p in REPO.glob("images/*/Dockerfile")}
    assert sorted(exported_group(p) for p in IMAGE_REQUIREMENTS) == sorted(GROUP_SOURCES)


@pytest.mark.parametrize("path", IMAGE_REQUIREMENTS, ids=lambda p: p.parent.name)
def test_image_requirements_are_the_lock_exported(path: Path):
    """images/<image>/requirements.txt is exactly what `make lock` exports from uv.lock for its group."""
    exported = subprocess.run(
        [uv(), "export", "--quiet", "--frozen", "--no-header", "--only-group", exported_group(path),
         "--no-emit-project"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout
    header, _, body = path.read_text().partition("\n#    uv export")
    assert body.split("\n", 1)[1] == exported, f"{path.relative_to(REPO)} is not uv.lock's export: run `make lock`"


def test_every_image_requirement_is_pinned_with_hashes():
    for path in IMAGE_REQUIREMENTS:
        image = path.parent.name
        text = path.read_text()
        entries = re.split(r"\n(?=[^\s#])", text.split("\n", 2)[2].strip())
        assert entries, image
        for entry in entries:
            head = entry.split(";")[0].strip()
            assert "==" in head or head.endswith(".whl"), f"{image}: {head} is not pinned"
            assert "--hash=sha256:" in entry, f"{image}: {head} has no hash"


@pytest.mark.parametrize("group", sorted(GROUP_SOURCES))
def test_image_group_lists_what_its_extra_lists(group: str):
    """A package added to an extra and not to its image's group would be missing from that image."""
    assert sorted(PYPROJECT["dependency-groups"][group]) == sorted(GROUP_SOURCES[group])


def test_uv_and_the_build_backend_are_pinned_exactly():
    """bootstrap installs the lock's uv; the editable install builds with this setuptools, resolved nowhere."""
    assert PYPROJECT["dependency-groups"]["tools"] == [f"uv=={locked_version('uv')}"]
    for requirement in map(Requirement, PYPROJECT["build-system"]["requires"]):
        assert [s.operator for s in requirement.specifier] == ["=="], requirement


def test_lock_never_installs_the_vision_and_audio_torch_packages():
    """Their PyPI builds do not load beside the CPU torch (pyproject's override-dependencies)."""
    names = {p["name"] for p in LOCK["package"]}
    assert not names & {"torchvision", "torchaudio", "torchcodec"}
    assert locked_version("torch") == "2.13.0+cpu"


# --- scripts/bootstrap.sh on a copy of the project -------------------------------------------------------


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The tracked files in tmp/proj, with ../shared/wheels beside it as in a clean clone, and a previous venv
    marked so that a test can see it left alone."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split()
    proj = tmp_path / "proj"
    for name in files:
        if (REPO / name).is_file():
            (proj / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, proj / name)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "wheels").symlink_to(REPO.parent / "shared" / "wheels")
    (proj / ".venv").mkdir()
    (proj / ".venv" / "previous").write_text("the venv before this bootstrap")
    return proj


def bootstrap(proj: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=proj, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env})


def assert_previous_venv_untouched(proj: Path):
    assert (proj / ".venv" / "previous").read_text() == "the venv before this bootstrap"
    assert not (proj / ".venv.next").exists()


def test_bootstrap_refuses_a_lock_that_does_not_match_pyproject(project_copy: Path):
    pyproject = project_copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('  "aiohttp>=3.9",\n]', '  "aiohttp>=3.9",\n  "six>=1.16",\n]', 1))
    result = bootstrap(project_copy)
    assert result.returncode == 1
    assert "run 'make lock'" in result.stderr and "does not match pyproject.toml" in result.stderr
    assert_previous_venv_untouched(project_copy)


def test_bootstrap_names_the_missing_torch_wheel(project_copy: Path):
    (project_copy.parent / "shared" / "wheels").unlink()
    (project_copy.parent / "shared" / "wheels").mkdir()
    result = bootstrap(project_copy)
    assert result.returncode == 1
    assert "torch-2.13.0+cpu" in result.stderr and "../shared/wheels" in result.stderr
    assert_previous_venv_untouched(project_copy)


def test_bootstrap_that_cannot_download_a_package_leaves_the_previous_venv(project_copy: Path, tmp_path: Path):
    """An index that serves nothing (offline, an empty cache): uv names the package it could not get."""
    result = bootstrap(project_copy, UV_OFFLINE="1", UV_CACHE_DIR=str(tmp_path / "empty-cache"))
    assert result.returncode == 1, result.stderr
    assert "installing .venv from uv.lock failed" in result.stderr
    assert re.search(r"`[a-z0-9_.-]+(==| @ )", result.stderr) or "not found in the cache" in result.stderr, \
        result.stderr
    assert_previous_venv_untouched(project_copy)
