"""Hidden part of lab 05: theory of retries, measurements of the run, the reference breaker and
retry policy, and the hidden tests that drive them."""

from __future__ import annotations

import asyncio
import math
import random
from itertools import pairwise
from typing import Any

import pandas as pd

from scalelab.analysis.failure import fault_spans
from scalelab.analysis.load import Run
from scalelab.config import ServiceConfig
from scalelab.exercises import Mistake, Verdict, hide
from scalelab.exercises.context import Context
from scalelab.failure_config import BreakerConfig, RetryConfig
from scalelab.service.cache_origin import KeyStore
from scalelab.service.layer import LayerContext
from scalelab.service.layers.retry import Retry
from scalelab.service.metrics import ServiceMetrics
from scalelab.service.request import Request, Response, error
from scalelab.service.resilience import CircuitBreaker, RetryPolicy

from ._support import run_sync

SETTLE_S = 0.25
"""Requests that started this soon after the fault's start are left out: the fault reaches the
workers a moment after it is recorded."""

# --- q1, q2: what retries leave and what they cost ------------------------------------------


def during_fault(run: Run) -> pd.DataFrame:
    """Requests that started once the fault was on and were answered before it ended."""
    spans = fault_spans(run)
    req = run.measured_requests
    if spans.empty or req.empty:
        return req.iloc[0:0]
    start, end = float(spans["start"].iloc[0]), float(spans["end"].iloc[0])
    answered = req["start"] + req["latency_us"] / 1e6
    return req[(req["start"] >= start + SETTLE_S) & (answered <= end)]


def _p_k(ctx: Context) -> tuple[float, int]:
    return float(ctx.param("error_rate")), int(ctx.param("attempts"))


def error_share(ctx: Context) -> float:
    """A request fails only when every one of its k tries fails: p**k."""
    p, k = _p_k(ctx)
    return p**k


def tries_per_request(ctx: Context) -> float:
    """Try n happens when the n - 1 before it failed: 1 + p + ... + p**(k-1)."""
    p, k = _p_k(ctx)
    return (1.0 - p**k) / (1.0 - p)


def _measured_errors(ctx: Context) -> float:
    during = pd.concat([during_fault(r) for r in ctx.runs("run")])
    return float((~during["ok"].astype(bool)).mean()) if len(during) else math.nan


def _measured_tries(ctx: Context) -> float:
    during = pd.concat([during_fault(r) for r in ctx.runs("run")])
    return float(during["attempts"].mean()) if len(during) else math.nan


def _confirm(figure: str, theory: Any, sd: Any, floor: float, share: float = 0.0) -> Any:
    """A check that the runs measured ``figure`` near ``theory`` (within four standard errors
    plus ``floor`` and ``share`` of the theory, for the requests at the fault's edges): the
    prediction held on the run it is about."""

    def confirm(answer: float, ctx: Context) -> Verdict | None:
        during = pd.concat([during_fault(r) for r in ctx.runs("run")])
        n = len(during)
        if n < 20:
            return Verdict(
                False,
                f"the run has only {n} requests answered while the fault was on; run it "
                "longer, then check again.",
            )
        values = (
            (~during["ok"].astype(bool)).astype(float)
            if figure == "error rate"
            else during["attempts"].astype(float)
        )
        measured, target = float(values.mean()), float(theory(ctx))
        band = floor + share * abs(target) + 4.0 * float(sd(ctx)) / math.sqrt(n)
        if abs(measured - target) > band:
            return Verdict(
                False,
                f"the run measured a {figure} of {measured:.4g} over {n} requests, further from "
                "the theory than its sampling error allows: was the fault on every worker, "
                "and nothing but the retry layer trying again?",
            )
        return None

    return confirm


def _tries_sd(ctx: Context) -> float:
    p, k = _p_k(ctx)
    probs = [p ** (n - 1) * (1 - p) for n in range(1, k)] + [p ** (k - 1)]
    mean = sum(n * q for n, q in enumerate(probs, start=1))
    return math.sqrt(sum((n - mean) ** 2 * q for n, q in enumerate(probs, start=1)))


