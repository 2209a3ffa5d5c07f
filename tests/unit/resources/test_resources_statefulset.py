from __future__ import annotations

import re
from pathlib import Path

import pytest

from rerank_operator.resources import labels as L
from rerank_operator.resources.statefulset import (
    MODEL_PVC_MOUNT,
    STARTUP_PERIOD_SECONDS,
    shm_size,
)

from rerank_operator.version import VERSION
from tests.unit.resources.builder_support import assert_known_fields, child, make_body


def engine(spec=None):
    return child(make_body(spec), "StatefulSet")


def container(sts):
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    return c


def env(c):
    return {e["name"]: e for e in c["env"]}


def test_defaults_give_a_parallel_statefulset_with_one_gpu_per_pod():
    sts = engine()
    assert_known_fields(sts, "V1StatefulSet")
    assert sts["metadata"]["name"] == "rr-engine" and sts["metadata"]["namespace"] == "search"
    spec = sts["spec"]
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == "rr-engine-headless"
    assert spec["replicas"] == 1
    assert spec["selector"]["matchLabels"] == {"app.kubernetes.io/instance": "rr", "app.kubernetes.io/component": "engine"}
    # Every selector label is on the pods.
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    c = container(sts)
    assert c["image"] == "vllm/vllm-openai:v0.32.0"
    assert c["resources"]["requests"]["nvidia.com/gpu"] == c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


def test_command_comes_from_the_serving_package_with_the_spec_values():
    c = container(engine({"engine": {"tensorParallelSize": 4, "dtype": "bfloat16", "maxModelLen": 4096, "port": 8100},
                          "model": {"name": "Qwen/Qwen3-Reranker-4B", "servedModelName": "rerank"}}))
    cmd = c["command"]
    assert cmd[:3] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]

    def flag(name):
        return cmd[cmd.index(name) + 1]

    assert flag("--model") == "Qwen/Qwen3-Reranker-4B"
    assert flag("--served-model-name") == "rerank"
    assert flag("--tensor-parallel-size") == "4"
    assert flag("--dtype") == "bfloat16"
    assert flag("--max-model-len") == "4096"
    assert flag("--port") == "8100"
    assert "Qwen3ForSequenceClassification" in flag("--hf-overrides")
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert c["ports"][0]["containerPort"] == 8100


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_gpus_and_shared_memory_follow_the_tensor_parallel_size(tp):
    sts = engine({"engine": {"tensorParallelSize": tp, "resources": {"requests": {"cpu": "4", "memory": "32Gi"},
                                                                    "limits": {"memory": "48Gi"}}}})
    c = container(sts)
    assert c["resources"] == {
        "requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": str(tp)},
        "limits": {"memory": "48Gi", "nvidia.com/gpu": str(tp)},
    }
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": shm_size(tp)}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]


def test_cpu_engine_requests_no_gpu_and_runs_the_cpu_build():
    sts = engine({"engine": {"device": "cpu", "dtype": "float32", "cpuKVCacheGiB": 6,
                             "resources": {"requests": {"cpu": "4"}, "limits": {"memory": "16Gi"}}}})
    assert_known_fields(sts, "V1StatefulSet")
    c = container(sts)
    # The user's cpu request and memory limit win; the memory request is the default (0.6B float32
    # weights 2.2 GiB + API server and engine core 1.5 GiB + one worker's 2 GiB and its 6 GiB KV cache),
    # below the user's limit.
    assert c["resources"] == {"requests": {"cpu": "4", "memory": "12Gi"}, "limits": {"memory": "16Gi"}}
    assert c["image"] == f"ghcr.io/rerank-operator/rerank-engine-cpu:{VERSION}"  # images/engine-cpu
    assert env(c)["VLLM_CPU_KVCACHE_SPACE"] == {"name": "VLLM_CPU_KVCACHE_SPACE", "value": "6"}
    cmd = c["command"]
    # On the CPU build this flag would reserve a fraction of host RAM: the KV cache env var sizes it instead.
    assert not any(a.startswith("--gpu-memory-utilization") for a in cmd)
    assert cmd[cmd.index("--dtype") + 1] == "float32"
    assert cmd[cmd.index("--tensor-parallel-size") + 1] == "1"
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": shm_size(1)}


