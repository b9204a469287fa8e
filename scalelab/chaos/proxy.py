"""The fault proxy: TCP links with Toxiproxy's toxics, and Toxiproxy's HTTP API to control them.

Run as ``python -m scalelab.chaos.proxy --port 8474``; it listens for its API
on loopback and proxies each link from ``listen`` to ``upstream``. The API is
a subset of Toxiproxy's, so its clients work against it:

- ``GET /version``; ``GET /proxies``; ``POST /proxies`` ``{name, listen, upstream, enabled}``;
- ``GET``/``POST``/``DELETE /proxies/{name}`` (``POST {"enabled": false}`` cuts the link:
  open connections are closed and new ones refused, Toxiproxy's "down");
- ``GET``/``POST /proxies/{name}/toxics``; ``GET``/``DELETE /proxies/{name}/toxics/{toxic}``;
- ``POST /reset``: every link enabled, every toxic removed.

Toxics (:mod:`.toxics`) apply to open connections at once and to new ones.
The process ends when its parent does (it checks twice a second), so a proxy
never outlives the service that started it, however the service ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import struct
import sys
from typing import Any

from scalelab.chaos.toxics import Toxic, ToxicError

CHUNK = 65_536


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class Link:
    """One proxied connection: client and upstream streams, two pumps, its toxics' timers."""

    def __init__(self, proxy: Proxy, client: tuple[Any, Any], upstream: tuple[Any, Any]) -> None:
        self.proxy = proxy
        self.client_reader, self.client_writer = client
        self.up_reader, self.up_writer = upstream
        self.hit: dict[str, bool] = {}
        self.passed = {"upstream": 0, "downstream": 0}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.closed = False
        self.tasks: list[asyncio.Task[None]] = []

    def applies(self, toxic: Toxic) -> bool:
        """Whether ``toxic`` hits this connection (drawn once, at ``toxicity``)."""
        key = f"{toxic.name}/{id(toxic)}"
        if key not in self.hit:
            self.hit[key] = random.random() < toxic.toxicity
        return self.hit[key]

    def start(self) -> None:
        for toxic in self.proxy.toxics.values():
            self.toxic_added(toxic)
        self.tasks = [
            asyncio.ensure_future(self._pump(self.client_reader, self.up_writer, "upstream")),
            asyncio.ensure_future(self._pump(self.up_reader, self.client_writer, "downstream")),
        ]

    def toxic_added(self, toxic: Toxic) -> None:
        """Start the timers of a ``timeout`` or ``reset_peer`` toxic on this connection."""
        if toxic.type not in ("timeout", "reset_peer") or not self.applies(toxic):
            return
        delay = toxic.attributes.get("timeout", 0.0) / 1000.0
        if toxic.type == "timeout" and delay <= 0:
            return  # data is dropped until the toxic goes; the connection stays
        loop = asyncio.get_running_loop()
        reset = toxic.type == "reset_peer"
        self.timers[toxic.name] = loop.call_later(delay, self.close, reset)

    def toxic_removed(self, name: str) -> None:
        timer = self.timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def _active(self, stream: str) -> list[Toxic]:
        return [t for t in self.proxy.toxics.values() if t.stream == stream and self.applies(t)]

    async def _pump(self, reader: Any, writer: Any, stream: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self.closed:
                data = await reader.read(CHUNK)
                arrived = loop.time()
                if not data:
                    for toxic in self._active(stream):
                        if toxic.type == "slow_close":
                            await asyncio.sleep(toxic.attributes["delay"] / 1000.0)
                    break
                await self._forward(data, arrived, writer, stream)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.close()

    async def _forward(self, data: bytes, arrived: float, writer: Any, stream: str) -> None:
        loop = asyncio.get_running_loop()
        pieces = [data]
        gap = 0.0
        for toxic in self._active(stream):
            a = toxic.attributes
            if toxic.type == "timeout":
                return  # dropped on the floor, as Toxiproxy's timeout does
            if toxic.type == "latency":
                wait = (a["latency"] + random.uniform(-a["jitter"], a["jitter"])) / 1000.0
                await asyncio.sleep(max(0.0, arrived + wait - loop.time()))
            elif toxic.type == "bandwidth" and a["rate"] > 0:
                await asyncio.sleep(len(data) / (a["rate"] * 1000.0))
            elif toxic.type == "limit_data":
                room = int(a["bytes"]) - self.passed[stream]
                if room <= len(data):
                    if room > 0:
                        writer.write(data[:room])
                        self.passed[stream] += room
                        with contextlib.suppress(ConnectionError, OSError):
                            await writer.drain()
                    self.close()
                    return
            elif toxic.type == "slicer" and a["average_size"] > 0:
                pieces = _slices(data, int(a["average_size"]), int(a["size_variation"]))
                gap = a["delay"] / 1e6
        for i, piece in enumerate(pieces):
            if i and gap:
                await asyncio.sleep(gap)
            writer.write(piece)
            await writer.drain()
        self.passed[stream] += len(data)

    def close(self, reset: bool = False) -> None:
        """Close both sides (with a TCP reset when ``reset``); idempotent."""
        if self.closed:
            return
        self.closed = True
        for timer in self.timers.values():
            timer.cancel()
        for writer in (self.client_writer, self.up_writer):
            if reset:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
            with contextlib.suppress(Exception):
                writer.close()
        self.proxy.links.discard(self)
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()


def _slices(data: bytes, size: int, variation: int) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = max(1, size + random.randint(-variation, variation))
        out.append(data[i : i + n])
        i += n
    return out


class Proxy:
    """One link: listens on ``listen``, connects each client to ``upstream``."""

    def __init__(self, name: str, listen: str, upstream: str) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: dict[str, Toxic] = {}
        self.links: set[Link] = set()
        self.server: asyncio.Server | None = None

    async def enable(self) -> None:
        if self.enabled:
            return
        host, port = _split(self.listen)
        self.server = await asyncio.start_server(
            self._accept, host, port, reuse_address=True, limit=CHUNK
        )
        bound = self.server.sockets[0].getsockname()
        self.listen = f"{host}:{bound[1]}"
        self.enabled = True

    async def disable(self) -> None:
        self.enabled = False
        if self.server is not None:
            self.server.close()
            self.server = None
        for link in list(self.links):
            link.close()

    async def _accept(self, reader: Any, writer: Any) -> None:
        if not self.enabled:
            writer.close()
            return
        host, port = _split(self.upstream)
        try:
            upstream = await asyncio.wait_for(asyncio.open_connection(host, port), 5.0)
        except (OSError, TimeoutError):
            writer.close()
            return
        for w in (writer, upstream[1]):
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = Link(self, (reader, writer), upstream)
        self.links.add(link)
        link.start()

    def add_toxic(self, toxic: Toxic) -> None:
        if toxic.name in self.toxics:
            raise ToxicError(f"toxic {toxic.name!r} already exists on {self.name}")
        self.toxics[toxic.name] = toxic
        for link in list(self.links):
            link.toxic_added(toxic)

    def remove_toxic(self, name: str) -> bool:
        found = self.toxics.pop(name, None) is not None
        for link in list(self.links):
            link.toxic_removed(name)
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.to_json() for t in self.toxics.values()],
            "connections": len(self.links),
        }


