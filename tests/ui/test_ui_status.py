"""The operator's status file (its documented shape) and the cached health probe."""

import asyncio
import json

import jsonschema
import pytest

from rerank_ui.client import HealthProbe
from rerank_ui.status import (
    STATUS_SCHEMA,
    Condition,
    DeploymentStatus,
    StatusMonitor,
    parse_status,
    read_status_file,
)

# The example of the module docstring: what the operator writes while 1 of 3 engine pods is ready.
LOADING = {
    "replicas": 3, "readyReplicas": 1, "desiredReplicas": 3,
    "conditions": [
        {"type": "Ready", "status": "False", "reason": "ModelLoading", "message": "model loading",
         "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "Progressing", "status": "True", "reason": "ScalingUp", "message": "scaling up to 3"},
        {"type": "Degraded", "status": "False", "reason": "AsExpected", "message": ""},
    ],
}


def test_the_documented_example_matches_the_schema_and_the_parser():
    jsonschema.Draft202012Validator.check_schema(STATUS_SCHEMA)
    jsonschema.validate(LOADING, STATUS_SCHEMA)
    status = parse_status(json.dumps(LOADING))
    assert (status.replicas, status.ready_replicas, status.desired_replicas) == (3, 1, 3)
    assert status.conditions[0] == Condition("Ready", "False", "ModelLoading", "model loading")
    assert status.explanation == "model loading"  # Ready=False outranks Progressing=True
    assert not status.degraded


@pytest.mark.parametrize("conditions, explanation, degraded", [
    ([], "", False),
    ([{"type": "Ready", "status": "True", "reason": "Serving", "message": "all replicas ready"}], "", False),
    ([{"type": "Progressing", "status": "True", "reason": "ScalingUp", "message": "scaling up to 3"}],
     "scaling up to 3", False),
    ([{"type": "Ready", "status": "Unknown", "reason": "ModelDownloading"}], "model downloading", False),
    ([{"type": "Ready", "status": "False", "message": "model loading"},
      {"type": "Degraded", "status": "True", "reason": "CrashLoop", "message": "engine pods crash: CUDA OOM"}],
     "engine pods crash: CUDA OOM", True),
])
def test_explanation_comes_from_the_condition_that_matters(conditions, explanation, degraded):
    status = parse_status(json.dumps({"readyReplicas": 0, "desiredReplicas": 1, "conditions": conditions}))
    assert (status.explanation, status.degraded) == (explanation, degraded)


def test_parse_status_falls_back_to_replicas_and_zero_ready():
    assert parse_status('{"replicas": 2}') == DeploymentStatus(0, 2, replicas=2)
    assert parse_status("{}") == DeploymentStatus(0, 0)


@pytest.mark.parametrize("text", ["[]", '{"readyReplicas": -1}', '{"replicas": "two"}', '{"readyReplicas": true}',
                                  "{", '{"conditions": {}}', '{"conditions": [{"type": "Ready"}]}'])
def test_parse_status_refuses_other_shapes(text):
    with pytest.raises(ValueError):
        parse_status(text)


def test_read_status_file_tolerates_missing_and_broken_files(tmp_path):
    assert read_status_file(None) is None
    assert read_status_file(tmp_path / "absent.json") is None
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert read_status_file(broken) is None
    good = tmp_path / "status.json"
    good.write_text('{"readyReplicas": 2, "replicas": 2, "desiredReplicas": 2, "conditions": []}')
    assert read_status_file(good) == DeploymentStatus(2, 2, replicas=2)


def test_health_probe_is_cached_for_the_ttl(tmp_path):
    now = [100.0]
    calls = []

    async def probe():
        calls.append(now[0])
        return HealthProbe(len(calls) % 2 == 1, f"probe {len(calls)}")

    async def scenario():
        monitor = StatusMonitor(probe, tmp_path / "status.json", ttl_seconds=5, clock=lambda: now[0])
        assert await monitor.snapshot() == (None, HealthProbe(True, "probe 1"))
        now[0] = 104.9
        assert await monitor.health() == HealthProbe(True, "probe 1")
        now[0] = 105.0
        # Many pages refreshing at once share one probe.
        assert await asyncio.gather(*(monitor.health() for _ in range(5))) == [HealthProbe(False, "probe 2")] * 5

    asyncio.run(scenario())
    assert calls == [100.0, 105.0]
