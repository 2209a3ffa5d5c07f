"""The operator killed at the worst moments, against the real control plane.

Each test runs operator processes of its own (tests.integration.operator_fixture.start_operator),
watching only the test's namespace, and SIGKILLs them: no cleanup, as when a node dies.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

import pytest
from kubernetes import client, dynamic

from rerank_operator.api.v1alpha1 import parse_spec
from rerank_operator.reconcile.kube import KubeClient, load_configuration
from rerank_operator.reconcile.reconciler import Reconciler
from rerank_operator.resources import CHILD_KINDS, desired_children
from rerank_operator.resources import labels as L
from tests.fixtures import waiting
from tests.integration.operator_fixture import crd_installed_once, start_operator  # noqa: F401

pytestmark = pytest.mark.cluster


def _reconcile_in_process(control_plane, body: dict) -> None:
    """What an operator's create handler does before it records that it finished."""
    async def run() -> None:
        kube = KubeClient(load_configuration(str(control_plane.admin_kubeconfig)))
        try:
            reconciler = Reconciler(kube, emit=lambda *_: None, sts_wait=0)
            await reconciler.reconcile(body)
        finally:
            await kube.close()
    asyncio.run(run())


def test_children_switched_off_while_the_operator_was_down_mid_create_are_deleted(control_plane, crd_installed_once,
                                                                                   namespace, tmp_path):
    custom = client.CustomObjectsApi(control_plane.api_client())
    net = client.NetworkingV1Api(control_plane.api_client())
    apps = client.AppsV1Api(control_plane.api_client())
    body = custom.create_namespaced_custom_object(L.GROUP, L.VERSION, namespace, L.PLURAL, {
        "apiVersion": L.API_VERSION, "kind": L.KIND, "metadata": {"name": "rr"},
        "spec": {"ui": {"ingress": {"enabled": True, "host": "rr.example.com"}}}})
    # The operator created every child and died before its create handler was recorded as done.
    _reconcile_in_process(control_plane, body)
    assert net.read_namespaced_ingress("rr-ui", namespace)
    # While it was down, the UI (and with it the Ingress) was switched off.
    custom.patch_namespaced_custom_object(L.GROUP, L.VERSION, namespace, L.PLURAL, "rr",
                                          {"spec": {"ui": {"enabled": False, "ingress": {"enabled": False}}}})

    operator = start_operator(control_plane, tmp_path / "operator.log", namespace=namespace)
    try:
        def gone() -> bool:
            names = [i.metadata.name for i in net.list_namespaced_ingress(namespace).items]
            names += [d.metadata.name for d in apps.list_namespaced_deployment(namespace).items]
            return "rr-ui" not in names  # the gateway's Deployment stays: it was not switched off
        waiting.wait_for(gone, 30, "the switched-off Ingress and UI deleted", interval=0.25,
                         context=lambda: operator.log_tail())
    finally:
        operator.stop()


# --- fault injection ------------------------------------------------------------------------------

ROUNDS = 20
SEED = int(os.environ.get("RERANK_FAULT_SEED", "1515"))
CONVERGE_WITHIN = 45.0


def random_spec(rng: random.Random) -> dict[str, Any]:
    ui = rng.random() < 0.5
    spec: dict[str, Any] = {
        "replicas": rng.choice([0, 1, 2]),
        "engine": {"tensorParallelSize": rng.choice([1, 2])},
        "ui": {"enabled": ui, "replicas": 0,
               "ingress": {"enabled": ui and rng.random() < 0.5, "host": "rr.example.com"}},
        "disruptionBudget": {"enabled": rng.random() < 0.7},
    }
    if rng.random() < 0.5:
        spec["instruction"] = rng.choice(["Given a question, find passages that answer it",
                                          "Given a product query, find matching product descriptions"])
    return spec


