"""The README's cluster path on a real node, as written, then what users do with the release: one bring-up,
the steps below in order (each a test; a later one relies on the earlier ones).

1. the images loaded into the node without a registry (once: the node keeps them between runs);
2. `helm install ... oci://.../charts/rerank-operator --version <this release> --set sample.enabled=true` (the
   chart pushed to the harness's private registry, as users install the published one) with the CPU engine,
   and `kubectl wait --for=condition=Ready rrd/...`, true only once the kubelet's probes passed;
3. `/v1/rerank` from a pod through the Service's DNS name;
4. `helm test` with its pod really running;
5. the UI through the Ingress (Traefik) in headless Chromium, one rerank through it, a screenshot kept;
6. `kubectl scale rrd/... --replicas 2`: a second engine gets Ready and both engines' vLLM request counters
   grow under a steady client through the Service;
7. faults under a steady client, none of whose requests may fail: an engine container SIGKILLed, an engine that
   hangs (frozen: it keeps its port), one of the sample's two gateway pods deleted, an engine evicted through
   the Eviction API (a second eviction refused by the budget until the first engine is Ready again); the
   client's p50/p99 per phase go to artifacts/node-faults.json;
8. a rolling update under that steady client loses no request: a new instruction and tensorParallelSize 2 (two
   vLLM worker processes per pod sharing its /dev/shm, as uid 1000 on a read-only root), whose engines give the
   same scores as the TP 1 engines did;
9. the node made GPU-shaped (a device plugin's four nvidia.com/gpu, the RuntimeClass nvidia, the GPU taint), the
   sample rolled under a steady client to `device: gpu` with the CPU engine image: scheduled onto the devices
   through the toleration and the RuntimeClass, no request lost, the same scores as at TP 1;
10. deleting the RerankerDeployment removes every pod, Service and (retention policy Delete) claim.

Changed from the README, only where a machine without a registry or a model hub must: the model is the tiny
random-weight reranker on a claim of the cluster's default StorageClass (provisioned in the cluster, filled from
this host the way an admin seeds a local volume), the `helm test` pod uses the UI image (it only needs Python)
and does not expect a meaningful order from random weights, the engine's KV cache, context and resource
requests fit two cores (and it skips torch.compile's warm-up), and the UI gets an Ingress host. The images are
those `make images` builds (built here first when missing). Each step's time goes to artifacts/node-e2e-timings.json."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from rerank_localdev import dashboard, images, tools
from rerank_localdev import release as release_tooling
from rerank_localdev.registry import LocalRegistry
from rerank_localdev.node import podman_images
from rerank_localdev.node.binaries import PROBE_IMAGE
from rerank_localdev.node.host import NODE_IP
from rerank_operator.version import VERSION
from tests.fixtures.gateway import metric_value
from tests.fixtures.node import visible_devices
from tests.fixtures.prometheus import grafana, query, running_prometheus, selectors
from tests.helm.chart import one, render
from tests.fixtures.waiting import wait_for
from tests.node import faults

pytestmark = [pytest.mark.node, pytest.mark.images]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
NAMESPACE = "rerank-system"
RELEASE = "rerank-operator"
NAME = "qwen3-reranker"
CHART = REPO / "charts" / "rerank-operator"
MODEL_CLAIM = "reranker-models"
MODEL_DIR = "tiny-qwen3-reranker"
MODEL = f"rerank-operator/{MODEL_DIR}"
UI_HOST = "rerank.node.test"
ENDPOINT = f"http://{NAME}.{NAMESPACE}.svc:8000/v1/rerank"
IMAGES = ("operator", "ui", "gateway", "engine-cpu")
CHILD_KINDS = "pods,services,statefulsets,deployments,persistentvolumeclaims,ingresses,configmaps,poddisruptionbudgets"


class Steps:
    """Each step's wall time, printed and written to artifacts/ when the module ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def timed(self, name: str):
        steps = self

        class _Timer:
            def __enter__(self):
                self.started = time.monotonic()

            def __exit__(self, *exc):
                steps.seconds[name] = round(time.monotonic() - self.started, 1)

        return _Timer()


@pytest.fixture(scope="module")
def steps() -> Iterator[Steps]:
    recorded = Steps()
    yield recorded
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "node-e2e-timings.json").write_text(json.dumps(recorded.seconds, indent=1))
    print("\nnode e2e steps (s):", json.dumps(recorded.seconds))


def _json(real_node, *args: str) -> dict:
    return json.loads(real_node.cp.kubectl("-n", NAMESPACE, *args, "-o", "json").stdout)


def _context(real_node) -> str:
    kubectl = real_node.cp.kubectl
    pods = kubectl("-n", NAMESPACE, "get", "pods", "-o", "wide", check=False).stdout
    rrd = kubectl("-n", NAMESPACE, "get", "rrd", NAME, "-o", "jsonpath={.status}", check=False).stdout
    events = kubectl("-n", NAMESPACE, "get", "events", "--sort-by=.lastTimestamp", check=False).stdout
    engine = kubectl("-n", NAMESPACE, "logs", f"{NAME}-engine-0", "--tail=20", check=False).stdout
    return (f"pods:\n{pods}\nrrd status: {rrd}\nevents:\n{events[-3000:]}\nengine-0 log:\n{engine}\n"
            f"kubelet:\n{real_node.node.log('kubelet', 15)}")


