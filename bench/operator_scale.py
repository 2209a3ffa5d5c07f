"""How fast the operator turns N RerankerDeployments into their children, against the raw limit.

    .venv/bin/python bench/operator_scale.py [--count 200] [--rss-count 1000] [--kubeconfig PATH]

Starts its own local control plane (or uses --kubeconfig's cluster, with the CRD installed), then:

1. Raw limit: the same child objects N RerankerDeployments have (every child the default spec
   makes: Services, ServiceAccounts, StatefulSet, PodDisruptionBudget, status ConfigMap, the UI's
   and the gateway's Deployments) created by a tight parallel client (aiohttp, --concurrency
   connections) -> seconds.
2. Operator: `rerank-operator run` as its own process; N RerankerDeployments are created at once
   and the clock stops when every one has a current status (status.observedGeneration ==
   metadata.generation, written only after all its children were applied); the children are then
   counted to confirm. Ratio = raw seconds / operator seconds (1.0: as fast as the raw client).
   For both phases the API server's own counters give the requests and watch events it served
   per RerankerDeployment (every client's, the controllers' included).
3. Peak RSS of the operator process while it manages --rss-count RerankerDeployments (more are
   created up to that number, and it settles for --settle seconds).
4. Drift repair at that scale: --drift-samples times, one child of a random RerankerDeployment is
   deleted or edited by hand (each child kind in turn; edits of a field the operator owns), and the
   clock runs until it is back as the operator makes it (polled every 20 ms) -> p50/p99/max.

Engine and UI replicas are 0 by default so that the kube-controller-manager's pod creation does
not dominate a small machine; the operator's own work does not depend on them. The gateway has at
least one pod, whose creation (and the endpoints and status updates that follow)
falls into the operator phase but mostly after the raw one; --no-gateway leaves it out of both.
Each phase line names the load average; as the wall-clock ratio moves with other work on a shared
machine, the ratio of the CPU seconds both phases cost is printed too. Targets: ratio >= 0.5, RSS
<= 150 MB, drift repair p99 <= 2 s. Prints one line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from rerank_localdev.controlplane import LocalControlPlane, free_ports
from rerank_operator.api.v1alpha1 import parse_spec
from rerank_operator.reconcile.kube import ApiError, KubeClient, load_configuration
from rerank_operator.resources import CHILD_KINDS, desired_children

GROUP, VERSION, PLURAL = "rerank.io", "v1alpha1", "rerankerdeployments"


def _die_with_parent() -> None:
    # In the child before exec: SIGKILL when the parent dies (PR_SET_PDEATHSIG), however it dies.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def cr_spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {"replicas": args.engine_replicas, "ui": {"replicas": args.ui_replicas}}
    if args.no_gateway:
        spec["gateway"] = {"enabled": False}
    return spec


def load() -> str:
    return "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg())


def total(before: dict[str, float], after: dict[str, float]) -> float:
    return sum(after[name] - before.get(name, 0.0) for name in after)


def fake_body(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RerankerDeployment",
            "metadata": {"name": name, "namespace": namespace, "uid": "0", "generation": 1}, "spec": spec}


async def create_namespace(kube: KubeClient, name: str) -> None:
    try:
        await kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    except ApiError as exc:
        if exc.status != 409:
            raise


async def gather_limited(coros: list, limit: int) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(coro):
        async with semaphore:
            return await coro

    await asyncio.gather(*(one(c) for c in coros))


async def raw_phase(kube: KubeClient, namespace: str, count: int, spec: dict[str, Any], concurrency: int) -> tuple[float, int]:
    """Seconds for a tight parallel client to create every child of `count` objects."""
    await create_namespace(kube, namespace)
    manifests = []
    for i in range(count):
        body = fake_body(f"bench-{i}", namespace, spec)
        for child in desired_children(body, parse_spec(body["spec"])):
            child["metadata"].pop("ownerReferences")  # no owner exists; garbage collection would remove them
            manifests.append(child)

    async def create(m: dict[str, Any]) -> None:
        await kube.create(m["apiVersion"], m["kind"], namespace, m)

    started = time.perf_counter()
    await gather_limited([create(m) for m in manifests], concurrency)
    return time.perf_counter() - started, len(manifests)


async def wait_current(kube: KubeClient, namespace: str, count: int, timeout: float) -> None:
    """Until `count` RerankerDeployments have a current status. Followed by a watch, not a poll: a
    list of every object several times a second would cost the API server more than the operator."""
    deadline = time.monotonic() + timeout
    path = kube.configuration.host.rstrip("/") + f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    current: dict[str, bool] = {}

    def is_current(o: dict[str, Any]) -> bool:
        return (o.get("status") or {}).get("observedGeneration") == o["metadata"].get("generation")

    while True:
        listed = (await kube.request("GET", path[len(kube.configuration.host.rstrip("/")):]))[1]
        current = {o["metadata"]["name"]: is_current(o) for o in listed["items"]}
        version = listed["metadata"]["resourceVersion"]
        session = await kube.session()
        left = deadline - time.monotonic()
        if sum(current.values()) >= count:
            return
        if left <= 0:
            raise TimeoutError(f"{sum(current.values())} of {count} RerankerDeployments current after {timeout:.0f} s")
        params = {"watch": "1", "resourceVersion": version, "timeoutSeconds": str(max(1, int(left)))}
        async with session.get(path, params=params, headers={"Accept": "application/json", **kube._auth_headers()},
                               timeout=aiohttp.ClientTimeout(total=None, sock_read=left + 5)) as resp:
            async for line in resp.content:
                event = json.loads(line)
                if event["type"] == "ERROR":
                    break  # e.g. the version is too old: list again
                name = event["object"]["metadata"]["name"]
                if event["type"] == "DELETED":
                    current.pop(name, None)
                else:
                    current[name] = is_current(event["object"])
                if sum(current.values()) >= count:
                    return


async def operator_phase(kube: KubeClient, namespace: str, first: int, count: int, spec: dict[str, Any],
                         concurrency: int, timeout: float) -> float:
    """Seconds from creating RerankerDeployments first..count-1 until all `count` have a current status."""
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"

    async def create(i: int) -> None:
        await kube.request("POST", path, body={"apiVersion": f"{GROUP}/{VERSION}", "kind": "RerankerDeployment",
                                               "metadata": {"name": f"bench-{i}"}, "spec": spec})

    started = time.perf_counter()
    await gather_limited([create(i) for i in range(first, count)], concurrency)
    await wait_current(kube, namespace, count, timeout)
    return time.perf_counter() - started


# (what is done to the child, api_version, kind, name of it from the RerankerDeployment's name, patch
# or None for a deletion, check that it is back)
def _drift_cases() -> list[tuple[str, str, str, Any, Any, Any]]:
    return [
        ("delete", "v1", "Service", lambda n: n, None, None),
        ("delete", "v1", "Service", lambda n: f"{n}-engine-headless", None, None),
        ("delete", "apps/v1", "StatefulSet", lambda n: f"{n}-engine", None, None),
        ("delete", "policy/v1", "PodDisruptionBudget", lambda n: f"{n}-engine", None, None),
        ("delete", "v1", "ConfigMap", lambda n: f"{n}-status", None, None),
        ("delete", "apps/v1", "Deployment", lambda n: f"{n}-ui", None, None),
        ("delete", "v1", "Service", lambda n: f"{n}-ui", None, None),
        ("edit", "v1", "Service", lambda n: f"{n}-engine-headless", {"spec": {"publishNotReadyAddresses": False}},
         lambda o: o["spec"].get("publishNotReadyAddresses") is True),
        ("edit", "apps/v1", "Deployment", lambda n: f"{n}-ui", {"spec": {"replicas": 3}},
         lambda o: o["spec"]["replicas"] == 0),
        ("edit", "v1", "ConfigMap", lambda n: f"{n}-status", {"data": {"status.json": "{}"}},
         lambda o: o["data"]["status.json"] != "{}"),
    ]


async def drift_phase(kube: KubeClient, namespace: str, count: int, samples: int, seed: int) -> list[float]:
    """Seconds from a hand deletion/edit of a child until it is back, for ``samples`` children."""
    import random

    rng = random.Random(seed)
    cases = _drift_cases()
    took = []
    for i in range(samples):
        action, api_version, kind, child_name, patch, repaired = cases[i % len(cases)]
        name = child_name(f"bench-{rng.randrange(count)}")
        before = await kube.get(api_version, kind, namespace, name)
        if action == "delete":
            await kube.delete(api_version, kind, namespace, name)
        else:
            await kube.merge_patch(api_version, kind, namespace, name, patch)
        started = time.perf_counter()
        while True:
            now = await kube.get(api_version, kind, namespace, name)
            if action == "delete":
                done = now is not None and now["metadata"]["uid"] != before["metadata"]["uid"]
            else:
                done = now is not None and repaired(now)
            if done:
                break
            if time.perf_counter() - started > 60:
                raise TimeoutError(f"{action} of {kind} {name} not repaired in 60 s")
            await asyncio.sleep(0.02)
        took.append(time.perf_counter() - started)
    return took


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))]


async def count_children(kube: KubeClient, namespace: str) -> int:
    total = 0
    for kind in CHILD_KINDS:
        items = await kube.list(kind.api_version, kind.kind, namespace, "app.kubernetes.io/managed-by=rerank-operator")
        total += len(items)
    return total


class PeakRSS:
    """Samples a process' resident set size every 0.1 s in a thread."""

    def __init__(self, pid: int):
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(0.1)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    result = {}
    for name, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times()
            result[name] = times.user + times.system
        except psutil.Error:
            pass
    return result


