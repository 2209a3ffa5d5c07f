"""The CPU engine image serves the tiny reranker from a mounted directory, started with exactly the command
line and environment the operator's StatefulSet builder writes, as uid/gid 1000 with a read-only root
filesystem and no capabilities, and its scores equal the project's virtualenv engine's (within SAME_SCORES).
Then the smoke test users run on their GPUs before trusting a release (bench/engine_smoke.py) passes against it, down
to its memory within the builder's limit and its exit within the pod's grace period after SIGTERM.

The deployment here keeps its model on a PersistentVolumeClaim (``spec.model.pvc``), so the builder's own
``--model`` is the claim's mount path; the test mounts the tiny model there and the model cache volume on
/models, as the pod would. Its port is a free one (``spec.engine.port``), since the container shares the
host's network. Nothing in the builder's argv is swapped.
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.request
from pathlib import Path

import pytest

from rerank_localdev import images
from rerank_localdev.controlplane import free_ports
from rerank_operator.api.quantity import parse_quantity
from tests.fixtures.engine import ENGINE_SPEC, engine_container

from .containers import built_image, running_container, wait_for_http

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import engine_smoke  # noqa: E402  (bench/ holds scripts, not a package)

pytestmark = [pytest.mark.images, pytest.mark.vllm]

# vLLM on CPU compiles the model with torch's inductor (C++) at start: minutes on a busy 2-core machine.
STARTUP_TIMEOUT = 1200.0
QUERIES = [
    ("What is the capital of France?", ["Paris is the capital and largest city of France.",
                                        "The quick brown fox jumps over the lazy dog.",
                                        "Berlin is the capital of Germany."]),
    ("How do I read a large CSV file in Python?", ["Use pandas.read_csv with chunksize.",
                                                   "CSV stands for comma-separated values.", "日本の首都は東京です。"]),
]


# Two processes running the same weights, prompt and kernels agree to ~1e-5, not bit for bit: torch's inductor
# compiles C++ kernels at start that split their loops by the threads they get, so float32 sums run in another
# order (one CI run: 6.5e-5 apart). A one-token change of the prompt moves every score of these queries by at least
# 5e-3 and the largest by at least 0.08 (an instruction word, a trailing space or a dropped "?", on the venv engine).
SAME_SCORES = 1e-3


def rerank(base_url: str, model: str, query: str, documents: list[str]) -> list[float]:
    body = json.dumps({"model": model, "query": query, "documents": documents}).encode()
    request = urllib.request.Request(base_url + "/v1/rerank", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        results = json.loads(response.read())["results"]
    return [score for _, score in sorted((r["index"], r["relevance_score"]) for r in results)]


@pytest.mark.timeout(2400)  # two engine start-ups: the venv fixture's and the container's
def test_engine_container_serves_the_builders_command_with_the_venv_engines_scores(rerank_engine,
                                                                                   tmp_path: Path) -> None:
    from rerank_operator.resources.statefulset import CACHE_MOUNT, MODEL_PVC_MOUNT, TERMINATION_GRACE_SECONDS

    ref = built_image("engine-cpu")
    (port,) = free_ports(1)
    spec = {**ENGINE_SPEC, "model": {**ENGINE_SPEC["model"], "pvc": {"claimName": "models", "path": "tiny"}},
            "engine": {**ENGINE_SPEC["engine"], "port": port}}
    container_spec = engine_container(spec)
    argv = container_spec["command"] + container_spec.get("args", [])
    assert argv[argv.index("--model") + 1] == f"{MODEL_PVC_MOUNT}/tiny"

    # The claim (read-only) and the cache volume, readable/writable by uid 1000 as fsGroup would make them.
    model = tmp_path / "claim" / "tiny"
    shutil.copytree(rerank_engine.model_path, model)
    cache = tmp_path / "cache"
    cache.mkdir()
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.chown(cache, 1000, 1000)

    # The builder's env, plus the hub switched off as for the venv engine (nothing to download here).
    env = {e["name"]: e["value"] for e in container_spec["env"] if "value" in e}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    options = ["--read-only", "--tmpfs", "/tmp:rw,mode=1777", "--user", "1000:1000", "--shm-size", "1g",
               "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
               "-v", f"{model.parent}:{MODEL_PVC_MOUNT}:ro", "-v", f"{cache}:{CACHE_MOUNT}:rw",
               "--entrypoint", argv[0]]
    for name, value in sorted(env.items()):
        options += ["-e", f"{name}={value}"]
    with running_container(ref, *argv[1:], options=options) as container:
        wait_for_http(container, f"http://127.0.0.1:{port}/health", timeout=STARTUP_TIMEOUT)
        served_model = spec["model"]["name"]
        for query, documents in QUERIES:
            in_image = rerank(f"http://127.0.0.1:{port}", served_model, query, documents)
            in_venv = rerank(rerank_engine.base_url, rerank_engine.model, query, documents)
            assert in_image == pytest.approx(in_venv, abs=SAME_SCORES), (query, in_image, in_venv)
            # And the tolerance is far below what a different prompt does: a trailing space after the query.
            moved = rerank(f"http://127.0.0.1:{port}", served_model, query + " ", documents)
            assert max(abs(a - b) for a, b in zip(moved, in_image)) > 10 * SAME_SCORES, (query, moved, in_image)

        pid = int(images.podman("inspect", "--format", "{{.State.Pid}}", container.name).stdout)
        limit_gib = float(parse_quantity(container_spec["resources"]["limits"]["memory"])) / 2**30
        checks = engine_smoke.run_checks(f"http://127.0.0.1:{port}", served_model, pid=pid,
                                         max_model_len=spec["engine"].get("maxModelLen", 8192),
                                         memory_limit_gib=limit_gib, grace=TERMINATION_GRACE_SECONDS)
        report = "\n".join(f"{'PASS' if c.passed else 'FAIL'}  {c.name}: {c.detail}" for c in checks)
        print("\nengine smoke test:\n" + report)
        assert [c.name for c in checks if not c.passed] == [], report
