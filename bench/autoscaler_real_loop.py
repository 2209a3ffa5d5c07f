"""The autoscaler's real loop on the real CPU engine: a load step against local mode, timed.

    .venv/bin/python bench/autoscaler_real_loop.py --rate 300 | --clients 8 [--documents 32]
    PYTHONPATH=OLD/operator:OLD/gateway:OLD/localdev .venv/bin/python bench/autoscaler_real_loop.py ...  # OLD: a tree

Local mode on simulated nodes (a real control plane and the real operator; the engines are real vLLM CPU
processes started from the pods' own specs, the gateway too) with the sample RerankerDeployment set to
autoscale between 1 and 2 replicas and its UI off. Once its one engine is Ready and idle, the load steps
up (t0): rerank requests of ``--documents`` new documents, each on a new connection, to the engines' Service
through local mode's service proxy, either arriving at ``--rate`` pairs/s whether or not earlier ones were
answered (open loop: users of a search service), or from ``--clients`` clients that each send the next as
soon as the last is answered (closed loop: a batch job). Not through the gateway: here
the gateway reaches the engines through that one proxy address (the headless Service's DNS name resolves
to the pods only in a cluster) and keeps its connections open on the engine that was there first, so a
new engine would get nothing from it; the proxy hands each new connection to a Ready engine in turn, as
the gateway's DNS re-resolution does in a cluster. Printed: the seconds from t0 to

- the operator asking for a second replica (the StatefulSet's spec.replicas),
- the new engine pod Ready (its readiness probe, as local mode's kubelet stand-in reports it),
- the new engine's first answered request (its ``vllm:request_success_total`` above 0),

with the operator's scale event and the requests answered and failed meanwhile. For a before/after, put
another checkout's (a ``git worktree`` of an older commit) ``operator``, ``gateway`` and ``localdev``
directories on PYTHONPATH: the operator, its CRD and local mode then come from there. Both engines share
this machine's cores: the second one is timed, not expected to double the throughput.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

import rerank_operator
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from rerank_localdev.local_stack import LocalStack
from rerank_operator.autoscaling.loop import _is_ready
from rerank_operator.autoscaling.metrics import parse_engine_sample

ENGINE_PORT = 8000


class Clients:
    """The load: closed loop (``clients`` each send the next request once the last is answered) or open
    loop (a request every ``documents / rate`` seconds, in a thread of its own)."""

    def __init__(self, endpoint: str, model: str, documents: int, *, clients: int = 0, rate: float = 0.0) -> None:
        self.endpoint, self.model, self.documents = endpoint, model, documents
        self.sent = itertools.count()
        self.stop = threading.Event()
        self.ok = self.failed = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.latencies: list[float] = []
        self.rate = rate
        self.threads = [threading.Thread(target=self._closed_loop, daemon=True) for _ in range(clients)]
        if rate:
            self.threads = [threading.Thread(target=self._open_loop, daemon=True)]
        self.open_requests: list[threading.Thread] = []

    def _one(self) -> None:
        n = next(self.sent)
        # New text in every request: no cache answers any of it.
        body = {"model": self.model, "query": f"which passage names city {n}?",
                "documents": [f"passage {n}.{i}: " + "the quick brown fox jumps over the lazy dog " * 12
                              for i in range(self.documents)]}
        request = urllib.request.Request(self.endpoint, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        t = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=900) as response:
                response.read()
            self.ok += 1
            self.latencies.append(time.monotonic() - t)
        except OSError as exc:
            self.failed += 1
            self.errors[str(exc)[:120]] += 1

    def _closed_loop(self) -> None:
        while not self.stop.is_set():
            self._one()

    def _open_loop(self) -> None:
        interval, next_at = self.documents / self.rate, time.monotonic()
        while not self.stop.is_set():
            thread = threading.Thread(target=self._one, daemon=True)
            thread.start()
            self.open_requests.append(thread)
            next_at += interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        self.unanswered = sum(1 for t in self.open_requests if t.is_alive())


def requests_served(pod_ip: str) -> float:
    """The engine's finished requests, read as the autoscaler reads them."""
    with urllib.request.urlopen(f"http://{pod_ip}:{ENGINE_PORT}/metrics", timeout=5) as response:
        return parse_engine_sample(response.read().decode()).requests_done or 0.0


def read_pod(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod | None:
    try:
        return core.read_namespaced_pod(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def step(stack: LocalStack, clients: Clients, timeout: float) -> dict:
    api = stack.cp.api_client()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    ns, statefulset, new_pod = stack.namespace, f"{stack.name}-engine", f"{stack.name}-engine-1"
    times: dict[str, float] = {}
    t0 = time.monotonic()
    clients.start()
    try:
        while "first answered" not in times:
            now = time.monotonic() - t0
            if now > timeout:
                break
            if "replicas asked" not in times and apps.read_namespaced_stateful_set(statefulset, ns).spec.replicas >= 2:
                times["replicas asked"] = now
            if "replicas asked" in times:
                pod = read_pod(core, ns, new_pod)
                if pod is not None and _is_ready(pod):
                    times.setdefault("new pod Ready", now)
                    try:
                        if requests_served(pod.status.pod_ip) > 0:
                            times["first answered"] = now
                    except OSError:
                        pass
            time.sleep(0.5)
    finally:
        clients.close()
    events = [e for e in core.list_namespaced_event(ns).items if e.involved_object.kind == "RerankerDeployment"
              and "scal" in (e.reason or "").lower()]
    return {"seconds": {k: round(v, 1) for k, v in times.items()},
            "scale events": [f"{e.reason}: {e.message}" for e in events],
            "requests": {"ok": clients.ok, "failed": clients.failed, "unanswered at the end": clients.unanswered,
                         "errors": dict(clients.errors.most_common(3)),
                         "median latency s": round(statistics.median(clients.latencies), 2)
                         if clients.latencies else None}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    load = p.add_mutually_exclusive_group(required=True)
    load.add_argument("--rate", type=float, help="open loop: pairs (query-document) per second")
    load.add_argument("--clients", type=int, help="closed loop: clients sending back to back")
    p.add_argument("--documents", type=int, default=32)
    p.add_argument("--timeout", type=float, default=900.0, help="seconds after the step to wait for it all")
    args = p.parse_args()
    stack = LocalStack(argparse.Namespace(port=None, ui_port=None, timeout=900.0, keep_logs=False))
    stack.sample["spec"]["autoscaling"] = {"enabled": True, "minReplicas": 1, "maxReplicas": 2}
    stack.sample["spec"]["ui"] = {"enabled": False}
    try:
        stack.up()
        time.sleep(15)  # idle: the autoscaler's first passes see a fleet with nothing waiting
        model = stack.sample["spec"]["model"].get("servedModelName") or stack.sample["spec"]["model"]["name"]
        engines = stack.proxy.local_port(stack.namespace, f"{stack.name}-engine", ENGINE_PORT)
        endpoint = f"http://127.0.0.1:{engines}/v1/rerank"
        clients = Clients(endpoint, model, args.documents, clients=args.clients or 0, rate=args.rate or 0.0)
        result = step(stack, clients, args.timeout)
    finally:
        stack.down()
    result["operator"] = str(Path(rerank_operator.__file__).parents[1])
    result["load"] = f"{args.rate:g} pairs/s, open loop" if args.rate else f"{args.clients} clients, closed loop"
    print(json.dumps(result, indent=1))
    return 0 if "first answered" in result["seconds"] else 1


if __name__ == "__main__":
    sys.exit(main())
