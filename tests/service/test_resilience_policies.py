"""The failure-handling policies alone, on a fake clock: backoff, budget, breaker, hedge, limits."""

from __future__ import annotations

import random

import pytest

from scalelab.errors import PluginError
from scalelab.failure_config import BreakerConfig, HedgeConfig, LimitConfig, RetryConfig
from scalelab.service.resilience import (
    AIMDLimit,
    CountingBreaker,
    ExponentialBackoff,
    GradientLimit,
    PercentileDelay,
    RetryBudget,
    StandardRetryPolicy,
)
from scalelab.service.resilience.breakers import make_breaker
from scalelab.service.resilience.retry_policy import check_retry


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_exponential_backoff_caps_and_full_jitter_stays_below_the_ceiling() -> None:
    params = RetryConfig(base_ms=10, multiplier=2, max_ms=50, jitter="none")
    plain = ExponentialBackoff(params)
    assert [plain.delay(a) for a in (1, 2, 3, 4, 5)] == [0.01, 0.02, 0.04, 0.05, 0.05]
    full = ExponentialBackoff(params.model_copy(update={"jitter": "full"}), random.Random(1))
    draws = [full.delay(3) for _ in range(2000)]
    assert min(draws) >= 0 and max(draws) <= 0.04
    assert sum(draws) / len(draws) == pytest.approx(0.02, rel=0.05)  # uniform: half the ceiling
    equal = ExponentialBackoff(params.model_copy(update={"jitter": "equal"}), random.Random(1))
    assert min(equal.delay(3) for _ in range(500)) >= 0.02


def test_retry_budget_allows_its_ratio_of_requests_plus_the_minimum_and_forgets_after_ttl() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.2, min_per_s=1.0, ttl_s=10.0, clock=clock)
    for _ in range(100):
        budget.deposit()
    allowed = 0
    while budget.try_withdraw():
        allowed += 1
    assert allowed == 20 + 10  # 20 % of 100 requests, plus 1 a second over 10 s
    clock.now += 10.5  # every token and withdrawal has expired: the reserve is back
    assert budget.balance() == pytest.approx(10.0)


def test_standard_policy_gives_up_when_the_budget_is_empty_and_says_so() -> None:
    params = RetryConfig(budget_ratio=0.0, budget_min_per_s=0.0, backoff="none")
    policy = StandardRetryPolicy(params)
    policy.on_request()
    assert policy.retry_after(1, 500) is None and policy.refused
    unlimited = StandardRetryPolicy(params.model_copy(update={"budget": False}))
    assert unlimited.retry_after(1, 500) == 0.0 and not unlimited.refused


def test_consecutive_breaker_opens_probes_and_closes() -> None:
    breaker = CountingBreaker(BreakerConfig(failures=3, open_s=1.0, half_open_probes=1))
    t = 0.0
    for _ in range(2):
        assert breaker.allow(t)
        breaker.record(False, t)
    assert breaker.state == "closed"
    assert breaker.allow(t)
    breaker.record(False, t)
    assert breaker.state == "open" and not breaker.allow(t + 0.5)
    assert breaker.allow(t + 1.0) and breaker.state == "half_open"
    assert not breaker.allow(t + 1.0)  # one probe at a time
    breaker.record(False, t + 1.1)  # a failed probe opens it again
    assert breaker.state == "open" and not breaker.allow(t + 1.5)
    assert breaker.allow(t + 2.2)
    breaker.record(None, t + 2.2)  # no verdict: the probe slot is freed, still half-open
    assert breaker.state == "half_open" and breaker.allow(t + 2.3)
    breaker.record(True, t + 2.3)
    assert breaker.state == "closed"
    assert [s for _, s in breaker.transitions] == [
        "open",
        "half_open",
        "open",
        "half_open",
        "closed",
    ]


def test_rate_breaker_needs_enough_calls_in_its_window() -> None:
    params = BreakerConfig(policy="rate", failure_rate=0.5, min_requests=10, window_s=1.0)
    breaker = make_breaker(params)
    for i in range(9):
        breaker.record(i % 2 == 0, 0.0)  # 4 failures of 9: too few calls to judge
    assert breaker.state == "closed"
    breaker.record(False, 0.0)  # 5 of 10
    assert breaker.state == "open"


def test_percentile_delay_follows_the_window() -> None:
    delay = PercentileDelay(HedgeConfig(percentile=95, window=100, min_samples=20, min_delay_ms=0))
    for ms in range(19):
        delay.observe(ms / 1000)
    assert delay.delay() is None  # too few answers yet
    for ms in range(19, 100):
        delay.observe(ms / 1000)
    assert delay.delay() == pytest.approx(0.095)
    for _ in range(100):  # the old answers leave the window
        delay.observe(0.001)
    assert delay.delay() == pytest.approx(0.001)


def test_aimd_grows_while_busy_and_backs_off_on_drops() -> None:
    limit = AIMDLimit(LimitConfig(initial=10, backoff_ratio=0.5, latency_ms=100))
    limit.on_sample(0.01, in_flight=2, dropped=False)
    assert limit.limit == 10  # not busy: nothing learnt
    limit.on_sample(0.01, in_flight=6, dropped=False)
    assert limit.limit == 11
    limit.on_sample(0.2, in_flight=6, dropped=False)  # slower than latency_ms: a drop
    assert limit.limit == 5.5
    for _ in range(20):
        limit.on_sample(0.01, in_flight=0, dropped=True)
    assert limit.limit == 1  # never below min_limit


def test_gradient_shrinks_when_latency_rises_above_its_long_term_level() -> None:
    limit = GradientLimit(LimitConfig(initial=50, queue_size=0, smoothing=1.0, tolerance=1.0))
    for _ in range(200):
        limit.on_sample(0.010, in_flight=50, dropped=False)
    steady = limit.limit
    for _ in range(30):
        limit.on_sample(0.040, in_flight=50, dropped=False)
    assert limit.limit < steady / 1.5


def test_a_student_class_that_does_not_fit_is_refused_naming_the_field(
    tmp_path, monkeypatch
) -> None:
    (tmp_path / "student_retry.py").write_text(
        "class NoDelay:\n    def on_request(self):\n        pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"retry.policy.*retry_after"):
        check_retry(RetryConfig(policy="student_retry:NoDelay"))
