"""Time from a load step to the engine StatefulSet's replicas changing, on the real stack.

    .venv/bin/python bench/autoscaler_latency.py [--trials 5] [--interval 5]
    .venv/bin/python bench/autoscaler_latency.py --kubeconfig PATH ...   # an existing cluster

Without --kubeconfig it starts the local control plane (kwok pods get loopback IPs), installs the
CRD and runs the operator (``rerank-operator run``) itself. With --kubeconfig, that cluster must
give pods loopback IPs and already run the operator. The script creates a
RerankerDeployment with autoscaling on, binds a real HTTP server at each engine pod's IP and
engine port serving vLLM ``/metrics`` text (captured from a real vLLM,
``tests/fixtures/data/vllm_metrics.txt``) with queue gauges and work counters it moves in real time,
then per trial: keeps the load low until the StatefulSet is at 1 replica, saturates the one pod
with a growing queue (t0) and polls the StatefulSet until ``spec.replicas`` changes (t1). Prints
each t1 - t0, the median, and the target: 3 scrape intervals (a rate needs two reads, and
saturation is seen when requests wait at both ends of an interval).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.unit.autoscaling.engine_metrics_text import MetricEndpoints  # noqa: E402

from rerank_operator.autoscaling.loop import _is_ready, engine_pod_selector  # noqa: E402
from rerank_localdev.volumes import provision_pending  # noqa: E402

PORT = 8000


async def follow_ready_pods(endpoints: MetricEndpoints, core: client.CoreV1Api, ns: str, name: str) -> None:
    """Serve metrics on every Ready engine pod's IP (new pods included) until cancelled."""
    volumes = Path(tempfile.mkdtemp(prefix="autoscaler-latency-"))
    while True:
        # Local mode's hostPath provisioner stands in for a storage class (the cache claims).
        await asyncio.to_thread(provision_pending, core, ns, volumes)
        pods = await asyncio.to_thread(core.list_namespaced_pod, ns, label_selector=engine_pod_selector(name))
        for p in pods.items:
            if _is_ready(p):
                await endpoints.serve(p.status.pod_ip)
        await asyncio.sleep(0.2)


async def engine_work(endpoints: MetricEndpoints, load: dict) -> None:
    """The engines' counters move in real time: ``load["tokens"]`` tokens/s done per pod, and
    ``load["arriving"]`` pairs/s more than that join the waiting queue."""
    while True:
        await asyncio.sleep(0.1)
        endpoints.advance(0.1, load["tokens"])
        endpoints.waiting = max(0.0, endpoints.waiting + load["arriving"] * 0.1)


@contextlib.contextmanager
def local_stack(namespace: str):
    """The local control plane with the CRD and the operator running against it; yields its kubeconfig."""
    from rerank_operator.api.crd import install_crd
    from rerank_localdev.controlplane import LocalControlPlane

    with LocalControlPlane() as cp, open(os.environ.get("RERANK_BENCH_OPERATOR_LOG", os.devnull), "wb") as log:
        install_crd(cp.api_client())
        operator = subprocess.Popen(
            [sys.executable, "-m", "rerank_operator", "run", "--standalone", "--namespace", namespace,
             "--liveness", "off", "--metrics-port", "0"],
            env={**cp.env(), "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield str(cp.admin_kubeconfig)
        finally:
            operator.terminate()
            operator.wait(timeout=30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", default=None, help="an existing cluster (default: start the local one)")
    parser.add_argument("--namespace", default="autoscaler-latency")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--interval", type=float, default=5.0, help="scrapeIntervalSeconds")
    args = parser.parse_args()
    if args.kubeconfig is None:
        with local_stack(args.namespace) as kubeconfig:
            args.kubeconfig = kubeconfig
            await measure(args)
    else:
        await measure(args)


async def measure(args: argparse.Namespace) -> None:
    api = config.new_client_from_config(config_file=args.kubeconfig)
    core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    ns, name = args.namespace, "latency"
    try:
        core.create_namespace({"metadata": {"name": ns}})
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    custom.create_namespaced_custom_object("rerank.io", "v1alpha1", ns, "rerankerdeployments", {
        "apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment", "metadata": {"name": name},
        "spec": {"model": {"name": "Qwen/Qwen3-Reranker-0.6B"}, "replicas": 1, "engine": {"port": PORT},
                 "ui": {"enabled": False},
                 "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 4,
                                 "scrapeIntervalSeconds": args.interval, "demandWindowSeconds": 1,
                                 "scaleDownStabilizationSeconds": 0}},
    })
    endpoints = MetricEndpoints(PORT)
    follower = asyncio.create_task(follow_ready_pods(endpoints, core, ns, name))
    load = {"tokens": 500.0, "arriving": 0.0}  # per pod: tokens/s done, pairs/s joining the queue
    worker = asyncio.create_task(engine_work(endpoints, load))

    def sts_replicas() -> int | None:
        try:
            return apps.read_namespaced_stateful_set(f"{name}-engine", ns).spec.replicas
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    latencies: list[float] = []
    try:
        for trial in range(args.trials):
            load.update(tokens=500.0, arriving=0.0)
            endpoints.waiting, endpoints.running = 0, 4
            deadline = time.monotonic() + 120
            while not (sts_replicas() == 1 and endpoints.runners):
                if follower.done():
                    follower.result()  # raises what stopped it
                if time.monotonic() > deadline:
                    raise SystemExit("the StatefulSet did not settle at 1 replica (is the operator running?)")
                await asyncio.sleep(0.2)
            await asyncio.sleep(args.interval * 1.5)  # let a pass see the low load
            # Saturated: 20,000 tokens/s done, 100 pairs/s more arriving than that -> 3 replicas.
            endpoints.waiting, endpoints.running = 64, 256
            load.update(tokens=20_000.0, arriving=100.0)
            t0 = time.monotonic()
            while sts_replicas() == 1:
                if time.monotonic() - t0 > 15 * args.interval:
                    raise SystemExit("no scale-up within 10 scrape intervals")
                await asyncio.sleep(0.05)
            latencies.append(time.monotonic() - t0)
            print(f"trial {trial + 1}: StatefulSet replicas changed {latencies[-1]:.2f} s after the load step")
    finally:
        follower.cancel()
        worker.cancel()
        await endpoints.close()
        custom.delete_namespaced_custom_object("rerank.io", "v1alpha1", ns, "rerankerdeployments", name)
    print(f"median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s over {len(latencies)} trials; "
          f"target <= {3 * args.interval:g} s (3 scrape intervals of {args.interval:g} s)")


if __name__ == "__main__":
    asyncio.run(main())
