"""One release version (operator/rerank_operator/version.py) carried by everything that is released: the Python
package, the chart's version and appVersion, the CRD's version label, the image tags `make images` makes and the
defaults the operator writes into pods. A change in one place that is not synced elsewhere fails here."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest
import yaml

from rerank_localdev import images, release
from rerank_operator import version
from rerank_operator.api import crd, gateway, v1alpha1

REPO = release.REPO
CHART = release.CHART


def test_pyproject_reads_the_version_from_the_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "rerank_operator.version.VERSION"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", version.VERSION)


def test_chart_crd_and_images_carry_the_release_version() -> None:
    assert release.drift() == []
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == version.VERSION
    assert crd.build_crd()["metadata"]["labels"]["app.kubernetes.io/version"] == version.VERSION
    # The committed CRD file is the generated one (so its label is too).
    assert (REPO / crd.CHART_CRD_PATH).read_text() == crd.crd_yaml()


def test_image_names_agree_across_chart_api_builds_and_makefile() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    # The chart's operator image: repository + (empty tag -> appVersion).
    assert values["image"]["tag"] == ""
    assert f"{values['image']['repository']}:{chart['appVersion']}" == images.image_ref("operator")
    assert v1alpha1.DEFAULT_CPU_ENGINE_IMAGE == images.image_ref("engine-cpu") == version.image("engine-cpu")
    assert v1alpha1.DEFAULT_UI_IMAGE == images.image_ref("ui")
    assert gateway.DEFAULT_GATEWAY_IMAGE == images.image_ref("gateway")
    # The CRD names this release's images in its descriptions but stores no image default in objects (an
    # upgraded operator then moves unpinned UIs and gateways to its own release).
    text = (REPO / crd.CHART_CRD_PATH).read_text()
    assert v1alpha1.DEFAULT_UI_IMAGE in text and gateway.DEFAULT_GATEWAY_IMAGE in text
    assert "default: ghcr.io/" not in text
    assert not re.search(r"ghcr\.io/rerank-operator/rerank-[a-z-]+:(?!" + re.escape(version.VERSION) + r"\b)", text)
    makefile = (REPO / "Makefile").read_text()
    assert "-m rerank_localdev.images build" in makefile and not re.search(r"rerank-[a-z-]+:\d", makefile)


def test_a_drifted_chart_or_crd_is_reported_by_name(tmp_path) -> None:
    for relative in ("charts/rerank-operator/Chart.yaml", crd.CHART_CRD_PATH):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text((REPO / relative).read_text())
    assert release.drift(repo=tmp_path) == []
    chart_yaml = tmp_path / "charts/rerank-operator/Chart.yaml"
    chart_yaml.write_text(release.chart_yaml_with_version(chart_yaml.read_text(), "9.9.9"))
    crd_file = tmp_path / crd.CHART_CRD_PATH
    crd_file.write_text(crd_file.read_text().replace(f"app.kubernetes.io/version: {version.VERSION}",
                                                     "app.kubernetes.io/version: 0.0.1"))
    problems = release.drift(repo=tmp_path)
    assert len(problems) == 3, problems
    assert any("Chart.yaml version is '9.9.9'" in p for p in problems)
    assert any("Chart.yaml appVersion" in p for p in problems)
    assert any("app.kubernetes.io/version is '0.0.1'" in p for p in problems)


def test_chart_yaml_rewrite_keeps_everything_else() -> None:
    text = (CHART / "Chart.yaml").read_text()
    rewritten = release.chart_yaml_with_version(text, "1.2.3")
    assert yaml.safe_load(rewritten) == {**yaml.safe_load(text), "version": "1.2.3", "appVersion": "1.2.3"}
    assert rewritten.count("\n#") == text.count("\n#")
    with pytest.raises(release.ReleaseError, match="version"):
        release.chart_yaml_with_version("name: x\n", "1.2.3")


def test_the_release_tag_must_name_the_version() -> None:
    release.check_tag(f"v{version.VERSION}")
    for wrong in (version.VERSION, "v0.0.0", f"v{version.VERSION}-rc1", f"release-{version.VERSION}"):
        with pytest.raises(release.ReleaseError, match=re.escape(version.VERSION)):
            release.check_tag(wrong)
    proc = subprocess.run([sys.executable, "-m", "rerank_localdev.release", "check", "--tag", "v0.0.0"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1 and "tag 'v0.0.0' does not name the release version" in proc.stderr


def test_pushed_names_follow_the_registry() -> None:
    assert images.pushed_ref("ui", "127.0.0.1:5000") == f"127.0.0.1:5000/rerank-ui:{version.VERSION}"
    assert images.pushed_ref("ui", "registry.example/team/") == f"registry.example/team/rerank-ui:{version.VERSION}"
    assert images.pushed_ref("ui", images.REGISTRY) == images.image_ref("ui")
    assert release.chart_url("127.0.0.1:5000") == "oci://127.0.0.1:5000/charts/rerank-operator"


def test_the_readmes_and_the_manual_name_this_release() -> None:
    for readme in (REPO / "README.md", CHART / "README.md", *sorted((REPO / "docs").rglob("*.md"))):
        text = readme.read_text()
        named = set(re.findall(r"--version (\d\S*)", text)) | set(re.findall(r"rerank-operator-(\d+\.\d+\.\d+)\.tgz", text))
        named |= set(re.findall(r"ghcr\.io/rerank-operator/rerank-[a-z<>-]+:(\d+\.\d+\.\d+)", text))
        assert named <= {version.VERSION}, f"{readme.name} names {named - {version.VERSION}}"
