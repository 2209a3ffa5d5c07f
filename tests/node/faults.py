"""Faults injected into a release on the real node, and the steady client's figures cut into phases.

The faults are the real ones: containerd kills an engine container's processes (SIGKILL) or freezes them
(`ctr tasks pause`: the cgroup freezer, so the pod keeps its address and the kernel still accepts connections
on the engine's port, but nothing answers), a gateway pod is deleted through the API, an engine is evicted
through the Eviction API (what `kubectl drain` does, its PodDisruptionBudget consulted), and an engine is
OOM-killed by its container's memory limit (the cgroup's limit lowered to what the engine uses now, then a process
in the container allocates past it: the kernel's OOM killer, confined to that cgroup, kills its largest process,
a vLLM process, as when an engine's own memory grows past its limit).
"""

from __future__ import annotations

import json
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

MEMORY_CGROUPS = Path("/sys/fs/cgroup/memory")


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



def memory_cgroup(node, pod: dict) -> Path:
    """The memory cgroup (v1) of the pod's first container, from its init process as containerd reports it."""
    cid = container_id(pod)
    (pid,) = [line.split()[1] for line in node.ctr("tasks", "ls").stdout.splitlines()[1:] if line.split()[0] == cid]
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return MEMORY_CGROUPS / path.lstrip("/")
    raise RuntimeError(f"process {pid} of {cid} has no memory cgroup (cgroup v2 only?)")


def oom_kill(node, pod: dict, headroom_mib: int = 64) -> None:
    """The pod's first container OOM-killed by its memory limit (see the module docstring)."""
    cgroup = memory_cgroup(node, pod)
    stat = dict(line.split() for line in (cgroup / "memory.stat").read_text().splitlines())
    # What the engine's processes hold (anonymous memory and their mapped files), not the page cache the kernel
    # would reclaim first: the hog then stays far smaller than every vLLM process, so one of those is the victim.
    held = int(stat["total_rss"]) + int(stat["total_mapped_file"])
    try:
        (cgroup / "memory.limit_in_bytes").write_text(str(held + headroom_mib * 2**20))
    except OSError:  # EBUSY: the cache could not all be reclaimed; the limit just above today's usage then
        used = int((cgroup / "memory.usage_in_bytes").read_text())
        (cgroup / "memory.limit_in_bytes").write_text(str(used + headroom_mib * 2**20))
    python = pod["spec"]["containers"][0]["command"][0]
    # Touched pages (not calloc's untouched zero pages) count against the limit: 8 MiB more every 10 ms.
    hog = "import time\nheld = []\nwhile True:\n    held.append(b'x' * (8 << 20))\n    time.sleep(0.01)\n"
    node.ctr("tasks", "exec", "--exec-id", f"oom-{int(time.time())}", container_id(pod), python, "-c", hog,
             check=False, timeout=120)