def _seed_model_claim(real_node, namespace: str = NAMESPACE) -> None:
    """A claim of the default StorageClass, bound when a pod first uses it, then filled with the model."""
    from rerank_operator.serving.tiny_model import build_tiny_reranker, default_cache_dir

    cp = real_node.cp
    cp.kubectl("create", "namespace", namespace)
    cp.kubectl("-n", namespace, "apply", "-f", "-", input=f"""
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
    claim = lambda: json.loads(cp.kubectl("-n", namespace, "get", "pvc", MODEL_CLAIM, "-o", "json").stdout)  # noqa: E731
    wait_for(lambda: claim()["status"].get("phase") == "Bound", 120, "the model claim bound")
    volume = claim()["spec"]["volumeName"]
    path = Path(json.loads(cp.kubectl("get", "pv", volume, "-o", "json").stdout)["spec"]["hostPath"]["path"])
    shutil.copytree(build_tiny_reranker(default_cache_dir()), path / MODEL_DIR)
    for f in [path / MODEL_DIR, *(path / MODEL_DIR).rglob("*")]:
        f.chmod(0o755 if f.is_dir() else 0o644)
    cp.kubectl("-n", namespace, "delete", "pod", "model-loader", "--wait=true", "--grace-period=1")


def _chart_in_the_registry(real_node, registry: LocalRegistry, work: Path) -> str:
    """The chart packaged and pushed to the harness's private registry: the e2e installs it from there, as users
    install the published one."""
    cp, ca = real_node.cp, f"--ca-file={registry.ca_file}"
    cp.helm("registry", "login", registry.address, "--username", registry.username, "--password-stdin", ca,
            input=registry.password)
    cp.helm("package", str(CHART), "--destination", str(work))
    cp.helm("push", str(work / f"rerank-operator-{VERSION}.tgz"), f"oci://{registry.address}/charts", ca)
    return release_tooling.chart_url(registry.address)


def _helm_install(real_node, chart: str, registry: LocalRegistry) -> str:
    refs = {name: images.image_ref(name) for name in IMAGES}
    return real_node.cp.helm(
        "install", RELEASE, chart, "--version", VERSION, f"--ca-file={registry.ca_file}",
        "-n", NAMESPACE, "--create-namespace", *SAMPLE_ON_THIS_MACHINE,
        "--set", "sample.spec.ui.ingress.enabled=true", "--set", f"sample.spec.ui.ingress.host={UI_HOST}",
        "--set", f"tests.image={refs['ui']}", "--set", "tests.expectRelevantFirst=false", timeout=300).stdout


# The sample RerankerDeployment (`--set sample.enabled=true`) with the CPU engine, changed from the README only
# where a machine without a registry or a model hub, and with two cores, must.
SAMPLE_ON_THIS_MACHINE = (
    "--set", "sample.enabled=true",
    "--set", "sample.spec.engine.device=cpu", "--set", "sample.spec.engine.dtype=float32",
    "--set", f"sample.spec.model.name={MODEL}",
    "--set", f"sample.spec.model.pvc.claimName={MODEL_CLAIM}", "--set", f"sample.spec.model.pvc.path={MODEL_DIR}",
    "--set", "sample.spec.engine.cpuKVCacheGiB=1", "--set", "sample.spec.engine.maxModelLen=2048",
    "--set", "sample.spec.engine.resources.requests.cpu=250m",
    "--set", "sample.spec.engine.resources.requests.memory=1Gi",
    "--set", "sample.spec.engine.resources.limits.memory=4Gi",
    # No torch.compile warm-up: minutes per engine start on two shared cores, and this path starts four
    # (the compiled path serves in tests/serving and tests/docs, with the operator's command line).
    "--set", "sample.spec.engine.extraArgs={--enforce-eager}",
    "--set", "sample.spec.cache.size=1Gi",
)


@pytest.fixture(scope="module")
def release(real_node, steps, oci_registry: LocalRegistry,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The images in the node, the model on its claim, the chart installed and the sample Ready."""
    with steps.timed("images into the node"):
        imported = podman_images.load(real_node.node, list(IMAGES))
    print("\nimports (s; None: already in the node):", imported)
    with steps.timed("model claim"):
        _seed_model_claim(real_node)
    try:
        with steps.timed("helm install"):
            chart = _chart_in_the_registry(real_node, oci_registry, tmp_path_factory.mktemp("chart"))
            assert "STATUS: deployed" in _helm_install(real_node, chart, oci_registry)
        with steps.timed("rrd Ready"):
            waited = real_node.cp.kubectl("-n", NAMESPACE, "wait", "--for=condition=Ready", f"rrd/{NAME}",
                                          "--timeout=900s", check=False, timeout=960)
        if waited.returncode != 0:
            pytest.fail(f"rrd not Ready: {waited.stderr}\n{_context(real_node)}")
        yield
    finally:
        # Not waited for: the node's own teardown deletes whatever still runs.
        real_node.cp.helm("uninstall", RELEASE, "-n", NAMESPACE, check=False, timeout=240)
        real_node.cp.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def _run_pod(real_node, name: str, args: list[str], timeout: float = 180) -> str:
    real_node.cp.kubectl("-n", NAMESPACE, "run", name, f"--image={PROBE_IMAGE}", "--image-pull-policy=Never",
                         "--restart=Never", "--", *args)
    wait_for(lambda: _json(real_node, "get", "pod", name)["status"].get("phase") in ("Succeeded", "Failed"), timeout,
             f"pod {name} finished", context=lambda: _context(real_node))
    out = real_node.cp.kubectl("-n", NAMESPACE, "logs", name).stdout
    real_node.cp.kubectl("-n", NAMESPACE, "delete", "pod", name, "--wait=false")
    return out


def _engine_pods(real_node) -> list[dict]:
    return _json(real_node, "get", "pods", "-l",
                 f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=engine")["items"]


def _requests_served(pod_ip: str) -> float:
    """The engine's own count of finished requests (vLLM's /metrics), read from this host at the pod's address."""
    with urllib.request.urlopen(f"http://{pod_ip}:8000/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(m.group(1)) for m in re.finditer(r"^vllm:request_success_total\{[^}]*\} (\S+)$", text, re.M))


# ---- the steps -----------------------------------------------------------------------------------------


# The module's set-up (images, install, the first engine's start) runs within this test's time.
@pytest.mark.timeout(1500)
def test_the_release_gets_ready_through_the_kubelets_probes(real_node, release):
    pod = _json(real_node, "get", "pod", f"{NAME}-engine-0")
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True" and pod["status"]["containerStatuses"][0]["ready"] is True
    assert pod["status"]["podIP"].startswith("10.244.0.")  # a real sandbox on the node's bridge
    kinds = {i["metadata"]["labels"].get("app.kubernetes.io/component")
             for i in _json(real_node, "get", "pods", "-l", f"app.kubernetes.io/instance={NAME}")["items"]}
    assert {"engine", "gateway", "ui"} <= kinds


def test_rerank_from_a_pod_through_the_services_dns_name(real_node, release, steps):
    body = json.dumps({"model": MODEL, "query": "What is the capital of France?",
                       "documents": ["Paris is the capital of France.", "The quick brown fox."]})
    with steps.timed("rerank from a pod"):
        result = json.loads(_run_pod(real_node, "rerank-client", ["post", ENDPOINT, body]))
    assert sorted(r["index"] for r in result["results"]) == [0, 1]


def test_helm_test_passes_with_its_pod_running_on_the_node(real_node, release, steps):
    with steps.timed("helm test"):
        test = real_node.cp.helm("test", RELEASE, "-n", NAMESPACE, "--logs", check=False, timeout=300)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "Phase:          Succeeded" in test.stdout, test.stdout
    assert "ok: 3 documents ranked, best first; top_n=1 agrees" in test.stdout


def test_the_ui_through_the_ingress_in_chromium(real_node, release, steps):
    # The README's path: `make test` builds Traefik and installs Chromium, so neither may be missing here.
    assert real_node.node.with_ingress, "the node runs no Ingress controller: `make node-binaries` builds Traefik"
    chromium = Path("/usr/bin/chromium")
    assert chromium.exists(), "Debian's chromium is not installed (scripts/bootstrap.sh with WITH_BROWSER=1)"
    from playwright.sync_api import sync_playwright

    from rerank_ui.examples import ENGLISH_RAG

    ingress = _json(real_node, "get", "ingress", f"{NAME}-ui")
    assert ingress["spec"]["rules"][0]["host"] == UI_HOST
    port = urlsplit(real_node.node.ingress_url).port
    url = f"http://{UI_HOST}:{port}/"
    outside: list[str] = []
    with steps.timed("UI through the Ingress"), sync_playwright() as playwright:
        # The Ingress host resolves to the node's address, and nothing else resolves: no request leaves.
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--host-resolver-rules=MAP {UI_HOST} {NODE_IP}, MAP * ~NOTFOUND"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.on("request", lambda r: outside.append(r.url) if urlsplit(r.url).hostname != UI_HOST
                    and not r.url.startswith(("data:", "blob:")) else None)
            page.goto(url)
            page.locator("#rerank-button").wait_for()
            page.get_by_text(ENGLISH_RAG.label).click()
            page.wait_for_function("() => document.querySelector('#documents textarea').value.split('\\n').length"
                                   f" === {len(ENGLISH_RAG.documents)}")
            page.locator("#rerank-button").click()
            page.locator("#rerank-usage").get_by_text(f"Ranked {len(ENGLISH_RAG.documents)} documents").wait_for()
            # The banner shows the operator's status ConfigMap as the kubelet syncs it into the UI pod's volume:
            # up to about a minute behind the RerankerDeployment.
            page.wait_for_function("() => document.querySelector('#status-banner').innerText.includes('✅ Ready')",
                                   timeout=180_000)
            banner = page.locator("#status-banner").inner_text()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=ARTIFACTS / "node-ui-through-ingress.png", full_page=True)
        finally:
            browser.close()
    assert "1 of 1 replica ready" in banner, banner
    assert outside == []


