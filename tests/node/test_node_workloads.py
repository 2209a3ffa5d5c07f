"""What a real node does for the product's pods, checked through the API as a user would: containers run from
images imported without a registry, the kubelet's probes decide readiness, a Service's DNS name resolves and
routes inside a pod (CoreDNS + kube-proxy), logs and exec go through the API server to the kubelet, and memory
limits are enforced by the kernel."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from rerank_localdev.node.binaries import PROBE_IMAGE
from rerank_localdev.node.config import CGROUP_ROOT
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.node


def _apply(real_node, namespace: str, manifest: str) -> None:
    real_node.cp.kubectl("-n", namespace, "apply", "-f", "-", input=manifest)


def _pod(real_node, namespace: str, name: str) -> dict:
    return json.loads(real_node.cp.kubectl("-n", namespace, "get", "pod", name, "-o", "json").stdout)


def _wait_ready(real_node, namespace: str, name: str, timeout: float = 120) -> None:
    wait_for(lambda: real_node.cp.kubectl("-n", namespace, "wait", "--for=condition=Ready", f"pod/{name}",
                                          "--timeout=2s", check=False).returncode == 0,
             timeout, f"pod {name} Ready", context=lambda: json.dumps(_pod(real_node, namespace, name)["status"]))


def test_probes_decide_readiness_and_a_service_name_resolves_and_routes_from_a_pod(real_node, node_namespace):
    ns = node_namespace
    _apply(real_node, ns, f"""
apiVersion: v1
kind: Pod
metadata: {{name: web, labels: {{app: web}}}}
spec:
  containers:
  - name: web
    image: {PROBE_IMAGE}
    imagePullPolicy: Never
    args: [serve, ":8080"]
    readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}
    resources: {{limits: {{memory: 64Mi, cpu: 200m}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: never-ready}}
spec:
  containers:
  - name: web
    image: {PROBE_IMAGE}
    imagePullPolicy: Never
    args: [serve, ":8080"]
    readinessProbe: {{httpGet: {{path: /healthz, port: 9999}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
""")
    _wait_ready(real_node, ns, "web")
    web = _pod(real_node, ns, "web")
    assert web["status"]["podIP"].startswith("10.244.0.")
    # The kubelet's probe against a closed port keeps the other pod unready although it runs.
    wait_for(lambda: (_pod(real_node, ns, "never-ready")["status"].get("containerStatuses") or [{}])[0]
             .get("state", {}).get("running"), 60, "never-ready running")
    never = _pod(real_node, ns, "never-ready")
    assert {c["type"]: c["status"] for c in never["status"]["conditions"]}["Ready"] == "False"

    # From another pod: the Service's DNS name (CoreDNS) and its ClusterIP (kube-proxy's rules).
    _apply(real_node, ns, f"""
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  restartPolicy: Never
  containers:
  - name: client
    image: {PROBE_IMAGE}
    imagePullPolicy: Never
    args: [get, "http://web.{ns}.svc.cluster.local/"]
""")
    wait_for(lambda: _pod(real_node, ns, "client")["status"].get("phase") in ("Succeeded", "Failed"), 120,
             "client pod finished")
    logs = real_node.cp.kubectl("-n", ns, "logs", "client").stdout
    assert _pod(real_node, ns, "client")["status"]["phase"] == "Succeeded", logs
    assert logs.strip() == "web"  # the server pod's host name, served through the Service

    # exec through the API server and the kubelet; the memory limit is the container's cgroup limit.
    out = real_node.cp.kubectl("-n", ns, "exec", "web", "--", "/probe", "get", "http://127.0.0.1:8080/healthz")
    assert out.stdout == "ok"
    (pod_cgroup,) = Path("/sys/fs/cgroup/memory", CGROUP_ROOT.strip("/")).rglob(f"pod{web['metadata']['uid']}")
    assert int((pod_cgroup / "memory.limit_in_bytes").read_text()) == 64 * 1024 * 1024


def test_an_unknown_name_is_not_resolved_upstream(real_node, node_namespace):
    """CoreDNS has no upstream: a name outside the cluster fails inside the cluster instead of leaving."""
    ns = node_namespace
    _apply(real_node, ns, f"""
apiVersion: v1
kind: Pod
metadata: {{name: outside}}
spec:
  restartPolicy: Never
  containers:
  - name: client
    image: {PROBE_IMAGE}
    imagePullPolicy: Never
    args: [get, "http://example.com/"]
""")
    wait_for(lambda: _pod(real_node, ns, "outside")["status"].get("phase") in ("Succeeded", "Failed"), 120,
             "outside pod finished")
    assert _pod(real_node, ns, "outside")["status"]["phase"] == "Failed"
    assert "example.com" in real_node.cp.kubectl("-n", ns, "logs", "outside").stdout + \
        real_node.cp.kubectl("-n", ns, "logs", "outside").stderr


def test_a_claim_is_provisioned_in_cluster_and_an_ingress_routes_from_the_host(real_node, node_namespace):
    """The default StorageClass's provisioner (a pod) makes the volume when the pod is scheduled; Traefik, the
    default IngressClass, routes a host name to the Service, reached from this host at the node's address."""
    ns = node_namespace
    _apply(real_node, ns, f"""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 10Mi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: site, labels: {{app: site}}}}
spec:
  containers:
  - name: site
    image: {PROBE_IMAGE}
    imagePullPolicy: Never
    args: [serve, ":8080"]
    readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes: [{{name: data, persistentVolumeClaim: {{claimName: data}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: site}}
spec:
  selector: {{app: site}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: site}}
spec:
  rules:
  - host: site.example.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: site, port: {{number: 80}}}}}}}}
""")
    _wait_ready(real_node, ns, "site")
    claim = json.loads(real_node.cp.kubectl("-n", ns, "get", "pvc", "data", "-o", "json").stdout)
    assert claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"] == "hostpath"  # defaulted: the cluster's default class
    pv = json.loads(real_node.cp.kubectl("get", "pv", claim["spec"]["volumeName"], "-o", "json").stdout)
    assert Path(pv["spec"]["hostPath"]["path"]).is_dir()
    assert real_node.node.with_ingress, "the node runs no Ingress controller: `make node-binaries` builds Traefik"
    ingress = json.loads(real_node.cp.kubectl("-n", ns, "get", "ingress", "site", "-o", "json").stdout)
    assert ingress["spec"]["ingressClassName"] == "traefik"  # defaulted: the cluster's default IngressClass

    def through_ingress():
        req = urllib.request.Request(real_node.node.ingress_url + "/", headers={"Host": "site.example.test"})
        try:
            # No proxy from the environment: the request goes straight to the node's address.
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=5) as resp:
                return resp.read().decode()
        except OSError:
            return None

    assert wait_for(through_ingress, 60, "the Ingress to route") == "site"
