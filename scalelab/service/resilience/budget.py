"""A retry budget, as Finagle's ``RetryBudget``: retries at most a share of requests.

Every request deposits ``ratio`` tokens; a retry withdraws one. Tokens last
``ttl_s`` seconds, and ``min_per_s`` retries a second are allowed whatever the
balance, so that a quiet service can still retry. A budget of 0.2 means that,
over ``ttl_s``, retries add at most 20 % (plus the minimum) to the load: when
everything fails, clients stop multiplying the load on a backend that is
already down (a retry storm). The hedging layer spends the same kind of budget.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RetryBudget:
    """Tokens deposited by requests and withdrawn by retries, each lasting ``ttl_s``."""

    def __init__(
        self,
        ratio: float,
        min_per_s: float = 0.0,
        ttl_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ratio = ratio
        self.min_per_s = min_per_s
        self.ttl_s = ttl_s
        self.clock = clock
        self._deposits: deque[float] = deque()
        self._withdrawals: deque[float] = deque()

    def _expire(self, now: float) -> None:
        horizon = now - self.ttl_s
        for events in (self._deposits, self._withdrawals):
            while events and events[0] <= horizon:
                events.popleft()

    def deposit(self) -> None:
        """A request arrived: it may later pay for ``ratio`` retries."""
        self._deposits.append(self.clock())

    def balance(self) -> float:
        """Retries that may still be made now."""
        now = self.clock()
        self._expire(now)
        allowed = len(self._deposits) * self.ratio + self.min_per_s * self.ttl_s
        return allowed - len(self._withdrawals)

    def try_withdraw(self) -> bool:
        """Take one retry from the budget; False (and nothing taken) when it is empty."""
        if self.balance() < 1.0:
            return False
        self._withdrawals.append(self.clock())
        return True
