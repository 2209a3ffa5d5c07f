"""Every RerankerDeployment the manual shows is one the API accepts: the operator's model parses it, and the API
server (the CRD's schema and CEL rules) accepts it in a server-side dry run."""

from __future__ import annotations

import json

import pytest
import yaml

from rerank_operator.api.v1alpha1 import parse_spec
from tests.docs.manual import REPO, blocks, pages


def manifests() -> list[tuple[str, dict]]:
    found = []
    for name, text in pages().items():
        for block in blocks(text, "yaml"):
            document = yaml.safe_load(block)
            if isinstance(document, dict) and document.get("kind") == "RerankerDeployment":
                found.append((name, document))
    return found


def test_the_manual_shows_resources_for_each_install():
    shown = {name for name, _ in manifests()}
    assert {"README.md", "docs/guides/gpu-cluster.md", "docs/guides/cpu-only.md", "docs/guides/air-gapped.md",
            "docs/guides/scale-to-zero.md"} <= shown


@pytest.mark.parametrize("where, manifest", manifests(), ids=lambda v: v if isinstance(v, str) else v["metadata"]["name"])
def test_the_operator_reads_each_resource_of_the_manual(where, manifest):
    assert manifest["apiVersion"] == "rerank.io/v1alpha1"
    parse_spec(manifest["spec"])


def test_the_api_server_accepts_each_resource_of_the_manual(control_plane):
    control_plane.kubectl("apply", "--server-side", "-f", str(REPO / "charts/rerank-operator/crds"))
    control_plane.wait_crds_established("rerankerdeployments.rerank.io")
    for where, manifest in manifests():
        result = control_plane.kubectl("apply", "-n", "default", "--dry-run=server", "-f", "-",
                                       input=json.dumps(manifest), check=False)
        assert result.returncode == 0, f"{where}: {result.stderr}"