hide(
    "lab05.q1",
    expected=error_share,
    rel_tol=0.02,
    abs_tol=1e-6,
    measured=_measured_errors,
    confirm=_confirm(
        "error rate",
        error_share,
        lambda c: math.sqrt(error_share(c) * (1 - error_share(c))),
        floor=0.002,
        share=0.2,
    ),
    mistakes=[
        Mistake(
            lambda ctx: _p_k(ctx)[0],
            "that is what one try fails; the retries get more than one chance.",
        ),
        Mistake(
            lambda ctx: _p_k(ctx)[0] ** (_p_k(ctx)[1] - 1),
            "attempts counts every try, the first one too, not only the retries.",
        ),
        Mistake(
            lambda ctx: 1.0 - (1.0 - _p_k(ctx)[0]) ** _p_k(ctx)[1],
            "that is the chance that at least one of k tries fails; a retried request "
            "fails only when it runs out of tries.",
        ),
        Mistake(
            lambda ctx: _p_k(ctx)[0] / _p_k(ctx)[1],
            "retries do not share the errors out; each try is a fresh draw.",
        ),
    ],
)


def _no_k2(value: Any) -> Any:
    """A wrong model that equals the truth at two attempts is no mistake there."""
    return lambda ctx: math.nan if _p_k(ctx)[1] == 2 else value(ctx)


hide(
    "lab05.q2",
    expected=tries_per_request,
    rel_tol=0.02,
    measured=_measured_tries,
    confirm=_confirm("mean of tries per request", tries_per_request, _tries_sd, 0.03),
    mistakes=[
        Mistake(
            lambda ctx: float(_p_k(ctx)[1]),
            "that many tries only when every try fails; most requests succeed earlier.",
        ),
        Mistake(
            lambda ctx: 1.0 / (1.0 - _p_k(ctx)[0]),
            "that is the mean of tries without a limit; the layer stops at max_attempts.",
        ),
        Mistake(
            _no_k2(lambda ctx: 1.0 + _p_k(ctx)[0]),
            "that counts one retry at most; a retry can fail too.",
        ),
        Mistake(
            _no_k2(lambda ctx: 1.0 + (_p_k(ctx)[1] - 1) * _p_k(ctx)[0]),
            "a later try happens only when every earlier one failed, which is rarer each time.",
        ),
    ],
)

# --- q3: a circuit breaker ----------------------------------------------------------------


BACKOFF_CAP = 8
"""A breaker's open time doubles with each failed probe, up to this many times ``open_s``."""


class SolutionBreaker(CircuitBreaker):
    """The reference answer to lab05.q3: open after ``failures`` in a row, half-open after the
    current wait with at most ``half_open_probes`` probes, closed after ``successes``; each
    failed probe doubles the wait (up to 8 x ``open_s``), closing resets it."""

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.failed = 0
        self.until = 0.0
        self.wait = float(params.open_s)
        self.probing = 0
        self.good = 0

    def allow(self, now: float) -> bool:
        """Closed: yes. Open: no until its wait is over. Half-open: while a probe is free."""
        if self.state == "open" and now >= self.until:
            self.state, self.probing, self.good = "half_open", 0, 0
        if self.state == "half_open":
            free = self.probing < self.params.half_open_probes
            self.probing += free
            return free
        return self.state == "closed"

    def record(self, ok: bool | None, now: float) -> None:
        """Count failures in a row; a probe's outcome closes it or opens it for longer."""
        if self.state == "half_open":
            self.probing = max(self.probing - 1, 0)
            if ok is False:
                self.wait = min(2 * self.wait, BACKOFF_CAP * self.params.open_s)
                self._trip(now)
            elif ok:
                self.good += 1
                if self.good >= self.params.successes:
                    self.state, self.failed, self.wait = "closed", 0, float(self.params.open_s)
        elif self.state == "closed" and ok is not None:
            self.failed = 0 if ok else self.failed + 1
            if self.failed >= self.params.failures:
                self._trip(now)

    def _trip(self, now: float) -> None:
        self.state, self.until, self.failed = "open", now + self.wait, 0


def breaker_params(**changes: Any) -> BreakerConfig:
    """The hidden tests' breaker parameters (those of scenarios/failure_breaker.toml)."""
    values: dict[str, Any] = {
        "failures": 5,
        "open_s": 0.25,
        "half_open_probes": 1,
        "successes": 1,
    } | changes
    return BreakerConfig(**values)


