"""What a pod's container becomes when it runs as a local process (local mode has no kubelet).

Pure functions: a Pod object (as the API server returns it) in, a `LocalProcess` (argv, env) out.
The command line and environment are the container's own, from the pod spec the operator's
StatefulSet or Deployment produced; only what cannot apply on this machine is substituted, and
every substitution is one rule below:

1. Entrypoint. A container without `command` runs its image's entrypoint; `IMAGES` knows the
   local equivalent of each image this project deploys. Interpreters and the `vllm serve`
   launcher are mapped onto this Python (the vLLM CPU build's `vllm` script cannot start
   the server; `python -m vllm.entrypoints.openai.api_server` can).
2. Volumes. A path at or below a `volumeMounts[].mountPath` becomes the same path below the host
   directory that backs the volume (the caller resolves claims, ConfigMaps and emptyDirs to
   directories). /dev/shm is left alone: the host's is already a shared-memory mount. The
   ServiceAccount token volume is left out: a local process has no in-cluster API address
   (KUBERNETES_SERVICE_HOST) to use it with, and neither the engine nor the UI calls the API.
3. Listen address. The process binds the pod's IP (a loopback address, see controlplane.py)
   instead of 0.0.0.0, as a container in its own network namespace would appear to.
4. Cluster DNS. `<service>.<namespace>.svc[.cluster.local][:port]` becomes the local proxy that
   stands in for kube-proxy (service_proxy.py), when one serves that Service port.
5. Environment. The container's `env` (valueFrom resolved by the caller) over a minimal host
   environment (PATH, HOME, locale): a container does not inherit the host's variables either.
6. CPU-only: a GPU engine pod sizes its KV cache from GPU memory; the CPU build would take a
   fraction of host RAM instead, so unless the container sets it (a `device: cpu` engine does),
   VLLM_CPU_KVCACHE_SPACE caps the cache at `CPU_KVCACHE_GIB`.

7. Engine discovery. The gateway finds the Ready engines by resolving their headless Service,
   whose DNS answer is the Ready pods. Its local proxy answers whether or not any is Ready, so the
   gateway gets the proxy as an `--engine` URL instead, which it counts Ready while `/health`
   through the proxy answers 200 -- holding requests while no engine is Ready, as in a cluster.

Security contexts, resource limits and GPU requests have no local equivalent and are not applied.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

# Variables passed from the host into every local container (everything else comes from the spec).
# PYTHONPATH stands in for the image's installed packages: the local interpreter finds the project's
# code where the process that started local mode found it (a source tree, not only an install).
HOST_ENV = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "XDG_CACHE_HOME", "TZ", "PYTHONPATH")
# Tags every process local mode starts, so that leftovers can be found (see local_stack.py).
RUN_ID_ENV = "RERANK_LOCAL_RUN_ID"
CPU_KVCACHE_GIB = 1
SYSTEM_MOUNTS = ("/dev/shm",)

_DNS = re.compile(
    r"(?P<service>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
    r"\.svc(\.cluster\.local)?(:(?P<port>\d+))?(?![-a-z0-9.])"
)


class LocalPodError(ValueError):
    """The pod cannot be run locally (unknown image, unresolvable port, ...); says why."""


@dataclass(frozen=True)
class LocalProcess:
    container: str
    argv: list[str]
    env: dict[str, str]
    substitutions: list[str] = field(default_factory=list)
    """Human-readable notes, one per substitution made (shown in local mode's log)."""

    def shell(self) -> str:
        return " ".join(shlex.quote(a) for a in self.argv)


def _python() -> str:
    return sys.executable


def _bind_vllm(argv: list[str], env: dict[str, str], ip: str) -> list[str]:
    return _set_flag(argv, "--host", ip)


def _bind_gateway(argv: list[str], env: dict[str, str], ip: str) -> list[str]:
    argv = _set_flag(argv, "--host", ip)
    # Rule 7: the engines' headless Service became the local proxy (rule 4), which has an address
    # whether or not an engine is Ready; checked on /health, it is Ready exactly when an engine is.
    if "--engine-dns" in argv:
        at = argv.index("--engine-dns")
        target = argv[at + 1]
        if target.startswith("127.0.0.1:"):
            argv = [*argv[:at], *argv[at + 2:], "--engine", f"http://{target}"]
    return argv


def _bind_gradio(argv: list[str], env: dict[str, str], ip: str) -> list[str]:
    env["GRADIO_SERVER_NAME"] = ip
    return argv


@dataclass(frozen=True)
class LocalImage:
    """The local stand-in for one container image."""

    entrypoint: Callable[[], list[str]]
    bind: Callable[[list[str], dict[str, str], str], list[str]]
    engine: bool = False


VLLM = LocalImage(lambda: [_python(), "-m", "vllm.entrypoints.openai.api_server"], _bind_vllm, engine=True)
# Keyed by the image repository's last path component (registry, tag and digest ignored).
IMAGES: dict[str, LocalImage] = {
    "vllm-openai": VLLM,
    "vllm-openai-cpu": VLLM,
    "vllm-cpu-release-repo": VLLM,  # vLLM's own CPU release image
    "rerank-engine-cpu": VLLM,  # the project's CPU engine image (images/engine-cpu), the default on cpu
    "rerank-ui": LocalImage(lambda: [_python(), "-m", "rerank_ui.app"], _bind_gradio),
    "rerank-gateway": LocalImage(lambda: [_python(), "-m", "rerank_gateway"], _bind_gateway),
}


def image_key(image: str) -> str:
    """`ghcr.io/org/rerank-ui:0.1.0@sha256:...` -> `rerank-ui`."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def local_image(image: str) -> LocalImage:
    key = image_key(image)
    if key not in IMAGES:
        raise LocalPodError(
            f"local mode cannot run image {image!r}: it knows the local equivalent of {', '.join(sorted(IMAGES))}"
        )
    return IMAGES[key]


def _set_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """argv with every `flag X` / `flag=X` removed and `flag value` appended."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == flag:
            skip = True
            continue
        if arg.startswith(flag + "="):
            continue
        out.append(arg)
    return [*out, flag, value]


def localize_entrypoint(command: Sequence[str], args: Sequence[str], image: LocalImage) -> tuple[list[str], list[str]]:
    """Rule 1: the argv this machine runs for the container's command + args, and notes."""
    notes: list[str] = []
    if not command:
        argv = image.entrypoint() + list(args)
        notes.append(f"image entrypoint -> {' '.join(image.entrypoint())}")
        return argv, notes
    argv = list(command) + list(args)
    exe = os.path.basename(argv[0])
    if exe == "vllm" and len(argv) > 1 and argv[1] == "serve":
        rest = argv[2:]
        model: list[str] = []
        if rest and not rest[0].startswith("-"):
            model, rest = ["--model", rest[0]], rest[1:]
        notes.append("vllm serve -> python -m vllm.entrypoints.openai.api_server")
        return VLLM.entrypoint() + model + rest, notes
    if re.fullmatch(r"python(3(\.\d+)?)?", exe):
        notes.append(f"{argv[0]} -> {_python()}")
        return [_python(), *argv[1:]], notes
    return argv, notes


def _map_path(value: str, mounts: Sequence[tuple[str, str]]) -> str:
    for mount_path, host_dir in mounts:
        if value == mount_path:
            return host_dir
        if value.startswith(mount_path.rstrip("/") + "/"):
            return host_dir.rstrip("/") + value[len(mount_path.rstrip("/")):]
    return value


def map_volume_paths(value: str, mounts: Sequence[tuple[str, str]]) -> str:
    """Rule 2 on one argument or variable value (`/p`, `--flag=/p` and `NAME=/p` forms)."""
    if "=" in value and not value.startswith("/"):
        head, tail = value.split("=", 1)
        mapped = _map_path(tail, mounts)
        return value if mapped == tail else f"{head}={mapped}"
    return _map_path(value, mounts)


def map_service_names(value: str, namespace: str, services: Mapping[tuple[str, str, int], str]) -> str:
    """Rule 4: cluster DNS names of proxied Service ports -> the local proxy's host:port.
    `services` maps (namespace, service, port) to "127.0.0.1:<local port>"; a name without a
    port means port 80, as for an http:// URL."""

    def sub(m: re.Match[str]) -> str:
        port = int(m.group("port") or 80)
        target = services.get((m.group("namespace"), m.group("service"), port))
        return target if target else m.group(0)

    return _DNS.sub(sub, value)


def service_refs(value: str) -> list[tuple[str, str, int]]:
    """The (namespace, service, port) cluster DNS references in `value` (see map_service_names)."""
    return [(m.group("namespace"), m.group("service"), int(m.group("port") or 80)) for m in _DNS.finditer(value)]


def token_volumes(pod: Mapping[str, Any]) -> set[str]:
    """Names of the pod's projected volumes that carry a ServiceAccount token (kube-api-access-*)."""
    return {v["name"] for v in pod["spec"].get("volumes") or []
            if any("serviceAccountToken" in src for src in (v.get("projected") or {}).get("sources") or [])}


def volume_mounts(container: Mapping[str, Any], volume_dirs: Mapping[str, str],
                  skip: set[str] | frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(mountPath, host directory) pairs, longest mount path first so nested mounts win.
    Mounts of volumes in `skip` and of SYSTEM_MOUNTS are left out (rule 2)."""
    pairs = []
    for m in container.get("volumeMounts") or []:
        path = m["mountPath"]
        if path in SYSTEM_MOUNTS or m["name"] in skip:
            continue
        if m["name"] not in volume_dirs:
            raise LocalPodError(f"volume {m['name']!r} mounted at {path} has no local directory")
        host = volume_dirs[m["name"]]
        if m.get("subPath"):
            host = os.path.join(host, m["subPath"])
        pairs.append((path, host))
    return sorted(pairs, key=lambda p: len(p[0]), reverse=True)


def local_process(
    pod: Mapping[str, Any],
    container_name: str,
    env_values: Mapping[str, str],
    volume_dirs: Mapping[str, str],
    services: Mapping[tuple[str, str, int], str],
    host_env: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> LocalProcess:
    """The local process for one container of `pod` (see the module docstring for the rules).

    `env_values`: the container's environment with every valueFrom already resolved, in spec order.
    `volume_dirs`: pod volume name -> host directory. `services`: see `map_service_names`.
    """
    spec = pod["spec"]
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        raise LocalPodError(f"pod {pod['metadata']['name']} has no IP yet")
    container = next((c for c in spec["containers"] if c["name"] == container_name), None)
    if container is None:
        raise LocalPodError(f"pod {pod['metadata']['name']} has no container {container_name!r}")
    image = local_image(container["image"])
    namespace = pod["metadata"]["namespace"]
    mounts = volume_mounts(container, volume_dirs, token_volumes(pod))

    argv, notes = localize_entrypoint(container.get("command") or [], container.get("args") or [], image)

    def localize(value: str) -> str:
        return map_service_names(map_volume_paths(value, mounts), namespace, services)

    new_argv = [argv[0], *(localize(a) for a in argv[1:])]
    notes += [f"argument {a!r} -> {b!r}" for a, b in zip(argv[1:], new_argv[1:]) if a != b]

    host = os.environ if host_env is None else host_env
    env = {k: host[k] for k in HOST_ENV if k in host}
    for name, value in env_values.items():
        local = localize(value)
        if local != value:
            notes.append(f"env {name}={value!r} -> {local!r}")
        env[name] = local
    if image.engine and "VLLM_CPU_KVCACHE_SPACE" not in env:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(CPU_KVCACHE_GIB)
        notes.append(f"env VLLM_CPU_KVCACHE_SPACE={CPU_KVCACHE_GIB} (CPU build: KV cache in host RAM)")
    if run_id:
        env[RUN_ID_ENV] = run_id

    final = image.bind(new_argv, env, ip)
    notes.append(f"listens on the pod IP {ip}")
    return LocalProcess(container_name, final, env, notes)


def resolve_env(
    container: Mapping[str, Any],
    pod: Mapping[str, Any],
    secret: Callable[[str, str], str | None],
    config_map: Callable[[str, str], str | None],
) -> dict[str, str]:
    """The container's env with valueFrom resolved as the kubelet would (fieldRef, secretKeyRef,
    configMapKeyRef; `$(VAR)` references to earlier variables expanded). `secret`/`config_map`
    look up (name, key) and return None when absent."""
    out: dict[str, str] = {}
    meta, status = pod["metadata"], pod.get("status") or {}
    fields = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": pod["spec"].get("nodeName"),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
    }
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item or "valueFrom" not in item:
            out[name] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                               lambda m: out.get(m.group(1), m.group(0)), item.get("value") or "")
            continue
        source = item["valueFrom"]
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            value = fields.get(path)
            if value is None and path.startswith("metadata.labels['"):
                value = (meta.get("labels") or {}).get(path[len("metadata.labels['"):-2])
            if value is None:
                raise LocalPodError(f"env {name}: unsupported fieldRef {path}")
            out[name] = value
            continue
        for kind, lookup in (("secretKeyRef", secret), ("configMapKeyRef", config_map)):
            if kind in source:
                ref = source[kind]
                value = lookup(ref["name"], ref["key"])
                if value is None:
                    if ref.get("optional"):
                        break
                    raise LocalPodError(f"env {name}: {kind} {ref['name']}/{ref['key']} not found")
                out[name] = value
                break
        else:
            raise LocalPodError(f"env {name}: unsupported valueFrom {sorted(source)}")
    return out


def http_probe(container: Mapping[str, Any], ip: str, kind: str = "readinessProbe") -> str | None:
    """The URL the kubelet would GET for the container's probe, or None if it has no httpGet probe."""
    probe = container.get(kind) or {}
    get = probe.get("httpGet")
    if not get:
        return None
    port = get["port"]
    if isinstance(port, str) and not port.isdigit():
        named = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
        if port not in named:
            raise LocalPodError(f"{kind} names port {port!r}, which the container does not declare")
        port = named[port]
    scheme = get.get("scheme", "HTTP").lower()
    path = get.get("path", "/")
    return f"{scheme}://{ip}:{port}{path if path.startswith('/') else '/' + path}"
