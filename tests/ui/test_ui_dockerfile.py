"""images/ui/Dockerfile: hadolint-clean, pinned, multi-stage, non-root, read-only-root friendly, and its
requirements are exactly the versions this test environment runs."""

import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rerank_ui_harness import REPO_ROOT

from tests import pinned

IMAGE_DIR = REPO_ROOT / "images" / "ui"
DOCKERFILE = IMAGE_DIR / "Dockerfile"


def hadolint() -> str:
    found = Path(sys.executable).with_name("hadolint")
    return str(found) if found.exists() else shutil.which("hadolint") or pytest.skip("hadolint is not installed")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_hadolint_passes():
    run = subprocess.run([hadolint(), "--failure-threshold", "info", str(DOCKERFILE)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_base_images_are_pinned_and_the_build_is_multi_stage():
    # `ARG BASE_IMAGE=<public default>`: `make images` passes a local Debian 12 base instead.
    defaults = dict(args.split("=", 1) for keyword, args in instructions() if keyword == "ARG" and "=" in args)
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], args.split()[0])
             for keyword, args in instructions() if keyword == "FROM"]
    assert len(bases) >= 2
    for base in bases:
        # An exact patch release of the slim image (or a digest): never a moving tag like 3.11-slim.
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base
    assert "--from=build" in " ".join(args for keyword, args in instructions() if keyword == "COPY")


def test_runs_as_a_non_root_user_with_writes_confined_to_tmp():
    steps = instructions()
    user = [args for keyword, args in steps if keyword == "USER"][-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000  # numeric, so runAsNonRoot can verify it
    env = " ".join(args for keyword, args in steps if keyword == "ENV")
    for variable, value in {"HOME": "/tmp", "GRADIO_TEMP_DIR": "/tmp/gradio", "PYTHONDONTWRITEBYTECODE": "1",
                            "GRADIO_ANALYTICS_ENABLED": "False"}.items():
        assert f"{variable}={value}" in env
    assert [args for keyword, args in steps if keyword == "WORKDIR"][-1] == "/tmp"
    assert any(keyword == "HEALTHCHECK" and "/gradio_api/app_id" in args for keyword, args in steps)
    assert ("ENTRYPOINT", '["rerank-ui"]') in steps


def test_requirements_pin_what_the_tests_ran():
    # Both come from uv.lock (the image's group and the test venv), so they cannot drift apart.
    pins = pinned.pinned_requirements(IMAGE_DIR / "requirements.txt")
    assert {"gradio", "httpx", "pandas"} <= set(pins)
    drift = {name: (version, importlib.metadata.version(name)) for name, version in pins.items()
             if importlib.metadata.version(name) != version}
    assert drift == {}, "requirements.txt differs from the tested environment: name: (pinned, tested)"