def _start_steady_client(real_node, name: str) -> None:
    script = (Path(__file__).with_name("steady_client.py")).read_text()
    ui_image = images.image_ref("ui")
    real_node.cp.kubectl("-n", NAMESPACE, "apply", "-f", "-", input=yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"client.py": script}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "client", "image": ui_image, "imagePullPolicy": "IfNotPresent",
                "command": ["python3", "/client/client.py"],
                "env": [{"name": "URL", "value": ENDPOINT}, {"name": "MODEL", "value": MODEL},
                        {"name": "WORKERS", "value": "2"}, {"name": "PAUSE", "value": "0.2"},
                        {"name": "PYTHONUNBUFFERED", "value": "1"}],
                "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                "volumeMounts": [{"name": "client", "mountPath": "/client"}, {"name": "tmp", "mountPath": "/tmp"}],
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
            }],
            "volumes": [{"name": "client", "configMap": {"name": name}}, {"name": "tmp", "emptyDir": {}}],
        }},
    ]))
    wait_for(lambda: _client_counts(real_node, name).get("ok", 0) >= 3, 180, f"{name} getting answers",
             context=lambda: real_node.cp.kubectl("-n", NAMESPACE, "logs", name, "--tail=20", check=False).stdout
             + _context(real_node))


def _client_lines(real_node, name: str) -> list[dict]:
    out = real_node.cp.kubectl("-n", NAMESPACE, "logs", name, check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _client_counts(real_node, name: str) -> dict:
    progress = [line["progress"] for line in _client_lines(real_node, name) if "progress" in line]
    return progress[-1] if progress else {}


def _stop_steady_client(real_node, name: str) -> dict:
    real_node.cp.kubectl("-n", NAMESPACE, "exec", name, "--", "python3", "-c", "open('/tmp/stop', 'w').close()")
    wait_for(lambda: _json(real_node, "get", "pod", name)["status"].get("phase") in ("Succeeded", "Failed"), 180,
             f"{name} stopped")
    final = [line["final"] for line in _client_lines(real_node, name) if "final" in line]
    real_node.cp.kubectl("-n", NAMESPACE, "delete", "pod,configmap", name, "--wait=false")
    assert final, "the steady client printed no summary"
    return final[0]


@pytest.mark.timeout(1500)
def test_scaled_to_two_replicas_both_engines_serve_a_steady_client(real_node, release, steps):
    with steps.timed("scale to 2, second engine Ready"):
        real_node.cp.kubectl("-n", NAMESPACE, "scale", f"rrd/{NAME}", "--replicas", "2")
        wait_for(lambda: real_node.cp.kubectl("-n", NAMESPACE, "wait", "--for=condition=Ready",
                                              f"pod/{NAME}-engine-1", "--timeout=5s", check=False).returncode == 0,
                 900, "the second engine Ready", interval=2, context=lambda: _context(real_node))
        wait_for(lambda: _json(real_node, "get", "rrd", NAME).get("status", {}).get("readyReplicas") == 2, 120,
                 "the rrd reporting 2 ready replicas", context=lambda: _context(real_node))
    pods = {p["metadata"]["name"]: p["status"]["podIP"] for p in _engine_pods(real_node)}
    assert sorted(pods) == [f"{NAME}-engine-0", f"{NAME}-engine-1"]
    before = {name: _requests_served(ip) for name, ip in pods.items()}
    with steps.timed("steady client on 2 engines"):
        _start_steady_client(real_node, "steady-scale")
        # The gateway spreads the load: each engine's own counter grows (read from the engines, not the client).
        wait_for(lambda: all(_requests_served(ip) >= before[name] + 5 for name, ip in pods.items()), 240,
                 "both engines' request counters to grow by 5",
                 context=lambda: f"before {before}, now {({n: _requests_served(ip) for n, ip in pods.items()})}")
        final = _stop_steady_client(real_node, "steady-scale")
    assert final["failed"] == 0, final["failures"]
    print("\ncounters before/after:", before, {n: _requests_served(ip) for n, ip in pods.items()},
          "client:", {k: final[k] for k in ("ok", "failed")})


def _gateway_pods(real_node) -> list[dict]:
    return _json(real_node, "get", "pods", "-l",
                 f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=gateway")["items"]


def _gateways_total(real_node, metric: str) -> float:
    """A gateway metric summed over the gateway pods, read from this host at the pods' addresses."""
    total = 0.0
    for pod in _gateway_pods(real_node):
        if pod["metadata"].get("deletionTimestamp") or not pod["status"].get("podIP"):
            continue
        with urllib.request.urlopen(f"http://{pod['status']['podIP']}:8000/metrics", timeout=10) as response:
            total += metric_value(response.read().decode(), metric)
    return total


def _engine_ready_again(real_node, name: str, restarts: int | None = None) -> bool:
    """``name`` exists (an evicted pod is recreated under its name), is Ready, and restarted more than ``restarts``."""
    found = real_node.cp.kubectl("-n", NAMESPACE, "get", "pod", name, "-o", "json", check=False)
    if found.returncode != 0:
        return False
    pod = json.loads(found.stdout)
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    ready = statuses[0].get("ready", False) and not pod["metadata"].get("deletionTimestamp")
    return ready and (restarts is None or statuses[0].get("restartCount", 0) > restarts)


@pytest.mark.timeout(2100)
def test_engine_and_gateway_faults_under_a_steady_client_lose_no_request(real_node, release, steps, tmp_path):
    # The sample's two gateway pods; an engine timeout of seconds, so the hung engine is left quickly; the score
    # cache shared in a Redis on this host (stopped and started again in one phase).
    assert len(_gateway_pods(real_node)) == 2
    with socket.socket() as probe:
        probe.bind((NODE_IP, 0))
        redis_port = probe.getsockname()[1]
    redis_servers = [_redis_server(redis_port, tmp_path)]  # and the one the Redis phase starts again
    kubectl = real_node.cp.kubectl
    kubectl("-n", NAMESPACE, "create", "secret", "generic", "score-cache",
            f"--from-literal=url=redis://{NODE_IP}:{redis_port}/0")
    kubectl("-n", NAMESPACE, "patch", "rrd", NAME, "--type=merge", "-p", json.dumps({"spec": {"gateway": {
        "engineTimeoutSeconds": 5,
        "cache": {"backend": "redis", "redis": {"urlSecretRef": {"name": "score-cache", "key": "url"}}}}}}))
    try:
        _settle_after_roll(real_node)
        _faults_under_a_steady_client(real_node, steps, redis_servers, redis_port, tmp_path)
    finally:
        for server in redis_servers:
            server.terminate()
            server.wait(timeout=30)
        # Back to the defaults: an engine just started (the next step's) may take longer than 5 s for its first
        # requests, and every try would time out.
        kubectl("-n", NAMESPACE, "patch", "rrd", NAME, "--type=merge", "-p", json.dumps(
            {"spec": {"gateway": {"engineTimeoutSeconds": None, "cache": None}}}))
        _settle_after_roll(real_node)
        kubectl("-n", NAMESPACE, "delete", "secret", "score-cache")


def _faults_under_a_steady_client(real_node, steps, redis_servers: list, redis_port: int, workdir: Path) -> None:
    phases = faults.Phases()
    _start_steady_client(real_node, "steady-faults")
    with steps.timed("faults under a steady client"):
        with phases.phase("before"):
            time.sleep(15)
        assert _redis_keys(redis_port) > 0, "the gateways wrote no score into Redis"
        with phases.phase("Redis down 20 s, until written to again"):
            cache_errors = _gateways_total(real_node, "rerank_gateway_cache_errors_total")
            redis_servers[0].terminate()
            redis_servers[0].wait(timeout=30)
            time.sleep(20)
            cache_errors = _gateways_total(real_node, "rerank_gateway_cache_errors_total") - cache_errors
            # Empty, as a restarted cache without persistence is.
            redis_servers.append(_redis_server(redis_port, workdir))
            wait_for(lambda: _redis_keys(redis_port) > 0, 60, "the gateways writing to the restarted Redis")
        engine_0, engine_1 = (f"{NAME}-engine-0", f"{NAME}-engine-1")
        with phases.phase("engine SIGKILLed, until Ready again"):
            pod = _json(real_node, "get", "pod", engine_0)
            restarts = pod["status"]["containerStatuses"][0]["restartCount"]
            real_node.node.ctr("tasks", "kill", "--signal", "SIGKILL", faults.container_id(pod))
            wait_for(lambda: _engine_ready_again(real_node, engine_0, restarts), 600, "the killed engine Ready again",
                     interval=2, context=lambda: _context(real_node))
        with phases.phase("engine hung 25 s, until Ready again"):
            pod = _json(real_node, "get", "pod", engine_1)
            timeouts = _gateways_total(real_node, "rerank_gateway_engine_retries_total")
            real_node.node.ctr("tasks", "pause", faults.container_id(pod))
            try:
                time.sleep(25)
            finally:
                real_node.node.ctr("tasks", "resume", faults.container_id(pod))
            retried = _gateways_total(real_node, "rerank_gateway_engine_retries_total") - timeouts
            wait_for(lambda: _engine_ready_again(real_node, engine_1), 600, "the frozen engine Ready again",
                     interval=2, context=lambda: _context(real_node))
        with phases.phase("engine OOMKilled, until Ready again"):
            pod = _json(real_node, "get", "pod", engine_0)
            restarts = pod["status"]["containerStatuses"][0]["restartCount"]
            faults.oom_kill(real_node.node, pod)
            wait_for(lambda: _engine_ready_again(real_node, engine_0, restarts), 600, "the OOM-killed engine Ready "
                     "again", interval=2, context=lambda: _context(real_node))
            last = _json(real_node, "get", "pod", engine_0)["status"]["containerStatuses"][0]["lastState"]
            assert last["terminated"]["reason"] == "OOMKilled", last
        # The gateways' budget selects both gateway pods and allows one of them to go.
        budget = _json(real_node, "get", "pdb", f"{NAME}-gateway")["status"]
        assert (budget["expectedPods"], budget["disruptionsAllowed"]) == (2, 1), budget
        with phases.phase("gateway pod deleted, until replaced"):
            gateway = _gateway_pods(real_node)[0]["metadata"]["name"]
            real_node.cp.kubectl("-n", NAMESPACE, "delete", "pod", gateway, "--wait=false")
            wait_for(lambda: sum(1 for p in _gateway_pods(real_node) if p["metadata"]["name"] != gateway and all(
                c.get("ready") for c in p["status"].get("containerStatuses") or [{}])) == 2, 300,
                "two Ready gateway pods again", interval=2, context=lambda: _context(real_node))
        with phases.phase("engine evicted, until Ready again"):
            evicted, message = faults.evict(real_node.cp, NAMESPACE, engine_0)
            assert evicted, message
            refused, message = faults.evict(real_node.cp, NAMESPACE, engine_1, dry_run=True)
            assert not refused and "disruption budget" in message, message
            wait_for(lambda: _engine_ready_again(real_node, engine_0), 600, "the evicted engine Ready again",
                     interval=2, context=lambda: _context(real_node))
            wait_for(lambda: faults.evict(real_node.cp, NAMESPACE, engine_1, dry_run=True)[0], 120,
                     "the budget allowing an eviction again")
        with phases.phase("after"):
            time.sleep(15)
        final = _stop_steady_client(real_node, "steady-faults")
    rows = phases.figures(final)
    print("\n" + faults.table(rows))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "node-faults.json").write_text(json.dumps(rows, indent=1))
    assert final["failed"] == 0, final["failures"]
    assert all(r["answered"] > 0 for r in rows), rows  # every phase really ran under load
    # The hung engine's requests timed out and went to the other engine (it was Ready to Kubernetes for a while).
    assert retried >= 1, "no request was retried while an engine hung"
    # Each gateway counted the failed reads and writes while Redis was down, and served around them.
    assert cache_errors >= 1, "no gateway noticed Redis was down"


def _redis_server(port: int, workdir: Path) -> subprocess.Popen:
    """Debian's redis-server on this host at the node's address (the pods reach the host there), no persistence."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: make test installs it (scripts/bootstrap.sh, WITH_TEST_SERVICES=1)"
    server = subprocess.Popen([binary, "--bind", NODE_IP, "--port", str(port), "--protected-mode", "no",
                               "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: socket.socket().connect_ex((NODE_IP, port)) == 0, 30, "redis-server listening")
    return server


def _redis_keys(port: int) -> int:
    import redis

    return redis.Redis(host=NODE_IP, port=port, socket_timeout=5).dbsize()


def _post_rerank(url: str) -> None:
    body = {"model": MODEL, "query": "Which river runs through Paris?",
            "documents": ["The Seine runs through Paris.", "The Thames runs through London."]}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        assert len(json.loads(response.read())["results"]) == 2


def _documented_scrape_job() -> dict:
    """The kubernetes_sd job the documentation offers instead of the PodMonitors, wherever it is written."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    (job,) = [block for page in pages for block in re.findall(r"```yaml\n(.*?)```", page.read_text(), flags=re.S)
              if "kubernetes_sd_configs" in block]
    (scrape,) = yaml.safe_load(job)
    return scrape


