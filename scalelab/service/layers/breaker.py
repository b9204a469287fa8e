"""``breaker``: a circuit breaker in front of the rest of the stack; fails fast while open.

Before each call the breaker (:class:`~scalelab.service.resilience.CircuitBreaker`,
chosen by ``breaker.policy``) says whether it may go. While it is open a
request is answered at once with 503, ``Retry-After`` and ``X-Circuit: open``,
without reaching the backend: a backend that is down gets no load and the
clients get a quick answer. An answer whose status is in
``breaker.failure_statuses`` counts as a failure, any other answer as a
success; a call cancelled (by a timeout or a hedge) gives no verdict. The
state is the gauge ``state`` (0 closed, 1 half-open, 2 open); changes of
state are counted (``opened``, ``half_opened``, ``closed``), and so are the
requests failed fast (``rejected``).
"""

from __future__ import annotations

import time
from typing import Any

from scalelab.failure_config import BreakerConfig
from scalelab.service.layer import Layer, LayerContext
from scalelab.service.layers.retry import OPEN_HEADER
from scalelab.service.request import Next, Request, Response, error
from scalelab.service.resilience.breakers import STATES, check_breaker, make_breaker

_TRANSITION = {"open": "opened", "half_open": "half_opened", "closed": "closed"}


class Breaker(Layer):
    """Lets calls through while its breaker allows them; 503 at once while it is open."""

    Params = BreakerConfig

    def __init__(self, params: Any, context: LayerContext) -> None:
        super().__init__(params, context)
        self.breaker = make_breaker(params)
        self.failures = frozenset(params.failure_statuses)
        self._headers = {"Retry-After": str(params.retry_after_s), OPEN_HEADER: "open"}
        self._state = self.breaker.state
        self.gauge("state", STATES.get(self._state, -1))

    @classmethod
    def check(cls, params: Any, field: str) -> None:
        """A ``module:Class`` breaker must load and fit."""
        check_breaker(params)

    def _observe(self) -> None:
        state = self.breaker.state
        if state != self._state:
            self._state = state
            self.count(_TRANSITION.get(state, state))
            self.gauge("state", STATES.get(state, -1))

    async def __call__(self, request: Request, next: Next) -> Response:
        """Ask the breaker; call ``next`` and tell it how the call ended, or fail fast."""
        breaker = self.breaker
        allowed = breaker.allow(time.monotonic())
        self._observe()
        if not allowed:
            self.count("rejected")
            return error(
                503, "circuit breaker open: the backend is failing; retry later", self._headers
            )
        verdict: bool | None = None
        try:
            response = await next(request)
            verdict = response.status not in self.failures
            return response
        except Exception:
            verdict = False
            raise
        finally:
            breaker.record(verdict, time.monotonic())
            self._observe()
