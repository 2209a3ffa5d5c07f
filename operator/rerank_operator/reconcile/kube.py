"""A small asynchronous Kubernetes API client for the reconcile loop.

Why not the `kubernetes` package's client: it is synchronous (every call would take a thread) and
turns every response into model objects, which costs more CPU than the API server's own work
when hundreds of RerankerDeployments are reconciled at once. Here requests are aiohttp calls
with plain JSON, sharing one connection pool. Credentials and TLS come from the `kubernetes`
package's configuration loader (in-cluster service account, or a kubeconfig), so both clients
-- this one and the autoscaler's -- authenticate the same way, token refresh included.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any, Mapping
from urllib.parse import quote

import aiohttp
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from prometheus_client import Counter

from rerank_operator.resources.children import CHILD_KINDS

API_REQUESTS = Counter(
    "rerank_operator_api_requests",
    "Requests of the reconcile loop to the Kubernetes API, by verb, resource and HTTP status (0: no answer).",
    ["verb", "resource", "code"],
)

# kind -> (plural, namespaced): every child kind, and the others the operator reads or writes.
KINDS: dict[str, tuple[str, bool]] = {
    **{child.kind: (child.plural, True) for child in CHILD_KINDS},
    "Event": ("events", True),
    "Pod": ("pods", True),
    "Node": ("nodes", False),
    "Lease": ("leases", True),
    "RerankerDeployment": ("rerankerdeployments", True),
}

_PLURALS = {plural for plural, _ in KINDS.values()} | {"namespaces"}


def _resource_of(path: str) -> str:
    """The resource a request path names (for metrics): the last plural in it, plus a subresource."""
    parts = path.strip("/").split("/")
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in _PLURALS and (i == 0 or parts[i - 1] != "namespaces" or parts[i] == "namespaces"):
            tail = parts[i + 2] if len(parts) > i + 2 else ""
            return f"{parts[i]}/{tail}" if tail else parts[i]
    return "other"


APPLY_CONTENT_TYPE = "application/apply-patch+yaml"  # JSON is YAML
MERGE_CONTENT_TYPE = "application/merge-patch+json"


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        """Worth retrying as is: conflicts, throttling, server errors, lost connections (status 0)."""
        return self.status in (0, 409, 429) or self.status >= 500


def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> k8s_client.Configuration:
    """In-cluster service account if running in a pod, else the kubeconfig ($KUBECONFIG or ~/.kube/config)."""
    configuration = k8s_client.Configuration()
    if kubeconfig is None and context is None:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
            return configuration
        except k8s_config.ConfigException:
            pass
    k8s_config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    return configuration


def resource_path(api_version: str, kind: str, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    plural, namespaced = KINDS[kind]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespaced and namespace is not None:
        base += f"/namespaces/{quote(namespace)}"
    path = f"{base}/{plural}"
    if name is not None:
        path += f"/{quote(name)}"
    if subresource:
        path += f"/{subresource}"
    return path


class KubeClient:
    """One connection pool for the whole operator: this client's requests and, through
    :meth:`kopf_session`, the framework's (watch streams, its own patches and events).

    ``connections`` bounds this client's requests in flight; the pool allows ``framework_connections``
    more, for the framework's watch streams (each holds a connection for as long as it runs) and
    requests. A bounded pool keeps memory flat when a thousand objects are handled at once: every
    TLS connection costs a few hundred KB, and an unbounded pool grows with the backlog.
    """

    def __init__(self, configuration: k8s_client.Configuration, *, connections: int = 32,
                 framework_connections: int = 32, timeout: float = 30.0):
        self.configuration = configuration
        self._connections = connections
        self._pool_limit = connections + framework_connections
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        cfg = self.configuration
        if not cfg.host.startswith("https"):
            return False
        context = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
        if cfg.cert_file:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
        if not cfg.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _auth_headers(self) -> dict[str, str]:
        # auth_settings() runs the configuration's token refresh hook (rotated service account tokens).
        headers = {}
        for setting in self.configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        return headers

    def new_session(self) -> aiohttp.ClientSession:
        """A fresh pool with the current credentials as default headers (the framework sends no
        auth of its own on a session it is given). Replaces the current one, which its user -- the
        framework, on re-login -- closes."""
        connector = aiohttp.TCPConnector(limit=self._pool_limit, ssl=self._ssl())
        self._session = aiohttp.ClientSession(connector=connector, headers=self._auth_headers(), trust_env=False)
        return self._session

    def kopf_session(self) -> Any:
        """Credentials for kopf: this client's pool (see the class docstring)."""
        import kopf

        return kopf.AiohttpSession(aiohttp_session=self.new_session(), server=self.configuration.host)

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self.new_session()
        assert self._session is not None
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", **self._auth_headers()}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      body: Any = None, content_type: str | None = "application/json",
                      parse: bool = True) -> tuple[int, Any]:
        """(HTTP status, decoded JSON). ``parse=False`` skips decoding a successful answer (None):
        a decoded object with its managedFields takes many times its text's memory."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._connections)
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        url = self.configuration.host.rstrip("/") + path
        try:
            async with self._slots:
                session = await self.session()
                async with session.request(method, url, params=params, data=data, timeout=self._timeout,
                                           headers=self._headers(content_type if data is not None else None)) as resp:
                    text = await resp.text()
                    status = resp.status
        except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
            # RuntimeError: the pool was closed under us (the framework logged in again); retry.
            API_REQUESTS.labels(method, _resource_of(path), "0").inc()
            raise ApiError(0, type(exc).__name__, str(exc) or repr(exc)) from exc
        verb = "APPLY" if content_type == APPLY_CONTENT_TYPE and method == "PATCH" else method
        API_REQUESTS.labels(verb, _resource_of(path), str(status)).inc()
        payload: Any = None
        if text and (parse or status >= 400):
            try:
                payload = json.loads(text)
            except ValueError:
                payload = text
        if status >= 400:
            reason = payload.get("reason", "") if isinstance(payload, dict) else ""
            message = payload.get("message", text) if isinstance(payload, dict) else text
            raise ApiError(status, reason or str(status), message)
        return status, payload

    async def apply(self, manifest: Mapping[str, Any], *, field_manager: str, force: bool = True,
                    parse: bool = True) -> tuple[int, dict | None]:
        """Server-side apply; returns (HTTP status: 201 when created, 200 when it existed, the object
        or None when not ``parse``)."""
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"])
        # Strict: a field the API server does not know is an error, not silently dropped.
        params = {"fieldManager": field_manager, "fieldValidation": "Strict"}
        if force:
            params["force"] = "true"
        return await self.request("PATCH", path, params=params, body=manifest, content_type=APPLY_CONTENT_TYPE,
                                  parse=parse)

    async def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict | None:
        try:
            return (await self.request("GET", resource_path(api_version, kind, namespace, name)))[1]
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, api_version: str, kind: str, namespace: str | None = None,
                   label_selector: str | None = None, field_selector: str | None = None) -> list[dict]:
        params = {"labelSelector": label_selector} if label_selector else {}
        if field_selector:
            params["fieldSelector"] = field_selector
        params = params or None
        return (await self.request("GET", resource_path(api_version, kind, namespace), params=params))[1]["items"]

    async def create(self, api_version: str, kind: str, namespace: str | None, body: Mapping[str, Any]) -> dict:
        return (await self.request("POST", resource_path(api_version, kind, namespace), body=body))[1]

    async def merge_patch(self, api_version: str, kind: str, namespace: str | None, name: str,
                          patch: Mapping[str, Any], subresource: str | None = None, parse: bool = True,
                          field_manager: str | None = None) -> dict | None:
        path = resource_path(api_version, kind, namespace, name, subresource)
        params = {"fieldManager": field_manager} if field_manager else None
        return (await self.request("PATCH", path, params=params, body=patch, content_type=MERGE_CONTENT_TYPE,
                                   parse=parse))[1]

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str,
                     *, uid: str | None = None) -> bool:
        """Delete (in the background); False if it was not there. ``uid`` guards against deleting
        a same-named object that replaced the one looked at."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", resource_path(api_version, kind, namespace, name), body=body)
            return True
        except ApiError as exc:
            if exc.status in (404, 409):  # gone, or replaced (uid precondition failed)
                return False
            raise
