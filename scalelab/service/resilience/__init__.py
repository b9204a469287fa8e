"""The policies of the failure-handling layers: the parts a student replaces.

Each is a small base class, plugged in by ``module:Class`` as the cache's
:class:`~scalelab.service.cache_policies.EvictionPolicy` is, and constructed
with its layer's parameters:

- :class:`RetryPolicy` (``retry.policy``): whether and when to retry;
  :class:`Backoff` (``retry.backoff``) only how long to wait;
- :class:`CircuitBreaker` (``breaker.policy``): closed, open, half-open;
- :class:`HedgeDelay` (``hedge.policy``): how long to wait before a hedge;
- :class:`ConcurrencyLimit` (``limit.algorithm``): the adaptive limit.

The layers themselves are in :mod:`scalelab.service.layers`.
"""

from __future__ import annotations

from scalelab.service.resilience.backoff import (
    Backoff,
    ConstantBackoff,
    ExponentialBackoff,
    NoBackoff,
)
from scalelab.service.resilience.breakers import CircuitBreaker, CountingBreaker
from scalelab.service.resilience.budget import RetryBudget
from scalelab.service.resilience.hedging import FixedDelay, HedgeDelay, PercentileDelay
from scalelab.service.resilience.limits import AIMDLimit, ConcurrencyLimit, GradientLimit
from scalelab.service.resilience.retry_policy import RetryPolicy, StandardRetryPolicy

# The public home of the extension points, as messages and docs name them.
for _cls in (Backoff, CircuitBreaker, HedgeDelay, ConcurrencyLimit, RetryPolicy):
    _cls.__module__ = __name__

__all__ = [
    "AIMDLimit",
    "Backoff",
    "CircuitBreaker",
    "ConcurrencyLimit",
    "ConstantBackoff",
    "CountingBreaker",
    "ExponentialBackoff",
    "FixedDelay",
    "GradientLimit",
    "HedgeDelay",
    "NoBackoff",
    "PercentileDelay",
    "RetryBudget",
    "RetryPolicy",
    "StandardRetryPolicy",
]
