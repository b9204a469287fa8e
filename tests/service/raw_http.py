"""Small HTTP clients for the service tests: httpx for requests, raw sockets for floods."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class RawResponse:
    """Status and headers of one response read off a raw socket."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    elapsed_s: float = 0.0
    started: float = 0.0
    """When the request was sent (``time.perf_counter``)."""

    @property
    def ended(self) -> float:
        """When its answer had arrived (``time.perf_counter``)."""
        return self.started + self.elapsed_s


async def raw_get(host: str, port: int, target: str, timeout_s: float = 30.0) -> RawResponse:
    """One ``GET`` on its own connection (``Connection: close``); 0 status when none came."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return RawResponse(0)
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout_s)
    except (OSError, TimeoutError):
        return RawResponse(0)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/"):
        return RawResponse(0)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(
        int(lines[0].split()[1]), headers, body, time.perf_counter() - started, started
    )


async def raw_many(host: str, port: int, targets: list[str], concurrency: int) -> list[RawResponse]:
    """Send ``targets`` with at most ``concurrency`` connections open at once."""
    gate = asyncio.Semaphore(concurrency)

    async def one(target: str) -> RawResponse:
        async with gate:
            return await raw_get(host, port, target)

    return list(await asyncio.gather(*(one(t) for t in targets)))
