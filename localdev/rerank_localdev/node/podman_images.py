"""The project's images, from podman's local store into a real node's containerd: no registry.

`podman save REF | ctr images import -`, once per image: the node keeps its images between runs (see
host.default_image_store) with the podman image id they came from, so the next node finds an unchanged
image there and skips the import (the CPU engine image is 4 GB: minutes to save, store and unpack).
"""

from __future__ import annotations

import time

from .. import images
from .host import LocalNode


def podman_image_id(ref: str) -> str:
    """The image id (its config digest, hex only) of `ref` in podman's store."""
    return images.podman("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip().removeprefix("sha256:")


def load(node: LocalNode, names: list[str]) -> dict[str, float | None]:
    """Each `images/<name>` image into `node`, built from the working tree first (once per process: an image
    podman already holds may be of older sources). Returns the seconds each import took, None for an image
    the node already held (same podman image id)."""
    took: dict[str, float | None] = {}
    for name in names:
        ref = images.build_current(name)
        source = podman_image_id(ref)
        if node.has_image(ref, source):
            took[ref] = None
            continue
        started = time.monotonic()
        node.load_image_from(["podman", "save", ref], env=images.environment(), source=source)
        took[ref] = round(time.monotonic() - started, 1)
    return took
