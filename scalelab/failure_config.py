"""Typed parameters of the failure-handling layers and of the fault set-up a service owns.

Each model is a section of :class:`scalelab.config.ServiceConfig` named like its
layer (``[timeout]``, ``[retry]``, ``[breaker]``, ``[hedge]``, ``[limit]``), so
``stack = [..., "retry", ...]`` takes its parameters from ``[retry]``; a second
instance takes its own table (``[layers.deadline] use = "timeout"``). ``[chaos]``
says which parts of a run the service sets up so that they can be broken: its
fault proxy and a Redis server of its own. docs/failure.md explains each field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RETRYABLE = [500, 502, 503, 504]
"""Statuses a failed attempt may carry to be retried (and that a breaker counts as failures)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _policy(value: str, builtins: tuple[str, ...], what: str) -> str:
    if value not in builtins and ":" not in value:
        raise ValueError(f"{what} must be one of {', '.join(builtins)} or 'module:Class'")
    return value


class TimeoutConfig(_Section):
    """``timeout``: answers 504 when the rest of the stack takes too long.

    ``attempt_ms`` bounds each call of the rest of the stack (put the layer
    inside ``retry`` for a per-attempt timeout); ``deadline_ms`` bounds the
    request from its arrival, whatever the retries: every attempt shares it.
    The rest of the stack is cancelled (a Dask future is released).
    """

    attempt_ms: float = Field(
        default=0.0, ge=0.0, le=600_000.0, description="Longest one call may take; 0: no limit."
    )
    deadline_ms: float = Field(
        default=0.0,
        ge=0.0,
        le=600_000.0,
        description="Longest a request may take from its arrival; 0: no deadline.",
    )


class RetryConfig(_Section):
    """``retry``: tries a failed request again, with backoff, jitter and a retry budget.

    An attempt is retried when its status is in ``retry_on`` and the policy
    allows it: at most ``max_attempts`` in all, waiting ``backoff`` between
    tries, and only while the budget holds a token (Finagle's RetryBudget:
    each request deposits ``budget_ratio`` tokens, a retry takes one, tokens
    last ``budget_ttl_s``, and ``budget_min_per_s`` retries a second are
    always allowed). ``policy = "module:Class"`` replaces the whole decision
    with a :class:`~scalelab.service.resilience.RetryPolicy`.
    """

    max_attempts: int = Field(default=3, ge=1, le=20, description="Tries of a request at most.")
    retry_on: list[int] = Field(
        default_factory=lambda: list(RETRYABLE), description="Statuses that are retried."
    )
    retry_open: bool = Field(
        default=False, description="Also retry answers of an open circuit breaker."
    )
    backoff: str = Field(
        default="exponential",
        description="'exponential', 'constant', 'none', or a Backoff as 'module:Class'.",
    )
    base_ms: float = Field(default=10.0, ge=0.0, le=60_000.0, description="First backoff.")
    max_ms: float = Field(default=1_000.0, ge=0.0, le=600_000.0, description="Longest backoff.")
    multiplier: float = Field(default=2.0, ge=1.0, le=100.0, description="Growth per attempt.")
    jitter: Literal["full", "equal", "none"] = Field(
        default="full",
        description="'full': uniform in [0, backoff]; 'equal': backoff/2 plus uniform in "
        "[0, backoff/2]; 'none': the backoff itself.",
    )
    budget: bool = Field(default=True, description="Limit retries to a share of requests.")
    budget_ratio: float = Field(
        default=0.2, ge=0.0, le=10.0, description="Retries allowed per request (tokens deposited)."
    )
    budget_min_per_s: float = Field(
        default=10.0, ge=0.0, le=100_000.0, description="Retries per second always allowed."
    )
    budget_ttl_s: float = Field(
        default=10.0, gt=0.0, le=3_600.0, description="Seconds a deposited token lasts."
    )
    policy: str = Field(
        default="", description="A RetryPolicy as 'module:Class' (replaces backoff and budget)."
    )

    @field_validator("backoff")
    @classmethod
    def _backoff(cls, v: str) -> str:
        return _policy(v, ("exponential", "constant", "none"), "retry.backoff")

    @field_validator("policy")
    @classmethod
    def _policy_path(cls, v: str) -> str:
        return v if not v else _policy(v, (), "retry.policy")


class BreakerConfig(_Section):
    """``breaker``: a circuit breaker; while open, requests fail fast with 503.

    ``policy = "consecutive"`` opens after ``failures`` failures in a row;
    ``"rate"`` when at least ``min_requests`` in the last ``window_s`` failed
    at ``failure_rate`` or more. After ``open_s`` it lets ``half_open_probes``
    requests through at once; ``successes`` successful probes close it, one
    failed probe opens it again. A :class:`~scalelab.service.resilience.CircuitBreaker`
    as ``module:Class`` replaces the policy.
    """

    policy: str = Field(
        default="consecutive",
        description="'consecutive', 'rate', or a CircuitBreaker as 'module:Class'.",
    )
    failures: int = Field(default=5, ge=1, le=100_000, description="consecutive: failures to open.")
    failure_rate: float = Field(default=0.5, gt=0.0, le=1.0, description="rate: share to open.")
    window_s: float = Field(default=10.0, gt=0.0, le=3_600.0, description="rate: window.")
    min_requests: int = Field(default=20, ge=1, le=1_000_000, description="rate: least calls.")
    open_s: float = Field(default=1.0, ge=0.0, le=3_600.0, description="Open before half-open.")
    half_open_probes: int = Field(default=1, ge=1, le=10_000, description="Probes in flight.")
    successes: int = Field(default=1, ge=1, le=10_000, description="Probes to close it.")
    failure_statuses: list[int] = Field(
        default_factory=lambda: list(RETRYABLE), description="Statuses that count as failures."
    )
    retry_after_s: int = Field(default=1, ge=0, le=3_600, description="Retry-After when open.")

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        return _policy(v, ("consecutive", "rate"), "breaker.policy")


