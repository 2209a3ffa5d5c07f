"""The chart's NetworkPolicies enforced on the real node (kube-router's policy controller, netpol.py): the
release installed with `networkPolicy.enabled=true` and the sample RerankerDeployment (a real CPU engine, its
gateway and UI, the operator in its pod), then real connections from real pods.

Allowed: the UI pod to the rerank endpoint (the Service, i.e. the gateway, which calls the engine) and to the
engine itself (the path of a deployment without a gateway); the operator's pod to each engine's /metrics (what
the autoscaler scrapes); a pod labelled with `networkPolicy.allowLabel`. Refused: a pod without those labels
(it still reaches the gateway: the gateway is the endpoint every client calls, no policy guards it), and a pod
with the operator's labels in another namespace. Deleting the engine policy lets the refused pod in, so the
refusal was the policy's, not a broken network.

Not covered by policies at all, and shown as such: traffic this host originates. kube-router, like every
implementation, admits any packet to a pod from the node's own addresses (the kubelet's probes), so an operator
run as a local process (`rerank-operator run` beside the cluster, as the other node tests do) scrapes engines
whatever the policy says; only the operator in its pod exercises the policy's operator rule."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from rerank_localdev.node import netpol, podman_images
from rerank_localdev.node.binaries import PROBE_IMAGE
from rerank_localdev.node.host import FORWARD_CHAIN
from tests.fixtures.waiting import wait_for
from tests.node.test_node_helm_readme import CHART, IMAGES, MODEL, NAME, SAMPLE_ON_THIS_MACHINE, _seed_model_claim

pytestmark = [pytest.mark.node, pytest.mark.images]

NAMESPACE = "rerank-netpol"
OUTSIDE = "rerank-netpol-outside"
RELEASE = "rerank-netpol"
ENDPOINT = f"http://{NAME}.{NAMESPACE}.svc:8000/v1/rerank"
ENGINE_POLICY = f"{RELEASE}-rerank-operator-engine-ingress"
BODY = json.dumps({"model": MODEL, "query": "What is the capital of France?",
                   "documents": ["Paris is the capital of France.", "The quick brown fox."]})
# One HTTP call from inside a pod whose image has Python (the UI's, the operator's): prints the status and body.
PY_CALL = ("import sys, urllib.request as u; d = sys.argv[2].encode() if len(sys.argv) > 2 else None; "
           "r = u.urlopen(u.Request(sys.argv[1], data=d, headers={'Content-Type': 'application/json'}), timeout=30); "
           "print(r.status); print(r.read().decode()[:4000])")


def _kubectl(real_node, *args: str, **kwargs):
    return real_node.cp.kubectl(*args, **kwargs)


def _pod(real_node, namespace: str, selector: str) -> dict:
    listed = _kubectl(real_node, "-n", namespace, "get", "pods", "-l", selector, "-o", "json").stdout
    items = json.loads(listed)["items"]
    running = [p for p in items if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
    assert running, f"no running pod for {selector} in {namespace}"
    return running[0]


def _engine_url(real_node, path: str) -> str:
    engine = _pod(real_node, NAMESPACE, f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=engine")
    return f"http://{engine['status']['podIP']}:8000{path}"


def _from_python_pod(real_node, pod: str, url: str, body: str | None = None) -> tuple[bool, str]:
    done = _kubectl(real_node, "-n", NAMESPACE, "exec", pod, "--", "python3", "-c", PY_CALL, url,
                    *([body] if body else []), check=False, timeout=90)
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def _from_probe(real_node, namespace: str, pod: str, url: str) -> tuple[bool, str]:
    done = _kubectl(real_node, "-n", namespace, "exec", pod, "--", "/probe", "get", url, check=False, timeout=90)
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def _refused(outcome: tuple[bool, str]) -> bool:
    """kube-router rejects with ICMP port-unreachable: the client sees the connection refused at once."""
    return not outcome[0] and "connection refused" in outcome[1]


def _eventually(call, what: str, timeout: float = 60) -> str:
    """An allowed call, retried while the controller adds a new pod's address to the policy's ipset."""
    last: list[tuple[bool, str]] = []

    def attempt():
        last[:] = [call()]
        return last[0] if last[0][0] else None

    return wait_for(attempt, timeout, what, interval=1, context=lambda: f"last: {last}")[1]


@pytest.fixture(scope="module")
def enforcing(real_node) -> Iterator[None]:
    if netpol.find() is None:
        pytest.skip("kube-router is not built (optional, like Traefik: ~13 min cold on two cores): "
                    "python -m rerank_localdev.node.netpol build")
    real_node.node.enforce_network_policy()
    try:
        yield
    finally:
        real_node.node.stop_enforcing_network_policy()
    assert netpol.leftovers() == []


@pytest.fixture(scope="module")
def release(real_node, enforcing) -> Iterator[dict[str, str]]:
    """The release with its NetworkPolicies, the sample Ready, and three probe pods (name -> namespace)."""
    podman_images.load(real_node.node, list(IMAGES))
    _seed_model_claim(real_node, NAMESPACE)
    cp = real_node.cp
    try:
        cp.helm("install", RELEASE, str(CHART), "-n", NAMESPACE, "--set", "networkPolicy.enabled=true",
                *SAMPLE_ON_THIS_MACHINE, timeout=300)
        operator_labels = json.loads(_kubectl(real_node, "-n", NAMESPACE, "get", "deployment", "-l",
                                              "app.kubernetes.io/component=operator", "-o", "json").stdout)
        operator_labels = operator_labels["items"][0]["spec"]["template"]["metadata"]["labels"]
        _kubectl(real_node, "create", "namespace", OUTSIDE)
        probes = {"stranger": (NAMESPACE, {"app": "curl"}),
                  "labelled": (NAMESPACE, {"app": "curl", "rerank.io/engine-access": "true"}),
                  "lookalike": (OUTSIDE, operator_labels)}
        for name, (namespace, labels) in probes.items():
            _kubectl(real_node, "-n", namespace, "apply", "-f", "-", input=json.dumps({
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
                "spec": {"containers": [{"name": "probe", "image": PROBE_IMAGE, "imagePullPolicy": "Never",
                                         "args": ["serve", ":8080"]}]}}))
        waited = _kubectl(real_node, "-n", NAMESPACE, "wait", "--for=condition=Ready", f"rrd/{NAME}",
                          "--timeout=900s", check=False, timeout=960)
        if waited.returncode != 0:
            pods = _kubectl(real_node, "-n", NAMESPACE, "get", "pods", "-o", "wide", check=False).stdout
            pytest.fail(f"rrd not Ready: {waited.stderr}\n{pods}\nkube-router:\n{real_node.node.log('kube-router')}")
        for name, (namespace, _) in probes.items():
            _kubectl(real_node, "-n", namespace, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s",
                     timeout=130)
        yield {name: namespace for name, (namespace, _) in probes.items()}
    finally:
        # The sample first, while its operator still runs to release its finalizer.
        _kubectl(real_node, "-n", NAMESPACE, "delete", "rrd", "--all", "--timeout=120s", check=False, timeout=150)
        cp.helm("uninstall", RELEASE, "-n", NAMESPACE, check=False, timeout=240)
        for namespace in (NAMESPACE, OUTSIDE):
            _kubectl(real_node, "delete", "namespace", namespace, "--wait=false", check=False)


# The module's set-up (images, install, the engine's start) runs within the first test's time.
@pytest.mark.timeout(1500)
def test_the_policies_are_in_force(real_node, release):
    policies = json.loads(_kubectl(real_node, "-n", NAMESPACE, "get", "networkpolicies", "-o", "json").stdout)
    assert {p["metadata"]["name"] for p in policies["items"]} == {ENGINE_POLICY, f"{RELEASE}-rerank-operator"}
    assert real_node.node.enforces_network_policy
    # kube-router's chain for the engine pod sends what comes to it through the engine policy's chain.
    engine_ip = _engine_url(real_node, "").split("//")[1].split(":")[0]
    rules = [r for r in netpol.leftovers() if f"-d {engine_ip}/32" in r and "KUBE-POD-FW-" in r]
    assert any("KUBE-NWPLCY-" in r for r in rules), rules
    # kube-router's FORWARD chain accepts what policies admit before the node's own guard in filter FORWARD could
    # drop pod traffic bound off the machine; the guard therefore also runs first in mangle FORWARD.
    mangle = subprocess.run(["iptables", "-w", "-t", "mangle", "-S", "FORWARD"], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    assert mangle[1:2] == [f"-A FORWARD -j {FORWARD_CHAIN}"], mangle


def test_the_ui_reaches_the_rerank_endpoint_and_the_engine(real_node, release):
    ui = _pod(real_node, NAMESPACE, f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=ui")
    out = _eventually(lambda: _from_python_pod(real_node, ui["metadata"]["name"], ENDPOINT, BODY),
                      "a rerank from the UI pod through the Service (gateway -> engine)")
    status, text = out.split("\n", 1)
    assert status == "200" and len(json.loads(text)["results"]) == 2
    # A deployment without a gateway: the UI calls the engines themselves.
    out = _eventually(lambda: _from_python_pod(real_node, ui["metadata"]["name"], _engine_url(real_node, "/health")),
                      "the engine's /health from the UI pod")
    assert out.startswith("200")


def test_the_operator_pod_scrapes_the_engines_metrics(real_node, release):
    operator = _pod(real_node, NAMESPACE, "app.kubernetes.io/component=operator")
    out = _eventually(lambda: _from_python_pod(real_node, operator["metadata"]["name"],
                                               _engine_url(real_node, "/metrics")),
                      "the engine's /metrics from the operator's pod")
    assert out.startswith("200") and "vllm:" in out


def test_host_originated_traffic_is_outside_every_policy(real_node, release):
    """What an operator run as a local process sees: the node's own addresses are always admitted."""
    with urllib.request.urlopen(_engine_url(real_node, "/metrics"), timeout=10) as response:
        assert response.status == 200 and "vllm:" in response.read().decode()


