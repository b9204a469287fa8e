"""What passes through the stack of layers: a typed :class:`Request` and its :class:`Response`.

An endpoint parses its input into a request; the layers may read or change it
and call the rest of the stack (``next``) zero, one or several times; the
terminal layer (the executor) runs the request's work and answers. The
endpoint then renders the response as HTTP. Nothing here knows about HTTP
frameworks or Dask.

A request's work is one of:

- ``work``: a workload call ``(fn, args)`` run on a Dask worker by the executor;
- ``local``: a coroutine function run in the service itself (a local sleep, a
  write to the key store);
- neither: answered by the executor at once (``/ping``, the service's floor).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Work = tuple[Callable[..., Any], tuple[Any, ...]]
"""A workload function with its positional arguments."""


@dataclass(slots=True)
class Request:
    """One data-plane request as the layers see it.

    ``endpoint`` is the route's path pattern (``/task/cpu``, ``/task/key``);
    ``key`` the key of a keyed request; ``cost`` what its work costs (endpoint
    specific: CPU units, I/O ms); ``deadline`` a :func:`time.monotonic` time by
    which an answer is useless (None: no deadline); ``attempt`` counts tries of
    the same request (a retry layer raises it); ``headers`` are added to the
    response. ``params`` holds the endpoint's parsed input.
    """

    endpoint: str
    method: str = "GET"
    key: str | None = None
    cost: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    work: Work | None = None
    local: Callable[[], Awaitable[Any]] | None = None
    deadline: float | None = None
    attempt: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    request_id: str = ""
    workers: tuple[str, ...] = ()
    """Dask workers the work must run on (a partition's holder); empty: the scheduler chooses."""
    received: float = field(default_factory=time.monotonic)
    trail: list[str] = field(default_factory=list)
    """Names of the layers the request entered, in order (shared by its copies)."""

    def replace(self, **changes: Any) -> Request:
        """A copy with ``changes`` (headers copied, so the copy's additions stay its own)."""
        changes.setdefault("headers", dict(self.headers))
        changes.setdefault("trail", self.trail)
        return dataclasses.replace(self, **changes)

    def time_left(self, now: float | None = None) -> float | None:
        """Seconds until the deadline (negative once past it), or None without one."""
        if self.deadline is None:
            return None
        return self.deadline - (time.monotonic() if now is None else now)


@dataclass(slots=True)
class Response:
    """A layer's answer: an HTTP status, headers, and either a ``value`` or a ``body``.

    ``value`` is what the work returned (the endpoint renders it); ``body`` a
    ready JSON-able body (errors, or layers that answer themselves).
    """

    status: int = 200
    value: Any = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


def error(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    """A response with ``{"detail": detail}`` as its body."""
    return Response(status, body={"detail": detail}, headers=dict(headers or {}))


Next = Callable[[Request], Awaitable[Response]]
"""The rest of the stack, as a layer receives it."""


class NotReady(RuntimeError):
    """The service cannot serve yet (no cluster, or no executor): answered 503."""
