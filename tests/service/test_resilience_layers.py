"""The failure-handling layers around a scripted rest of the stack (no processes): what each
answers, how many calls it makes, and what it counts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from scalelab.config import ServiceConfig
from scalelab.service.cache_origin import KeyStore
from scalelab.service.layer import LayerContext
from scalelab.service.layers.breaker import Breaker
from scalelab.service.layers.hedge import Hedge
from scalelab.service.layers.limit import Limit
from scalelab.service.layers.retry import Retry
from scalelab.service.layers.timeout import Timeout
from scalelab.service.metrics import ServiceMetrics
from scalelab.service.request import Request, Response, error


def context() -> LayerContext:
    return LayerContext(ServiceMetrics(), KeyStore(), lambda: ServiceConfig(), lambda: None)


def make(cls: type, **params: Any) -> Any:
    layer = cls(cls.Params(**params), context())
    layer.name = cls.__name__.lower()
    return layer


def outcome(layer: Any, name: str) -> float:
    value = layer.context.metrics.registry.get_sample_value(
        "scalelab_layer_outcomes_total", {"layer": layer.name, "outcome": name}
    )
    return value or 0.0


class Script:
    """A rest of the stack that answers each call as ``answers`` says, after ``delays``."""

    def __init__(self, answers: list[Any], delays: Callable[[int], float] = lambda i: 0.0):
        self.answers = answers
        self.delays = delays
        self.calls: list[Request] = []
        self.cancelled = 0

    async def __call__(self, request: Request) -> Response:
        i = len(self.calls)
        self.calls.append(request)
        try:
            await asyncio.sleep(self.delays(i))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        answer = self.answers[min(i, len(self.answers) - 1)]
        if isinstance(answer, Exception):
            raise answer
        return Response(answer, value=i) if answer < 400 else error(answer, f"call {i}")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_timeout_answers_504_naming_the_limit_and_cancels_the_call() -> None:
    layer = make(Timeout, attempt_ms=50)
    script = Script([200], lambda i: 1.0)
    started = time.monotonic()
    response = run(layer(Request("/task/io"), script))
    assert response.status == 504 and response.headers["X-Timeout"] == "attempt"
    assert 0.05 <= time.monotonic() - started < 0.5
    assert script.cancelled == 1 and outcome(layer, "attempt") == 1


def test_deadline_counts_from_arrival_and_is_shared_by_every_attempt() -> None:
    layer = make(Timeout, deadline_ms=100, attempt_ms=80)
    request = Request("/task/io")
    request.received -= 0.05  # it arrived 50 ms ago: 50 ms are left, less than attempt_ms
    response = run(layer(request, Script([200], lambda i: 1.0)))
    assert response.headers["X-Timeout"] == "deadline"
    assert request.deadline == pytest.approx(request.received + 0.1)
    late = Request("/task/io", deadline=time.monotonic() - 1)
    assert run(layer(late, Script([200]))).status == 504  # no time left: not even tried


def test_retry_tries_again_until_success_and_counts_each_retry() -> None:
    layer = make(Retry, max_attempts=5, backoff="none", budget=False)
    script = Script([500, 503, 200])
    response = run(layer(Request("/task/cpu"), script))
    assert response.status == 200 and len(script.calls) == 3
    assert [c.attempt for c in script.calls] == [1, 2, 3]
    assert response.headers["X-Retries"] == "2" and outcome(layer, "retried") == 2


def test_retry_treats_an_exception_as_a_failure_and_stops_at_max_attempts() -> None:
    layer = make(Retry, max_attempts=3, backoff="none", budget=False)
    script = Script([RuntimeError("worker lost")])
    response = run(layer(Request("/task/cpu"), script))
    assert response.status == 500 and len(script.calls) == 3
    assert outcome(layer, "exhausted") == 1


def test_retry_budget_limits_retries_to_its_share_of_requests() -> None:
    layer = make(Retry, max_attempts=5, backoff="none", budget_ratio=0.1, budget_min_per_s=0)

    async def many() -> int:
        total = 0
        for _ in range(100):
            script = Script([500])
            await layer(Request("/task/cpu"), script)
            total += len(script.calls)
        return total

    calls = run(many())
    assert calls == 100 + 10  # every request once, and 10 % of them once more
    assert outcome(layer, "budget_exhausted") == 100  # each ended on a refusal


def test_retry_leaves_writes_and_open_breakers_alone() -> None:
    layer = make(Retry, max_attempts=3, backoff="none", budget=False)
    put = Script([500])
    run(layer(Request("/kv", method="PUT"), put))
    assert len(put.calls) == 1
    open_answer = Script([503])

    async def fail_fast(request: Request) -> Response:
        await open_answer(request)
        return error(503, "open", {"X-Circuit": "open"})

    run(layer(Request("/task/cpu"), fail_fast))
    assert len(open_answer.calls) == 1 and outcome(layer, "not_retried_open") == 1


def test_breaker_fails_fast_while_open_then_lets_a_probe_through() -> None:
    layer = make(Breaker, failures=2, open_s=0.05)
    down = Script([500])

    async def scenario() -> list[int]:
        statuses = []
        for _ in range(4):
            statuses.append((await layer(Request("/task/cpu"), down)).status)
        await asyncio.sleep(0.06)
        statuses.append((await layer(Request("/task/cpu"), Script([200]))).status)
        return statuses

    assert run(scenario()) == [500, 500, 503, 503, 200]
    assert len(down.calls) == 2  # the open breaker kept two calls off the backend
    assert outcome(layer, "rejected") == 2 and outcome(layer, "opened") == 1
    assert outcome(layer, "closed") == 1
    gauge = layer.context.metrics.registry.get_sample_value(
        "scalelab_layer_state", {"layer": "breaker", "name": "state"}
    )
    assert gauge == 0


def test_hedge_sends_a_copy_after_the_delay_and_keeps_the_first_answer() -> None:
    layer = make(Hedge, delay_ms=20, max_extra=1.0)
    script = Script([200], lambda i: 0.5 if i == 0 else 0.0)  # the first call is slow
    started = time.monotonic()
    response = run(layer(Request("/task/io"), script))
    assert time.monotonic() - started < 0.3
    assert len(script.calls) == 2 and response.value == 1
    assert response.headers["X-Hedged"] == "won" and script.cancelled == 1
    assert outcome(layer, "hedged") == 1 and outcome(layer, "cancelled") == 1


def test_hedge_waits_for_a_good_answer_and_respects_its_budget() -> None:
    layer = make(Hedge, delay_ms=10, max_extra=1.0)
    script = Script([500, 200], lambda i: 0.05 if i == 0 else 0.08)
    assert run(layer(Request("/task/io"), script)).status == 200  # the copy's success wins
    stingy = make(Hedge, delay_ms=10, max_extra=0.0)
    slow = Script([200], lambda i: 0.05)
    assert run(stingy(Request("/task/io"), slow)).status == 200
    assert len(slow.calls) == 1 and outcome(stingy, "budget_exhausted") == 1


def test_limit_sheds_over_the_adaptive_limit() -> None:
    layer = make(Limit, initial=2, min_limit=1, max_limit=10)

    async def burst() -> list[int]:
        script = Script([200], lambda i: 0.05)
        answers = await asyncio.gather(*(layer(Request("/task/io"), script) for _ in range(5)))
        return sorted(a.status for a in answers)

    assert run(burst()) == [200, 200, 503, 503, 503]
    assert outcome(layer, "shed") == 3


def test_attempts_count_retries_and_hedges_not_a_fan_out() -> None:
    from scalelab.service.stack import EXTRA_TRY, attempts

    assert attempts(["admission", "cache"]) == 0  # answered before the executor
    assert attempts(["router", "executor", "executor", "executor"]) == 1  # one query, 3 parts
    assert attempts(["retry", "executor", EXTRA_TRY, "executor", EXTRA_TRY, "executor"]) == 3
    layer = make(Retry, max_attempts=3, backoff="none", budget=False)
    request = Request("/task/cpu")
    run(layer(request, Script([500, 200])))
    assert request.trail.count(EXTRA_TRY) == 1
