"""``timeout``: a request that takes too long is answered 504, and the work behind it cancelled.

``attempt_ms`` bounds each call of the rest of the stack; ``deadline_ms``
bounds the request from its arrival (``Request.received``), and is written into
``Request.deadline`` so that layers further in (a retry's backoff, a hedge) see
it. Placed inside ``retry``, every attempt gets ``attempt_ms`` and all of them
share the one deadline. The rest of the stack is cancelled when time is up:
the request stops waiting at once and its Dask task is cancelled: a task still
queued never runs, but one already running finishes on its worker (its result
dropped): a timeout frees the client, not a busy worker.
The answer says which limit was hit:
``X-Timeout: attempt`` or ``deadline``.
"""

from __future__ import annotations

import asyncio
import time

from scalelab.failure_config import TimeoutConfig
from scalelab.service.layer import Layer
from scalelab.service.request import Next, Request, Response, error

TIMEOUT_STATUS = 504


class Timeout(Layer):
    """Bounds each call of ``next`` by ``attempt_ms`` and the request by ``deadline_ms``."""

    Params = TimeoutConfig

    async def __call__(self, request: Request, next: Next) -> Response:
        """Call ``next`` within the time left; 504 with ``X-Timeout`` when it runs out."""
        params = self.params
        if params.deadline_ms > 0:
            deadline = request.received + params.deadline_ms / 1000.0
            if request.deadline is None or deadline < request.deadline:
                request.deadline = deadline
        limit = params.attempt_ms / 1000.0 if params.attempt_ms > 0 else None
        which = "attempt"
        left = request.time_left()
        if left is not None and (limit is None or left <= limit):
            limit, which = left, "deadline"
        if limit is None:
            return await next(request)
        if limit <= 0:
            self.count("deadline")
            return self._late(which, 0.0)
        started = time.monotonic()
        try:
            return await asyncio.wait_for(next(request), limit)
        except TimeoutError:
            self.count(which)
            return self._late(which, time.monotonic() - started)

    @staticmethod
    def _late(which: str, waited_s: float) -> Response:
        what = "timeout.attempt_ms" if which == "attempt" else "timeout.deadline_ms"
        return error(
            TIMEOUT_STATUS,
            f"timed out after {waited_s * 1000:.0f} ms ({what})",
            {"X-Timeout": which},
        )
