"""Finds or builds the release tooling: CNCF Distribution's `registry` (the OCI registry that the release
tests push images and the chart to), `actionlint` (lints .github/workflows, which cannot run here) and
Renovate's `renovate-config-validator` (lints .github/renovate.json, the dependency updates' configuration);
and the monitoring tools: Prometheus' `promtool` (the alert rules' unit tests) and `prometheus` (a real server that
evaluates the dashboard's queries), in a cache of their own so that their pin moves apart from the others.

The first two are `go install`ed from the Go module proxy at the versions pinned in `versions.py`, with the shared
build helper (buildcache.py), into `~/.cache/rerank-operator/bin/<tools pins>`; each one's cold build time is kept in
`build-times.json` there. The validator is Renovate's npm package, installed with `npm ci` from the
package-lock.json beside this module (exact versions, integrity hashes) into the same cache.
Usage: `python -m rerank_localdev.tools ensure`.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
from pathlib import Path

from . import binaries as controlplane_binaries
from . import buildcache, versions

log = logging.getLogger(__name__)

DISTRIBUTION_MODULE = "github.com/distribution/distribution/v3"

# Binary name -> (Go package@version, linker flags).
TOOLS: dict[str, tuple[str, str]] = {
    "registry": (f"{DISTRIBUTION_MODULE}/cmd/registry@{versions.DISTRIBUTION}",
                 f"-s -w -X {DISTRIBUTION_MODULE}/version.version={versions.DISTRIBUTION}"),
    # actionlint reads its version from the module's build info, which `go install pkg@version` records.
    "actionlint": (f"github.com/rhysd/actionlint/cmd/actionlint@{versions.ACTIONLINT}", "-s -w"),
}

PROMETHEUS_MODULE = "github.com/prometheus/prometheus"
# Prometheus reports the version its release build stamps into prometheus/common's version package.
_PROMETHEUS_LDFLAGS = f"-s -w -X github.com/prometheus/common/version.Version={versions.prometheus_release()}"
# Built with the default build tags: the server's API answers without its web UI assets, which are not in the
# module (they are built with npm in Prometheus' own release), and nothing here opens the UI.
MONITORING_TOOLS: dict[str, tuple[str, str]] = {
    name: (f"{PROMETHEUS_MODULE}/cmd/{name}@{versions.PROMETHEUS}", _PROMETHEUS_LDFLAGS)
    for name in ("promtool", "prometheus")
}


def cache_dir() -> Path:
    return controlplane_binaries.cache_dir().parent / versions.tools_cache_key()


def find() -> Path | None:
    directory = cache_dir()
    return directory if all((directory / name).is_file() for name in TOOLS) else None


def path(name: str) -> Path:
    """The named Go-built tool, built first if it is missing."""
    if name in MONITORING_TOOLS:
        return buildcache.ensure_built(monitoring_cache_dir(), find_monitoring, build_monitoring) / name
    return buildcache.ensure_built(cache_dir(), find, build) / name


def monitoring_cache_dir() -> Path:
    return controlplane_binaries.cache_dir().parent / versions.monitoring_cache_key()


def find_monitoring() -> Path | None:
    directory = monitoring_cache_dir()
    return directory if all((directory / name).is_file() for name in MONITORING_TOOLS) else None


def build_monitoring(names: list[str] | None = None) -> Path:
    """Builds the missing monitoring tools (or the named ones); both come from one module, so the second one
    reuses the first one's compiled packages."""
    if not shutil.which("go"):
        raise RuntimeError("Go is not installed: install Go 1.26+ to build " + ", ".join(MONITORING_TOOLS))
    target = monitoring_cache_dir()
    return buildcache.build_timed(
        target, names or [n for n in MONITORING_TOOLS if not (target / n).is_file()],
        lambda name: buildcache.go_install(target, [MONITORING_TOOLS[name][0]], MONITORING_TOOLS[name][1]),
        "the monitoring tool")


def build(names: list[str] | None = None) -> Path:
    """Builds the missing tools (or the named ones), recording each one's cold build time."""
    if names and set(names) <= set(MONITORING_TOOLS):
        return build_monitoring(names)
    if not shutil.which("go"):
        raise RuntimeError("Go is not installed: install Go 1.26+ to build " + ", ".join(TOOLS))
    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    return buildcache.build_timed(target, names or [n for n in TOOLS if not (target / n).is_file()],
                                  lambda name: buildcache.go_install(target, [TOOLS[name][0]], TOOLS[name][1]),
                                  "the release tool")


def ensure() -> Path:
    directory = buildcache.ensure_built(cache_dir(), find, build)
    buildcache.ensure_built(monitoring_cache_dir(), find_monitoring, build_monitoring)
    renovate_config_validator()
    return directory


RENOVATE_PACKAGE = Path(__file__).with_name("renovate")  # package.json + package-lock.json


def renovate_config_validator() -> Path:
    """Renovate's config validator, `npm ci`-installed from the committed lock the first time."""
    lock = (RENOVATE_PACKAGE / "package-lock.json").read_bytes()
    target = cache_dir().parent / f"renovate-{hashlib.sha256(lock).hexdigest()[:12]}"
    validator = target / "node_modules" / ".bin" / "renovate-config-validator"
    if validator.is_file():
        return validator
    if not shutil.which("npm"):
        raise RuntimeError("npm is not installed: install Node.js 20+ to lint .github/renovate.json")
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(RENOVATE_PACKAGE / name, staging / name)
    log.info("installing renovate-config-validator (npm ci) into %s", target)
    subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=staging, check=True)
    staging.rename(target)
    return validator


def main(argv: list[str] | None = None) -> int:
    return buildcache.cli(argv, "rerank_localdev.tools", ensure, build, [*TOOLS, *MONITORING_TOOLS])


if __name__ == "__main__":
    sys.exit(main())