def _prometheus_over_the_release(real_node, steps, tmp_path: Path) -> tuple[dict, list[str]]:
    """Each dashboard query's answer and the alert selectors that found nothing, from a Prometheus on this host
    scraping the release while a steady client runs."""
    job = _documented_scrape_job()
    for discovery in job["kubernetes_sd_configs"]:
        discovery["kubeconfig_file"] = str(real_node.cp.admin_kubeconfig)
    # Both operator pods (one leads; the other waits, serving its metrics too), as the ServiceMonitor finds them.
    operators = _json(real_node, "get", "pods", "-l",
                      f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator")["items"]
    port = next(p["containerPort"] for p in operators[0]["spec"]["containers"][0]["ports"] if p["name"] == "metrics")
    config = {"global": {"scrape_interval": "2s"}, "scrape_configs": [job, {
        "job_name": "rerank-operator-metrics", "honor_labels": True,  # what the chart's ServiceMonitor makes
        "static_configs": [{"targets": [f"{pod['status']['podIP']}:{port}"],
                            "labels": {"namespace": NAMESPACE, "pod": pod["metadata"]["name"]}}
                           for pod in operators]}]}

    def annotated() -> list[str]:
        return [p["metadata"]["name"] for p in _json(real_node, "get", "pods")["items"]
                if (p["metadata"].get("annotations") or {}).get("prometheus.io/scrape") == "true"]

    # 2 engines and 2 gateways, once the gateway pods the last step's roll replaced are gone (Prometheus would
    # discover a terminating pod too).
    engines_and_gateways = 4
    wait_for(lambda: len(annotated()) == engines_and_gateways, 120, "2 engine and 2 gateway pods to scrape", interval=2,
             context=lambda: str(annotated()))
    # The running operator's exposition passes promtool's lint (the engine's and gateway's: tests/gateway).
    with urllib.request.urlopen(f"http://{operators[0]['status']['podIP']}:{port}/metrics", timeout=10) as response:
        exposition = response.read()
    lint = subprocess.run([str(tools.path("promtool")), "check", "metrics"], input=exposition, capture_output=True,
                          timeout=60)
    assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), lint.stdout + lint.stderr
    _start_steady_client(real_node, "steady-monitoring")
    try:
        with steps.timed("Prometheus scraping the release"), \
                running_prometheus(tmp_path, config, targets=engines_and_gateways + len(operators), timeout=180) as url:
            # Pairs the gateways' caches answer (the steady client's are all new): the same request twice to each.
            for gateway in _gateway_pods(real_node):
                for _ in range(2):
                    _post_rerank(f"http://{gateway['status']['podIP']}:8000/v1/rerank")
            wait_for(lambda: query(url, f'rerank_autoscaler_desired_replicas{{name="{NAME}"}} == 2')
                     and query(url, 'sum(rate(rerank_gateway_pairs_total{source="engine"}[30s])) > 0')
                     and query(url, 'sum(rate(vllm:request_queue_time_seconds_count[30s])) > 0'), 180,
                     "the autoscaler's decisions and the client's traffic in Prometheus")
            answers = {q.expr: query(url, grafana(q.expr, NAMESPACE, NAME, "30s")) for q in dashboard.QUERIES}
            groups = one(render({"metrics": {"prometheusRule": {"enabled": True}}}), "PrometheusRule")["spec"]["groups"]
            missing = [f"{selector} ({rule['alert']})" for group in groups for rule in group["rules"]
                       for selector in selectors(rule["expr"]) if not query(url, selector)]
    finally:
        _stop_steady_client(real_node, "steady-monitoring")
    return answers, missing