def cpu_line(before: dict[str, float], after: dict[str, float]) -> str:
    return ", ".join(f"{name} {after[name] - before.get(name, 0.0):.1f}" for name in after)


def api_requests(metrics_url: str) -> str:
    """The operator's own API requests by verb and resource (its reconcile client; kopf's are not counted)."""
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("rerank_operator_api_requests_total{"):
            labels, value = line[len("rerank_operator_api_requests_total{"):].rsplit("} ", 1)
            fields = dict(item.split("=", 1) for item in labels.split(","))
            key = f"{fields['verb'].strip(chr(34))} {fields['resource'].strip(chr(34))} {fields['code'].strip(chr(34))}"
            counts[key] = counts.get(key, 0) + float(value)
    return ", ".join(f"{k}: {v:.0f}" for k, v in sorted(counts.items()))


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


async def server_counts(kube: KubeClient) -> dict[str, float]:
    """The API server's own counters: requests by verb, resource and code (every client's: the
    operator's, kopf's, the controllers' and this script's) and watch events sent, by resource."""
    _, text = await kube.request("GET", "/metrics", content_type=None)
    counts: dict[str, float] = {}
    for line in str(text).splitlines():
        for metric, what in (("apiserver_request_total{", "request"), ("apiserver_watch_events_total{", "watch event")):
            if line.startswith(metric):
                labels, value = line[len(metric):].rsplit("} ", 1)
                fields = dict(_LABEL.findall(labels))
                resource = fields.get("resource") or fields.get("kind", "?")
                if fields.get("subresource"):
                    resource += "/" + fields["subresource"]
                key = f"{what} {fields['verb']} {resource} {fields['code']}" if what == "request" else f"{what} {resource}"
                counts[key] = counts.get(key, 0.0) + float(value)
    return counts


