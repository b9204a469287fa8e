"""When to send a hedge: a second copy of a request that is taking long (The Tail at Scale).

A :class:`HedgeDelay` is asked, as each request leaves, how long to wait for
its answer before sending a copy (``delay``: seconds, or None for no hedge),
and told the latency of every answer the hedging layer returns (``observe``).
Dean and Barroso hedge after the 95th percentile of latency: a copy goes
for about 5 % of requests, and the slow tail of one replica is cut by the
other. :class:`PercentileDelay` does that over a sliding window of answers.

A student's delay is a plain class named ``hedge.policy = "module:Class"``::

    class Twice(HedgeDelay):
        \"\"\"Hedge after twice the mean latency seen so far.\"\"\"

        def __init__(self, params):
            super().__init__(params)
            self.total, self.count = 0.0, 0

        def delay(self):
            return 2 * self.total / self.count if self.count else None

        def observe(self, latency_s):
            self.total += latency_s
            self.count += 1

It is constructed once per layer with the layer's parameters (``self.params``,
a :class:`~scalelab.failure_config.HedgeConfig`).
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Any

from scalelab.service.plugins import load_plugin


class HedgeDelay:
    """Chooses how long to wait before hedging. Subclass it; implement ``delay``."""

    def __init__(self, params: Any) -> None:
        self.params = params

    def delay(self) -> float | None:
        """Seconds to wait for an answer before sending a copy; None: do not hedge."""
        raise NotImplementedError

    def observe(self, latency_s: float) -> None:
        """The latency of an answer the layer returned (the first of its copies)."""


class FixedDelay(HedgeDelay):
    """Always ``delay_ms``."""

    def delay(self) -> float | None:
        """``delay_ms`` in seconds."""
        return self.params.delay_ms / 1000.0


class PercentileDelay(HedgeDelay):
    """The running ``percentile`` of the last ``window`` answers (at least ``min_delay_ms``);
    no hedge before ``min_samples`` answers."""

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.recent: deque[float] = deque()
        self.sorted: list[float] = []

    def delay(self) -> float | None:
        """The percentile of the window, or None while it holds too few answers."""
        n = len(self.sorted)
        if n < max(self.params.min_samples, 1):
            return None
        rank = min(n - 1, max(0, int(n * self.params.percentile / 100.0)))
        return max(self.sorted[rank], self.params.min_delay_ms / 1000.0)

    def observe(self, latency_s: float) -> None:
        """Add an answer; drop the oldest beyond ``window``."""
        self.recent.append(latency_s)
        bisect.insort(self.sorted, latency_s)
        if len(self.recent) > self.params.window:
            old = self.recent.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]


def make_hedge_delay(params: Any) -> HedgeDelay:
    """The delay ``hedge.policy`` (or ``delay_ms``, else the percentile) chooses."""
    if params.policy:
        return load_plugin(params.policy, HedgeDelay, "hedge.policy")(params)
    return FixedDelay(params) if params.delay_ms > 0 else PercentileDelay(params)


def check_hedge(params: Any) -> None:
    """Load the class ``hedge.policy`` names (PluginError if it does not fit)."""
    if params.policy:
        load_plugin(params.policy, HedgeDelay, "hedge.policy")