@pytest.mark.timeout(900)
def test_a_real_prometheus_scrapes_the_release_and_every_dashboard_query_and_alert_answers(real_node, release,
                                                                                          steps, tmp_path):
    """Prometheus on this host finds the engines and gateways with the documented kubernetes_sd job (the cluster's
    API through a kubeconfig instead of a pod's service account) and scrapes the running operator as its
    ServiceMonitor would; the operator's autoscaler runs, held at the 2 replicas there are, so its series are
    the real operator's. Every dashboard query and every alert expression's selectors find their series."""
    kubectl = real_node.cp.kubectl
    kubectl("-n", NAMESPACE, "patch", "rrd", NAME, "--type=merge", "-p", json.dumps(
        {"spec": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 2}}}))
    try:
        answers, missing = _prometheus_over_the_release(real_node, steps, tmp_path)
    finally:
        kubectl("-n", NAMESPACE, "patch", "rrd", NAME, "--type=merge", "-p", json.dumps(
            {"spec": {"autoscaling": None}}))
    # Labelled failure counters have no series before their first failure: a healthy release has none.
    # Nor are there scale events while the autoscaler is held at 2 replicas, nor a learned capacity: the operator
    # exports it once it has seen a replica saturated, which the steady client never does.
    failure_counters = ("rerank_gateway_rejected_total", "rerank_gateway_cache_errors_total",
                        "rerank_gateway_engine_retries_total", "rerank_gateway_engine_failures_total", 'code!~"2.."',
                        "rerank_autoscaler_scale_events_total", "rerank_autoscaler_scrape_errors_total",
                        "rerank_autoscaler_capacity_tokens_per_second")
    empty = [expr for expr, answer in answers.items() if not answer and not any(c in expr for c in failure_counters)]
    assert empty == [], empty
    assert set(missing) <= {'rerank_gateway_requests_total{code=~"5.."} (RerankGatewayErrors)',
                            'rerank_operator_api_requests_total{job="rerank-operator-metrics", code=~"0|5.."} '
                            "(RerankOperatorApiErrors)"}, missing


