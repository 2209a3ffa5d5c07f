"""The optional demand forecast (``forecastSeconds``): a clear rise is carried one model load ahead,
upward only, capped; noise and falls change nothing; the slope survives a restart."""

from __future__ import annotations

import random

import pytest

from rerank_operator.api.v1alpha1 import AutoscalingSpec, RerankerDeploymentStatus
from rerank_operator.autoscaling.policy import (
    SCALED_UP,
    AutoscalingPolicy,
    Memory,
    Observation,
    decide,
    forecast_rise,
)
from rerank_operator.autoscaling.state import memory_from_status, status_patch

from tests.unit.autoscaling.fleet import Fleet

NOW = 1_800_000_000.0
CAPACITY = 26_000.0  # tokens/s one saturated replica does


def drive(policy, load, steps, ready=2, current=2, follow=False):
    """Feed ``load(i)`` tokens/s (whole fleet, never saturated) for ``steps`` 5 s passes; the
    decisions, and the memory at the end. ``follow``: the count follows the decisions."""
    fleet, memory, decisions = Fleet(ready=ready), Memory(capacity=CAPACITY), []
    for i in range(steps):
        pods = fleet.step(5.0, tokens_per_s_per_pod=load(i) / ready, tokens_per_pair=200.0,
                          waiting_per_pod=0, running_per_pod=20)
        d = decide(policy, Observation(NOW + 5 * i, current, pods), memory)
        decisions.append(d)
        memory = d.memory
        if follow:
            current = d.desired_replicas
    return decisions, memory


def test_the_rise_is_the_slope_over_the_window_plus_the_forecast_upward_only_and_capped():
    p = AutoscalingPolicy(demand_window_seconds=60, forecast_seconds=120)
    assert forecast_rise(p, 10_000.0, 50.0) == pytest.approx(50.0 * 180)  # 9,000: a clear rise
    assert forecast_rise(p, 10_000.0, 500.0) == pytest.approx(10_000.0)  # at most the demand again
    assert forecast_rise(p, 10_000.0, 20.0) == 0.0  # 3,600 < 0.6 x demand: noise, not a trend
    assert forecast_rise(p, 10_000.0, -50.0) == 0.0  # a fall is never forecast
    assert forecast_rise(p, 10_000.0, None) == 0.0
    assert forecast_rise(AutoscalingPolicy(), 10_000.0, 50.0) == 0.0  # off by default


def test_the_forecast_looks_one_learned_model_load_ahead():
    # forecastSeconds 120 was written for a 2-minute load; the pods have shown 5 minutes. A replica asked
    # for now serves in 5: the rise is carried over the window plus those 300 s, not the 120 guessed.
    p = AutoscalingPolicy(demand_window_seconds=60, forecast_seconds=120)
    assert forecast_rise(p, 20_000.0, 50.0, load_seconds=300.0) == pytest.approx(50.0 * 360)  # 18,000
    # Over the 120 s guessed (no load seen yet), the same slope adds 9,000 < 0.6 x demand: no clear rise.
    assert forecast_rise(p, 20_000.0, 50.0, load_seconds=None) == 0.0
    assert forecast_rise(p, 20_000.0, 50.0, load_seconds=60.0) == 0.0  # a fast load needs less look-ahead
    assert forecast_rise(AutoscalingPolicy(), 20_000.0, 50.0, load_seconds=300.0) == 0.0  # still opt-in


def test_decide_forecasts_over_the_learned_load_time():
    def ramp(i):
        return 20_000.0 + 200.0 * min(5 * i, 300)

    p = AutoscalingPolicy(max_replicas=8, max_scale_up_factor=None, forecast_seconds=60)
    fleet, memory = Fleet(ready=2), Memory(capacity=CAPACITY)
    rises = {}
    for load in (None, 300.0):
        fleet, memory = Fleet(ready=2), Memory(capacity=CAPACITY, load_seconds=load)
        for i in range(40):
            pods = fleet.step(5.0, tokens_per_s_per_pod=ramp(i) / 2, tokens_per_pair=200.0,
                              waiting_per_pod=0, running_per_pod=20)
            d = decide(p, Observation(NOW + 5 * i, 2, pods), memory)
            memory = d.memory
        rises[load] = d.message
    assert "rising" in rises[300.0] and rises[300.0] != rises[None], rises


def test_a_ramp_is_scaled_for_sooner_with_a_forecast():
    # 20k -> 80k tokens/s over 5 min on 2 replicas of 26k: both policies scale up; the forecast first.
    def ramp(i):
        return 20_000.0 + 200.0 * min(5 * i, 300)

    first_up = {}
    for forecast in (0, 120):
        p = AutoscalingPolicy(max_replicas=8, max_scale_up_factor=None, forecast_seconds=forecast)
        decisions, memory = drive(p, ramp, 80)
        first_up[forecast] = next(i for i, d in enumerate(decisions) if d.reason == SCALED_UP)
        if forecast:
            assert memory.demand_trend > 0
            assert "rising" in decisions[first_up[forecast]].message
    assert first_up[120] * 5 + 30 <= first_up[0] * 5, first_up


def test_a_flat_noisy_load_and_a_falling_one_decide_as_without_a_forecast():
    # Up to +-40 % noise around 45k tokens/s on 3 replicas (2.2 replicas' worth at 0.8; the noise's
    # slope, carried 180 s ahead without the clear-rise threshold, would ask for a 4th), then a fall
    # from 60k to 10k: no pass differs.
    rng = random.Random(7)
    noise = [rng.uniform(-0.4, 0.4) for _ in range(120)]

    def noisy(i):
        return 45_000.0 * (1 + noise[i])

    def falling(i):
        return max(10_000.0, 60_000.0 - 500.0 * 5 * i)

    for load in (noisy, falling):
        plain, _ = drive(AutoscalingPolicy(max_replicas=8), load, 120, ready=3, current=3, follow=True)
        ahead, _ = drive(AutoscalingPolicy(max_replicas=8, forecast_seconds=120), load, 120, ready=3, current=3,
                         follow=True)
        assert [d.recommended_replicas for d in plain] == [d.recommended_replicas for d in ahead], load.__name__


def test_the_slope_survives_a_restart_and_may_be_negative():
    p = AutoscalingPolicy(max_replicas=8, forecast_seconds=120)
    for load in (lambda i: 20_000.0 + 1_000.0 * i, lambda i: 80_000.0 - 1_000.0 * i):
        decisions, memory = drive(p, load, 12)
        status = status_patch(decisions[-1], {}, NOW + 55, False)
        RerankerDeploymentStatus.model_validate(status)  # the CRD's status schema accepts it
        read_back = memory_from_status(status)
        assert read_back.demand_trend == pytest.approx(memory.demand_trend, rel=1e-3)
    assert memory.demand_trend < 0
    assert memory_from_status({"autoscaling": {"demandTrendTokensPerSecond2": "NaN"}}).demand_trend is None


def test_from_spec_reads_forecast_seconds_and_refuses_a_negative_one():
    assert AutoscalingPolicy.from_spec(AutoscalingSpec.model_validate({"forecastSeconds": 90})).forecast_seconds == 90
    with pytest.raises(ValueError, match="forecastSeconds"):
        AutoscalingSpec.model_validate({"forecastSeconds": -1})
    with pytest.raises(ValueError, match="forecastSeconds"):
        AutoscalingPolicy(forecast_seconds=-1)
