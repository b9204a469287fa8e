"""``retry``: a failed request is tried again, after a backoff, while a retry budget allows.

An attempt whose status is in ``retry.retry_on`` (an exception from the rest of
the stack counts as the 500 or 503 it would be answered with) is retried while the
attempts are fewer than ``retry.max_attempts``, the policy allows it
(:class:`~scalelab.service.resilience.RetryPolicy`; by default backoff with
jitter and a Finagle-style budget) and the wait ends before the request's
deadline. An answer of an open circuit breaker (``X-Circuit: open``) is not
retried unless ``retry.retry_open``. The answer is the last attempt's; each
retry is counted (``retried``), as are the reasons for stopping
(``budget_exhausted``, ``gave_up``, ``deadline``, ``exhausted``: out of
attempts), and the budget's balance is a gauge (``budget``). Requests that
are not ``GET`` are not retried: a write may not be idempotent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from scalelab.failure_config import RetryConfig
from scalelab.service.layer import Layer, LayerContext
from scalelab.service.request import Next, Request, Response
from scalelab.service.resilience.retry_policy import (
    RetryPolicy,
    StandardRetryPolicy,
    check_retry,
    retry_policy_class,
)
from scalelab.service.stack import EXTRA_TRY, failure_response

OPEN_HEADER = "X-Circuit"
"""The header an open breaker's fail-fast answer carries."""


class Retry(Layer):
    """Retries failed ``GET`` requests as ``retry.*`` (or a user RetryPolicy) says."""

    Params = RetryConfig

    def __init__(self, params: Any, context: LayerContext) -> None:
        super().__init__(params, context)
        self.policy: RetryPolicy = retry_policy_class(params.policy)(params)
        self.retry_on = frozenset(params.retry_on)

    @classmethod
    def check(cls, params: Any, field: str) -> None:
        """The policy and backoff named must load and fit."""
        check_retry(params)

    def _budget_gauge(self) -> None:
        policy = self.policy
        if isinstance(policy, StandardRetryPolicy) and policy.budget is not None:
            self.gauge("budget", policy.budget.balance())

    async def __call__(self, request: Request, next: Next) -> Response:
        """Try, and try again while the answer is retryable and the policy agrees."""
        if request.method != "GET":
            return await next(request)
        policy = self.policy
        policy.on_request()
        attempt = 1
        current = request.replace(attempt=request.attempt)
        while True:
            try:
                response = await next(current)
            except Exception as exc:  # the work failed: an answer like any other failure
                response = failure_response(exc)
            policy.on_result(attempt, response.ok)
            if response.ok or response.status not in self.retry_on:
                break
            if response.headers.get(OPEN_HEADER) == "open" and not self.params.retry_open:
                self.count("not_retried_open")
                break
            if attempt >= self.params.max_attempts:
                self.count("exhausted")
                break
            delay = policy.retry_after(attempt, response.status)
            if delay is None:
                refused = getattr(policy, "refused", False)
                self.count("budget_exhausted" if refused else "gave_up")
                break
            left = current.time_left()
            if left is not None and delay >= left:
                self.count("deadline")
                break
            if delay > 0:
                await asyncio.sleep(delay)
            attempt += 1
            self.count("retried")
            current = current.replace(attempt=current.attempt + 1)
            current.trail.append(EXTRA_TRY)
        self._budget_gauge()
        if attempt > 1:
            response.headers["X-Retries"] = str(attempt - 1)
        return response