def _engine_scores(pod_ip: str) -> list[float]:
    """Scores straight from one engine (not through the gateway, whose cache would answer a repeat)."""
    body = {"model": MODEL, "query": "What is the capital of France?", "instruction": "Find the capital city",
            "documents": ["Paris is the capital of France.", "The quick brown fox.", "Berlin is in Germany."]}
    request = urllib.request.Request(f"http://{pod_ip}:8000/v1/rerank", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        results = json.loads(response.read())["results"]
    return [score for _, score in sorted((r["index"], r["relevance_score"]) for r in results)]


@pytest.fixture(scope="module")
def tp1_scores(real_node, release) -> list[float]:
    """The sample's scores at tensorParallelSize 1, taken before the first rolling update."""
    return _engine_scores(_engine_pods(real_node)[0]["status"]["podIP"])


def _rolled(real_node, revision: str, replicas: int = 2) -> bool:
    status = _json(real_node, "get", "statefulset", f"{NAME}-engine")["status"]
    return (status.get("updateRevision") != revision and status.get("currentRevision") == status.get(
        "updateRevision") and status.get("updatedReplicas") == replicas and status.get("readyReplicas") == replicas)


def _settle_after_roll(real_node) -> None:
    real_node.cp.kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{NAME}-gateway", "--timeout=300s",
                         timeout=320)
    wait_for(lambda: real_node.cp.kubectl("-n", NAMESPACE, "wait", "--for=condition=Ready", f"rrd/{NAME}",
                                          "--timeout=5s", check=False).returncode == 0, 300, "the rrd Ready")


