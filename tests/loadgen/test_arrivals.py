"""Arrival schedules: constant spacing, seeded Poisson at its mean rate, shaped rates."""

from __future__ import annotations

import itertools
import statistics

import pytest

from scalelab.loadgen.arrivals import Schedule, arrival_offsets, driver_seed
from scalelab.loadgen.profiles import ramp_profile, spike_profile, step_profile


def take(it, n):
    return list(itertools.islice(it, n))


def test_constant_spacing_is_exact_and_starts_at_phase() -> None:
    offsets = take(arrival_offsets(250.0, "constant", phase=0.002), 1001)
    assert offsets[0] == pytest.approx(0.002)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert max(gaps) == pytest.approx(0.004, abs=1e-9)
    assert min(gaps) == pytest.approx(0.004, abs=1e-9)
    # absolute offsets, so no drift accumulates over many arrivals
    assert offsets[-1] == pytest.approx(0.002 + 1000 * 0.004, abs=1e-9)


def test_poisson_has_the_mean_rate_and_exponential_gaps() -> None:
    rate = 500.0
    offsets = take(arrival_offsets(rate, "poisson", seed=7), 40_000)
    achieved = len(offsets) / offsets[-1]
    assert achieved == pytest.approx(rate, rel=0.02)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    # exponential: standard deviation equals the mean
    assert statistics.stdev(gaps) / statistics.mean(gaps) == pytest.approx(1.0, abs=0.03)
    assert all(g > 0 for g in gaps)


def test_poisson_is_reproducible_by_seed() -> None:
    a = take(arrival_offsets(100.0, "poisson", seed=driver_seed(3, 0, 0)), 50)
    b = take(arrival_offsets(100.0, "poisson", seed=driver_seed(3, 0, 0)), 50)
    c = take(arrival_offsets(100.0, "poisson", seed=driver_seed(3, 1, 0)), 50)
    d = take(arrival_offsets(100.0, "poisson", seed=driver_seed(4, 0, 0)), 50)
    assert a == b
    assert a != c
    assert a != d


def test_shaped_poisson_is_thinned_to_the_profile() -> None:
    # half the peak rate for the first 20 s, then the schedule ends
    offsets = list(arrival_offsets(400.0, "poisson", seed=1, profile=spike_profile(0.5, 99, 1, 20)))
    assert offsets[-1] < 20
    assert len(offsets) / 20 == pytest.approx(200.0, rel=0.04)


def test_shaped_constant_follows_steps_and_ends() -> None:
    offsets = list(arrival_offsets(100.0, "constant", profile=step_profile(0.5, 1.0, 2.0)))
    first = [o for o in offsets if o < 1.0]
    second = [o for o in offsets if 1.0 <= o < 2.0]
    assert len(first) == pytest.approx(50, abs=1)
    assert len(second) == pytest.approx(100, abs=1)
    assert offsets[-1] < 2.0


def test_zero_rate_stretch_sends_nothing() -> None:
    offsets = list(arrival_offsets(100.0, "constant", profile=ramp_profile(1.0, 1.5)))
    assert offsets and offsets[0] > 0  # nothing at t=0, where the ramp is at zero
    assert len([o for o in offsets if o < 0.5]) < len([o for o in offsets if 1.0 <= o < 1.5])


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="rate"):
        arrival_offsets(0.0, "constant")
    with pytest.raises(ValueError, match="arrival"):
        arrival_offsets(1.0, "uniform")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_schedule_keeps_time_on_the_monotonic_clock_and_writes_wall_time() -> None:
    """A step of the wall clock moves neither the waits nor the lateness of arrivals."""
    mono, wall = Clock(50.0), Clock(1.7e9)
    schedule = Schedule(arrival_offsets(10.0, "constant"), monotonic=mono, wall=wall)
    first = schedule.next_due()
    assert first == 50.0 and schedule.wait_s(first) == 0.0
    assert schedule.intended_start(first) == 1.7e9
    second = schedule.next_due()
    assert second is not None and schedule.wait_s(second) == pytest.approx(0.1)
    wall.now += 3600.0  # the wall clock is stepped an hour ahead (or NTP, or a resumed VM)
    mono.now += 0.04
    assert schedule.wait_s(second) == pytest.approx(0.06)  # not -3599.94: no burst
    mono.now += 0.09  # sent 30 ms after its time
    assert schedule.late_s(second) == pytest.approx(0.03)
    # written as wall time, 30 ms before the wall time it was sent at
    assert schedule.intended_start(second) == pytest.approx(wall.now - 0.03)
    wall.now -= 7200.0  # and stepped back: still no waiting an hour
    third = schedule.next_due()
    assert third is not None and schedule.wait_s(third) == pytest.approx(0.2 - 0.13)


def test_schedule_ends_with_its_offsets() -> None:
    schedule = Schedule(iter([0.0, 0.5]), monotonic=Clock(0.0), wall=Clock(0.0))
    assert [schedule.next_due(), schedule.next_due(), schedule.next_due()] == [0.0, 0.5, None]
