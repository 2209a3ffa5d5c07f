"""A hand-driven fleet of engine pods whose vLLM counters advance at chosen rates, for policy tests.

Each ``step`` advances every Ready pod's ``request_success_total`` / ``prompt_tokens_total`` by
what it did in ``seconds`` and returns the :class:`PodSample` list the loop would build.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rerank_operator.autoscaling.policy import PodSample


@dataclass
class Fleet:
    ready: int
    loading: int = 0
    done: dict[str, list[float]] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [f"engine-{i}" for i in range(self.ready + self.loading)]

    def step(self, seconds: float, tokens_per_s_per_pod: float, tokens_per_pair: float,
             waiting_per_pod: float, running_per_pod: float, unreadable: set[str] = frozenset()) -> tuple[PodSample, ...]:
        pods = []
        for i, name in enumerate(self.names()):
            if i >= self.ready:
                pods.append(PodSample(name, ready=False))
                continue
            counters = self.done.setdefault(name, [0.0, 0.0])
            counters[0] += tokens_per_s_per_pod * seconds / tokens_per_pair
            counters[1] += tokens_per_s_per_pod * seconds
            if name in unreadable:
                pods.append(PodSample(name, ready=True))
            else:
                pods.append(PodSample(name, True, waiting_per_pod, running_per_pod, counters[0], counters[1]))
        return tuple(pods)
