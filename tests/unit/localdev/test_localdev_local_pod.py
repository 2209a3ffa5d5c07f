"""Pod spec -> local process: each substitution rule of rerank_localdev.local_pod, on the
pods the operator's own builders produce."""

from __future__ import annotations

import sys

import pytest
import yaml

from rerank_operator.api.v1alpha1 import DEFAULT_CPU_ENGINE_IMAGE, parse_spec
from rerank_localdev import local_pod, local_stack
from rerank_localdev.local_pod import LocalPodError
from rerank_operator.resources.statefulset import build_statefulset
from rerank_operator.resources.ui import build_ui_deployment

POD_IP = "127.9.1.4"


def _body(device: str | None = None) -> dict:
    sample = yaml.safe_load(local_stack.SAMPLE.read_text())
    if device:
        sample["spec"]["engine"]["device"] = device
    return {"apiVersion": sample["apiVersion"], "kind": sample["kind"],
            "metadata": {"name": sample["metadata"]["name"], "namespace": "default", "uid": "0000-1111"},
            "spec": sample["spec"]}


def _pod(template_spec: dict, name: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "uid": "u-1", "labels": {"a": "b"}},
            "spec": template_spec, "status": {"phase": "Running", "podIP": POD_IP, "hostIP": "127.0.0.1"}}


@pytest.fixture
def engine_pod() -> dict:
    body = _body()
    sts = build_statefulset(body, parse_spec(body["spec"]))
    return _pod(sts["spec"]["template"]["spec"], "reranker-engine-0")


@pytest.fixture
def gpu_engine_pod() -> dict:
    body = _body("gpu")
    sts = build_statefulset(body, parse_spec(body["spec"]))
    return _pod(sts["spec"]["template"]["spec"], "reranker-engine-0")


@pytest.fixture
def ui_pod() -> dict:
    body = _body()
    dep = build_ui_deployment(body, parse_spec(body["spec"]))
    return _pod(dep["spec"]["template"]["spec"], "reranker-ui-5d8f-abcde")


def _volume_dirs(pod: dict, tmp_path) -> dict[str, str]:
    return {v["name"]: str(tmp_path / v["name"]) for v in pod["spec"]["volumes"]} | {
        "model-cache": str(tmp_path / "cache-pv")}


def _engine_process(engine_pod, tmp_path, services=None):
    container = engine_pod["spec"]["containers"][0]
    env = local_pod.resolve_env(container, engine_pod, lambda n, k: None, lambda n, k: None)
    return container, local_pod.local_process(engine_pod, container["name"], env, _volume_dirs(engine_pod, tmp_path),
                                              services or {}, host_env={"PATH": "/bin", "SECRET": "x"}, run_id="r1")


