"""Adaptive concurrency limits, after Netflix's concurrency-limits: how many requests at once.

A fixed ``admission.max_in_flight`` must be chosen by hand and is wrong as soon
as the work or the cluster changes. A :class:`ConcurrencyLimit` finds the
limit from what it measures: each request's round-trip time and whether it
was dropped (an error, a timeout). ``limit`` is read before each request; a
request over it is shed with 503. Little's law ties the two: at the limit,
throughput is ``limit / latency``, so a limit just above the service's
capacity keeps latency low and sheds the rest.

A student's algorithm is a plain class named ``limit.algorithm = "module:Class"``::

    class Halving(ConcurrencyLimit):
        def on_sample(self, rtt_s, in_flight, dropped):
            if dropped:
                self.limit = max(self.params.min_limit, self.limit // 2)
            elif in_flight >= self.limit:
                self.limit = min(self.params.max_limit, self.limit + 1)

It is constructed once per layer with the layer's parameters (``self.params``,
a :class:`~scalelab.failure_config.LimitConfig`); ``self.limit`` starts at
``initial``.
"""

from __future__ import annotations

import math
from typing import Any

from scalelab.service.plugins import load_plugin


class ConcurrencyLimit:
    """Holds ``limit``, the requests allowed in flight; subclass it and implement ``on_sample``."""

    def __init__(self, params: Any) -> None:
        self.params = params
        self.limit: float = float(params.initial)

    def on_sample(self, rtt_s: float, in_flight: int, dropped: bool) -> None:
        """One request ended after ``rtt_s`` with ``in_flight`` requests admitted (itself
        included) when it started; ``dropped`` when it failed or timed out."""
        raise NotImplementedError

    def _clamp(self, value: float) -> float:
        return float(min(self.params.max_limit, max(self.params.min_limit, value)))


class AIMDLimit(ConcurrencyLimit):
    """Additive increase (``increase`` per success while at least half the limit is in use),
    multiplicative decrease (``backoff_ratio`` per drop)."""

    def on_sample(self, rtt_s: float, in_flight: int, dropped: bool) -> None:
        """Grow slowly while busy and healthy; cut on a drop (or a latency over ``latency_ms``)."""
        p = self.params
        if p.latency_ms > 0 and rtt_s * 1000.0 > p.latency_ms:
            dropped = True
        if dropped:
            self.limit = self._clamp(self.limit * p.backoff_ratio)
        elif in_flight * 2 >= self.limit:
            self.limit = self._clamp(self.limit + p.increase)


class GradientLimit(ConcurrencyLimit):
    """After Gradient2: the limit follows ``long_rtt / short_rtt`` (at most 1, at least 0.5,
    with ``tolerance``) times itself, plus ``queue_size``, smoothed by ``smoothing``."""

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.short_rtt = 0.0
        self.long_rtt = 0.0
        self.samples = 0

    def on_sample(self, rtt_s: float, in_flight: int, dropped: bool) -> None:
        """Move the limit toward ``limit * gradient + queue_size``."""
        p = self.params
        self.samples += 1
        self.short_rtt = rtt_s if self.samples == 1 else 0.9 * self.short_rtt + 0.1 * rtt_s
        self.long_rtt = rtt_s if self.samples == 1 else 0.995 * self.long_rtt + 0.005 * rtt_s
        if dropped:
            self.limit = self._clamp(self.limit * 0.9)
            return
        if in_flight * 2 < self.limit:  # not using the limit: nothing learnt about it
            return
        gradient = max(0.5, min(1.0, p.tolerance * self.long_rtt / max(self.short_rtt, 1e-9)))
        target = self.limit * gradient + p.queue_size
        value = (1 - p.smoothing) * self.limit + p.smoothing * target
        self.limit = self._clamp(value if math.isfinite(value) else self.limit)


LIMITS: dict[str, type[ConcurrencyLimit]] = {"aimd": AIMDLimit, "gradient": GradientLimit}
"""Built-in algorithms by the name ``limit.algorithm`` takes."""


def make_limit(params: Any) -> ConcurrencyLimit:
    """The algorithm ``limit.algorithm`` names, constructed with the layer's parameters."""
    if params.algorithm in LIMITS:
        return LIMITS[params.algorithm](params)
    return load_plugin(params.algorithm, ConcurrencyLimit, "limit.algorithm")(params)


def check_limit(params: Any) -> None:
    """Load the class ``limit.algorithm`` names (PluginError if it does not fit)."""
    if params.algorithm not in LIMITS:
        load_plugin(params.algorithm, ConcurrencyLimit, "limit.algorithm")
