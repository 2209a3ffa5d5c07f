"""Leader election on a coordination.k8s.io Lease, so that several operator replicas run but one acts.

Built on the official client's ``kubernetes.leaderelection`` (its LeaseLock and renew loop), which
is thread-based: the election runs in a daemon thread beside kopf's event loop, which is started
only once this replica holds the Lease. Standby replicas write nothing; they only poll the Lease.

* Failover: a leader that dies stops renewing; a standby takes the Lease ``lease_duration``
  seconds after it last saw it renewed, then starts kopf (which resumes every object). With the
  defaults (8 s lease, 1 s retry) a new leader acts within about 10 s.
* No two leaders: a leader that cannot renew within ``renew_deadline`` (< ``lease_duration``)
  exits at once -- before any standby may take the Lease -- instead of finishing its work. Its
  pod restarts and stands by (the Deployment's restart, not a code path of its own).
* A graceful stop (SIGTERM, e.g. a node drain) releases the Lease, so a standby takes over within
  a retry period instead of waiting out the lease.
"""

from __future__ import annotations

import datetime
import http.server
import logging
import os
import socket
import threading
from urllib.parse import urlparse

from kubernetes import client as k8s_client
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

log = logging.getLogger(__name__)


def default_identity() -> str:
    """The pod's name where the chart sets POD_NAME (a restarted container keeps its Lease),
    else host and process id."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


class _ReleasableLeaseLock(LeaseLock):
    """The official LeaseLock on our API client, which stops renewing once the Lease is released."""

    def __init__(self, name: str, namespace: str, identity: str, api_client: k8s_client.ApiClient):
        super().__init__(name, namespace, identity)
        self.api_instance = k8s_client.CoordinationV1Api(api_client)
        self.released = threading.Event()

    def create(self, name, namespace, election_record):  # noqa: ANN001 -- the parent's signature
        return False if self.released.is_set() else super().create(name, namespace, election_record)

    def update(self, name, namespace, updated_record):  # noqa: ANN001 -- the parent's signature
        return False if self.released.is_set() else super().update(name, namespace, updated_record)


class Leadership:
    def __init__(self, api_client: k8s_client.ApiClient, *, namespace: str, name: str, identity: str,
                 lease_duration: int = 8, renew_deadline: int = 5, retry_period: int = 1):
        self.lock = _ReleasableLeaseLock(name, namespace, identity, api_client)
        self.leading = threading.Event()
        self.config = electionconfig.Config(self.lock, lease_duration=lease_duration, renew_deadline=renew_deadline,
                                            retry_period=retry_period, onstarted_leading=self.leading.set,
                                            onstopped_leading=self._stopped)
        # The module logs every poll at INFO; this class logs the transitions.
        logging.getLogger("leaderelection").setLevel(logging.WARNING)

    def _stopped(self) -> None:
        if self.lock.released.is_set():
            return
        log.error("lost the lease %s/%s (not renewed in time): exiting so that only one operator acts",
                  self.lock.namespace, self.lock.name)
        logging.shutdown()
        os._exit(1)  # no further write of any kind from this process

    def wait_until_leader(self, liveness: str | None = None) -> None:
        """Block until this replica holds the Lease; meanwhile answer ``liveness`` (kopf serves it
        once it runs) so that the kubelet keeps the standby alive."""
        threading.Thread(target=leaderelection.LeaderElection(self.config).run, name="leader-election",
                         daemon=True).start()
        log.info("%s waits for the lease %s/%s", self.lock.identity, self.lock.namespace, self.lock.name)
        server = _standby_health(liveness) if liveness else None
        try:
            self.leading.wait()
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
        log.info("%s holds the lease %s/%s: starting", self.lock.identity, self.lock.namespace, self.lock.name)

    def release(self) -> None:
        """Hand the Lease back (graceful stop): a standby takes it at its next poll."""
        if not self.leading.is_set():
            return
        self.lock.released.set()
        try:
            lease = self.lock.api_instance.read_namespaced_lease(self.lock.name, self.lock.namespace)
            if lease.spec.holder_identity != self.lock.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            lease.spec.renew_time = datetime.datetime.now(datetime.timezone.utc)
            self.lock.api_instance.replace_namespaced_lease(self.lock.name, self.lock.namespace, lease)
            log.info("released the lease %s/%s", self.lock.namespace, self.lock.name)
        except k8s_client.ApiException as exc:  # it expires by itself
            log.warning("could not release the lease %s/%s: %s", self.lock.namespace, self.lock.name, exc)


def _standby_health(url: str) -> http.server.ThreadingHTTPServer:
    parsed = urlparse(url)
    path = parsed.path or "/"

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 -- the base class' name
            self.send_response(200 if self.path == path else 404)
            self.end_headers()
            self.wfile.write(b"standby\n")

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((parsed.hostname or "0.0.0.0", parsed.port or 80), Health)
    threading.Thread(target=server.serve_forever, name="standby-health", daemon=True).start()
    return server