def _flag(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def test_engine_runs_the_pod_command_with_only_local_substitutions(engine_pod, tmp_path):
    container, proc = _engine_process(engine_pod, tmp_path)
    # The sample is a CPU engine: vLLM's CPU image, which runs as this machine's vLLM.
    assert container["image"] == DEFAULT_CPU_ENGINE_IMAGE
    assert local_pod.local_image(container["image"]) is local_pod.VLLM
    spec_argv = list(container["command"]) + list(container.get("args") or [])
    # The interpreter is this one; the module and every flag the operator wrote stay as written ...
    assert proc.argv[0] == sys.executable
    assert proc.argv[1:3] == spec_argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    for flag in ("--served-model-name", "--tensor-parallel-size", "--dtype", "--max-model-len", "--max-num-seqs",
                 "--port", "--runner", "--hf-overrides", "--chat-template", "--gpu-memory-utilization"):
        assert _flag(proc.argv, flag) == _flag(spec_argv, flag), flag
    # ... except the model path, which moves from the claim's mount to the claim's host directory,
    (mount,) = [m for m in container["volumeMounts"] if _flag(spec_argv, "--model")[0].startswith(m["mountPath"])]
    model_host = str(tmp_path / mount["name"]) + _flag(spec_argv, "--model")[0][len(mount["mountPath"]):]
    assert _flag(proc.argv, "--model") == [model_host]
    # and the listen address, which is the pod's IP (exactly once).
    assert _flag(proc.argv, "--host") == [POD_IP]
    assert not any(a.startswith("--host=") for a in proc.argv)


def test_engine_environment_is_the_containers_not_the_hosts(engine_pod, tmp_path):
    container, proc = _engine_process(engine_pod, tmp_path)
    spec_env = {e["name"]: e["value"] for e in container["env"]}
    assert proc.env["PATH"] == "/bin"
    assert "SECRET" not in proc.env  # host variables outside the short list do not leak in
    assert proc.env[local_pod.RUN_ID_ENV] == "r1"
    cache_mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "model-cache")
    assert spec_env["HF_HOME"].startswith(cache_mount)
    assert proc.env["HF_HOME"] == str(tmp_path / "cache-pv") + spec_env["HF_HOME"][len(cache_mount):]
    on_the_cache_volume = {name for name, value in spec_env.items() if value.startswith(cache_mount + "/")}
    assert {"HF_HOME", "HOME", "VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR"} <= on_the_cache_volume
    for name, value in spec_env.items():
        if name in on_the_cache_volume:  # paths on the volume, mapped to the volume's host directory
            assert proc.env[name] == str(tmp_path / "cache-pv") + value[len(cache_mount):], name
        else:
            assert proc.env[name] == value
    # The sample is a CPU engine: its own KV cache size (spec.engine.cpuKVCacheGiB) is used as is.
    assert proc.env["VLLM_CPU_KVCACHE_SPACE"] == spec_env["VLLM_CPU_KVCACHE_SPACE"]
    assert not any("VLLM_CPU_KVCACHE_SPACE" in s for s in proc.substitutions)


def test_a_gpu_engine_gets_a_capped_cpu_kv_cache(gpu_engine_pod, tmp_path):
    container, proc = _engine_process(gpu_engine_pod, tmp_path)
    assert not any(e["name"] == "VLLM_CPU_KVCACHE_SPACE" for e in container["env"])
    assert proc.env["VLLM_CPU_KVCACHE_SPACE"] == str(local_pod.CPU_KVCACHE_GIB)
    assert any("VLLM_CPU_KVCACHE_SPACE" in s for s in proc.substitutions)


def test_a_containers_own_kv_cache_setting_wins(gpu_engine_pod, tmp_path):
    gpu_engine_pod["spec"]["containers"][0]["env"].append({"name": "VLLM_CPU_KVCACHE_SPACE", "value": "3"})
    _, proc = _engine_process(gpu_engine_pod, tmp_path)
    assert proc.env["VLLM_CPU_KVCACHE_SPACE"] == "3"


def test_ui_runs_its_image_entrypoint_bound_to_the_pod_ip_and_reaches_services_through_the_proxy(ui_pod, tmp_path):
    container = ui_pod["spec"]["containers"][0]
    assert not container.get("command")  # the image's entrypoint
    env = local_pod.resolve_env(container, ui_pod, lambda n, k: None, lambda n, k: None)
    services = {("default", "reranker", 8000): "127.0.0.1:18000"}
    proc = local_pod.local_process(ui_pod, "ui", env, _volume_dirs(ui_pod, tmp_path), services)
    assert proc.argv == [sys.executable, "-m", "rerank_ui.app"]
    assert proc.env["GRADIO_SERVER_NAME"] == POD_IP
    assert proc.env["RERANK_ENDPOINT"] == "http://127.0.0.1:18000/v1/rerank"
    assert env["RERANK_ENDPOINT"] == "http://reranker.default.svc:8000/v1/rerank"
    # The status file moves with its ConfigMap volume.
    status_mount = next(m for m in container["volumeMounts"] if m["name"] == "status")
    assert env["RERANK_STATUS_FILE"].startswith(status_mount["mountPath"] + "/")
    assert proc.env["RERANK_STATUS_FILE"] == str(tmp_path / "status") + env["RERANK_STATUS_FILE"][len(status_mount["mountPath"]):]
    assert "VLLM_CPU_KVCACHE_SPACE" not in proc.env