def server_line(before: dict[str, float], after: dict[str, float], per: int) -> str:
    """Per RerankerDeployment: requests and watch events the API server served between two counts."""
    delta = {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}
    requests = sum(v for k, v in delta.items() if k.startswith("request ") and " WATCH " not in k)
    events = sum(v for k, v in delta.items() if k.startswith("watch event "))
    detail = ", ".join(f"{k.split(' ', 1)[1] if k.startswith('request ') else k} {v / per:.2f}"
                       for k, v in sorted(delta.items(), key=lambda kv: -kv[1]) if v / per >= 0.05)
    return f"{requests / per:.1f} requests and {events / per:.1f} watch events per RerankerDeployment ({detail})"


def start_operator(kubeconfig: str, namespace: str, log: Path, metrics_port: int) -> subprocess.Popen:
    (liveness,) = free_ports(1)
    env = {**os.environ, "KUBECONFIG": kubeconfig, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "rerank_operator", "run", "--standalone", "--namespace", namespace,
            "--liveness", f"http://127.0.0.1:{liveness}/healthz", "--metrics-port", str(metrics_port),
            "--metrics-address", "127.0.0.1"]
    with open(log, "wb") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                 preexec_fn=_die_with_parent)
    deadline = time.monotonic() + 60
    while True:
        if popen.poll() is not None:
            raise RuntimeError(f"operator exited: {log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{liveness}/healthz", timeout=2).read()
            return popen
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"operator not live after 60 s: {log.read_text()[-3000:]}")
            time.sleep(0.2)


