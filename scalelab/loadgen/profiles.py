"""Load profiles: the fraction of peak load at each moment of a run (step, ramp, spike).

A profile is a pure function of the time since the test started. The closed
loop turns it into a user count (a Locust ``LoadTestShape``, see
:mod:`scalelab.loadgen.shapes`); the open loop multiplies its arrival rate by
it. ``None`` means the run is over (``-t`` has passed).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scalelab.loadgen.args import LoadOptions

Profile = Callable[[float], "float | None"]


def step_profile(step_fraction: float, step_time: float, run_time: float | None) -> Profile:
    """Start at one step and add a step every ``step_time`` seconds up to the peak (1.0)."""

    def fraction(t: float) -> float | None:
        if run_time is not None and t >= run_time:
            return None
        return min(1.0, step_fraction * (math.floor(t / step_time) + 1))

    return fraction


def ramp_profile(ramp_time: float, run_time: float | None) -> Profile:
    """Grow linearly from zero to the peak over ``ramp_time`` seconds, then hold it."""

    def fraction(t: float) -> float | None:
        if run_time is not None and t >= run_time:
            return None
        return min(1.0, max(t, 0.0) / ramp_time)

    return fraction


def spike_profile(base: float, at: float, length: float, run_time: float | None) -> Profile:
    """Hold ``base`` of the peak, jump to the peak at ``at`` for ``length`` seconds, fall back."""

    def fraction(t: float) -> float | None:
        if run_time is not None and t >= run_time:
            return None
        return 1.0 if at <= t < at + length else base

    return fraction


def profile_for(opts: LoadOptions) -> Profile | None:
    """The profile named by ``--shape``, or ``None`` for a flat load."""
    if opts.shape == "step":
        if opts.open_loop:  # the rate grows in fifths of --rate
            return step_profile(0.2, opts.step_time, opts.run_time)
        step_users = opts.step_users or max(1, math.ceil(opts.users / 5))
        return step_profile(
            min(1.0, step_users / max(opts.users, 1)), opts.step_time, opts.run_time
        )
    if opts.shape == "ramp":
        return ramp_profile(opts.ramp_time, opts.run_time)
    if opts.shape == "spike":
        return spike_profile(opts.spike_base, opts.spike_at, opts.spike_time, opts.run_time)
    return None
