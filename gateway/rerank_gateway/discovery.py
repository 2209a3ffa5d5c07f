"""Where the Ready engines are: a headless Service's DNS name re-resolved, or a fixed list health-checked.

The operator gives the engines a headless Service that does not publish unready addresses, so its
DNS answer is exactly the Ready engine pods -- no Kubernetes API access (and no RBAC) needed. A
fixed list (development, tests) counts an engine Ready while its `/health` answers 200.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import aiohttp

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


async def healthy(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url + "/health", timeout=aiohttp.ClientTimeout(total=2)) as r:
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def watch_health(pool: EnginePool, urls: list[str], interval: float) -> None:
    """Keep ``pool`` at those of ``urls`` whose /health answers 200, every ``interval`` seconds."""
    async with aiohttp.ClientSession() as session:
        last: list[str] | None = None
        while True:
            states = await asyncio.gather(*(healthy(session, u) for u in urls))
            ready = [u for u, ok in zip(urls, states) if ok]
            if ready != last:
                log.info("ready engines: %s", ", ".join(ready) or "none")
                last = ready
            pool.set_ready(ready)
            await asyncio.sleep(interval)


async def watch_ejected(pool: EnginePool, interval: float) -> None:
    """Put an engine ejected after a failure back into rotation once its /health answers 200, until cancelled."""
    async with aiohttp.ClientSession() as session:
        while True:
            for url in sorted(pool.ejected):
                if await healthy(session, url):
                    log.info("engine %s answers its health check again: back in rotation", url)
                    pool.readmit(url)
            await asyncio.sleep(interval)
