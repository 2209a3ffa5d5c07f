"""The release: everything .github/workflows/release.yaml does besides building the images, in one place that
the tests run against the local registry (rerank_localdev.registry).

- ``sync``: writes the release version (rerank_operator/version.py) into the chart's ``version`` and
  ``appVersion`` and regenerates the CRD (which carries it as a label). Run it after changing the version.
- ``check --tag vX.Y.Z``: the tag names the version, and the chart and CRD say the same (nothing drifted).
- ``publish --registry HOST[/PATH]``: logs in with ``$REGISTRY_USERNAME``/``$REGISTRY_PASSWORD`` (into
  throw-away credential files, removed afterwards), pushes the built images as
  ``<registry>/rerank-<name>:<version>``, packages the chart and pushes it to ``oci://<registry>/charts``, then
  reads the chart back from the registry to prove it is there under that version.

Usage: ``python -m rerank_localdev.release sync | check --tag TAG | publish --registry R [--ca-file F]
[--images NAME ...]``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from rerank_operator.api import crd
from rerank_operator.version import VERSION

from . import images

REPO = images.REPO
CHART = REPO / "charts" / "rerank-operator"
CHART_NAME = "rerank-operator"


class ReleaseError(RuntimeError):
    """A release that must not go out; the message says what to fix."""


# --- what should exist (pure) ----------------------------------------------------------------------


def chart_yaml_with_version(text: str, version: str) -> str:
    """Chart.yaml's text with ``version`` and ``appVersion`` set (comments and order kept)."""
    text, versions = re.subn(r"^version:.*$", f"version: {version}", text, count=1, flags=re.M)
    text, app_versions = re.subn(r"^appVersion:.*$", f'appVersion: "{version}"', text, count=1, flags=re.M)
    if versions != 1 or app_versions != 1:
        raise ReleaseError("Chart.yaml must have top-level `version:` and `appVersion:` lines")
    return text


def drift(version: str = VERSION, repo: Path = REPO) -> list[str]:
    """Every place that does not carry ``version``, as one line each (empty when all agree)."""
    problems = []
    chart = yaml.safe_load((repo / "charts" / CHART_NAME / "Chart.yaml").read_text())
    for key in ("version", "appVersion"):
        if str(chart.get(key)) != version:
            problems.append(f"charts/{CHART_NAME}/Chart.yaml {key} is {chart.get(key)!r}, not {version!r}")
    crd_file = repo / crd.CHART_CRD_PATH
    labels = yaml.safe_load(crd_file.read_text())["metadata"].get("labels", {})
    if labels.get("app.kubernetes.io/version") != version:
        problems.append(f"{crd.CHART_CRD_PATH} label app.kubernetes.io/version is "
                        f"{labels.get('app.kubernetes.io/version')!r}, not {version!r}")
    return problems


def check_tag(tag: str, version: str = VERSION) -> None:
    if tag != f"v{version}":
        raise ReleaseError(f"tag {tag!r} does not name the release version {version!r} "
                           f"(operator/rerank_operator/version.py): tag v{version}, or change the version and "
                           "run `make release-sync` (python -m rerank_localdev.release sync)")


def chart_url(registry: str) -> str:
    """``ghcr.io/rerank-operator`` -> ``oci://ghcr.io/rerank-operator/charts/rerank-operator``."""
    return f"oci://{registry.rstrip('/')}/charts/{CHART_NAME}"


# --- doing it --------------------------------------------------------------------------------------


def sync(repo: Path = REPO) -> None:
    chart_yaml = repo / "charts" / CHART_NAME / "Chart.yaml"
    chart_yaml.write_text(chart_yaml_with_version(chart_yaml.read_text(), VERSION))
    (repo / crd.CHART_CRD_PATH).write_text(crd.crd_yaml())


def helm_binary() -> str:
    """$HELM, else helm on PATH (the release runner's), else the local control plane's build."""
    found = os.environ.get("HELM") or shutil.which("helm")
    if found:
        return found
    from . import binaries

    return str(binaries.ensure() / "helm")


