"""What the three Go-built caches (control plane, node parts, release tools) share: build once under a lock,
`go install` from the module proxy, keep each part's build time, and the same small command line.

Each cache module keeps its own pins, directory and builders; this module only holds the mechanics.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

log = logging.getLogger(__name__)


def ensure_built(directory: Path, find: Callable[[], Path | None], build: Callable[[], Path]) -> Path:
    """`find()`, else `build()` under a lock file beside `directory`: concurrent callers (parallel test
    sessions, local mode) wait for one build and then find its result."""
    found = find()
    if found:
        return found
    lock_path = directory.parent / (directory.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return find() or build()


def build_timed(target: Path, names: Iterable[str], build_one: Callable[[str], None], what: str) -> Path:
    """Builds each named part with `build_one(name)` into `target`, recording its seconds in
    `target/build-times.json` (the cold figures the project reports)."""
    target.mkdir(parents=True, exist_ok=True)
    times_file = target / "build-times.json"
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
    for name in names:
        started = time.monotonic()
        log.info("building %s %s into %s", what, name, target)
        build_one(name)
        times[name] = round(time.monotonic() - started, 1)
        times_file.write_text(json.dumps(times, indent=1))
        log.info("built %s in %.0f s", name, times[name])
    return target


def go_install(target: Path, packages: list[str], ldflags: str) -> None:
    """`go install pkg@version` into `target`, the module built as upstream pinned it (no -mod=mod), static."""
    env = {"GOTOOLCHAIN": "local", **os.environ, "CGO_ENABLED": "0", "GOBIN": str(target)}
    env.pop("GOFLAGS", None)
    subprocess.run(["go", "install", "-trimpath", f"-ldflags={ldflags}", *packages], env=env, check=True,
                   cwd=target)


def cli(argv: list[str] | None, module: str, ensure: Callable[[], Path], build: Callable[[list[str] | None], Path],
        parts: Iterable[str] = ()) -> int:
    """`python -m <module> ensure | build [part...]`: prints the cache directory."""
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv[:1] == ["ensure"]:
        print(ensure())
        return 0
    if argv[:1] == ["build"]:
        print(build(argv[1:] or None))
        return 0
    choices = f" [{'|'.join(parts)}...]" if parts else ""
    print(f"usage: python -m {module} ensure | build{choices}", file=sys.stderr)
    return 2
