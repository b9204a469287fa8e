"""Workloads are pure and deterministic; delays follow their distribution; batches isolate."""

from __future__ import annotations

import random
import statistics
import time

import pytest

from scalelab.service.workloads import (
    cpu_work,
    draw_delay_ms,
    io_work,
    io_work_many,
    run_batch,
    run_task,
)


def test_cpu_work_is_deterministic_and_depends_on_units() -> None:
    assert cpu_work(50) == cpu_work(50)
    assert len({cpu_work(n) for n in range(0, 20)}) == 20


def test_cpu_work_costs_about_tens_of_microseconds_a_unit() -> None:
    cpu_work(100)  # warm up
    start = time.perf_counter()
    cpu_work(2000)
    per_unit_us = (time.perf_counter() - start) / 2000 * 1e6
    # Generous bounds: a loaded 2-core machine is slow, a fast one is quick.
    assert 1.0 < per_unit_us < 500.0


def test_io_work_sleeps_the_delay_and_returns_it() -> None:
    start = time.perf_counter()
    assert io_work(30.0) == 30.0
    assert time.perf_counter() - start >= 0.029
    assert io_work(0) == 0


def test_batched_io_waits_once_for_the_longest() -> None:
    start = time.perf_counter()
    assert io_work_many([40.0, 10.0, 40.0, 5.0]) == [40.0, 10.0, 40.0, 5.0]
    elapsed = time.perf_counter() - start
    assert 0.039 <= elapsed < 0.09  # not the 95 ms of sleeping in turn


def test_fixed_delay_is_the_value() -> None:
    assert draw_delay_ms("fixed", 12.5, seed=1) == 12.5


def test_seeded_delays_are_a_function_of_the_seed() -> None:
    a = [draw_delay_ms("exponential", 10.0, seed=s) for s in range(50)]
    b = [draw_delay_ms("exponential", 10.0, seed=s) for s in range(50)]
    assert a == b
    assert len(set(a)) == 50
    assert draw_delay_ms("bimodal", 1.0, slow_ms=100.0, slow_frac=0.5, seed=7) == draw_delay_ms(
        "bimodal", 1.0, slow_ms=100.0, slow_frac=0.5, seed=7
    )


def test_exponential_has_the_mean_asked_for() -> None:
    rng = random.Random(3)
    draws = [draw_delay_ms("exponential", 20.0, rng=rng) for _ in range(20_000)]
    assert statistics.fmean(draws) == pytest.approx(20.0, rel=0.05)
    assert statistics.median(draws) == pytest.approx(20.0 * 0.6931, rel=0.05)


def test_bimodal_takes_the_slow_value_with_its_probability() -> None:
    rng = random.Random(4)
    draws = [
        draw_delay_ms("bimodal", 2.0, slow_ms=200.0, slow_frac=0.1, rng=rng) for _ in range(20_000)
    ]
    assert set(draws) == {2.0, 200.0}
    assert draws.count(200.0) / len(draws) == pytest.approx(0.1, abs=0.01)


def test_unknown_distribution_is_refused() -> None:
    with pytest.raises(ValueError, match="dist must be one of"):
        draw_delay_ms("uniform", 1.0)  # type: ignore[arg-type]


def _fails(x: int) -> int:
    raise ValueError(f"bad {x}")


def test_run_task_reports_where_it_ran() -> None:
    assert run_task(cpu_work, (3,)) == ("local", cpu_work(3))


def test_run_batch_gives_each_call_its_own_outcome() -> None:
    worker, outcomes = run_batch(
        [(cpu_work, (1,)), (_fails, (2,)), (io_work, (5.0,)), (cpu_work, (2,)), (io_work, (1.0,))]
    )
    assert worker == "local"
    assert outcomes[0] == (True, cpu_work(1))
    assert outcomes[1][0] is False and isinstance(outcomes[1][1], ValueError)
    assert outcomes[2] == (True, 5.0)
    assert outcomes[3] == (True, cpu_work(2))
    assert outcomes[4] == (True, 1.0)