def test_cpu_engine_defaults_and_an_explicit_image_wins():
    c = container(engine({"engine": {"device": "cpu"}}))
    assert env(c)["VLLM_CPU_KVCACHE_SPACE"]["value"] == "4"
    assert env(c)["VLLM_CPU_OMP_THREADS_BIND"]["value"] == "nobind"  # no pinning of every engine to one core
    pinned = container(engine({"engine": {"device": "cpu", "env": [
        {"name": "VLLM_CPU_OMP_THREADS_BIND", "value": "0-3"}]}}))
    assert env(pinned)["VLLM_CPU_OMP_THREADS_BIND"]["value"] == "0-3"  # the user's own setting wins
    assert container(engine({"engine": {"device": "cpu", "image": "registry.local/vllm-cpu:1"}}))["image"] == (
        "registry.local/vllm-cpu:1")
    # The GPU engine keeps its flag and sets no CPU cache size.
    g = container(engine({"engine": {"gpuMemoryUtilization": 0.8, "cpuKVCacheGiB": 6}}))
    assert g["command"][g["command"].index("--gpu-memory-utilization") + 1] == "0.8"
    assert "VLLM_CPU_KVCACHE_SPACE" not in env(g)
    assert "VLLM_CPU_OMP_THREADS_BIND" not in env(g)
    assert container(engine({"engine": {"image": "registry.local/vllm:1"}}))["image"] == "registry.local/vllm:1"


def test_model_cache_is_a_claim_template_with_hf_home_on_it():
    sts = engine({"cache": {"size": "120Gi", "storageClassName": "fast-ssd"}})
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "model-cache"
    assert claim["spec"]["resources"]["requests"]["storage"] == "120Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    c = container(sts)
    assert {"name": "model-cache", "mountPath": "/models"} in c["volumeMounts"]
    assert env(c)["HF_HOME"] == {"name": "HF_HOME", "value": "/models/cache"}
    assert "storageClassName" not in engine()["spec"]["volumeClaimTemplates"][0]["spec"]


def test_hf_token_comes_from_the_secret():
    c = container(engine({"model": {"hfTokenSecretRef": {"name": "hf"}}}))
    assert env(c)["HF_TOKEN"] == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}
    assert "HF_TOKEN" not in env(container(engine()))


def test_model_on_a_pvc_is_mounted_read_only_and_served_offline():
    sts = engine({"model": {"name": "Qwen/Qwen3-Reranker-8B", "pvc": {"claimName": "models", "path": "qwen/8b"}}})
    c = container(sts)
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["model"]["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    assert {"name": "model", "mountPath": MODEL_PVC_MOUNT, "readOnly": True} in c["volumeMounts"]
    assert c["command"][c["command"].index("--model") + 1] == f"{MODEL_PVC_MOUNT}/qwen/8b"
    assert env(c)["HF_HUB_OFFLINE"]["value"] == "1"
    mount_paths = [m["mountPath"] for m in c["volumeMounts"]]
    assert len(mount_paths) == len(set(mount_paths))
    assert_known_fields(sts, "V1StatefulSet")


def test_user_env_is_added_and_extra_args_reach_the_command():
    c = container(engine({"engine": {"env": [{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"},
                                            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                                    "extraArgs": ["--enable-prefix-caching"]}}))
    assert env(c)["VLLM_LOGGING_LEVEL"]["value"] == "DEBUG"
    assert env(c)["X"]["valueFrom"] == {"secretKeyRef": {"name": "s", "key": "k"}}
    assert c["command"][-1] == "--enable-prefix-caching"
    names = [e["name"] for e in c["env"]]
    assert len(names) == len(set(names))


def test_probes_allow_a_long_model_load_and_termination_drains():
    sts = engine()
    c = container(sts)
    assert c["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["startupProbe"]["periodSeconds"] == STARTUP_PERIOD_SECONDS
    assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] >= 30 * 60
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}
    pod = sts["spec"]["template"]["spec"]
    sleep = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < sleep < pod["terminationGracePeriodSeconds"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_scheduling_fields_are_passed_through():
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["h100"]}]}]}}}
    sts = engine({"scheduling": {
        "nodeSelector": {"nvidia.com/gpu.product": "H100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": affinity, "priorityClassName": "inference", "runtimeClassName": "nvidia"}})
    pod = sts["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "H100"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["affinity"] == affinity
    assert pod["priorityClassName"] == "inference"
    assert pod["runtimeClassName"] == "nvidia"
    assert_known_fields(sts, "V1StatefulSet")
    plain = engine()["spec"]["template"]["spec"]
    assert not {"nodeSelector", "affinity", "priorityClassName", "runtimeClassName"} & plain.keys()


GPU_TAINT_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@pytest.mark.parametrize("scheduling, device, expected", [
    ({}, "gpu", [GPU_TAINT_TOLERATION]),  # tainted GPU pools (EKS, AKS) admit the sample
    ({"tolerations": [{"key": "team", "operator": "Equal", "value": "search", "effect": "NoSchedule"}]}, "gpu",
     [{"key": "team", "operator": "Equal", "value": "search", "effect": "NoSchedule"}, GPU_TAINT_TOLERATION]),
    # The user's own toleration of that key replaces the default (here: a pool tainted with a value).
    ({"tolerations": [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "h100", "effect": "NoSchedule"}]}, "gpu",
     [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "h100", "effect": "NoSchedule"}]),
    ({}, "cpu", None),  # a CPU engine has no business on a GPU pool
])
def test_gpu_engines_tolerate_the_gpu_taint_unless_told_otherwise(scheduling, device, expected):
    pod = engine({"engine": {"device": device}, "scheduling": scheduling})["spec"]["template"]["spec"]
    assert pod.get("tolerations") == expected


