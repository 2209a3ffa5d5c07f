"""A build that cannot fetch something stops with a message naming it, and tags nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerank_localdev import images

pytestmark = pytest.mark.images

MISSING = "rerank-operator-no-such-package-for-tests"


def test_a_package_that_cannot_be_fetched_is_named_and_nothing_is_tagged(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("ARG BASE_IMAGE=python:3.11.14-slim-bookworm\n"
                          "FROM ${BASE_IMAGE}\n"
                          "RUN python -m venv /opt/venv\n"
                          f"RUN /opt/venv/bin/pip install --no-cache-dir {MISSING}==1.0\n"
                          "RUN echo never\n")
    ref = "localhost/rerank-build-failure-test:0"
    images.podman("rmi", "--force", ref, check=False)
    with pytest.raises(images.ImageBuildError) as failure:
        images.build("failure-test", dockerfile=dockerfile, ref=ref, echo=False)
    message = str(failure.value)
    assert f"pip could not fetch the Python package {MISSING}==1.0" in message
    assert f"pip install --no-cache-dir {MISSING}" in message  # the step that failed
    assert "no image was tagged" in message
    assert not images.image_exists(ref)


def test_a_missing_wheel_directory_is_named_before_anything_is_built(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(images, "WHEELS_DIR", tmp_path / "no-wheels")
    monkeypatch.setattr(images, "named_contexts", lambda text: {"wheels": tmp_path / "no-wheels"})
    with pytest.raises(images.ImageBuildError, match=r"needs the build context 'wheels' = .*no-wheels.*RERANK_WHEELS"):
        images.build("engine-cpu", ref="localhost/rerank-never-built:0", echo=False)
    assert not images.image_exists("localhost/rerank-never-built:0")
