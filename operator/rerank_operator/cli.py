"""`rerank-operator`: run the operator, or print the CRD.

    rerank-operator run [--namespace NS ... | --all-namespaces] [--standalone]
                        [--leader-elect --lease-namespace NS [--lease-name rerank-operator]]
                        [--liveness http://0.0.0.0:8080/healthz] [--metrics-port 9090]
                        [--drift-interval 300] [--log-format text|json]
                        [--kubeconfig PATH] [--context NAME] [--verbose]
    rerank-operator crd            # the CustomResourceDefinition YAML (kubectl apply -f -)
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import Sequence


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number of seconds, got {raw!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank-operator", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator (reconciles RerankerDeployments)")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[],
                       help="watch this namespace (repeatable); default: all namespaces")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch all namespaces (the default)")
    run.add_argument("--standalone", action="store_true",
                     help="no peering with other operator instances (one replica, or --leader-elect)")
    run.add_argument("--peering", default=None, help="kopf peering object name (not leader election)")
    run.add_argument("--leader-elect", action="store_true",
                     help="several replicas: only the holder of a coordination.k8s.io Lease acts (see leadership)")
    run.add_argument("--lease-name", default="rerank-operator", help="the Lease's name (--leader-elect)")
    run.add_argument("--lease-namespace", default=os.environ.get("POD_NAMESPACE"),
                     help="the Lease's namespace (--leader-elect; default: env POD_NAMESPACE)")
    run.add_argument("--identity", default=None,
                     help="this replica's name in the Lease (default: env POD_NAME, else host and process id)")
    run.add_argument("--log-format", choices=("text", "json"), default=os.environ.get("RERANK_LOG_FORMAT", "text"),
                     help="text lines prefixed with [namespace/name], or one JSON object per line with an "
                          "'object' field (env RERANK_LOG_FORMAT)")
    run.add_argument("--liveness", default=os.environ.get("RERANK_LIVENESS", "http://0.0.0.0:8080/healthz"),
                     help="liveness probe endpoint URL; 'off' to disable")
    run.add_argument("--metrics-port", type=int, default=int(os.environ.get("RERANK_METRICS_PORT", "9090")),
                     help="port of the Prometheus metrics endpoint; 0 to disable")
    run.add_argument("--metrics-address", default="0.0.0.0")
    run.add_argument("--drift-interval", type=float, default=_env_float("RERANK_DRIFT_INTERVAL", 300.0),
                     help="seconds between drift checks of each RerankerDeployment (env RERANK_DRIFT_INTERVAL)")
    run.add_argument("--api-connections", type=int, default=32,
                     help="requests to the API server in flight at once for reconciling (and objects reconciled at once)")
    run.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    run.add_argument("--context", default=None, help="kubeconfig context")
    run.add_argument("--verbose", "-v", action="store_true")

    commands.add_parser("crd", help="print the RerankerDeployment CustomResourceDefinition as YAML")
    return parser


def framework_connections(namespaces: Sequence[str]) -> int:
    """Connections to leave kopf: one watch stream per watched kind (RerankerDeployments and each
    child kind) and namespace -- a glob may match many, count 16 -- plus its namespace watch and
    its own requests."""
    from rerank_operator.resources import CHILD_KINDS

    globs = sum(1 for n in namespaces if any(c in n for c in "*?["))
    watched = 1 if not namespaces else len(namespaces) - globs + 16 * globs
    return (1 + len(CHILD_KINDS)) * watched + 2 + 16


def run_operator(args: argparse.Namespace) -> int:
    import kopf
    from prometheus_client import start_http_server

    from rerank_operator.reconcile import logs
    from rerank_operator.reconcile.handlers import OperatorConfig, register
    from rerank_operator.reconcile.kube import load_configuration

    if args.leader_elect and not args.lease_namespace:
        raise SystemExit("--leader-elect needs --lease-namespace (or env POD_NAMESPACE)")
    logs.configure(args.log_format, args.verbose)
    if args.kubeconfig:
        # kopf's login (via the kubernetes client) and ours read the same file.
        os.environ["KUBECONFIG"] = args.kubeconfig
    configuration = load_configuration(args.kubeconfig, args.context)
    registry = kopf.OperatorRegistry()
    config = OperatorConfig(drift_interval=args.drift_interval, connections=args.api_connections,
                            framework_connections=framework_connections(args.namespace))
    register(registry, config, configuration)
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.metrics_address)
    liveness = None if args.liveness == "off" else args.liveness
    leadership = None
    if args.leader_elect:
        from kubernetes import client as k8s_client

        from rerank_operator.leadership import Leadership, default_identity

        leadership = Leadership(k8s_client.ApiClient(configuration), namespace=args.lease_namespace,
                                name=args.lease_name, identity=args.identity or default_identity())
        leadership.wait_until_leader(liveness)
    try:
        kopf.run(
            registry=registry,
            # Leader election decides which replica acts; kopf's peering would only add writes.
            standalone=True if args.standalone or args.leader_elect else None,
            peering_name=args.peering,
            liveness_endpoint=liveness,
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            identity=peering_identity(),
        )
    finally:
        if leadership is not None:
            leadership.release()
    return 0


def peering_identity() -> str:
    """This replica's name among its peers. kopf's default is `<user>@<host>`, which looks the user up in
    /etc/passwd and crashes when the pod runs under a uid the image does not list (the chart's runAsUser, or the
    random uids some platforms assign)."""
    return f"rerank-operator@{socket.gethostname()}"


def print_crd() -> int:
    from rerank_operator.api.crd import crd_yaml

    sys.stdout.write(crd_yaml())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command == "run":
        return run_operator(args)
    return print_crd()


if __name__ == "__main__":
    raise SystemExit(main())