def _served_after_the_roll_then_stopped(real_node, client: str) -> dict:
    """The steady client's summary, once it was answered 5 more times after a roll."""
    served = _client_counts(real_node, client)["ok"]
    wait_for(lambda: _client_counts(real_node, client)["ok"] >= served + 5, 120, "requests after the roll")
    final = _stop_steady_client(real_node, client)
    print(f"\n{client} across the rolling update:", {k: final[k] for k in ("ok", "failed")})
    return final


def _assert_two_ranks_with_tp1_scores(real_node, pod: dict, tp1_scores: list[float]) -> None:
    # vLLM's own log: the second rank is a process of this pod.
    log = real_node.cp.kubectl("-n", NAMESPACE, "logs", pod["metadata"]["name"]).stdout
    assert "world_size=2 rank=1" in log, log[-2000:]
    tp2_scores = _engine_scores(pod["status"]["podIP"])
    assert max(abs(a - b) for a, b in zip(tp1_scores, tp2_scores)) <= 1e-5, (tp1_scores, tp2_scores)


@pytest.mark.timeout(2100)
def test_a_rolling_update_under_a_steady_client_loses_no_request(real_node, release, steps, tp1_scores):
    statefulset = f"{NAME}-engine"
    revision = _json(real_node, "get", "statefulset", statefulset)["status"]["currentRevision"]
    instruction = "Given a question about a city, retrieve the passage that answers it"
    _start_steady_client(real_node, "steady-roll")
    with steps.timed("rolling update of 2 engines to TP 2 under load"):
        # Two workers of ~1.8 GiB each beside the API server and engine core (bench/engine_memory.py).
        real_node.cp.kubectl("-n", NAMESPACE, "patch", "rrd", NAME, "--type=merge", "-p", json.dumps({"spec": {
            "instruction": instruction,
            "engine": {"tensorParallelSize": 2, "resources": {"limits": {"memory": "8Gi"}}}}}))
        wait_for(lambda: _rolled(real_node, revision), 1200, "both engines rolled and Ready", interval=2,
                 context=lambda: _context(real_node))
        _settle_after_roll(real_node)
    final = _served_after_the_roll_then_stopped(real_node, "steady-roll")
    assert final["failed"] == 0, final["failures"]
    for pod in _engine_pods(real_node):
        name, command = pod["metadata"]["name"], pod["spec"]["containers"][0]["command"]
        assert any(instruction in arg for arg in command), name
        assert command[command.index("--tensor-parallel-size") + 1] == "2", name
        shm = {v["name"]: v for v in pod["spec"]["volumes"]}["dshm"]["emptyDir"]
        assert shm == {"medium": "Memory", "sizeLimit": "4Gi"}, name
        _assert_two_ranks_with_tp1_scores(real_node, pod, tp1_scores)


