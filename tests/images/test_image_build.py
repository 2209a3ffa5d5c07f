"""Each image builds with `make images`' code on the local Debian base, and runs as its own non-root numeric
user, also with a read-only root filesystem (the way the chart and the operator run them)."""

from __future__ import annotations

import pytest

from rerank_localdev import images

from .containers import built_image, image_config, run_once

pytestmark = pytest.mark.images

# The user each image runs as (the chart, the operator's pod specs and Pod Security "restricted" rely on these).
EXPECTED_USER = {"operator": "65532:65532", "ui": "10001:10001", "engine-cpu": "1000:1000", "gateway": "10002:10002"}


def test_every_image_has_an_expected_user() -> None:
    # A new image directory must say here which user it runs as.
    assert set(images.image_names()) <= set(EXPECTED_USER)


@pytest.mark.parametrize("name", images.image_names())
def test_image_builds_and_runs_as_a_numeric_non_root_user(name: str) -> None:
    ref = built_image(name)
    assert images.image_exists(ref)
    user = image_config(ref)["User"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) != 0, f"{ref} runs as {user!r}"
    assert user == EXPECTED_USER[name]
    # What the process really is, with a read-only root and only /tmp writable (as in the pods).
    proc = run_once(ref, "-c", "import os, pathlib; pathlib.Path(os.environ['HOME'], 'probe').write_text('x');"
                    " print(os.getuid(), os.getgid())",
                    options=["--read-only", "--tmpfs", "/tmp:rw,mode=1777", "--entrypoint", "python3"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == [uid, gid]


def test_the_local_base_is_debian_12_with_python_3_11() -> None:
    base = images.ensure_base(echo=False)
    proc = run_once(base, "python3", "-c", "import platform, venv; print(platform.python_version());"
                    " print(open('/etc/debian_version').read().strip())")
    assert proc.returncode == 0, proc.stderr
    python, debian = proc.stdout.split()
    assert python.startswith("3.11.") and debian.startswith("12."), proc.stdout