def drive(
    breaker: CircuitBreaker,
    up: Any,
    until: float,
    every: float = 0.01,
    call_s: float = 0.005,
) -> list[tuple[float, bool]]:
    """Calls every ``every`` s from 0 to ``until``, one at a time, each taking ``call_s``;
    ``up(t)`` says whether the backend answers well. Each call: (time, allowed)."""
    calls = []
    for i in range(round(until / every)):
        now = i * every
        allowed = bool(breaker.allow(now))
        if allowed:
            breaker.record(bool(up(now)), now + call_s)
        calls.append((now, allowed))
    return calls


def _new(answer: type, **changes: Any) -> CircuitBreaker:
    breaker = answer(breaker_params(**changes))
    assert getattr(breaker, "state", None) == "closed", "a new breaker starts closed"
    return breaker


def _test_lets_a_healthy_backend_through(answer: type) -> None:
    """closed at first, and lets every call to a healthy backend through"""
    breaker = _new(answer)
    calls = drive(breaker, lambda t: True, 2.0)
    assert all(allowed for _, allowed in calls), "it refused calls to a backend that never failed"
    assert breaker.state == "closed", f"its state is {breaker.state!r} after nothing but successes"


def _test_tolerates_scattered_failures(answer: type) -> None:
    """does not open on scattered failures (one call in four failing)"""
    breaker = _new(answer)
    count = iter(range(10**6))
    calls = drive(breaker, lambda t: next(count) % 4 != 3, 4.0)
    refused = sum(not allowed for _, allowed in calls)
    assert refused == 0, (
        f"it refused {refused} of {len(calls)} calls to a backend that fails one call in four "
        f"(failures = {breaker.params.failures}): it opens too easily"
    )


def _outage(t: float) -> bool:
    return not 1.0 <= t < 3.0


def _test_fails_fast_while_down(answer: type) -> None:
    """stops calling a backend that is down (open_s 0.25 s and 1 s)"""
    for open_s in (0.25, 1.0):
        breaker = _new(answer, open_s=open_s)
        calls = drive(breaker, _outage, 6.0)
        down = [allowed for t, allowed in calls if 1.3 <= t < 3.0]
        share = sum(down) / len(down)
        assert share <= 0.1, (
            f"with open_s = {open_s:g} it let {share:.0%} of the calls through during a 2 s "
            "outage; an open breaker fails them fast"
        )


def _test_recovers_when_the_backend_is_back(answer: type) -> None:
    """lets every call through from 2 s after the backend is back, and closes"""
    for open_s in (0.25, 1.0):
        breaker = _new(answer, open_s=open_s)
        calls = drive(breaker, _outage, 6.0)
        late = [allowed for t, allowed in calls if t >= 5.0]
        assert all(late), (
            f"with open_s = {open_s:g} it still refused calls 2 s after the backend came back; "
            "how does it find out that the backend is back?"
        )
        assert breaker.state == "closed", f"its state is {breaker.state!r} once all is well"


def _open_it(answer: type, **changes: Any) -> CircuitBreaker:
    breaker = _new(answer, **changes)
    for i in range(breaker.params.failures):
        assert breaker.allow(0.001 * i), "it refused a call before any failure"
        breaker.record(False, 0.001 * i)
    assert breaker.state == "open", (
        f"{breaker.params.failures} failures in a row (failures = {breaker.params.failures}) "
        f"left it {breaker.state!r}"
    )
    assert not breaker.allow(0.01), "it let a call through right after opening"
    return breaker


def _test_probes_while_half_open(answer: type) -> None:
    """half-open lets at most half_open_probes calls through; a failed probe opens it"""
    for probes in (1, 3):
        breaker = _open_it(answer, half_open_probes=probes, open_s=0.5)
        assert not breaker.allow(0.4), "it let a call through before open_s had passed"
        let = [breaker.allow(0.6 + 0.001 * i) for i in range(probes + 2)]
        assert sum(let) == probes, (
            f"after open_s, with half_open_probes = {probes} and no probe answered yet, it let "
            f"{sum(let)} calls through"
        )
        assert breaker.state == "half_open", f"its state while probing is {breaker.state!r}"
        breaker.record(False, 0.7)
        assert breaker.state == "open" and not breaker.allow(0.71), (
            "a failed probe must open it again at once"
        )


