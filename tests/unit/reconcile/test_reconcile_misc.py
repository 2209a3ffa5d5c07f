from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
import yaml

from rerank_operator.cli import _parser
from rerank_operator.reconcile.handlers import backoff
from rerank_operator.reconcile.kube import ApiError, resource_path


@pytest.mark.parametrize("args, path", [
    (("v1", "Service", "ns", "rr"), "/api/v1/namespaces/ns/services/rr"),
    (("apps/v1", "StatefulSet", "ns", "rr-engine"), "/apis/apps/v1/namespaces/ns/statefulsets/rr-engine"),
    (("policy/v1", "PodDisruptionBudget", "ns", None), "/apis/policy/v1/namespaces/ns/poddisruptionbudgets"),
    (("v1", "Node", None, None), "/api/v1/nodes"),
    (("rerank.io/v1alpha1", "RerankerDeployment", "ns", "rr", "status"),
     "/apis/rerank.io/v1alpha1/namespaces/ns/rerankerdeployments/rr/status"),
])
def test_resource_paths(args, path):
    assert resource_path(*args) == path


@pytest.mark.parametrize("status, transient", [(0, True), (409, True), (429, True), (500, True), (503, True),
                                               (400, False), (403, False), (404, False), (422, False)])
def test_which_api_errors_are_retried(status, transient):
    assert ApiError(status, "r", "m").transient is transient


def test_backoff_grows_and_is_capped():
    assert 0.8 <= backoff(0, 60) <= 1.2
    assert 6.4 <= backoff(3, 60) <= 9.6
    assert backoff(20, 60) <= 72


def test_run_arguments():
    args = _parser().parse_args(["run", "--standalone", "-n", "a", "-n", "b", "--drift-interval", "5",
                                 "--metrics-port", "0"])
    assert (args.standalone, args.namespace, args.drift_interval, args.metrics_port) == (True, ["a", "b"], 5.0, 0)
    assert _parser().parse_args(["run"]).liveness == "http://0.0.0.0:8080/healthz"


