"""The exact versions an image's requirements.txt (uv.lock's export for the image's group) installs."""

from __future__ import annotations

from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name


def pinned_requirements(path: Path, only_here: bool = False) -> dict[str, str]:
    """{normalized name: version} of every entry: `name==version ; markers` or a wheel's path (the CPU torch).
    `only_here`: the entries whose markers hold for this interpreter (the lock is for every Python 3.11: the
    images' Debian 3.11.2 needs async-timeout, which 3.11.3 and newer do not)."""
    pins = {}
    for line in path.read_text().splitlines():
        if not line or line[0].isspace() or line.startswith("#"):
            continue  # hashes, annotations and the header
        requirement, _, marker = (part.strip() for part in line.rstrip("\\").partition(";"))
        if only_here and marker and not Marker(marker).evaluate():
            continue
        if requirement.endswith(".whl"):
            name, version = Path(requirement).name.split("-")[:2]
        else:
            name, _, version = requirement.partition("==")
            assert version, f"{path}: {requirement!r} is not pinned with =="
        pins[canonicalize_name(name)] = version
    return pins
