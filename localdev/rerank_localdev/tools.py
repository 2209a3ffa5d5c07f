"""Finds or builds the release tooling: CNCF Distribution's `registry` (the OCI registry that the release
tests push images and the chart to) and `actionlint` (lints .github/workflows, which cannot run here).

Both are `go install`ed from the Go module proxy at the versions pinned in `versions.py`, with the node's
build helper, into `~/.cache/rerank-operator/bin/<tools pins>`; each one's cold build time is kept in
`build-times.json` there.  Usage: `python -m rerank_localdev.tools ensure`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import sys
import time
from pathlib import Path

from . import binaries as controlplane_binaries
from . import versions
from .node import binaries as node_binaries

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
    times_file = target / "build-times.json"
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
    for name in names or [n for n in TOOLS if not (target / n).is_file()]:
        package, ldflags = TOOLS[name]
        started = time.monotonic()
        log.info("building %s into %s", package, target)
        node_binaries._go_install(target, [package], ldflags)
        times[name] = round(time.monotonic() - started, 1)
        times_file.write_text(json.dumps(times, indent=1))
        log.info("built %s in %.0f s", name, times[name])
    return target


def ensure() -> Path:
    found = find()
    if found:
        return found
    lock_path = cache_dir().parent / (cache_dir().name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return find() or build()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv[:1] == ["ensure"]:
        print(ensure())
        return 0
    if argv[:1] == ["build"]:
        print(build(argv[1:] or None))
        return 0
    print(f"usage: python -m rerank_localdev.tools ensure | build [{'|'.join(TOOLS)}...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
