"""The release version: the one place it is written.

Everything else derives from it: the Python package's version (pyproject reads this file, as setuptools'
`attr:` of a plain assignment, without importing the package), the image tags `make images` makes and the
operator defaults to, the chart's `version`/`appVersion` and the CRD's `app.kubernetes.io/version` label (both
written by `python -m rerank_operator.api.crd` / checked by tests/unit/test_release_version.py), and the tag the
release workflow must be pushed with (`v<VERSION>`). It lives in the operator package because the running
operator needs it too: its default engine, UI and gateway images are the ones of its own release.
"""

VERSION = "0.2.0"

# Where the release workflow publishes the images (`<IMAGE_REGISTRY>/rerank-<name>:<VERSION>`) and the chart
# (`oci://<IMAGE_REGISTRY>/charts/rerank-operator`).
IMAGE_REGISTRY = "ghcr.io/rerank-operator"


def image(name: str, version: str = VERSION) -> str:
    """``ui`` -> ``ghcr.io/rerank-operator/rerank-ui:<VERSION>``: an image built from images/<name>/."""
    return f"{IMAGE_REGISTRY}/rerank-{name}:{version}"