def test_a_pod_without_the_labels_is_refused_by_the_engine_but_not_the_gateway(real_node, release):
    health = _engine_url(real_node, "/health")
    _eventually(lambda: _from_probe(real_node, NAMESPACE, "labelled", health),
                "the engine's /health from the pod with networkPolicy.allowLabel")
    stranger = _from_probe(real_node, NAMESPACE, "stranger", health)
    assert _refused(stranger), stranger
    lookalike = _from_probe(real_node, OUTSIDE, "lookalike", health)
    assert _refused(lookalike), lookalike  # the operator's labels, but not in the release's namespace
    # The gateway is the endpoint every client calls: the Service (gateway pods) answers the stranger.
    gateway = _pod(real_node, NAMESPACE, f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=gateway")
    out = _eventually(lambda: _from_probe(real_node, NAMESPACE, "stranger",
                                          f"http://{gateway['status']['podIP']}:8000/health"),
                      "the gateway's /health from the pod without labels")
    assert out


def test_removing_the_engine_policy_lets_the_refused_pod_in(real_node, release):
    health = _engine_url(real_node, "/health")
    assert _refused(_from_probe(real_node, NAMESPACE, "stranger", health))
    _kubectl(real_node, "-n", NAMESPACE, "delete", "networkpolicy", ENGINE_POLICY)
    _eventually(lambda: _from_probe(real_node, NAMESPACE, "stranger", health),
                "the engine's /health from the pod without labels once the policy is gone", timeout=60)