def make_app(proxies: dict[str, Proxy]) -> Any:
    """Toxiproxy's HTTP API over ``proxies`` (a Starlette app)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def missing(name: str) -> JSONResponse:
        return JSONResponse({"error": f"proxy not found: {name}", "status": 404}, 404)

    def bad(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message, "status": status}, status)

    async def version(request: Request) -> Response:
        return JSONResponse({"version": "scalelab-proxy-1"})

    async def list_or_create(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({n: p.to_json() for n, p in proxies.items()})
        body = await request.json()
        name = str(body.get("name") or "")
        if not name or not body.get("upstream"):
            return bad("a proxy needs a name and an upstream (host:port)")
        if name in proxies:
            return bad(f"proxy already exists: {name}", 409)
        proxy = Proxy(name, str(body.get("listen") or "127.0.0.1:0"), str(body["upstream"]))
        if body.get("enabled", True):
            try:
                await proxy.enable()
            except OSError as exc:
                return bad(f"cannot listen on {proxy.listen}: {exc}")
        proxies[name] = proxy
        return JSONResponse(proxy.to_json(), 201)

    async def one(request: Request) -> Response:
        name = request.path_params["name"]
        proxy = proxies.get(name)
        if proxy is None:
            return missing(name)
        if request.method == "DELETE":
            await proxy.disable()
            del proxies[name]
            return Response(status_code=204)
        if request.method == "POST":
            body = await request.json()
            if "enabled" in body:
                if body["enabled"]:
                    await proxy.enable()
                else:
                    await proxy.disable()
        return JSONResponse(proxy.to_json())

    async def toxics(request: Request) -> Response:
        name = request.path_params["name"]
        proxy = proxies.get(name)
        if proxy is None:
            return missing(name)
        if request.method == "GET":
            return JSONResponse([t.to_json() for t in proxy.toxics.values()])
        try:
            toxic = Toxic.from_json(await request.json())
            proxy.add_toxic(toxic)
        except ToxicError as exc:
            return bad(str(exc), 409 if "already exists" in str(exc) else 400)
        return JSONResponse(toxic.to_json())

    async def toxic(request: Request) -> Response:
        proxy = proxies.get(request.path_params["name"])
        if proxy is None:
            return missing(request.path_params["name"])
        which = request.path_params["toxic"]
        if request.method == "DELETE":
            if not proxy.remove_toxic(which):
                return bad(f"toxic not found: {which}", 404)
            return Response(status_code=204)
        found = proxy.toxics.get(which)
        if found is None:
            return bad(f"toxic not found: {which}", 404)
        return JSONResponse(found.to_json())

    async def reset(request: Request) -> Response:
        for proxy in proxies.values():
            for name in list(proxy.toxics):
                proxy.remove_toxic(name)
            await proxy.enable()
        return Response(status_code=204)

    return Starlette(
        routes=[
            Route("/version", version),
            Route("/reset", reset, methods=["POST"]),
            Route("/proxies", list_or_create, methods=["GET", "POST"]),
            Route("/proxies/{name}", one, methods=["GET", "POST", "DELETE"]),
            Route("/proxies/{name}/toxics", toxics, methods=["GET", "POST"]),
            Route("/proxies/{name}/toxics/{toxic}", toxic, methods=["GET", "DELETE"]),
        ]
    )


async def _watch_parent(server: Any, parent: int) -> None:
    """Stop when the process that started us has gone (we were re-parented)."""
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    server.should_exit = True


async def serve(host: str, port: int) -> None:
    """Serve the API until SIGTERM, SIGINT or the parent's death; then close every link."""
    import uvicorn

    proxies: dict[str, Proxy] = {}
    config = uvicorn.Config(make_app(proxies), host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    watcher = asyncio.ensure_future(_watch_parent(server, os.getppid()))
    try:
        await server.serve()
    finally:
        watcher.cancel()
        for proxy in proxies.values():
            await proxy.disable()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="scalelab's fault proxy (Toxiproxy's API)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8474)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
