"""Start time and memory of the local Kubernetes control plane.

    .venv/bin/python bench/controlplane_start.py [--runs 3]

First makes sure the binaries exist (a cold build if the cache is empty, timed and reported
separately), then starts and stops the control plane `--runs` times (2 CPU + 2 GPU kwok nodes, all
Ready, controllers running) and prints each start time, the median, the resident memory (VmRSS
from /proc) of every component after the last start, summed, and the CPU the idle control plane
uses. Start times depend on how busy the machine is: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from rerank_localdev import binaries  # noqa: E402
from rerank_localdev.controlplane import LocalControlPlane  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="window for the idle CPU figure")
    args = parser.parse_args()

    t0 = time.monotonic()
    cached = binaries.find()
    bin_dir = cached or binaries.build()
    if cached is None:
        print(f"cold build of the binaries: {time.monotonic() - t0:.0f} s")
    print(f"binaries: {bin_dir}")

    times: list[float] = []
    memory: dict[str, int] = {}
    idle: dict[str, float] = {}
    start_cpu: list[float] = []
    for i in range(args.runs):
        cp = LocalControlPlane(bin_dir=bin_dir)
        start = time.monotonic()
        with cp:
            times.append(time.monotonic() - start)
            # CPU the components burned to get ready: unlike wall time, barely affected by other load.
            start_cpu.append(sum(cpu_seconds(pid) for pid in cp.processes().values()))
            if i == args.runs - 1:
                time.sleep(2)  # let the controllers' initial syncs settle before measuring
                memory = {name: rss_kib(pid) for name, pid in cp.processes().items()}
                before = {name: cpu_seconds(pid) for name, pid in cp.processes().items()}
                time.sleep(args.idle_seconds)
                idle = {name: (cpu_seconds(pid) - before[name]) / args.idle_seconds
                        for name, pid in cp.processes().items()}
        print(f"start {i + 1}: {times[-1]:.2f} s wall, {start_cpu[-1]:.1f} CPU-seconds")

    print(f"median start (warm, binaries cached, {args.runs} runs): {statistics.median(times):.2f} s wall, "
          f"{statistics.median(start_cpu):.1f} CPU-seconds")
    print(f"after the last start (RSS; CPU cores used while idle over {args.idle_seconds:.0f} s):")
    for name, kib in memory.items():
        print(f"  {name:<24} {kib / 1024:7.1f} MiB  {idle[name]:5.2f} cores")
    print(f"total RSS of the control plane: {sum(memory.values()) / 1024:.0f} MiB; "
          f"idle CPU: {sum(idle.values()):.2f} cores")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
