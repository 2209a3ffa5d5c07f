"""A private OCI registry on 127.0.0.1: CNCF Distribution's `registry` (built by `rerank_localdev.tools`) with
TLS from a throw-away CA made here and basic auth (a bcrypt htpasswd), the way GHCR or a company registry asks
clients to prove who they are. The release tests push images (podman) and the chart (helm) to it and install
from it.

Everything lives in one directory given by the caller (storage, certificates, htpasswd, config, log); `stop()`
ends the process group, so a stopped registry leaves nothing behind but that directory.
"""

from __future__ import annotations

import os
import secrets
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import yaml

from . import pki, tools
from .controlplane import free_ports

HOST = "127.0.0.1"


def htpasswd_line(username: str, password: str) -> str:
    """One htpasswd entry; Distribution accepts bcrypt only ($2a$/$2y$ style)."""
    return f"{username}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10, prefix=b'2a')).decode()}\n"


def config(port: int, workdir: Path) -> dict:
    """Distribution's configuration: filesystem storage in ``workdir``, TLS, htpasswd, deletes allowed (a
    test may retract a tag), no debug or metrics listener (one port only)."""
    return {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}, "delete": {"enabled": True}},
        "http": {
            "addr": f"{HOST}:{port}",
            "secret": secrets.token_hex(16),
            "tls": {"certificate": str(workdir / "tls.crt"), "key": str(workdir / "tls.key")},
        },
        "auth": {"htpasswd": {"realm": "rerank-local-registry", "path": str(workdir / "htpasswd")}},
    }


@dataclass
class LocalRegistry:
    workdir: Path
    username: str = "rerank"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``: what image references and ``oci://`` URLs start with."""
        return f"{HOST}:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.crt"

    @property
    def cert_dir(self) -> Path:
        """A directory in the layout podman's ``--cert-dir`` and containerd's hosts.d expect (``ca.crt``)."""
        return self.workdir / "certs.d" / self.address

    @property
    def log(self) -> Path:
        return self.workdir / "registry.log"

    def start(self, timeout: float = 30) -> LocalRegistry:
        binary = tools.path("registry")
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.port,) = free_ports(1)
        ca, ca_key, ca_cert = pki.make_ca("rerank-local-registry-ca", days=2)
        serving = pki.make_serving_cert(ca_key, ca_cert, "rerank-local-registry", ("localhost",), (HOST,), days=2)
        self.ca_file.write_bytes(ca.cert)
        (self.workdir / "tls.crt").write_bytes(serving.cert)
        (self.workdir / "tls.key").write_bytes(serving.key)
        (self.workdir / "tls.key").chmod(0o600)
        (self.workdir / "htpasswd").write_text(htpasswd_line(self.username, self.password))
        self.cert_dir.mkdir(parents=True, exist_ok=True)
        (self.cert_dir / "ca.crt").write_bytes(ca.cert)
        config_file = self.workdir / "config.yaml"
        config_file.write_text(yaml.safe_dump(config(self.port, self.workdir)))
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([str(binary), "serve", str(config_file)], stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the registry did not start on {self.address}: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        return self

    def answers(self) -> bool:
        """The API root answers over TLS with our CA and asks for credentials (401) — i.e. it is up."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            urllib.request.urlopen(f"https://{self.address}/v2/", context=context, timeout=2)
        except urllib.error.HTTPError as error:
            return error.code == 401
        except OSError:
            return False
        return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
