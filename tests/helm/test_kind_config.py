"""kind-config.yaml, checked the way kind would read it (kind itself cannot run here: it needs Docker).

The schema in data/kind-v1alpha4.schema.json is transcribed from kind's v1alpha4 types and validation;
the port-mapping rule that a schema cannot express is checked here, as kind's validatePortMappings does.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from .chart import DATA, REPO

KIND_CONFIG = REPO / "kind-config.yaml"


def schema() -> dict[str, Any]:
    return json.loads((DATA / "kind-v1alpha4.schema.json").read_text())


def config() -> dict[str, Any]:
    return yaml.safe_load(KIND_CONFIG.read_text())


def errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def duplicate_host_ports(document: dict[str, Any]) -> list[str]:
    """kind's validatePortMappings: one listen address, port and protocol per node (0/-1: random, exempt)."""
    problems = []
    for i, node in enumerate(document.get("nodes", [])):
        bound: dict[tuple[int, str], set[str]] = {}
        for mapping in node.get("extraPortMappings", []):
            port = mapping.get("hostPort", 0)
            if port in (0, -1):
                continue
            address = mapping.get("listenAddress") or "0.0.0.0"
            address = "0.0.0.0" if address == "::" else address
            addresses = bound.setdefault((port, mapping.get("protocol", "TCP").upper()), set())
            if address in addresses or "0.0.0.0" in addresses or (address == "0.0.0.0" and addresses):
                problems.append(f"node {i}: {address}:{port} bound twice")
            addresses.add(address)
    return problems


def test_schema_is_valid_draft7() -> None:
    jsonschema.Draft7Validator.check_schema(schema())


def test_kind_config_is_a_valid_v1alpha4_cluster() -> None:
    assert errors(config()) == []
    assert duplicate_host_ports(config()) == []


def test_topology_control_plane_with_ingress_and_two_labelled_workers() -> None:
    nodes = config()["nodes"]
    control, workers = nodes[0], nodes[1:]
    assert control["role"] == "control-plane" and control["labels"]["ingress-ready"] == "true"
    assert {(m["containerPort"], m["hostPort"]) for m in control["extraPortMappings"]} == {(80, 80), (443, 443)}
    assert [w["role"] for w in workers] == ["worker", "worker"]
    assert [w["labels"].get("nvidia.com/gpu.present") for w in workers] == [None, "true"]
    # The kubelet refuses self-assigned labels in the kubernetes.io/k8s.io namespaces (NodeRestriction).
    for node in nodes:
        for key in node.get("labels", {}):
            assert not key.split("/")[0].endswith(("kubernetes.io", "k8s.io")), key


# Mistakes kind would refuse; the schema must refuse them too (else it checks nothing).
BROKEN = {
    "unknown field (kind decodes strictly)": lambda c: c["nodes"][0].update(extraPortMapping=[]),
    "unknown role": lambda c: c["nodes"][1].update(role="master"),
    "port out of range": lambda c: c["nodes"][0]["extraPortMappings"][0].update(hostPort=70000),
    "unknown protocol": lambda c: c["nodes"][0]["extraPortMappings"][0].update(protocol="HTTP"),
    "wrong apiVersion": lambda c: c.update(apiVersion="kind.x-k8s.io/v1alpha3"),
    "no control plane": lambda c: c.update(nodes=[n for n in c["nodes"] if n.get("role") == "worker"]),
    "label value not a string": lambda c: c["nodes"][2]["labels"].update({"nvidia.com/gpu.present": True}),
    "invalid label key": lambda c: c["nodes"][1]["labels"].update({"bad key": "x"}),
    "invalid cluster name": lambda c: c.update(name="Rerank_Local"),
}


@pytest.mark.parametrize("mistake", sorted(BROKEN))
def test_schema_refuses_what_kind_refuses(mistake: str) -> None:
    broken = copy.deepcopy(config())
    BROKEN[mistake](broken)
    assert errors(broken), mistake


def test_duplicate_host_ports_are_found() -> None:
    broken = copy.deepcopy(config())
    broken["nodes"][0]["extraPortMappings"].append({"containerPort": 8080, "hostPort": 80, "protocol": "tcp"})
    assert duplicate_host_ports(broken) == ["node 0: 0.0.0.0:80 bound twice"]
