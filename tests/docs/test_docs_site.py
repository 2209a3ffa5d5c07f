"""The manual builds as a site: `mkdocs build --strict` with mkdocs.yml's validation, so a link to a missing page
or anchor, and a page left out of the navigation, fail here. Nothing in the build reaches the network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.docs.manual import DOCS, REPO


def test_the_manual_builds_with_strict_checks(tmp_path: Path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                           cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert build.returncode == 0, build.stderr[-5000:]
    assert (tmp_path / "site" / "reference" / "api" / "index.html").exists()
    assert (tmp_path / "site" / "autoscaling" / "autoscaler-step.png").exists()


def test_strict_validation_is_on_for_links_anchors_and_the_navigation():
    # mkdocs.yml parses with python tags; plain safe_load needs none here.
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    validation = config["validation"]
    assert validation["nav"] == {"omitted_files": "warn", "not_found": "warn", "absolute_links": "warn"}
    assert validation["links"] == {"not_found": "warn", "anchors": "warn", "absolute_links": "warn",
                                   "unrecognized_links": "warn"}
    # Only the search plugin: the theme's social cards and the like fetch from the internet at build time.
    assert config["plugins"] == ["search"]


def test_every_page_is_in_the_navigation():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())

    def listed(nav) -> set[str]:
        found: set[str] = set()
        for entry in nav:
            for value in entry.values() if isinstance(entry, dict) else [entry]:
                found |= listed(value) if isinstance(value, list) else {value}
        return found

    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert listed(config["nav"]) == pages


def test_the_readmes_links_into_the_manual_lead_to_pages_and_headings_that_exist():
    import re

    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(((?!https?://)[^)#]+)(?:#([^)]+))?\)", readme)
    assert len(links) > 10
    for target, anchor in links:
        path = REPO / target
        assert path.exists(), target
        if anchor:
            # MkDocs' (and GitHub's) heading ids: lower case, punctuation dropped, spaces as dashes.
            headings = re.findall(r"^#+ (.+)$", path.read_text(), flags=re.M)
            ids = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
            assert anchor in ids, f"{target}#{anchor}"


def test_the_autoscaling_guide_shows_every_plot_the_benchmark_writes():
    import re

    guide = (DOCS / "guides" / "autoscaling.md").read_text()
    shown = set(re.findall(r"!\[[^\]]*\]\(\.\./autoscaling/([\w-]+\.png)\)", guide))
    assert shown == {p.name for p in (DOCS / "autoscaling").glob("*.png")}
