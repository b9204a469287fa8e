"""Circuit breakers: closed, open, half-open. Stop calling a backend that is down.

A :class:`CircuitBreaker` is asked before each call whether it may go
(``allow``) and told how each call it allowed ended (``record``). Its
``state`` is ``"closed"`` (calls pass), ``"open"`` (calls fail fast, without
reaching the backend) or ``"half_open"`` (a few probe calls test whether the
backend is back). Times are :func:`time.monotonic` seconds, passed in so that
a breaker can be tested without waiting.

A student's breaker is a plain class named ``breaker.policy = "module:Class"``::

    class Simple(CircuitBreaker):
        def __init__(self, params):
            super().__init__(params)
            self.failures, self.opened_at = 0, 0.0

        def allow(self, now):
            if self.state == "open" and now - self.opened_at >= self.params.open_s:
                self.state = "half_open"
            return self.state != "open"

        def record(self, ok, now):
            if ok is None:
                return                       # no verdict: cancelled, or not the backend's fault
            if ok:
                self.failures, self.state = 0, "closed"
                return
            self.failures += 1
            if self.state == "half_open" or self.failures >= self.params.failures:
                self.state, self.opened_at = "open", now

It is constructed once per layer with the layer's parameters (``self.params``,
a :class:`~scalelab.failure_config.BreakerConfig`). Every call ``allow``
let through ends with exactly one ``record`` (``ok`` None when the call was
cancelled or its answer says nothing of the backend's health).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from scalelab.service.plugins import load_plugin

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATES: dict[str, int] = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
"""Each state and its value in the ``state`` gauge of ``/metrics``."""


class CircuitBreaker:
    """Decides whether a call may go to the backend; implement ``allow`` and ``record``."""

    def __init__(self, params: Any) -> None:
        self.params = params
        self.state: str = CLOSED

    def allow(self, now: float) -> bool:
        """May a call go to the backend now? False fails it fast."""
        raise NotImplementedError

    def record(self, ok: bool | None, now: float) -> None:
        """How a call that ``allow`` let through ended: ok, failed, or None (no verdict)."""
        raise NotImplementedError


class CountingBreaker(CircuitBreaker):
    """The built-in breaker: opens on ``failures`` in a row (``consecutive``) or on a
    failure share over a window (``rate``); half-open after ``open_s`` with at most
    ``half_open_probes`` probes in flight; closes after ``successes`` good probes."""

    def __init__(self, params: Any, mode: str = "consecutive") -> None:
        super().__init__(params)
        self.mode = mode
        self.opened_at = 0.0
        self.in_a_row = 0
        self.probes = 0
        self.probe_successes = 0
        self.window: deque[tuple[float, bool]] = deque()
        self.transitions: list[tuple[float, str]] = []
        """Each change of state with its time, for tests and the layer's counts."""

    def _enter(self, state: str, now: float) -> None:
        if state == self.state:
            return
        self.state = state
        self.transitions.append((now, state))
        if state == OPEN:
            self.opened_at = now
        self.probes = self.probe_successes = 0
        self.in_a_row = 0
        self.window.clear()

    def allow(self, now: float) -> bool:
        """Closed: yes. Open: no, until ``open_s`` has passed. Half-open: while probes are free."""
        if self.state == OPEN and now - self.opened_at >= self.params.open_s:
            self._enter(HALF_OPEN, now)
        if self.state == CLOSED:
            return True
        if self.state == HALF_OPEN and self.probes < self.params.half_open_probes:
            self.probes += 1
            return True
        return False

    def record(self, ok: bool | None, now: float) -> None:
        """Count the outcome; open, close or stay as the policy says."""
        if self.state == HALF_OPEN:
            self.probes = max(0, self.probes - 1)
            if ok is None:
                return
            if not ok:
                self._enter(OPEN, now)
                return
            self.probe_successes += 1
            if self.probe_successes >= self.params.successes:
                self._enter(CLOSED, now)
            return
        if self.state != CLOSED or ok is None:
            return
        if self.mode == "consecutive":
            self.in_a_row = 0 if ok else self.in_a_row + 1
            if self.in_a_row >= self.params.failures:
                self._enter(OPEN, now)
            return
        window = self.window
        window.append((now, ok))
        while window and window[0][0] <= now - self.params.window_s:
            window.popleft()
        if len(window) >= self.params.min_requests:
            failed = sum(1 for _, good in window if not good)
            if failed / len(window) >= self.params.failure_rate:
                self._enter(OPEN, now)


def make_breaker(params: Any) -> CircuitBreaker:
    """The breaker ``breaker.policy`` names, constructed with the layer's parameters."""
    if params.policy in ("consecutive", "rate"):
        return CountingBreaker(params, params.policy)
    return load_plugin(params.policy, CircuitBreaker, "breaker.policy")(params)


def check_breaker(params: Any) -> None:
    """Load the class ``breaker.policy`` names (PluginError if it does not fit)."""
    if params.policy not in ("consecutive", "rate"):
        load_plugin(params.policy, CircuitBreaker, "breaker.policy")