@pytest.mark.parametrize(("value", "expected"), [
    ("http://reranker.default.svc:8000/v1/rerank", "http://127.0.0.1:18000/v1/rerank"),
    ("http://reranker.default.svc.cluster.local:8000/v1/rerank", "http://127.0.0.1:18000/v1/rerank"),
    ("http://reranker-ui.default.svc/", "http://127.0.0.1:17860/"),  # no port: 80
    ("http://reranker.other.svc:8000/v1/rerank", "http://reranker.other.svc:8000/v1/rerank"),  # not proxied
    ("http://reranker.default.svc:9000/", "http://reranker.default.svc:9000/"),  # port not proxied
    ("http://reranker.default.svcx:8000/", "http://reranker.default.svcx:8000/"),
])
def test_cluster_dns_names_map_to_proxied_service_ports_only(value, expected):
    services = {("default", "reranker", 8000): "127.0.0.1:18000", ("default", "reranker-ui", 80): "127.0.0.1:17860"}
    assert local_pod.map_service_names(value, "default", services) == expected


def test_service_refs_finds_every_reference():
    assert local_pod.service_refs("a=http://x.ns.svc:81/ b=http://y.ns.svc.cluster.local/") == [
        ("ns", "x", 81), ("ns", "y", 80)]


@pytest.mark.parametrize(("value", "expected"), [
    ("/models", "/h/cache"),
    ("/models/cache", "/h/cache/cache"),
    ("/models-other", "/models-other"),
    ("/mnt/model/x/y", "/h/model/x/y"),
    ("--model=/mnt/model/x", "--model=/h/model/x"),
    ("relative/models", "relative/models"),
])
def test_paths_under_mounts_move_to_the_host_directory(value, expected):
    mounts = [("/mnt/model", "/h/model"), ("/models", "/h/cache")]
    assert local_pod.map_volume_paths(value, mounts) == expected


def test_nested_mounts_take_the_longest_match(tmp_path):
    container = {"volumeMounts": [{"name": "a", "mountPath": "/data"}, {"name": "b", "mountPath": "/data/sub"},
                                  {"name": "shm", "mountPath": "/dev/shm"}]}
    mounts = local_pod.volume_mounts(container, {"a": "/ha", "b": "/hb", "shm": "/hs"})
    assert mounts == [("/data/sub", "/hb"), ("/data", "/ha")]  # /dev/shm stays the host's
    assert local_pod.map_volume_paths("/data/sub/f", mounts) == "/hb/f"


def test_the_service_account_token_volume_is_left_out(engine_pod, tmp_path):
    # What the ServiceAccount admission plugin adds to every pod that automounts a token.
    engine_pod["spec"]["volumes"].append({"name": "kube-api-access-x1", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}})
    engine_pod["spec"]["containers"][0]["volumeMounts"].append(
        {"name": "kube-api-access-x1", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})
    assert local_pod.token_volumes(engine_pod) == {"kube-api-access-x1"}
    dirs = {k: v for k, v in _volume_dirs(engine_pod, tmp_path).items() if k != "kube-api-access-x1"}
    container = engine_pod["spec"]["containers"][0]
    proc = local_pod.local_process(engine_pod, "engine", {}, dirs, {})
    assert proc.argv[0] == sys.executable
    with pytest.raises(LocalPodError, match="kube-api-access-x1"):
        local_pod.volume_mounts(container, dirs)  # without the rule it could not be mounted


def test_a_mount_without_a_local_directory_is_an_error():
    with pytest.raises(LocalPodError, match="volume 'token'"):
        local_pod.volume_mounts({"volumeMounts": [{"name": "token", "mountPath": "/var/run/x"}]}, {})


@pytest.mark.parametrize(("command", "args", "expected"), [
    (["vllm", "serve", "/m", "--port", "1"], [], [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                                                  "--model", "/m", "--port", "1"]),
    (["vllm", "serve"], ["--model", "/m"], [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                                           "--model", "/m"]),
    (["/usr/bin/python3.12", "-m", "x"], [], [sys.executable, "-m", "x"]),
    (["/bin/echo", "hi"], ["there"], ["/bin/echo", "hi", "there"]),
])
def test_entrypoints(command, args, expected):
    argv, _ = local_pod.localize_entrypoint(command, args, local_pod.IMAGES["vllm-openai"])
    assert argv == expected