def _test_successes_and_no_verdicts(answer: type) -> None:
    """closes after successes good probes; a call without a verdict frees its probe"""
    breaker = _open_it(answer, successes=2, open_s=0.5)
    assert breaker.allow(0.6)
    breaker.record(None, 0.61)
    assert breaker.allow(0.62), "a probe that ended without a verdict kept its slot"
    breaker.record(True, 0.63)
    assert breaker.state == "half_open", "with successes = 2, one good probe closed it"
    assert breaker.allow(0.64)
    breaker.record(True, 0.65)
    assert breaker.state == "closed", "two good probes (successes = 2) did not close it"
    fresh = _new(answer)
    for i in range(50):
        assert fresh.allow(0.01 * i), "calls without a verdict opened it"
        fresh.record(None, 0.01 * i)


def _probe_gaps(breaker: CircuitBreaker, until: float, up: Any = lambda t: False) -> list[float]:
    """Seconds between the calls ``breaker`` let through once it had first opened (calls
    every 10 ms, each taking 5 ms), to 0.1 s."""
    times: list[float] = []
    opened = False
    for i in range(round(until / 0.01)):
        now = i * 0.01
        allowed = bool(breaker.allow(now))
        if allowed:
            if opened:
                times.append(now)
            breaker.record(bool(up(now)), now + 0.005)
        opened = opened or breaker.state == "open"
    return [round(b - a, 1) for a, b in pairwise(times)]


def _test_backs_off_while_down(answer: type) -> None:
    """each failed probe doubles the open time, up to 8 x open_s; closing resets it"""
    gaps = _probe_gaps(_new(answer, open_s=0.5), 20.0)
    want = [1.0, 2.0, 4.0, 4.0]
    assert gaps[:4] == want, (
        f"with open_s = 0.5 and a backend that stays down, the gaps between its probes were "
        f"{gaps[:5]} s; each failed probe doubles the wait, up to 8 x open_s: {want}"
    )
    # Down, back for a moment (it closes), down again: the wait starts from open_s again.
    gaps = _probe_gaps(_new(answer, open_s=0.5), 12.0, lambda t: 3.4 <= t < 5.0)
    last = [g for g in gaps if g >= 0.2][-3:]
    assert last[:2] == [0.5, 1.0], (
        f"after it closed and opened again, its probes came {last} s apart: closing starts "
        "the wait again from open_s"
    )


hide(
    "lab05.q3",
    solution=SolutionBreaker,
    tests=[
        _test_lets_a_healthy_backend_through,
        _test_tolerates_scattered_failures,
        _test_fails_fast_while_down,
        _test_recovers_when_the_backend_is_back,
        _test_probes_while_half_open,
        _test_successes_and_no_verdicts,
        _test_backs_off_while_down,
    ],
)

# --- q4: a retry policy -------------------------------------------------------------------


class SolutionRetry(RetryPolicy):
    """The reference answer to lab05.q4: retry throttling as gRPC does it (gRFC A6).

    A bucket of ``MAX`` tokens, full at first: a failed try takes one, a good
    one gives ``RATIO`` back. Retries are allowed while more than half the
    bucket is left. At 20 % errors the bucket stays full (0.8 x 0.5 > 0.2);
    when every try fails it empties after a few, and retries stop until
    successes fill it again.
    """

    MAX = 10.0
    RATIO = 0.5

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.tokens = self.MAX

    def on_result(self, attempt: int, ok: bool) -> None:
        """Fill the bucket on a success, drain it on a failure."""
        change = self.RATIO if ok else -1.0
        self.tokens = min(self.MAX, max(0.0, self.tokens + change))

    def retry_after(self, attempt: int, status: int) -> float | None:
        """At once while more than half the bucket is left; else give up."""
        return 0.0 if self.tokens > self.MAX / 2 else None


def retry_params() -> RetryConfig:
    """The retry layer of the hidden tests: four tries at most, the defaults otherwise."""
    return RetryConfig(max_attempts=4)


