"""The README's cluster path on a real node, as written: the images loaded into the node without a registry,
`helm install ... --set sample.enabled=true` with the CPU engine, `kubectl wait --for=condition=Ready rrd/...`
(true only once the kubelet's probes passed), `/v1/rerank` from a pod through the Service's DNS name, and
`helm test` with its pod really running.

Changed from the README, only where a machine without a registry or a model hub must: the model is the tiny
random-weight reranker on a claim of the cluster's default StorageClass (provisioned in the cluster, filled from
this host the way an admin seeds a local volume), the `helm test` pod uses the UI image (it only needs Python),
and the engine's KV cache and context are small. The images are those `make images` builds (built here first
when missing)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from rerank_localdev import images
from rerank_localdev.node.binaries import PROBE_IMAGE
from tests.fixtures.waiting import wait_for

pytestmark = [
    pytest.mark.node,
    pytest.mark.images,
    # Opt-in until it has passed once end to end: its first run here got every image into the node, the model
    # claim provisioned and the chart installed, and found the operator crashing under the chart's uid (fixed in
    # rerank_operator.cli.peering_identity; the images must be rebuilt to carry the fix). About 10 minutes of
    # image import before the engine even starts.
    pytest.mark.skipif(os.environ.get("RERANK_NODE_E2E") != "1",
                       reason="the README's helm path on a real node runs with RERANK_NODE_E2E=1"),
]

NAMESPACE = "rerank-system"
RELEASE = "rerank-operator"
CHART = Path(__file__).resolve().parents[2] / "charts" / "rerank-operator"
MODEL_CLAIM = "reranker-models"
MODEL_DIR = "tiny-qwen3-reranker"


def _load_images(real_node, tmp_path: Path) -> dict[str, str]:
    refs = {}
    for name in ("operator", "ui", "engine-cpu"):
        ref = images.image_ref(name)
        if not images.image_exists(ref):
            images.build(name, echo=False)
        real_node.node.load_image_from(["podman", "save", ref], env=images.environment())
        refs[name] = ref
    return refs


def _seed_model_claim(real_node) -> None:
    """A claim of the default StorageClass, bound when a pod first uses it, then filled with the model."""
    from rerank_operator.serving.tiny_model import build_tiny_reranker, default_cache_dir

    cp = real_node.cp
    cp.kubectl("create", "namespace", NAMESPACE)
    cp.kubectl("-n", NAMESPACE, "apply", "-f", "-", input=f"""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {MODEL_CLAIM}}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: model-loader}}
spec:
  containers:
  - {{name: loader, image: {PROBE_IMAGE}, imagePullPolicy: Never, args: [serve, ":8080"],
      volumeMounts: [{{name: models, mountPath: /models}}]}}
  volumes: [{{name: models, persistentVolumeClaim: {{claimName: {MODEL_CLAIM}}}}}]
""")
    wait_for(lambda: json.loads(cp.kubectl("-n", NAMESPACE, "get", "pvc", MODEL_CLAIM, "-o", "json").stdout)
             ["status"].get("phase") == "Bound", 120, "the model claim bound")
    volume = json.loads(cp.kubectl("-n", NAMESPACE, "get", "pvc", MODEL_CLAIM, "-o", "json").stdout)["spec"]["volumeName"]
    path = Path(json.loads(cp.kubectl("get", "pv", volume, "-o", "json").stdout)["spec"]["hostPath"]["path"])
    shutil.copytree(build_tiny_reranker(default_cache_dir()), path / MODEL_DIR)
    for f in [path / MODEL_DIR, *(path / MODEL_DIR).rglob("*")]:
        f.chmod(0o755 if f.is_dir() else 0o644)
    cp.kubectl("-n", NAMESPACE, "delete", "pod", "model-loader", "--wait=true", "--grace-period=1")


def _rerank_from_a_pod(real_node, url: str, model: str) -> dict:
    body = json.dumps({"model": model, "query": "What is the capital of France?",
                       "documents": ["Paris is the capital of France.", "The quick brown fox."]})
    name = "rerank-client"
    real_node.cp.kubectl("-n", NAMESPACE, "delete", "pod", name, "--ignore-not-found", "--wait=true")
    real_node.cp.kubectl("-n", NAMESPACE, "run", name, f"--image={PROBE_IMAGE}", "--image-pull-policy=Never",
                         "--restart=Never", "--", "post", url, body)
    wait_for(lambda: json.loads(real_node.cp.kubectl("-n", NAMESPACE, "get", "pod", name, "-o", "json").stdout)
             ["status"].get("phase") in ("Succeeded", "Failed"), 120, "the client pod finished")
    out = real_node.cp.kubectl("-n", NAMESPACE, "logs", name).stdout
    return json.loads(out)


# Importing the CPU engine image (3.8 GB) into containerd takes minutes; then the engine loads.
@pytest.mark.timeout(2700)
def test_the_readme_helm_path_on_a_real_node(real_node, tmp_path):
    cp = real_node.cp
    refs = _load_images(real_node, tmp_path)
    _seed_model_claim(real_node)

    install = cp.helm(
        "install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace", "--set", "sample.enabled=true",
        "--set", "sample.spec.engine.device=cpu", "--set", "sample.spec.engine.dtype=float32",
        # What a machine without a registry or a model hub must change:
        "--set", f"sample.spec.model.name=rerank-operator/{MODEL_DIR}",
        "--set", f"sample.spec.model.pvc.claimName={MODEL_CLAIM}", "--set", f"sample.spec.model.pvc.path={MODEL_DIR}",
        "--set", "sample.spec.engine.cpuKVCacheGiB=1", "--set", "sample.spec.engine.maxModelLen=2048",
        "--set", f"tests.image={refs['ui']}", timeout=300)
    assert "STATUS: deployed" in install.stdout

    waited = cp.kubectl("-n", NAMESPACE, "wait", "--for=condition=Ready", "rrd/qwen3-reranker", "--timeout=900s",
                        check=False, timeout=960)
    if waited.returncode != 0:
        pods = cp.kubectl("-n", NAMESPACE, "get", "pods", "-o", "wide", check=False).stdout
        rrd = cp.kubectl("-n", NAMESPACE, "get", "rrd", "-o", "yaml", check=False).stdout
        engine = cp.kubectl("-n", NAMESPACE, "logs", "qwen3-reranker-engine-0", "--tail=30", check=False).stdout
        pytest.fail(f"rrd not Ready: {waited.stderr}\n{pods}\n{rrd[-3000:]}\nengine log:\n{engine}")
    pod = json.loads(cp.kubectl("-n", NAMESPACE, "get", "pod", "qwen3-reranker-engine-0", "-o", "json").stdout)
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True" and pod["status"]["containerStatuses"][0]["ready"] is True

    result = _rerank_from_a_pod(real_node, f"http://qwen3-reranker.{NAMESPACE}.svc:8000/v1/rerank",
                                f"rerank-operator/{MODEL_DIR}")
    assert sorted(r["index"] for r in result["results"]) == [0, 1]

    test = cp.helm("test", RELEASE, "-n", NAMESPACE, "--logs", check=False, timeout=300)
    # The pod ran to completion on the node (the tiny model's scores are random, so its verdict on the order
    # is reported, not asserted).
    assert "Phase:" in test.stdout, test.stdout + test.stderr
    print(test.stdout)