@pytest.mark.parametrize(("image", "key"), [
    ("vllm/vllm-openai:v0.32.0", "vllm-openai"),
    ("public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v0.32.0", "vllm-cpu-release-repo"),
    ("ghcr.io/rerank-operator/rerank-engine-cpu:0.1.0", "rerank-engine-cpu"),
    ("ghcr.io/rerank-operator/rerank-ui:0.1.0", "rerank-ui"),
    ("registry:5000/team/rerank-ui@sha256:abc", "rerank-ui"),
    ("rerank-ui", "rerank-ui"),
])
def test_image_key(image, key):
    assert local_pod.image_key(image) == key


def test_an_unknown_image_is_refused_with_the_known_ones_named(engine_pod, tmp_path):
    engine_pod["spec"]["containers"][0]["image"] = "nginx:1.27"
    with pytest.raises(LocalPodError, match=r"cannot run image 'nginx:1.27'.*rerank-ui"):
        _engine_process(engine_pod, tmp_path)


def test_a_pod_without_an_ip_is_not_started(engine_pod, tmp_path):
    engine_pod["status"].pop("podIP")
    with pytest.raises(LocalPodError, match="no IP"):
        _engine_process(engine_pod, tmp_path)


def test_resolve_env_follows_the_kubelets_rules(engine_pod):
    container = {"env": [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "$(A)-$(MISSING)"},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['a']"}}},
        {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
        {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}}},
    ]}
    env = local_pod.resolve_env(container, engine_pod, lambda n, k: {"s": "sv"}.get(n),
                                lambda n, k: {"c": "cv"}.get(n))
    assert env == {"A": "1", "B": "1-$(MISSING)", "IP": POD_IP, "NAME": "reranker-engine-0", "LABEL": "b",
                   "S": "sv", "C": "cv"}
    with pytest.raises(LocalPodError, match="secretKeyRef gone/k not found"):
        local_pod.resolve_env({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}]},
                              engine_pod, lambda n, k: None, lambda n, k: None)


def test_http_probe_resolves_named_ports(engine_pod, ui_pod):
    engine = engine_pod["spec"]["containers"][0]
    port = next(p["containerPort"] for p in engine["ports"] if p["name"] == "http")
    assert local_pod.http_probe(engine, POD_IP) == f"http://{POD_IP}:{port}{engine['readinessProbe']['httpGet']['path']}"
    ui = ui_pod["spec"]["containers"][0]
    assert local_pod.http_probe(ui, POD_IP).startswith(f"http://{POD_IP}:7860/")
    assert local_pod.http_probe({"name": "x"}, POD_IP) is None
    with pytest.raises(LocalPodError, match="port 'web'"):
        local_pod.http_probe({"readinessProbe": {"httpGet": {"port": "web"}}, "ports": []}, POD_IP)


def test_gateway_runs_its_image_entrypoint_bound_to_the_pod_ip_and_finds_engines_through_the_proxy(tmp_path):
    from rerank_gateway.config import from_args

    from rerank_operator.resources.gateway import build_gateway_deployment

    body = _body()
    pod = _pod(build_gateway_deployment(body, parse_spec(body["spec"]))["spec"]["template"]["spec"],
               "reranker-gateway-5d8f-abcde")
    (container,) = pod["spec"]["containers"]
    env = local_pod.resolve_env(container, pod, lambda n, k: None, lambda n, k: None)
    services = {("default", "reranker-engine", 8000): "127.0.0.1:18001"}
    proc = local_pod.local_process(pod, "gateway", env, {}, services)
    assert proc.argv[:3] == [sys.executable, "-m", "rerank_gateway"]
    config = from_args(proc.argv[3:])  # the gateway accepts the substituted command line
    # The proxy stands in for the headless Service; as a health-checked engine URL it counts Ready only
    # while it reaches a Ready engine, so the gateway holds requests when none is (scale from zero).
    assert config.host == POD_IP and config.engine_dns is None and config.engines == ("http://127.0.0.1:18001",)
    assert "--engine-dns" not in proc.argv
