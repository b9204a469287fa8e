"""Start the fault proxy as a child process and talk to its (Toxiproxy-compatible) API."""

from __future__ import annotations

import sys
import time
from typing import Any

import httpx

from scalelab.errors import RunError
from scalelab.ports import free_port
from scalelab.procs import Child


class ProxyProcess:
    """A running fault proxy: its API's URL, and the links it proxies."""

    def __init__(self, child: Child, url: str) -> None:
        self.child = child
        self.url = url

    @classmethod
    def start(cls, timeout_s: float = 20.0) -> ProxyProcess:
        """Start ``python -m scalelab.chaos.proxy`` on a free port; return once it answers."""
        port = free_port()
        child = Child(
            [sys.executable, "-m", "scalelab.chaos.proxy", "--port", str(port)],
            name="fault-proxy",
        )
        proxy = cls(child, f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{proxy.url}/version", timeout=1.0).status_code == 200:
                    return proxy
            except httpx.HTTPError:
                pass
            if not child.alive() or time.monotonic() > deadline:
                child.stop(2.0)
                raise RunError(f"the fault proxy did not start on port {port}")
            time.sleep(0.05)

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """One API call; raises :class:`RuntimeError` with the proxy's error on failure."""
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.request(method, f"{self.url}{path}", json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"fault proxy: {response.text}")
        return response.json() if response.content else None

    async def add_link(self, name: str, upstream: str) -> str:
        """Proxy ``upstream`` (host:port) as ``name``; return the address to connect to."""
        made = await self.call("POST", "/proxies", {"name": name, "upstream": upstream})
        return str(made["listen"])

    def alive(self) -> bool:
        """True while the proxy process runs."""
        return self.child.alive()

    def stop(self) -> None:
        """End the proxy (its links close with it)."""
        self.child.stop(3.0)
