"""When to retry a failed request, and after how long: the retry layer's policy.

A :class:`RetryPolicy` is asked after every failed attempt whether to try
again and how long to wait first (``retry_after``), and told of every request
that enters the layer (``on_request``) and of every attempt's outcome
(``on_result``). The layer always stops at ``retry.max_attempts`` and at the
request's deadline, whatever the policy says.

:class:`StandardRetryPolicy` combines a :class:`~.backoff.Backoff` (``retry.backoff``)
with a :class:`~.budget.RetryBudget` (``retry.budget_*``). A student's policy
is a plain class named ``retry.policy = "module:Class"``::

    class HalfTheTime(RetryPolicy):
        \"\"\"Retries every other failure at once; a poor policy, but a policy.\"\"\"

        def __init__(self, params):
            super().__init__(params)
            self.failures = 0

        def retry_after(self, attempt, status):
            self.failures += 1
            return 0.0 if self.failures % 2 else None

It is constructed once per layer with the layer's parameters (``self.params``,
a :class:`~scalelab.failure_config.RetryConfig`) and called from the service's
event loop: it must not block.
"""

from __future__ import annotations

import random
from typing import Any

from scalelab.errors import PluginError
from scalelab.service.plugins import load_plugin
from scalelab.service.resilience.backoff import BACKOFFS, Backoff
from scalelab.service.resilience.budget import RetryBudget


class RetryPolicy:
    """Decides whether a failed attempt is tried again; implement :meth:`retry_after`."""

    def __init__(self, params: Any) -> None:
        self.params = params

    def on_request(self) -> None:
        """A request entered the retry layer (before its first attempt)."""

    def retry_after(self, attempt: int, status: int) -> float | None:
        """Seconds to wait before another try after ``attempt`` tries, the last answered
        ``status``; ``None`` gives up and returns that answer."""
        raise NotImplementedError

    def on_result(self, attempt: int, ok: bool) -> None:
        """The outcome of try number ``attempt`` (every try, first or not)."""


class StandardRetryPolicy(RetryPolicy):
    """Backoff (``retry.backoff``) and, with ``retry.budget``, a Finagle-style retry budget."""

    def __init__(self, params: Any, rng: random.Random | None = None) -> None:
        super().__init__(params)
        self.backoff: Backoff = backoff_class(params.backoff)(params, rng)
        self.budget = (
            RetryBudget(params.budget_ratio, params.budget_min_per_s, params.budget_ttl_s)
            if params.budget
            else None
        )
        self.refused = False
        """Whether the budget refused the last retry asked for."""

    def on_request(self) -> None:
        """Deposit the request's share of retries."""
        if self.budget is not None:
            self.budget.deposit()

    def retry_after(self, attempt: int, status: int) -> float | None:
        """The backoff of ``attempt`` when the budget allows a retry, else None."""
        self.refused = self.budget is not None and not self.budget.try_withdraw()
        return None if self.refused else self.backoff.delay(attempt)


def backoff_class(name: str) -> type[Backoff]:
    """A built-in backoff by name, or a user :class:`Backoff` as ``module:Class``."""
    if name in BACKOFFS:
        return BACKOFFS[name]
    return load_plugin(name, Backoff, "retry.backoff")


def retry_policy_class(path: str) -> type[RetryPolicy]:
    """The class ``retry.policy`` names (the standard policy when empty)."""
    if not path:
        return StandardRetryPolicy
    return load_plugin(path, RetryPolicy, "retry.policy")


def check_retry(params: Any) -> None:
    """Load the classes ``retry.backoff`` and ``retry.policy`` name (PluginError if unfit)."""
    retry_policy_class(params.policy)
    if not params.policy:
        backoff_class(params.backoff)
    if params.max_attempts > 1 and not params.retry_on:
        raise PluginError("retry.retry_on is empty: name the statuses to retry", "retry.retry_on")