GPU_DEVICES = 4  # two engines of tensorParallelSize 2


@pytest.mark.timeout(1800)
def test_on_a_gpu_shaped_node_the_engines_roll_to_device_gpu_with_the_same_scores(real_node, release, steps,
                                                                                   tp1_scores):
    """The sample as a GPU deployment (`device: gpu`, tensorParallelSize 2) whose only changes are the image (the
    CPU engine image: no GPU here) and what vLLM's CPU build needs through spec.engine.env, rolled out under a
    steady client on the node made GPU-shaped: devices from a device plugin, the RuntimeClass `nvidia`, the GPU
    pool's taint (the gateway, UI and client pods already running stay; the new engine pods must tolerate it)."""
    node = real_node.node
    revision = _json(real_node, "get", "statefulset", f"{NAME}-engine")["status"]["currentRevision"]
    _start_steady_client(real_node, "steady-gpu")
    try:
        with steps.timed("GPU-shaped node: rolling update of 2 engines to device gpu under load"):
            node.advertise_gpus(GPU_DEVICES)
            real_node.cp.kubectl("-n", NAMESPACE, "patch", "rrd", NAME, "--type=merge", "-p", json.dumps({"spec": {
                "engine": {"device": "gpu", "image": images.image_ref("engine-cpu"), "env": [
                    # What the CPU build needs that a GPU's command line does not say: its KV cache size (a GPU's
                    # is gpuMemoryUtilization of its memory), and its ranks not pinned to cores they share.
                    {"name": "VLLM_CPU_KVCACHE_SPACE", "value": "1"},
                    {"name": "VLLM_CPU_OMP_THREADS_BIND", "value": "nobind"}]},
                "scheduling": {"runtimeClassName": "nvidia"}}}))
            wait_for(lambda: _rolled(real_node, revision), 1200, "both engines rolled to device gpu and Ready",
                     interval=2, context=lambda: _context(real_node) + node.log("gpu-device-plugin", 10))
            _settle_after_roll(real_node)
        final = _served_after_the_roll_then_stopped(real_node, "steady-gpu")
        assert final["failed"] == 0, final["failures"]

        devices: list[str] = []
        for pod in _engine_pods(real_node):
            name, spec = pod["metadata"]["name"], pod["spec"]
            container = spec["containers"][0]
            assert spec["nodeName"] == node.name and spec["runtimeClassName"] == "nvidia", name
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
            assert container["resources"]["limits"]["nvidia.com/gpu"] == "2", name
            assert "--gpu-memory-utilization" in container["command"], name  # the GPU command line, as written
            # containerd ran it with the RuntimeClass's handler (whose runc keeps its state apart).
            container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
            assert list(node.layout.gpu_runc_root.glob(f"*/{container_id}")), name
            devices += visible_devices(node, pod)
            _assert_two_ranks_with_tp1_scores(real_node, pod, tp1_scores)
        # Each engine got two of the four devices, none shared.
        assert len(devices) == GPU_DEVICES and len(set(devices)) == GPU_DEVICES, devices
    finally:
        node.withdraw_gpus()


def test_deleting_the_reranker_deployment_removes_its_pods_services_and_claims(real_node, release, steps):
    selector = f"app.kubernetes.io/instance={NAME}"
    claims = [c["metadata"]["name"] for c in _json(real_node, "get", "pvc", "-l", selector)["items"]]
    assert sorted(claims) == [f"model-cache-{NAME}-engine-0", f"model-cache-{NAME}-engine-1"]
    volumes = {c["spec"]["volumeName"] for c in _json(real_node, "get", "pvc", "-l", selector)["items"]}
    with steps.timed("delete the rrd"):
        real_node.cp.kubectl("-n", NAMESPACE, "delete", "rrd", NAME, "--wait=true", "--timeout=300s", timeout=320)
        wait_for(lambda: not _json(real_node, "get", CHILD_KINDS, "-l", selector)["items"], 300,
                 "every child of the rrd gone",
                 context=lambda: real_node.cp.kubectl("-n", NAMESPACE, "get", CHILD_KINDS, "-l", selector,
                                                      check=False).stdout)
        # The claims' volumes go too (the StorageClass's reclaim policy Delete, carried out by the provisioner).
        wait_for(lambda: not volumes & set(real_node.cp.kubectl("get", "pv", "-o", "name", check=False)
                                           .stdout.replace("persistentvolume/", "").split()), 120,
                 "the claims' volumes deleted")
    left = _json(real_node, "get", "pods")["items"]
    assert all(not p["metadata"]["name"].startswith(NAME) for p in left), [p["metadata"]["name"] for p in left]
    # Only what is not the deployment's stays: the admin's model claim.
    assert [c["metadata"]["name"] for c in _json(real_node, "get", "pvc")["items"]] == [MODEL_CLAIM]
