"""`rerank-local`: the whole stack on this machine -- no GPU, no Docker, no model hub.

`--node auto` (the default) runs it on one real node where this machine allows one (node.capability decides
and says why; real_local.RealNodeStack), else on simulated nodes (local_stack.LocalStack, whose docstring
lists the steps); `--node real|simulated` chooses.

Then it prints the endpoint, the UI, a curl command and the kubectl command, and runs until Ctrl-C
(SIGINT/SIGTERM), which stops every process it started. `--smoke` instead sends one rerank request
through the Service's local endpoint, checks the ranking and the UI, tears down and exits 0 or 1.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time

from .local_stack import MODE, LocalModeError, LocalStack
from .node.capability import MODES, CapabilityError, decide
from .real_local import RealNodeStack

log = logging.getLogger("rerank_localdev")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="rerank-local",
        description="Run the control plane, the operator, a sample RerankerDeployment, its engine and its UI "
                    f"on this machine ({MODE}).",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true",
                      help="start, send one rerank request and open the UI, tear down; exit 0 if all worked")
    mode.add_argument("--keep-running", action="store_true", default=True,
                      help="keep everything running until Ctrl-C (the default)")
    p.add_argument("--node", choices=MODES, default="auto",
                   help="real: one real node (containerd, kubelet, kube-proxy; needs root and the kernel's bridge, "
                        "veth, overlayfs, br_netfilter, writable cgroups); simulated: kwok nodes with the pods run "
                        "as local processes; auto (the default): real where this machine allows it")
    p.add_argument("--port", type=int, default=None,
                   help="local port of the rerank endpoint (default 8000, or a free port if 8000 is taken)")
    p.add_argument("--ui-port", type=int, default=None,
                   help="local port of the web UI (default 7860, or a free port if 7860 is taken)")
    p.add_argument("--timeout", type=float, default=900.0,
                   help="seconds to wait for the deployment to become Ready (default 900)")
    p.add_argument("--keep-logs", action="store_true", help="keep the logs directory after stopping")
    p.add_argument("--verbose", "-v", action="store_true", help="also log every step to stderr")
    return p.parse_args(argv)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        choice = decide(args.node)
    except CapabilityError as exc:
        print(f"rerank-local: {exc}", file=sys.stderr)
        return 2
    if choice.mode == "real":
        stack: LocalStack = RealNodeStack(args)
    else:
        stack = LocalStack(args)
    stack.choice_reason = f"{choice.mode}: {choice.reason}"
    handler = logging.FileHandler(stack.logs / "local.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if args.verbose:
        root.addHandler(logging.StreamHandler(sys.stderr))
    # Ctrl-C and SIGTERM both end in the same teardown (installed before the control plane, which
    # then leaves SIGTERM to us).
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 1
    try:
        stack.up()
        stack.report()
        if args.smoke:
            code = 0 if stack.smoke() else 1
            stack.say("smoke: " + ("passed" if code == 0 else "FAILED"))
        else:
            stack.say("Press Ctrl-C to stop everything.")
            while True:
                time.sleep(2)
                stack.tend()
    except KeyboardInterrupt as exc:
        stack.say(f"\n{exc or 'SIGINT'}: stopping…")
        code = 0 if not args.smoke else 130
    except Exception as exc:
        stack.say(f"\nFAILED: {exc}")
        if not isinstance(exc, LocalModeError):
            log.exception("local mode failed")
        code = 1
    finally:
        if code == 1:
            stack.print_log_tails()
        # A second Ctrl-C must not cut the teardown short.
        for s in previous:
            signal.signal(s, lambda *_: print("still stopping…", file=sys.stderr, flush=True))
        stack.down()
        for s, h in previous.items():
            signal.signal(s, h)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
