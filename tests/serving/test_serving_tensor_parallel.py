"""Tensor parallelism on the real CPU vLLM: the operator's command with tensorParallelSize 2.

vLLM's CPU build runs each rank as a worker process and adds their partial results up, the way the GPU
build does over NCCL: through its shared-memory all-reduce where its AVX-512 kernels load, else (AVX2-only
CPUs: that kernel library has no init_shm_manager) through torch.distributed's gloo; vLLM logs which. The
same tiny model, the same requests: the scores equal those of the session's TP 1 engine to float32
rounding, so the split changes nothing a client sees.
"""

from __future__ import annotations

import copy

import pytest
import requests

from tests.fixtures.engine import ENGINE_SPEC, running_engine
from tests.serving.pairs import CUSTOM_INSTRUCTION, QUERIES

pytestmark = pytest.mark.vllm

TOLERANCE = 1e-5  # float32 on both; measured: 1.0e-6 (bench/engine_memory.py)


@pytest.fixture(scope="module")
def tp2_engine(tmp_path_factory):
    spec = copy.deepcopy(ENGINE_SPEC)
    spec["engine"]["tensorParallelSize"] = 2
    with running_engine(tmp_path_factory.mktemp("vllm-tp2"), spec) as engine:
        yield engine


def scores(engine, query, documents, **extra):
    response = requests.post(engine.url("/v1/rerank"), json={"model": engine.model, "query": query,
                                                             "documents": documents, **extra}, timeout=120)
    assert response.status_code == 200, response.text
    by_index = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
    return [by_index[i] for i in range(len(documents))]


def test_the_command_runs_two_tensor_parallel_workers(tp2_engine):
    command = tp2_engine.builder_command
    assert command[command.index("--tensor-parallel-size") + 1] == "2"
    assert "world_size=2 rank=1" in tp2_engine.log_path.read_text(errors="replace")  # the second rank's own log


@pytest.mark.parametrize("extra", [{}, {"instruction": CUSTOM_INSTRUCTION}], ids=["default", "custom-instruction"])
def test_tp2_scores_equal_tp1_scores(rerank_engine, tp2_engine, extra):
    worst, pairs = 0.0, 0
    for query, documents in QUERIES.items():
        tp1, tp2 = scores(rerank_engine, query, documents, **extra), scores(tp2_engine, query, documents, **extra)
        worst = max(worst, *(abs(a - b) for a, b in zip(tp1, tp2)))
        pairs += len(documents)
    assert pairs >= 20
    assert worst <= TOLERANCE, f"TP 2 differs from TP 1 by up to {worst:.1e}"