def test_crd_command_prints_the_generated_crd():
    out = subprocess.run([sys.executable, "-m", "rerank_operator", "crd"], check=True, capture_output=True,
                         text=True).stdout
    crd = yaml.safe_load(out)
    assert crd["kind"] == "CustomResourceDefinition" and crd["spec"]["names"]["shortNames"] == ["rrd"]
    assert crd["spec"]["versions"][0]["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"


class _FailingReconciler:
    """Stand-in for the Reconciler whose API server answers with `status` (only the error path is
    under test here; the real reconcile runs against the API server in tests/integration)."""

    def __init__(self, status: int):
        self.status = status

    async def reconcile(self, body, retire=True):
        raise ApiError(self.status, "Reason", "message")


@pytest.mark.parametrize("status", [0, 409, 429, 500, 503])
def test_transient_api_errors_retry_with_growing_backoff(status):
    import asyncio

    import kopf

    from rerank_operator.reconcile.handlers import OperatorConfig, _reconcile

    delays = []
    for retry in (0, 4):
        with pytest.raises(kopf.TemporaryError) as info:
            asyncio.run(_reconcile(_FailingReconciler(status), {}, retry, OperatorConfig()))
        delays.append(info.value.delay)
    assert delays[0] < delays[1] <= 60 * 1.2


@pytest.mark.parametrize("status", [400, 403, 422])
def test_refusals_are_not_retried(status):
    import asyncio

    import kopf

    from rerank_operator.reconcile.handlers import OperatorConfig, _reconcile

    with pytest.raises(kopf.PermanentError):
        asyncio.run(_reconcile(_FailingReconciler(status), {}, 0, OperatorConfig()))


def test_event_manifest_names_the_reranker_deployment():
    from rerank_operator.reconcile.events import event_manifest

    obj = {"apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment",
           "metadata": {"name": "rr", "namespace": "ns", "uid": "u1", "resourceVersion": "7"}}
    event = event_manifest(obj, "Warning", "InsufficientGPUs", "x" * 5000, 1_767_225_600.0, host="op-0")
    assert event["involvedObject"] == {"apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment",
                                       "name": "rr", "namespace": "ns", "uid": "u1", "resourceVersion": "7"}
    assert (event["type"], event["reason"], len(event["message"])) == ("Warning", "InsufficientGPUs", 1024)
    assert event["metadata"]["name"].startswith("rr.") and event["metadata"]["namespace"] == "ns"
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2026-01-01T00:00:00Z"
    assert event_manifest(obj, "Normal", "Created", "m", 0.0)["metadata"]["name"] != event["metadata"]["name"]


def test_framework_connections_leave_room_for_every_watch():
    from rerank_operator.cli import framework_connections

    assert framework_connections([]) >= 2 + 16
    from rerank_operator.resources import CHILD_KINDS

    streams = 1 + len(CHILD_KINDS)  # RerankerDeployments and each child kind
    assert framework_connections(["a", "b", "c"]) == framework_connections(["a"]) + 2 * streams
    assert framework_connections(["team-*"]) >= streams * 16


def test_a_clashing_list_is_named_from_the_api_servers_refusal():
    from rerank_operator.reconcile.reconciler import clashing_list, list_at, nested

    refused = ApiError(422, "Invalid", 'Service "rr" is invalid: spec.ports[1].name: Duplicate value: "http"')
    assert clashing_list(refused) == ("spec", "ports")
    assert clashing_list(ApiError(409, "Conflict", 'spec.ports[1].name: Duplicate value: "http"')) is None
    assert clashing_list(ApiError(422, "Invalid", "spec.selector: Required value")) is None
    manifest = {"spec": {"ports": [{"name": "http", "port": 8000}]}}
    assert list_at(manifest, ("spec", "ports")) == [{"name": "http", "port": 8000}]
    assert list_at(manifest, ("spec", "selector")) is None
    assert nested(("spec", "ports"), []) == {"spec": {"ports": []}}


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_log_lines_about_an_object_name_it(log_format):
    # The operator's real logging set-up, in a child process (it configures the root logger).
    code = f"""
import json, logging
from rerank_operator.reconcile import logs
logs.configure({log_format!r}, verbose=False)
logging.getLogger("rerank_operator.reconcile.drift").warning("repair failed: %s", "boom",
                                                              extra=logs.object_ref("team-a", "rr"))
logging.getLogger("kopf.objects").info("Handler 'child-services' succeeded.", extra=logs.object_ref("team-a", "rr"))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stderr
    lines = out.strip().splitlines()
    assert len(lines) == 1, out  # the watch handlers' success lines are dropped
    if log_format == "json":
        record = json.loads(lines[0])
        assert record["message"] == "repair failed: boom"
        assert (record["object"]["namespace"], record["object"]["name"]) == ("team-a", "rr")
    else:
        assert "[team-a/rr] repair failed: boom" in lines[0]


class _RacingStatusKube:
    """An API server on which the first status write loses a race (409) to a change of the object; the
    fresh read then has ``fresh_generation`` (the spec edited in between, or not)."""

    def __init__(self, fresh_generation: int):
        self.fresh_generation = fresh_generation
        self.patches: list[dict] = []

    async def merge_patch(self, api_version, kind, namespace, name, patch, subresource=None, parse=True):
        self.patches.append(patch)
        if len(self.patches) == 1:
            raise ApiError(409, "Conflict", "the object has been modified")

    async def get(self, api_version, kind, namespace, name):
        return {"metadata": {"name": name, "namespace": namespace, "generation": self.fresh_generation,
                             "resourceVersion": "8"},
                "status": {"observedGeneration": self.fresh_generation, "endpoint": "http://rr.ns.svc:8000/v1/rerank"}}


@pytest.mark.parametrize("fresh_generation, writes", [(1, 2), (2, 1)])
def test_a_status_write_that_lost_to_a_spec_edit_is_left_to_the_new_generation(fresh_generation, writes):
    """A refresh that computed the UI's URL from generation 1 loses its write to an edit that switched the UI off
    (generation 2, already reported by its own reconcile): it must not write the old URL back under
    observedGeneration 2. Lost to a change of the same generation (a scale), it recomputes and writes."""
    from rerank_operator.reconcile.reconciler import Reconciler
    from rerank_operator.reconcile.status import Wanted

    kube = _RacingStatusKube(fresh_generation)
    reconciler = Reconciler(kube, emit=lambda *args: None, clock=lambda: 1_767_225_600.0)
    body = {"metadata": {"name": "rr", "namespace": "ns", "generation": 1, "resourceVersion": "7"},
            "status": {"observedGeneration": 1}}
    wanted = Wanted(replicas=1, autoscaling=False, endpoint="http://rr.ns.svc:8000/v1/rerank",
                    ui_url="http://rr-ui.ns.svc:80/")
    written = asyncio.run(reconciler.publish(body, wanted, None, claim=None, failure=None, ui_enabled=False))
    assert len(kube.patches) == writes
    if fresh_generation == 1:
        assert kube.patches[-1]["status"]["uiURL"] == "http://rr-ui.ns.svc:80/" and written is not None
    else:
        assert written is None
