"""Scale to zero (minReplicas 0, behind the gateway): idle for the whole window -> 0; held requests -> 1."""

from __future__ import annotations

from rerank_operator.autoscaling.policy import (
    NO_METRICS,
    SCALED_DOWN,
    SCALED_UP,
    AutoscalingPolicy,
    Memory,
    Observation,
    PodSample,
    decide,
)
from rerank_operator.autoscaling.state import memory_from_status, status_patch

NOW = 1_800_000_000.0
WINDOW = 60.0
POLICY = AutoscalingPolicy(min_replicas=0, max_replicas=4, scale_down_stabilization_seconds=WINDOW)


class Engine:
    """One engine pod's counters, advanced by the requests it serves."""

    def __init__(self) -> None:
        self.done = 0.0
        self.tokens = 0.0

    def sample(self, served: int = 0, in_flight: float = 0.0) -> PodSample:
        self.done += served
        self.tokens += 200.0 * served
        return PodSample("engine-0", ready=True, waiting=0.0, running=in_flight, requests_done=self.done,
                         prompt_tokens=self.tokens)


def passes(engine: Engine, memory: Memory, start: float, seconds: float, policy=POLICY, current=1, held=0.0,
           **sample):
    """One pass every 5 s for ``seconds``; the decisions, and the memory after the last."""
    decisions = []
    for i in range(int(seconds / 5) + 1):
        d = decide(policy, Observation(start + 5 * i, current, (engine.sample(**sample),), held_pairs=held), memory)
        decisions.append(d)
        memory = d.memory
        current = d.desired_replicas
    return decisions, memory


def test_an_idle_engine_stops_only_after_the_whole_window():
    engine = Engine()
    busy, memory = passes(engine, Memory(), NOW, 30, served=3)
    assert all(d.desired_replicas == 1 for d in busy)
    idle, memory = passes(engine, memory, NOW + 35, WINDOW + 10)
    went = [d for d in idle if d.desired_replicas == 0]
    assert went and went[0].reason == SCALED_DOWN, [d.message for d in idle]
    first_idle = NOW + 35  # its interval since the last busy pass had no work
    stopped_at = idle.index(went[0])
    assert 5 * stopped_at >= WINDOW and all(d.desired_replicas == 1 for d in idle[:stopped_at])
    assert memory.idle_since == first_idle


def test_never_zero_while_a_request_is_in_flight_or_held():
    engine = Engine()
    _, memory = passes(engine, Memory(), NOW, 10, served=1)
    # A long request in flight: no new request done, but the engine is not idle.
    running, memory = passes(engine, memory, NOW + 15, 3 * WINDOW, in_flight=1.0)
    assert all(d.desired_replicas == 1 for d in running)
    # The gateway holds requests (its engine is not Ready yet, say): not idle either.
    holding, memory = passes(engine, memory, NOW + 20 + 3 * WINDOW, 3 * WINDOW, held=20.0)
    assert all(d.desired_replicas == 1 for d in holding)
    assert memory.idle_since is None


def test_a_request_restarts_the_idle_stretch():
    engine = Engine()
    _, memory = passes(engine, Memory(), NOW, 10, served=1)
    idle, memory = passes(engine, memory, NOW + 15, WINDOW - 20)
    assert all(d.desired_replicas == 1 for d in idle)
    _, memory = passes(engine, memory, NOW + WINDOW, 0, served=1)
    assert memory.idle_since is None
    idle, memory = passes(engine, memory, NOW + WINDOW + 5, WINDOW - 20)
    assert all(d.desired_replicas == 1 for d in idle)


def test_with_min_replicas_one_an_idle_engine_stays():
    engine = Engine()
    _, memory = passes(engine, Memory(), NOW, 10, served=1)
    policy = AutoscalingPolicy(min_replicas=1, max_replicas=4, scale_down_stabilization_seconds=WINDOW)
    idle, _ = passes(engine, memory, NOW + 15, 3 * WINDOW, policy=policy)
    assert all(d.desired_replicas == 1 for d in idle)


def test_held_requests_wake_one_replica_from_zero_at_once():
    d = decide(POLICY, Observation(NOW, 0, (), held_pairs=20.0), Memory())
    assert (d.desired_replicas, d.reason) == (1, SCALED_UP), d.message
    assert "held by the gateway" in d.message


def test_zero_with_nothing_held_stays_zero():
    d = decide(POLICY, Observation(NOW, 0, (), held_pairs=0.0), Memory())
    assert (d.desired_replicas, d.reason) == (0, NO_METRICS)
    # The idle stretch goes on at zero (it is what a later scale-down window is measured from).
    assert d.memory.idle_since == NOW


def test_a_pod_still_loading_is_never_stopped():
    # Woken by held requests, the pod loads the model (not Ready): no scale-down, however long.
    memory = Memory(idle_since=NOW - 10 * WINDOW)
    d = decide(POLICY, Observation(NOW, 1, (PodSample("engine-0", ready=False),)), memory)
    assert d.desired_replicas == 1 and d.memory.idle_since is None


def test_the_idle_stretch_survives_an_operator_restart():
    engine = Engine()
    _, memory = passes(engine, Memory(), NOW, 10, served=1)
    idle, memory = passes(engine, memory, NOW + 15, 20)
    d = idle[-1]
    status = {"autoscaling": status_patch(d, {}, NOW + 35, False)["autoscaling"]}
    assert memory_from_status(status).idle_since == memory.idle_since
