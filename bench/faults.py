"""The data plane under faults on the real node: a steady client's requests answered and failed, p50 and p99, in
each phase (before, the shared Redis score cache stopped and started again, an engine SIGKILLed, an engine hung, an
engine OOMKilled, a gateway pod deleted, an engine evicted, after).

    .venv/bin/python bench/faults.py

Runs the README node test's steps that lead to the faults (the release installed, scaled to two engines) and the
faults step itself (tests/node/test_node_helm_readme.py: test_engine_and_gateway_faults_under_a_steady_client_lose_no_request,
which also asserts that no request fails), then prints the figures that step wrote to artifacts/node-faults.json.
Needs what `make test` needs for the node tests (root, the node's parts and images: `make node-binaries images`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.node.faults import table  # noqa: E402

STEPS = "gets_ready_through_the_kubelets_probes or scaled_to_two_replicas or faults_under_a_steady_client"


def main() -> int:
    figures = REPO / "artifacts" / "node-faults.json"
    figures.unlink(missing_ok=True)
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-x",
                          "tests/node/test_node_helm_readme.py", "-k", STEPS], cwd=REPO)
    if not figures.exists():
        print("the faults step did not run to its figures", file=sys.stderr)
        return run.returncode or 1
    print(table(json.loads(figures.read_text())))
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