class HedgeConfig(_Section):
    """``hedge``: sends a second copy of a slow read, takes the first answer, cancels the other.

    The hedge leaves after ``delay_ms`` when set, else after the running
    ``percentile`` of recent answers (at least ``min_delay_ms``; no hedge until
    ``min_samples`` answers were seen). Hedges are at most ``max_extra`` of the
    requests (a budget, as for retries). Only ``GET`` requests are hedged. A
    :class:`~scalelab.service.resilience.HedgeDelay` as ``module:Class``
    chooses the delay instead.
    """

    delay_ms: float = Field(default=0.0, ge=0.0, le=600_000.0, description="Fixed delay; 0: p-ile.")
    percentile: float = Field(default=95.0, gt=0.0, lt=100.0, description="Running percentile.")
    window: int = Field(default=1_000, ge=10, le=1_000_000, description="Answers remembered.")
    min_samples: int = Field(default=20, ge=1, le=1_000_000, description="Answers before hedging.")
    min_delay_ms: float = Field(default=1.0, ge=0.0, le=600_000.0, description="Shortest delay.")
    max_extra: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Hedges per request at most (a budget)."
    )
    policy: str = Field(default="", description="A HedgeDelay as 'module:Class'.")

    @field_validator("policy")
    @classmethod
    def _policy_path(cls, v: str) -> str:
        return v if not v else _policy(v, (), "hedge.policy")


class LimitConfig(_Section):
    """``limit``: an adaptive concurrency limit; requests over it are shed with 503.

    ``aimd`` (Netflix's AIMDLimit) adds ``increase`` to the limit after a
    success while at least half of it is in use, and multiplies it by
    ``backoff_ratio`` after a drop (an error, a timeout, or a latency above
    ``latency_ms`` when set). ``gradient`` (after Netflix's Gradient2Limit)
    scales the limit by the ratio of the long-term to the recent latency,
    plus ``queue_size``. A :class:`~scalelab.service.resilience.ConcurrencyLimit`
    as ``module:Class`` replaces the algorithm.
    """

    algorithm: str = Field(
        default="aimd", description="'aimd', 'gradient', or a ConcurrencyLimit as 'module:Class'."
    )
    initial: int = Field(default=20, ge=1, le=100_000, description="The limit at start.")
    min_limit: int = Field(default=1, ge=1, le=100_000)
    max_limit: int = Field(default=1_000, ge=1, le=100_000)
    backoff_ratio: float = Field(default=0.9, gt=0.0, lt=1.0, description="aimd: on a drop.")
    increase: float = Field(default=1.0, gt=0.0, le=1_000.0, description="aimd: on a success.")
    latency_ms: float = Field(
        default=0.0, ge=0.0, le=600_000.0, description="aimd: slower counts as a drop; 0: off."
    )
    smoothing: float = Field(default=0.2, gt=0.0, le=1.0, description="gradient: step weight.")
    tolerance: float = Field(default=1.5, ge=1.0, le=100.0, description="gradient: RTT ratio.")
    queue_size: int = Field(default=4, ge=0, le=10_000, description="gradient: headroom.")
    failure_statuses: list[int] = Field(
        default_factory=lambda: list(RETRYABLE), description="Statuses that count as drops."
    )
    retry_after_s: int = Field(default=1, ge=0, le=3_600)

    @field_validator("algorithm")
    @classmethod
    def _algorithm(cls, v: str) -> str:
        return _policy(v, ("aimd", "gradient"), "limit.algorithm")

    @model_validator(mode="after")
    def _bounds(self) -> LimitConfig:
        if not self.min_limit <= self.initial <= self.max_limit:
            raise ValueError("limit: need min_limit <= initial <= max_limit")
        return self


class ChaosConfig(_Section):
    """What the service sets up at start so that it can be broken at run time (fixed while it runs).

    ``proxy`` lists the links that pass through the service's fault proxy
    (a child process with Toxiproxy's toxics): ``"scheduler"`` (the Dask
    client's connection to the scheduler) and ``"redis"`` (the cache's Redis).
    ``redis_server`` starts a redis-server owned by the service (no
    persistence, a free loopback port) and points ``cache.redis_url`` at it,
    so that a fault can stop and restart it.
    """

    proxy: list[Literal["scheduler", "redis"]] = Field(
        default_factory=list, description="Links through the fault proxy: scheduler, redis."
    )
    redis_server: bool = Field(
        default=False, description="Start a redis-server of the service's own (for outages)."
    )
