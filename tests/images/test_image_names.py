"""The image names `make images` tags are the ones the chart and the API default to, and the build module's
pure parts (names, the base's cache key, failure messages). Needs no podman."""

from __future__ import annotations

import re

import yaml

from rerank_localdev import images
from rerank_operator.api import v1alpha1

REPO = images.REPO


def test_every_dockerfile_is_an_image_named_after_its_directory() -> None:
    assert {"operator", "ui", "engine-cpu"} <= set(images.image_names())
    assert images.image_ref("gateway", "1.2.3") == "ghcr.io/rerank-operator/rerank-gateway:1.2.3"


def test_chart_api_and_makefile_name_the_same_images() -> None:
    version = images.project_version()
    chart = yaml.safe_load((REPO / "charts/rerank-operator/Chart.yaml").read_text())
    values = yaml.safe_load((REPO / "charts/rerank-operator/values.yaml").read_text())
    assert chart["appVersion"] == version  # the chart's default tag is its appVersion
    assert f"{values['image']['repository']}:{chart['appVersion']}" == images.image_ref("operator")
    assert v1alpha1.DEFAULT_UI_IMAGE == images.image_ref("ui")
    assert v1alpha1.DEFAULT_CPU_ENGINE_IMAGE == images.image_ref("engine-cpu")
    # `make images` builds every image through the module (no image list of its own to drift).
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^images:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe and "-m rerank_localdev.images build\n" in recipe.group(1)


def test_the_base_tag_changes_exactly_when_its_inputs_do(monkeypatch) -> None:
    tag = images.base_ref()
    assert re.fullmatch(r"localhost/rerank-base:bookworm-[0-9a-f]{12}", tag)
    assert images.base_ref() == tag
    monkeypatch.setattr(images, "BASE_PACKAGES", (*images.BASE_PACKAGES, "libnuma1"))
    assert images.base_ref() != tag


def test_only_the_engine_uses_the_wheels_context() -> None:
    uses = {name: images.named_contexts((images.IMAGES_DIR / name / "Dockerfile").read_text())
            for name in images.image_names()}
    assert uses["engine-cpu"] == {"wheels": images.WHEELS_DIR}
    assert uses["operator"] == uses["ui"] == {}


def test_failure_messages_name_the_missing_piece() -> None:
    assert images.explain_failure("ERROR: No matching distribution found for nosuchpkg==1.0\n") == \
        "pip could not fetch the Python package nosuchpkg==1.0"
    assert images.explain_failure("E: Unable to locate package libnosuch1\n") == \
        "apt could not find the Debian package libnosuch1"
    assert "python:3.11.14-slim-bookworm cannot be pulled" in images.explain_failure(
        "Error: creating build container: initializing source docker://python:3.11.14-slim-bookworm: "
        "pinging container registry registry-1.docker.io: dial tcp: lookup failed\n")
    assert images.last_step("STEP 1/3: FROM x\nSTEP 2/3: RUN pip install y\nERROR\n") == "RUN pip install y"


def test_the_build_command_passes_the_base_the_wheels_and_the_context(tmp_path) -> None:
    dockerfile = images.IMAGES_DIR / "engine-cpu" / "Dockerfile"
    cmd = images.build_command(dockerfile, "localhost/base:1", tmp_path / "iid", context=tmp_path)
    assert cmd[:2] == ["podman", "build"] and cmd[-1] == str(tmp_path)
    assert "BASE_IMAGE=localhost/base:1" in cmd and f"wheels={images.WHEELS_DIR}" in cmd
    assert cmd[cmd.index("--ignorefile") + 1] == str(dockerfile) + ".dockerignore"
    assert "--layers" in cmd and "--no-cache" not in cmd
    assert "--no-cache" in images.build_command(dockerfile, "b", tmp_path / "iid", no_cache=True)
