"""Faults injected into a release on the real node, and the steady client's figures cut into phases.

The faults are the real ones: containerd kills an engine container's processes (SIGKILL) or freezes them
(`ctr tasks pause`: the cgroup freezer, so the pod keeps its address and the kernel still accepts connections
on the engine's port, but nothing answers), a gateway pod is deleted through the API, an engine is evicted
through the Eviction API (what `kubectl drain` does, its PodDisruptionBudget consulted).
"""

from __future__ import annotations

import json
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Phases:
    """Named time spans of a run (wall clock: the client pod runs on this host and shares its clock)."""

    spans: list[tuple[str, float, float]] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str):
        started = time.time()
        try:
            yield
        finally:
            self.spans.append((name, started, time.time()))

    def figures(self, final: dict) -> list[dict]:
        """Per phase: requests answered and failed, p50 and p99 latency in ms, from the client's summary."""
        rows = []
        for name, start, end in self.spans:
            seconds = sorted(s for at, s in final["latencies"] if start <= at < end)
            failed = sum(1 for f in final["failures"] if start <= f["at"] < end)
            rows.append({"phase": name, "seconds": round(end - start, 1), "answered": len(seconds),
                         "failed": failed,
                         "p50_ms": round(1000 * statistics.median(seconds), 1) if seconds else None,
                         "p99_ms": round(1000 * seconds[min(len(seconds) - 1, int(0.99 * len(seconds)))], 1)
                         if seconds else None})
        return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'phase':34s} {'s':>6s} {'answered':>8s} {'failed':>6s} {'p50 ms':>8s} {'p99 ms':>8s}"]
    for r in rows:
        lines.append(f"{r['phase']:34s} {r['seconds']:6.1f} {r['answered']:8d} {r['failed']:6d} "
                     f"{r['p50_ms'] if r['p50_ms'] is not None else '-':>8} "
                     f"{r['p99_ms'] if r['p99_ms'] is not None else '-':>8}")
    return "\n".join(lines)


def container_id(pod: dict) -> str:
    return pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")


def evict(cp, namespace: str, pod: str, dry_run: bool = False) -> tuple[bool, str]:
    """POST an Eviction for ``pod``: (accepted, the API server's message). A refusal by a PodDisruptionBudget is
    a 429 whose message says so."""
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}}
    if dry_run:
        eviction["deleteOptions"] = {"dryRun": ["All"]}
    result = cp.kubectl("create", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction", "-f", "-",
                        input=json.dumps(eviction), check=False)
    return result.returncode == 0, (result.stdout + result.stderr).strip()

