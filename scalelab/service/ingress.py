"""The front of the request path: metrics, admission, and the "ingress" fault point.

A plain ASGI middleware (cheaper per request than Starlette's
``BaseHTTPMiddleware``) that sees only the data plane (:data:`DATA_PLANE`).
Requests over ``admission.max_in_flight`` are answered 503 with
``Retry-After`` at once, without reading their body or touching Dask, so an
overloaded service keeps answering and its memory stays bounded. ``/health``,
``/metrics``, ``/admin`` and ``/docs`` bypass it all: they are never shed,
stalled or counted.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from scalelab.service.state import ServiceState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DATA_PLANE: frozenset[str] = frozenset({"/ping", "/task/cpu", "/task/io"})
"""Paths that pass admission and the ingress fault point, and are counted."""

DATA_PLANE_PREFIXES: tuple[str, ...] = ("/task/key/", "/kv/")
"""Keyed paths of the data plane; they are counted under the prefix (``/task/key``)."""

_JSON = (b"content-type", b"application/json")


async def _send_json(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Ingress:
    """ASGI middleware applying admission, faults and metrics to the data plane."""

    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI event."""
        path = scope.get("path", "")
        if scope["type"] != "http" or path not in DATA_PLANE:
            if scope["type"] != "http" or not path.startswith(DATA_PLANE_PREFIXES):
                await self.app(scope, receive, send)
                return
            path = next(p[:-1] for p in DATA_PLANE_PREFIXES if path.startswith(p))
        state = self.state
        metrics = state.metrics
        started = time.perf_counter()
        admission = state.config.admission
        if state.in_flight >= admission.max_in_flight:
            metrics.rejected.inc()
            body = (
                b'{"detail":"over capacity: more than admission.max_in_flight='
                + str(admission.max_in_flight).encode()
                + b' requests in flight; retry later"}'
            )
            await _send_json(
                send, 503, body, [(b"retry-after", str(admission.retry_after_s).encode())]
            )
            metrics.observe_request(path, 503, time.perf_counter() - started)
            return
        state.in_flight += 1
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if await state.faults.at_ingress():
                metrics.faults.labels("error").inc()
                await _send_json(
                    send, 500, b'{"detail":"injected fault at ingress (faults.error_rate)"}', []
                )
                status = 500
            else:
                await self.app(scope, receive, send_status)
        finally:
            state.in_flight -= 1
            metrics.observe_request(path, status, time.perf_counter() - started)
