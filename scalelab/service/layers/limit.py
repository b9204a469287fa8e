"""``limit``: an adaptive concurrency limit (Netflix's concurrency-limits); over it, shed with 503.

The limit is not set by hand, as ``admission.max_in_flight`` is: its
:class:`~scalelab.service.resilience.ConcurrencyLimit` (``limit.algorithm``:
``aimd``, ``gradient`` or ``module:Class``) moves it after every request from
the request's round-trip time and whether it was dropped (an answer in
``limit.failure_statuses``, a timeout, an exception). A request arriving while
the requests in flight reach the limit is shed at once with 503 and
``Retry-After``. Gauges: ``limit`` and ``in_flight``; counted: ``shed``.
"""

from __future__ import annotations

import time
from typing import Any

from scalelab.failure_config import LimitConfig
from scalelab.service.layer import Layer, LayerContext
from scalelab.service.request import Next, Request, Response, error
from scalelab.service.resilience.limits import ConcurrencyLimit, check_limit, make_limit


class Limit(Layer):
    """Admits requests while fewer than the adaptive limit are in flight."""

    Params = LimitConfig

    def __init__(self, params: Any, context: LayerContext) -> None:
        super().__init__(params, context)
        self.algorithm: ConcurrencyLimit = make_limit(params)
        self.in_flight = 0
        self.drops = frozenset(params.failure_statuses)
        self._headers = {"Retry-After": str(params.retry_after_s)}
        self.gauge("limit", self.algorithm.limit)

    @classmethod
    def check(cls, params: Any, field: str) -> None:
        """A ``module:Class`` algorithm must load and fit."""
        check_limit(params)

    async def __call__(self, request: Request, next: Next) -> Response:
        """Shed over the limit; else pass on, then feed the round trip to the algorithm."""
        limit = self.algorithm.limit
        if self.in_flight >= limit:
            self.count("shed")
            return error(
                503,
                f"over the adaptive concurrency limit ({limit:.0f}); retry later",
                self._headers,
            )
        self.in_flight += 1
        in_flight = self.in_flight
        self.gauge("in_flight", in_flight)
        started = time.monotonic()
        dropped = True
        try:
            response = await next(request)
            dropped = response.status in self.drops
            return response
        finally:
            self.in_flight -= 1
            self.algorithm.on_sample(time.monotonic() - started, in_flight, dropped)
            self.gauge("limit", self.algorithm.limit)
            self.gauge("in_flight", self.in_flight)
