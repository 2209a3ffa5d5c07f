"""Finds or builds the release tooling: CNCF Distribution's `registry` (the OCI registry that the release
tests push images and the chart to) and `actionlint` (lints .github/workflows, which cannot run here).

Both are `go install`ed from the Go module proxy at the versions pinned in `versions.py`, with the shared
build helper (buildcache.py), into `~/.cache/rerank-operator/bin/<tools pins>`; each one's cold build time is kept in
`build-times.json` there.  Usage: `python -m rerank_localdev.tools ensure`.
"""

from __future__ import annotations

import logging
import shutil
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


def cache_dir() -> Path:
    return controlplane_binaries.cache_dir().parent / versions.tools_cache_key()


def find() -> Path | None:
    directory = cache_dir()
    return directory if all((directory / name).is_file() for name in TOOLS) else None


def path(name: str) -> Path:
    """The named tool, built first if it is missing."""
    return ensure() / name


def build(names: list[str] | None = None) -> Path:
    """Builds the missing tools (or the named ones), recording each one's cold build time."""
    if not shutil.which("go"):
        raise RuntimeError("Go is not installed: install Go 1.26+ to build " + ", ".join(TOOLS))
    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    return buildcache.build_timed(target, names or [n for n in TOOLS if not (target / n).is_file()],
                                  lambda name: buildcache.go_install(target, [TOOLS[name][0]], TOOLS[name][1]),
                                  "the release tool")


def ensure() -> Path:
    return buildcache.ensure_built(cache_dir(), find, build)


def main(argv: list[str] | None = None) -> int:
    return buildcache.cli(argv, "rerank_localdev.tools", ensure, build, TOOLS)


if __name__ == "__main__":
    sys.exit(main())