def test_replicas_follow_the_spec():
    assert engine({"replicas": 0})["spec"]["replicas"] == 0
    assert engine({"replicas": 5, "autoscaling": {"enabled": True, "maxReplicas": 8}})["spec"]["replicas"] == 5


def test_template_hash_changes_with_what_the_pods_run_and_only_then():
    def hash_of(spec):
        return engine(spec)["spec"]["template"]["metadata"]["annotations"][L.TEMPLATE_HASH_ANNOTATION]

    base = hash_of({})
    assert hash_of({}) == base
    assert hash_of({"replicas": 3}) == base          # scaling does not roll the pods
    assert hash_of({"ui": {"enabled": False}}) == base
    assert hash_of({"engine": {"maxNumSeqs": 64}}) != base
    assert hash_of({"model": {"revision": "abc123"}}) != base


def test_owned_by_the_reranker_deployment_with_the_standard_labels():
    sts = engine()
    assert sts["metadata"]["ownerReferences"] == [{
        "apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment", "name": "rr", "uid": "0b3c-uid",
        "controller": True, "blockOwnerDeletion": True,
    }]
    assert sts["metadata"]["labels"] == {
        "app.kubernetes.io/name": "reranker", "app.kubernetes.io/instance": "rr",
        "app.kubernetes.io/component": "engine", "app.kubernetes.io/managed-by": "rerank-operator",
        "app.kubernetes.io/part-of": "rerank-operator",
    }


