"""Counting the data plane at its door: requests by endpoint and status, and their latency.

A plain ASGI middleware (cheaper per request than Starlette's
``BaseHTTPMiddleware``) that sees every data-plane request, including those
refused with 422 before they reach the stack of layers. It also carries the
request id: an ``X-Request-Id`` the client sent (or none) is echoed on the
response and made available to the endpoint (:data:`REQUEST_ID`).
``/health``, ``/metrics``, ``/admin`` and ``/docs`` pass untouched.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from scalelab.service.metrics import ServiceMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("scalelab_request_id", default="")
"""The ``X-Request-Id`` of the data-plane request being served (empty when none was sent)."""

_REQUEST_ID_HEADER = b"x-request-id"


class HttpMetrics:
    """ASGI middleware counting data-plane requests (``paths`` exactly, or under ``prefixes``)."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServiceMetrics,
        paths: frozenset[str],
        prefixes: tuple[str, ...],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.paths = paths
        self.prefixes = prefixes

    def _endpoint(self, path: str) -> str | None:
        if path in self.paths:
            return path
        for prefix in self.prefixes:
            if path.startswith(prefix):
                return prefix[:-1]
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI event, counting it when it is a data-plane request."""
        endpoint = self._endpoint(scope.get("path", "")) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = b""
        for name, value in scope.get("headers") or ():
            if name == _REQUEST_ID_HEADER:
                request_id = value[:128]
                break

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if request_id:
                    message["headers"] = [
                        *message.get("headers", ()),
                        (b"x-request-id", request_id),
                    ]
            await send(message)

        token = REQUEST_ID.set(request_id.decode("latin-1")) if request_id else None
        try:
            await self.app(scope, receive, send_status)
        finally:
            if token is not None:
                REQUEST_ID.reset(token)
            self.metrics.observe_request(endpoint, status, time.perf_counter() - started)
