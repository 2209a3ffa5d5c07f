"""Where the Ready engines are: a fixed list, or a headless Service's DNS name re-resolved.

The operator gives the engines a headless Service that does not publish unready addresses, so its
DNS answer is exactly the Ready engine pods -- no Kubernetes API access (and no RBAC) needed.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from .routing import EnginePool

log = logging.getLogger(__name__)


async def resolve(host: str, port: int) -> list[str]:
    """``http://<ip>:<port>`` for every address ``host`` resolves to (none: empty list)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    urls = []
    for family, _, _, _, address in infos:
        ip = address[0]
        urls.append(f"http://[{ip}]:{port}" if family == socket.AF_INET6 else f"http://{ip}:{port}")
    return sorted(set(urls))


async def watch_dns(pool: EnginePool, host: str, port: int, interval: float) -> None:
    """Keep ``pool`` at what ``host`` resolves to, every ``interval`` seconds, until cancelled."""
    last: list[str] | None = None
    while True:
        urls = await resolve(host, port)
        if urls != last:
            log.info("ready engines behind %s: %s", host, ", ".join(urls) or "none")
            last = urls
        pool.set_ready(urls)
        await asyncio.sleep(interval)