def test_engine_pod_meets_pod_security_restricted():
    sts = engine()
    pod = sts["spec"]["template"]["spec"]
    c = container(sts)
    assert pod["serviceAccountName"] == "rr-engine" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["fsGroup"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    # Everything the engine writes is on a volume: HOME and HF_HOME on the cache claim, /tmp an emptyDir.
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts["/tmp"] == "tmp" and mounts["/models"] == "model-cache"
    assert env(c)["HOME"]["value"].startswith("/models/") and env(c)["HF_HOME"]["value"].startswith("/models/")


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_the_compile_caches_are_on_the_cache_volume_whatever_the_image_says(device):
    """The CPU engine image sets its cache variables to /tmp (an emptyDir, gone with the pod): the builder names
    each of them on the cache volume, so a pod replaced by a roll or an eviction finds its compiled kernels."""
    dockerfile = (Path(__file__).resolve().parents[3] / "images/engine-cpu/Dockerfile").read_text()
    in_image = dict(re.findall(r"\b([A-Z_]+)=(/tmp/\S*)", dockerfile))
    caches = {name for name in in_image if name != "HOME"}
    assert {"VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR", "XDG_CACHE_HOME"} <= caches, in_image
    c = container(engine({"engine": {"device": device}}))
    for name in caches | {"TORCHINDUCTOR_CACHE_DIR"}:  # torch's inductor defaults to /tmp in any image
        assert env(c)[name]["value"].startswith("/models/"), name  # the cache volume
    own = container(engine({"engine": {"device": device, "env": [{"name": "VLLM_CACHE_ROOT", "value": "/x"}]}}))
    assert env(own)["VLLM_CACHE_ROOT"]["value"] == "/x"  # the user's own setting wins


@pytest.mark.parametrize("model,dtype,memory_request,memory_limit", [
    ("Qwen/Qwen3-Reranker-0.6B", "auto", "6Gi", "12Gi"),
    ("Qwen/Qwen3-Reranker-4B", "auto", "12Gi", "18Gi"),
    ("Qwen/Qwen3-Reranker-8B", "auto", "19Gi", "25Gi"),
    ("my-org/reranker-finetune", "auto", "19Gi", "25Gi"),  # size unknown: as large as 8B
])
def test_default_requests_and_memory_limit_are_sized_from_the_model(model, dtype, memory_request, memory_limit):
    c = container(engine({"model": {"name": model}, "engine": {"dtype": dtype}}))
    assert c["resources"]["requests"]["cpu"] == "2"
    assert c["resources"]["requests"]["memory"] == memory_request
    assert c["resources"]["limits"]["memory"] == memory_limit
    assert "cpu" not in c["resources"]["limits"]


@pytest.mark.parametrize("device, tp, memory_request, memory_limit, cpu", [
    # 0.6B in float32 (2.2 GiB of weights), a 1 GiB KV cache per CPU worker.
    ("cpu", 1, "7Gi", "13Gi", "2"),  # 2.2 + 1.5 + 1 x (2 + 1)
    ("cpu", 2, "10Gi", "18Gi", "3"),  # 2.2 + 1.5 + 2 x (2 + 1); /dev/shm 4 GiB
    ("cpu", 4, "16Gi", "28Gi", "5"),
    ("gpu", 1, "7Gi", "13Gi", "2"),  # 2.2 + 2 + 1 x 2
    ("gpu", 2, "9Gi", "17Gi", "3"),
])
def test_host_memory_grows_with_each_tensor_parallel_worker(device, tp, memory_request, memory_limit, cpu):
    # Each worker is a process with its own runtime (and on CPUs its own KV cache); the weights are shared out.
    c = container(engine({"engine": {"device": device, "tensorParallelSize": tp, "dtype": "float32",
                                     "cpuKVCacheGiB": 1}}))
    assert c["resources"]["requests"]["memory"] == memory_request
    assert c["resources"]["limits"]["memory"] == memory_limit
    assert c["resources"]["requests"]["cpu"] == cpu


def test_user_memory_request_above_the_default_limit_raises_the_limit():
    c = container(engine({"engine": {"resources": {"requests": {"memory": "64Gi"}}}}))
    assert c["resources"]["requests"]["memory"] == "64Gi"
    assert c["resources"]["limits"]["memory"] == "64Gi"


def test_user_memory_limit_below_the_default_request_caps_the_request():
    c = container(engine({"engine": {"resources": {"limits": {"memory": "2Gi"}}}}))
    assert c["resources"]["requests"]["memory"] == "2Gi" and c["resources"]["limits"]["memory"] == "2Gi"


def startup_budget_minutes(spec):
    probe = container(engine(spec))["startupProbe"]
    return probe["failureThreshold"] * probe["periodSeconds"] / 60


def test_the_startup_budget_grows_with_the_weights_to_download():
    small, medium, large = (startup_budget_minutes({"model": {"name": f"Qwen/Qwen3-Reranker-{size}"}})
                            for size in ("0.6B", "4B", "8B"))
    # A first 8B download on slow egress (4 MiB/s: 15 GiB in an hour) fits, on top of the 30 minutes a load takes.
    assert 30 < small < medium < large
    assert large >= 30 + 14.9 * 2**30 / (4 * 2**20) / 60
    # Weights on a PVC are not downloaded: the load time alone.
    on_pvc = startup_budget_minutes({"model": {"name": "Qwen/Qwen3-Reranker-8B", "pvc": {"claimName": "models"}}})
    assert on_pvc == 30


def test_the_startup_budget_is_a_field():
    assert startup_budget_minutes({"engine": {"startupTimeoutSeconds": 3 * 3600}}) == 180
    # Not a multiple of the probe period: rounded up, never cut short.
    assert startup_budget_minutes({"engine": {"startupTimeoutSeconds": 605}}) * 60 >= 605
