"""Arrival schedules of the open loop: when each request should start.

A schedule is an iterator of offsets in seconds from the driver's start, fixed
in advance by the rate, the arrival process and the seed, and never by how fast
the server answers: that independence is what makes the loop open. Offsets are
absolute (not sleeps), so a driver that falls behind catches up instead of
drifting, and the requests it sends late are counted as such.

A :class:`Schedule` keeps the driver's time on the monotonic clock, which no
clock adjustment moves, and gives each arrival's intended start as wall time
only to write it down, beside the other timestamps of the run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator

from scalelab.loadgen.profiles import Profile

IDLE_STEP_S = 0.05  # how far a shaped schedule looks ahead while its rate is zero


def driver_seed(seed: int, process: int, driver: int) -> str:
    """A distinct, reproducible seed for each driver (process index, driver index)."""
    return f"scalelab:{seed}:{process}:{driver}"


def arrival_offsets(
    rate: float,
    arrival: str,
    seed: int | str = 0,
    phase: float = 0.0,
    profile: Profile | None = None,
) -> Iterator[float]:
    """Offsets (s) of successive arrivals at ``rate`` per second.

    ``arrival`` is ``constant`` (evenly spaced, starting at ``phase``) or
    ``poisson`` (exponential gaps drawn from ``random.Random(seed)``). With a
    ``profile`` the rate at time t is ``rate * profile(t)``: constant spacing
    follows it step by step, Poisson arrivals are thinned (an exact
    non-homogeneous Poisson process); the schedule ends when the profile does.
    """
    if rate <= 0:
        raise ValueError(f"rate {rate}: must be positive")
    if arrival == "constant":
        return _constant(rate, phase, profile)
    if arrival == "poisson":
        return _poisson(rate, random.Random(seed), profile)
    raise ValueError(f"arrival {arrival!r}: use constant or poisson")


def _constant(rate: float, phase: float, profile: Profile | None) -> Iterator[float]:
    gap = 1.0 / rate
    if profile is None:
        k = 0
        while True:
            yield phase + k * gap
            k += 1
    t = phase
    while True:
        f = profile(t)
        if f is None:
            return
        if f <= 0:
            t += IDLE_STEP_S
            continue
        yield t
        t += gap / f


def _poisson(rate: float, rng: random.Random, profile: Profile | None) -> Iterator[float]:
    t = 0.0
    expovariate = rng.expovariate
    if profile is None:
        while True:
            t += expovariate(rate)
            yield t
    uniform = rng.random
    while True:
        t += expovariate(rate)
        f = profile(t)
        if f is None:
            return
        if uniform() < f:
            yield t


class Schedule:
    """A driver's arrivals on the monotonic clock, each one's intended start told in wall time.

    Waits and lateness are differences of monotonic readings, so a step of the
    wall clock (NTP, a suspended VM) neither bunches nor stretches the load.
    An arrival's intended start is written as wall time: the wall time now less
    how long ago (monotonically) the arrival was due, which keeps each request's
    intended start, its send time and so its coordinated-omission correction
    consistent even across such a step.
    """

    def __init__(
        self,
        offsets: Iterator[float],
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._offsets = offsets
        self._monotonic = monotonic
        self._wall = wall
        self.t0 = monotonic()

    def next_due(self) -> float | None:
        """When (monotonic) the next arrival is due; None when the schedule has ended."""
        offset = next(self._offsets, None)
        return None if offset is None else self.t0 + offset

    def wait_s(self, due: float) -> float:
        """Seconds until ``due`` (negative once it has passed)."""
        return due - self._monotonic()

    def late_s(self, due: float) -> float:
        """Seconds since ``due`` (negative before it)."""
        return self._monotonic() - due

    def intended_start(self, due: float) -> float:
        """The arrival's intended start as wall time (Unix seconds)."""
        return self._wall() - self.late_s(due)