class FlakyBackend:
    """The rest of the stack: answers 500 at ``rate`` (seeded), else 200."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.rate = 0.0

    async def __call__(self, request: Request) -> Response:
        await asyncio.sleep(0)
        if self.rng.random() < self.rate:
            return error(500, "the backend failed")
        return Response(200, value=1)


def through_the_layer(
    answer: type, phases: list[tuple[float, int]], seed: int = 5, wave: int = 50
) -> list[tuple[float, float]]:
    """``answer`` in the service's retry layer, each phase ``(error_rate, requests)`` sent
    ``wave`` at a time; per phase (success share, tries per request)."""
    params = retry_params()
    layer = Retry(
        params, LayerContext(ServiceMetrics(), KeyStore(), lambda: ServiceConfig(), lambda: None)
    )
    layer.name = "retry"
    layer.policy = answer(params)
    backend = FlakyBackend(seed)

    async def one() -> tuple[bool, int]:
        response = await layer(Request("/task/io"), backend)
        return response.ok, 1 + int(response.headers.get("X-Retries", "0"))

    async def every() -> list[tuple[float, float]]:
        out = []
        for rate, n in phases:
            backend.rate = rate
            results: list[tuple[bool, int]] = []
            for i in range(0, n, wave):
                results += await asyncio.gather(*(one() for _ in range(min(wave, n - i))))
            out.append(
                (
                    sum(ok for ok, _ in results) / n,
                    sum(tries for _, tries in results) / n,
                )
            )
        return out

    async def bounded() -> list[tuple[float, float]]:
        return await asyncio.wait_for(every(), timeout=60.0)

    try:
        return list(run_sync(bounded()))
    except TimeoutError:
        raise AssertionError(
            "a few thousand requests took over a minute: does retry_after wait too long?"
        ) from None


def _test_rare_errors(answer: type) -> None:
    """at a 20 % error rate: at least 99 % succeed, at most 1.3 tries per request"""
    ((success, tries),) = through_the_layer(answer, [(0.2, 3000)])
    assert success >= 0.99, f"at a 20 % error rate only {success:.1%} of requests succeeded"
    assert tries <= 1.3, f"at a 20 % error rate it made {tries:.2f} tries per request"


def _test_everything_fails(answer: type) -> None:
    """when every call fails: at most 1.1 tries per request"""
    ((_, tries),) = through_the_layer(answer, [(1.0, 1000)])
    assert tries <= 1.1, (
        f"when every call failed it made {tries:.2f} tries per request: a retry storm on a "
        "backend that is down"
    )


def _test_outage_and_back(answer: type) -> None:
    """after working well: quiet during an outage, and retrying again once it is over"""
    healthy, down, back, settled = through_the_layer(
        answer, [(0.2, 1000), (1.0, 1000), (0.2, 500), (0.2, 2000)]
    )
    assert down[1] <= 1.1, (
        f"in an outage that followed a healthy spell it made {down[1]:.2f} tries per request: "
        "what it saved up while all went well let a retry storm through"
    )
    assert settled[0] >= 0.99, (
        f"once the backend was back (20 % errors) only {settled[0]:.1%} of requests succeeded: "
        "it stopped retrying for good"
    )


hide(
    "lab05.q4",
    solution=SolutionRetry,
    tests=[_test_rare_errors, _test_everything_fails, _test_outage_and_back],
)

# --- q5: reflection -----------------------------------------------------------------------

hide(
    "lab05.q5",
    model_answer=(
        "Retries without a budget multiply the load on a backend that is already failing: "
        "every request becomes max_attempts calls, so an overloaded backend gets several times "
        "the load that broke it and cannot come back (a retry storm). A breaker stops the calls "
        "altogether after a few failures and lets a probe through now and then, so the backend "
        "gets almost no load and the clients a quick error; a retry budget keeps retries to a "
        "share of the requests, so the extra load stays small when everything fails, while "
        "rare errors are still retried."
    ),
    rubric=(
        "retries without a budget multiply the load (up to max_attempts) on a failing backend",
        "a breaker stops calling it and fails fast, probing to find out when it is back",
        "a budget bounds the extra load to a share of requests yet still retries rare errors",
    ),
)