def _subset_mismatch(want: Any, have: Any, path: str = "") -> str | None:
    """Where ``want`` (what the builders make) is not contained in ``have`` (the live object)."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return f"{path}: {have!r} is not a mapping"
        for key, value in want.items():
            problem = _subset_mismatch(value, have.get(key), f"{path}.{key}")
            if problem:
                return problem
        return None
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return f"{path}: {len(want)} entries wanted, found {have!r:.200}"
        for i, (w, h) in enumerate(zip(want, have)):
            problem = _subset_mismatch(w, h, f"{path}[{i}]")
            if problem:
                return problem
        return None
    return None if want == have else f"{path}: {want!r} wanted, found {have!r}"


class World:
    """The test's view: which RerankerDeployments should exist with which spec."""

    def __init__(self, control_plane, namespace: str):
        self.ns = namespace
        api = control_plane.api_client()
        self.custom = client.CustomObjectsApi(api)
        self.resources = {c.kind: dynamic.DynamicClient(api).resources.get(api_version=c.api_version, kind=c.kind)
                          for c in CHILD_KINDS}
        self.specs: dict[str, dict] = {}
        self.deleted: set[str] = set()
        self.counter = 0

    def act(self, rng: random.Random) -> str:
        live = sorted(self.specs)
        choice = rng.random()
        if not live or (choice < 0.4 and len(live) < 6):
            self.counter += 1
            name = f"rr{self.counter}"
            self.specs[name] = random_spec(rng)
            self.custom.create_namespaced_custom_object(L.GROUP, L.VERSION, self.ns, L.PLURAL, {
                "apiVersion": L.API_VERSION, "kind": L.KIND, "metadata": {"name": name}, "spec": self.specs[name]})
            return f"create {name}"
        name = rng.choice(live)
        if choice < 0.85:
            self.specs[name] = random_spec(rng)
            body = self.custom.get_namespaced_custom_object(L.GROUP, L.VERSION, self.ns, L.PLURAL, name)
            body["spec"] = self.specs[name]
            self.custom.replace_namespaced_custom_object(L.GROUP, L.VERSION, self.ns, L.PLURAL, name, body)
            return f"update {name}"
        del self.specs[name]
        self.deleted.add(name)
        self.custom.delete_namespaced_custom_object(L.GROUP, L.VERSION, self.ns, L.PLURAL, name)
        return f"delete {name}"

    def children_of(self, name: str) -> dict[tuple[str, str], dict]:
        found = {}
        for kind, resource in self.resources.items():
            for item in resource.get(namespace=self.ns, label_selector=f"app.kubernetes.io/instance={name}").items:
                found[(kind, item.metadata.name)] = item.to_dict()
        return found

    def problems(self) -> list[str]:
        """Everything that differs from the exact wanted state ([] when converged)."""
        problems = []
        for name, spec in sorted(self.specs.items()):
            body = self.custom.get_namespaced_custom_object(L.GROUP, L.VERSION, self.ns, L.PLURAL, name)
            status = body.get("status") or {}
            if status.get("observedGeneration") != body["metadata"]["generation"]:
                problems.append(f"{name}: observedGeneration {status.get('observedGeneration')} "
                                f"of generation {body['metadata']['generation']}")
            degraded = [c for c in status.get("conditions") or [] if c["type"] == "Degraded"]
            if not degraded or degraded[0]["status"] != "False":
                problems.append(f"{name}: Degraded {degraded}")
            wanted = {(c["kind"], c["metadata"]["name"]): c for c in desired_children(body, parse_spec(body["spec"]))}
            live = self.children_of(name)
            for key in sorted(set(live) - set(wanted)):
                problems.append(f"{name}: {key} should not exist")
            for key, manifest in sorted(wanted.items()):
                have = live.get(key)
                if have is None:
                    problems.append(f"{name}: {key} missing")
                    continue
                if not any(o["uid"] == body["metadata"]["uid"] for o in have["metadata"].get("ownerReferences") or []):
                    problems.append(f"{name}: {key} not owned by it")
                if key[0] != "ConfigMap":  # the status document changes with the status
                    mismatch = _subset_mismatch(manifest.get("spec"), have.get("spec"), "spec")
                    if mismatch:
                        problems.append(f"{name}: {key} {mismatch}")
        for name in sorted(self.deleted - set(self.specs)):
            left = self.children_of(name)
            if left:
                problems.append(f"deleted {name}: children left {sorted(left)}")
        return problems


def test_kills_at_random_moments_of_batches_always_converge_to_the_exact_state(control_plane, crd_installed_once,
                                                                               namespace, tmp_path):
    rng = random.Random(SEED)
    world = World(control_plane, namespace)
    log = tmp_path / "operator.log"
    started = time.monotonic()
    converged = 0
    operator = start_operator(control_plane, log, namespace=namespace, drift_interval=30)
    try:
        for round_ in range(ROUNDS):
            # A batch of changes, and a kill at a random moment while the operator works on it.
            actions = [world.act(rng) for _ in range(rng.randint(1, 4))]
            time.sleep(rng.uniform(0.0, 1.5))
            operator.kill()
            # Sometimes more changes arrive while no operator runs.
            if rng.random() < 0.5:
                actions.append(world.act(rng))
            operator = start_operator(control_plane, log, namespace=namespace, drift_interval=30)
            waiting.wait_for(lambda: not world.problems(), CONVERGE_WITHIN,
                             f"round {round_} (seed {SEED}: {', '.join(actions)}) to converge",
                             interval=0.5, retry_on=(KeyError,),
                             context=lambda: "\n".join(world.problems()) + "\n" + operator.log_tail())
            converged += 1
    finally:
        operator.stop()
    print(f"{converged}/{ROUNDS} rounds converged in {time.monotonic() - started:.0f} s (seed {SEED})")
    assert converged == ROUNDS