def _run(argv: Sequence[str], *, input: str | None = None, env: dict[str, str] | None = None,
         what: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), input=input, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise ReleaseError(f"{what} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def credentials() -> tuple[str, str]:
    username, password = os.environ.get("REGISTRY_USERNAME"), os.environ.get("REGISTRY_PASSWORD")
    if not username or not password:
        raise ReleaseError("set REGISTRY_USERNAME and REGISTRY_PASSWORD (the workflow uses github.actor and GITHUB_TOKEN)")
    return username, password


def publish(registry: str, *, names: Sequence[str] | None = None, ca_file: Path | None = None,
            helm: str | None = None) -> dict[str, object]:
    """Pushes the images and the chart of this version; returns what was pushed."""
    problems = drift()
    if problems:
        raise ReleaseError("the version drifted: " + "; ".join(problems))
    helm = helm or helm_binary()
    username, password = credentials()
    host = registry.split("/", 1)[0]
    with tempfile.TemporaryDirectory(prefix="rerank-release-") as scratch:
        work = Path(scratch)
        authfile, cert_dir = work / "auth.json", None
        helm_env = {**os.environ, "HELM_REGISTRY_CONFIG": str(work / "helm-registry.json"),
                    "HELM_REPOSITORY_CACHE": str(work / "helm-cache"), "HELM_CACHE_HOME": str(work / "helm-cache")}
        tls = []
        if ca_file:
            cert_dir = work / "certs"
            cert_dir.mkdir()
            shutil.copy(ca_file, cert_dir / "ca.crt")
            tls = [f"--ca-file={ca_file}"]
        images.podman("login", f"--authfile={authfile}", *([f"--cert-dir={cert_dir}"] if cert_dir else []),
                      "--username", username, "--password-stdin", host, input=password)
        pushed = [images.push(name, registry, cert_dir=cert_dir, authfile=authfile)
                  for name in (images.image_names() if names is None else names)]
        _run([helm, "registry", "login", host, "--username", username, "--password-stdin", *tls],
             input=password, env=helm_env, what=f"helm registry login {host}")
        _run([helm, "package", str(CHART), "--destination", str(work)], env=helm_env, what="helm package")
        package = work / f"{CHART_NAME}-{VERSION}.tgz"
        _run([helm, "push", str(package), f"oci://{registry.rstrip('/')}/charts", *tls], env=helm_env,
             what="helm push")
        shown = _run([helm, "show", "chart", chart_url(registry), "--version", VERSION, *tls], env=helm_env,
                     what="reading the chart back")
        if yaml.safe_load(shown.stdout).get("version") != VERSION:
            raise ReleaseError(f"the registry serves another chart under {VERSION}: {shown.stdout}")
    return {"images": pushed, "chart": f"{chart_url(registry)}:{VERSION}"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rerank_localdev.release", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("sync", help="write the release version into the chart and the CRD")
    check_parser = sub.add_parser("check", help="the tag names the release version and nothing drifted")
    check_parser.add_argument("--tag", required=True)
    publish_parser = sub.add_parser("publish", help="push the built images and the chart")
    publish_parser.add_argument("--registry", required=True, help="HOST[:PORT][/PATH], e.g. ghcr.io/rerank-operator")
    publish_parser.add_argument("--ca-file", type=Path, help="the registry's CA (a private registry)")
    publish_parser.add_argument("--images", nargs="*", metavar="NAME", help="default: every image")
    args = parser.parse_args(argv)
    try:
        if args.command == "sync":
            sync()
        elif args.command == "check":
            check_tag(args.tag)
            problems = drift()
            if problems:
                raise ReleaseError("the version drifted: " + "; ".join(problems))
            print(f"{args.tag}: chart, CRD and images all carry {VERSION}")
        else:
            result = publish(args.registry, names=args.images, ca_file=args.ca_file)
            print("\n".join([*result["images"], result["chart"]]))
    except (ReleaseError, images.ImageBuildError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
