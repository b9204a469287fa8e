"""How long to wait before trying again: exponential backoff with jitter, or your own.

A :class:`Backoff` answers one question, ``delay(attempt)``: the seconds to
wait after the ``attempt``-th failed try before the next one. Jitter spreads
the retries of many clients that failed at once, so that they do not come
back in step (AWS's "Exponential Backoff And Jitter"): ``full`` draws
uniformly in ``[0, backoff]``, ``equal`` keeps half and draws the other half.

A student's backoff is a plain class::

    class Linear(Backoff):
        def delay(self, attempt):
            return 0.01 * attempt

named ``retry.backoff = "module:Linear"``; it is constructed with the retry
layer's parameters (``self.params``: ``base_ms``, ``max_ms``...).
"""

from __future__ import annotations

import random
from typing import Any


class Backoff:
    """Seconds to wait before the next try. Subclass it and implement :meth:`delay`."""

    def __init__(self, params: Any, rng: random.Random | None = None) -> None:
        self.params = params
        self.rng = rng or random.Random()

    def delay(self, attempt: int) -> float:
        """Seconds to wait after ``attempt`` tries (1 after the first) have failed."""
        raise NotImplementedError


class NoBackoff(Backoff):
    """Retry at once."""

    def delay(self, attempt: int) -> float:
        """Always zero."""
        return 0.0


class ConstantBackoff(Backoff):
    """Wait ``base_ms`` each time, jittered as ``jitter`` says."""

    def delay(self, attempt: int) -> float:
        """``base_ms``, jittered."""
        return jittered(self.params.base_ms / 1000.0, self.params.jitter, self.rng)


class ExponentialBackoff(Backoff):
    """``base_ms * multiplier**(attempt-1)``, at most ``max_ms``, jittered as ``jitter`` says."""

    def delay(self, attempt: int) -> float:
        """The capped exponential backoff of ``attempt``, jittered."""
        p = self.params
        ceiling = min(p.max_ms, p.base_ms * p.multiplier ** max(attempt - 1, 0)) / 1000.0
        return jittered(ceiling, p.jitter, self.rng)


def jittered(ceiling_s: float, jitter: str, rng: random.Random) -> float:
    """``ceiling_s`` with ``full`` (uniform below it), ``equal`` (half fixed) or no jitter."""
    if jitter == "full":
        return rng.uniform(0.0, ceiling_s)
    if jitter == "equal":
        return ceiling_s / 2 + rng.uniform(0.0, ceiling_s / 2)
    return ceiling_s


BACKOFFS: dict[str, type[Backoff]] = {
    "exponential": ExponentialBackoff,
    "constant": ConstantBackoff,
    "none": NoBackoff,
}
"""Built-in backoffs by the name ``retry.backoff`` takes."""