async def run(args: argparse.Namespace, kubeconfig: str, workdir: Path, cluster_pids: dict[str, int]) -> None:
    spec = cr_spec(args)
    kube = KubeClient(load_configuration(kubeconfig), connections=args.concurrency, timeout=120)
    try:
        before, served = cpu_seconds(cluster_pids), await server_counts(kube)
        raw_s, objects = await raw_phase(kube, "bench-raw", args.count, spec, args.concurrency)
        raw_cpu = total(before, cpu_seconds(cluster_pids))
        print(f"raw client: {objects} child objects in {raw_s:.2f} s ({objects / raw_s:.0f} objects/s); "
              f"CPU s: {cpu_line(before, cpu_seconds(cluster_pids))}; {load()}", flush=True)
        print(f"API server, raw phase: {server_line(served, await server_counts(kube), args.count)}", flush=True)
        await asyncio.sleep(args.settle)  # let the controllers finish reacting to the raw objects

        await create_namespace(kube, "bench-op")
        log = workdir / "operator.log"
        (metrics_port,) = free_ports(1)
        popen = start_operator(kubeconfig, "bench-op", log, metrics_port)
        try:
            with PeakRSS(popen.pid) as rss:
                idle_rss = psutil.Process(popen.pid).memory_info().rss
                pids = {**cluster_pids, "operator": popen.pid}
                before, served = cpu_seconds(pids), await server_counts(kube)
                op_s = await operator_phase(kube, "bench-op", 0, args.count, spec, args.concurrency, args.timeout)
                used, op_cpu = cpu_line(before, cpu_seconds(pids)), total(before, cpu_seconds(pids))
                served_after = await server_counts(kube)
                children = await count_children(kube, "bench-op")
                print(f"operator: {args.count} RerankerDeployments with {children} children and a current status "
                      f"in {op_s:.2f} s ({children / op_s:.0f} children/s); CPU s: {used}; {load()}", flush=True)
                print(f"operator API requests: {api_requests(f'http://127.0.0.1:{metrics_port}/metrics')}", flush=True)
                print(f"API server, operator phase: {server_line(served, served_after, args.count)}", flush=True)
                assert children == objects, f"{children} children, expected {objects}"
                print(f"ratio raw/operator: {raw_s / op_s:.2f} (target >= 0.5)", flush=True)
                # On a machine shared with other work the wall-clock ratio moves with the others' load
                # between the phases; the CPU seconds the cluster (and operator) spent do not.
                print(f"CPU seconds raw/operator (etcd, API server, controller manager, operator): "
                      f"{raw_cpu:.1f}/{op_cpu:.1f} = {raw_cpu / op_cpu:.2f}", flush=True)
                if args.rss_count > args.count:
                    rss_s = await operator_phase(kube, "bench-op", args.count, args.rss_count, spec,
                                                 args.concurrency, args.timeout)
                    await asyncio.sleep(args.settle)
                    print(f"operator: {args.rss_count} RerankerDeployments current after {rss_s:.1f} s more", flush=True)
                if args.drift_samples:
                    took = await drift_phase(kube, "bench-op", max(args.rss_count, args.count), args.drift_samples,
                                             args.seed)
                    print(f"drift repair at {max(args.rss_count, args.count)} RerankerDeployments "
                          f"({len(took)} children deleted or edited by hand): p50 {percentile(took, 0.5):.2f} s, "
                          f"p99 {percentile(took, 0.99):.2f} s, max {max(took):.2f} s (target p99 <= 2 s)", flush=True)
            print(f"operator RSS: idle {idle_rss / 2**20:.0f} MB, peak {rss.peak / 2**20:.0f} MB with "
                  f"{max(args.rss_count, args.count)} RerankerDeployments (target <= 150 MB)", flush=True)
        finally:
            popen.terminate()
            try:
                popen.wait(15)
            except subprocess.TimeoutExpired:
                popen.kill()
            if args.keep_log:
                Path(args.keep_log).write_bytes(log.read_bytes())
        errors = [line for line in log.read_text(errors="replace").splitlines() if "ERROR" in line]
        if errors:
            print(f"operator log has {len(errors)} ERROR lines, e.g. {errors[0][:300]}", flush=True)
    finally:
        await kube.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="RerankerDeployments applied at once")
    parser.add_argument("--rss-count", type=int, default=1000, help="RerankerDeployments for the RSS figure (0: skip)")
    parser.add_argument("--engine-replicas", type=int, default=0)
    parser.add_argument("--ui-replicas", type=int, default=0)
    parser.add_argument("--no-gateway", action="store_true",
                        help="switch the gateway off (it has at least one pod, so the controllers' pod work is in)")
    parser.add_argument("--concurrency", type=int, default=64, help="parallel requests of the raw client")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds to let the cluster settle between phases")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--drift-samples", type=int, default=100,
                        help="children deleted or edited by hand for the drift figure (0: skip)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--keep-log", default=None, help="copy the operator's log to this file")
    parser.add_argument("--kubeconfig", default=None, help="use this cluster instead of starting a local one")
    args = parser.parse_args()

    with ExitStack() as stack:
        cluster_pids: dict[str, int] = {}
        if args.kubeconfig:
            kubeconfig = args.kubeconfig
            workdir = Path(os.environ.get("TMPDIR", "/tmp"))
        else:
            started = time.monotonic()
            cp = stack.enter_context(LocalControlPlane())
            print(f"local control plane up in {time.monotonic() - started:.1f} s", flush=True)
            from rerank_operator.api.crd import install_crd

            install_crd(cp.api_client())
            kubeconfig = str(cp.admin_kubeconfig)
            workdir = cp.dir
            cluster_pids = {k: v for k, v in cp.processes().items() if k in ("etcd", "kube-apiserver", "kube-controller-manager")}
        asyncio.run(run(args, kubeconfig, workdir, cluster_pids))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
