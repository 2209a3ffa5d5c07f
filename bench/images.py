"""Build figures for the project's images (podman, local Debian base), as `make images` builds them.

    .venv/bin/python bench/images.py                       # every image
    .venv/bin/python bench/images.py operator ui           # some of them
    .venv/bin/python bench/images.py --no-cold             # skip the cold builds (the slow part)
    .venv/bin/python bench/images.py --base                # also time a fresh debootstrap of the base

Per image, from one run:
- cold: ``podman build --no-cache`` (every step anew: downloads, installs; the local base already there),
- cached: the same build again with podman's layer cache, nothing changed (what CI on the same machine pays),
- size: the tagged image's size,
and for the operator image, ``edit``: the rebuild after a one-line change to the operator's source, in a copy
of the build context (the dependency layers come first in the Dockerfile, so only the project's layer
rebuilds). Cold builds go to scratch tags that are removed afterwards; the cached builds update the real tags.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "localdev"))

from rerank_localdev import images  # noqa: E402

# What the operator image's build context holds (its Dockerfile.dockerignore lets only these through).
OPERATOR_CONTEXT = ("pyproject.toml", "README.md", "operator", "images/operator")
EDITED_FILE = "operator/rerank_operator/__init__.py"


def timed(action) -> tuple[float, object]:
    start = time.monotonic()
    result = action()
    return time.monotonic() - start, result


def size_mb(ref: str) -> float:
    import json

    return json.loads(images.podman("image", "inspect", ref).stdout)[0]["Size"] / 1e6


def edit_rebuild(base: str, repeats: int) -> list[float]:
    """Seconds to rebuild the operator image after a one-line source change (a new line each time)."""
    times = []
    with tempfile.TemporaryDirectory(prefix="rerank-bench-context-") as tmp:
        context = Path(tmp)
        for item in OPERATOR_CONTEXT:
            source, target = ROOT / item, context / item
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, target)
        # Same content as the repository: the first build is all cache hits.
        images.build("operator", base=base, echo=False, context=context, ref="localhost/rerank-bench-edit:0")
        for n in range(repeats):
            with open(context / EDITED_FILE, "a") as handle:
                handle.write(f"# benchmark edit {n} {time.time()}\n")
            seconds, _ = timed(lambda: images.build("operator", base=base, echo=False, context=context,
                                                    ref="localhost/rerank-bench-edit:0"))
            times.append(seconds)
    images.podman("rmi", "--force", "localhost/rerank-bench-edit:0", check=False)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="images/<name> to measure (default: all)")
    parser.add_argument("--no-cold", action="store_true", help="skip the --no-cache builds")
    parser.add_argument("--base", action="store_true", help="also time debootstrap + import of the base")
    parser.add_argument("--edits", type=int, default=3, help="one-line edits of the operator source (median)")
    args = parser.parse_args()
    names = args.names or images.image_names()

    base = images.ensure_base(echo=False)
    print(f"base image {base}: {size_mb(base):.0f} MB")
    if args.base:
        scratch = "localhost/rerank-bench-base:0"
        seconds, _ = timed(lambda: images.make_base(scratch, echo=False))
        images.podman("rmi", "--force", scratch, check=False)
        print(f"base image from scratch (debootstrap --variant=minbase + import): {seconds:.0f} s")

    rows = []
    for name in names:
        cold = None
        if not args.no_cold:
            scratch = f"localhost/rerank-bench-cold-{name}:0"
            cold, _ = timed(lambda: images.build(name, base=base, echo=False, ref=scratch, no_cache=True))
            images.podman("rmi", "--force", scratch, check=False)
        images.build(name, base=base, echo=False)  # fill the layer cache (a no-op when it already is)
        cached, ref = timed(lambda: images.build(name, base=base, echo=False))
        rows.append((name, ref, size_mb(ref), cold, cached))

    print(f"\n{'image':<12} {'tag':<52} {'size MB':>8} {'cold s':>8} {'cached s':>9} {'cold/cached':>12}")
    for name, ref, size, cold, cached in rows:
        cold_text = f"{cold:8.0f}" if cold is not None else f"{'-':>8}"
        ratio = f"{cold / cached:11.0f}x" if cold is not None else f"{'-':>12}"
        print(f"{name:<12} {ref:<52} {size:8.0f} {cold_text} {cached:9.1f} {ratio}")

    if "operator" in names and args.edits > 0:
        times = edit_rebuild(base, args.edits)
        print(f"\noperator image rebuild after a one-line change to {EDITED_FILE}: median "
              f"{statistics.median(times):.1f} s of {len(times)} ({', '.join(f'{t:.1f}' for t in times)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
