"""The data plane's door: requests counted by endpoint and status, timed, named and logged.

A plain ASGI middleware (cheaper per request than Starlette's
``BaseHTTPMiddleware``) that sees every data-plane request, including those
refused with 422 before they reach the stack of layers. It gives each request
its id (the ``X-Request-Id`` the client sent, else one of its own), echoes it on
the response, makes it available to the endpoint (:data:`REQUEST_ID`), and
writes the request's log line (:mod:`.logs`). ``/health``, ``/metrics``,
``/admin`` and ``/docs`` pass untouched.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from scalelab.service.logs import REQUEST_LOGGER, json_writer, request_line
from scalelab.service.metrics import ServiceMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("scalelab_request_id", default="")
"""The id of the data-plane request being served."""

MAX_ID_BYTES = 128
"""A longer ``X-Request-Id`` is cut to this length."""

_REQUEST_ID_HEADER = b"x-request-id"


class HttpMetrics:
    """ASGI middleware counting data-plane requests (``paths`` exactly, or under ``prefixes``).

    ``log_requests`` says, per request, whether to write its log line.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServiceMetrics,
        paths: frozenset[str],
        prefixes: tuple[str, ...],
        log_requests: Callable[[], bool] = lambda: True,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.paths = paths
        self.prefixes = prefixes
        self.log_requests = log_requests
        self.write_line = json_writer(REQUEST_LOGGER)
        self._ids = itertools.count(1)
        self._id_prefix = f"s{os.getpid():x}-"

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
        given = b""
        for name, value in scope.get("headers") or ():
            if name == _REQUEST_ID_HEADER:
                given = value[:MAX_ID_BYTES]
                break
        request_id = given.decode("latin-1") if given else f"{self._id_prefix}{next(self._ids):x}"
        echoed = given or request_id.encode()
        answer_headers: list[tuple[bytes, bytes]] = []

        async def send_status(message: Message) -> None:
            nonlocal status, answer_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                answer_headers = [*message.get("headers", ()), (_REQUEST_ID_HEADER, echoed)]
                message["headers"] = answer_headers
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_status)
        finally:
            REQUEST_ID.reset(token)
            seconds = time.perf_counter() - started
            self.metrics.observe_request(endpoint, status, seconds)
            if self.log_requests():
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in answer_headers}
                self.write_line(
                    request_line(
                        request_id, endpoint, scope.get("method", ""), status, seconds, headers
                    )
                )
