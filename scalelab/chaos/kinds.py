"""The kinds of fault a running service can be given, and their parameters (no Dask here).

Each kind is a pydantic model of its parameters, so that a spec's
``[[faults]]`` entry, ``scalelab fault start`` and ``POST /admin/faults`` are
checked the same way, with messages that name the field. A fault starts when
it is posted and ends when it is deleted, when its ``duration_s`` runs out,
or at once for an instantaneous one (a kill, a close):

- ``worker_kill``: SIGKILL to a worker process; its nanny restarts it unless
  ``restart = false``. Instantaneous.
- ``worker_close``: a worker retired gracefully (its results moved, then closed; when
  Dask cannot move them it is closed all the same, ``moved = false``). Instantaneous.
- ``worker_pause``: SIGSTOP to a worker process; SIGCONT at the end.
- ``worker_churn``: kills random workers at Poisson times (``mean_interval_s``)
  until the end.
- ``task``: extra latency and errors in the tasks of chosen workers, until the end.
- ``network``: a toxic on a link of the fault proxy (or the link ``down``), until
  the end.
- ``redis_stop``: the service's own redis-server stopped; started again at the end.

``restore`` (LocalCluster only) brings back workers that were killed without
restart or closed, at a fault's end when ``restore = true``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from scalelab.validation import describe_validation_error

WorkerRef = int | str
"""A worker: its index among the workers sorted by address, its address, or ``"random"``."""


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _worker_ref(value: WorkerRef) -> WorkerRef:
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a worker index counts from 0")
        return value
    if value != "random" and "://" not in value:
        raise ValueError("name a worker by index (0), address (tcp://host:port) or 'random'")
    return value


class _OneWorker(_Params):
    worker: WorkerRef = Field(default=0, description="Index, address or 'random'.")

    @field_validator("worker")
    @classmethod
    def _worker(cls, v: WorkerRef) -> WorkerRef:
        return _worker_ref(v)


class WorkerKill(_OneWorker):
    """SIGKILL a worker process; with ``restart`` its nanny starts a new one."""

    restart: bool = Field(default=True, description="Let the nanny restart it.")
    restore: bool = Field(
        default=False, description="LocalCluster: start a replacement at the fault's end."
    )


class WorkerClose(_OneWorker):
    """Retire a worker gracefully: its results move elsewhere, then it closes."""

    restore: bool = Field(
        default=False, description="LocalCluster: start a replacement at the fault's end."
    )


class WorkerPause(_OneWorker):
    """SIGSTOP a worker process until the fault ends (SIGCONT): a gray failure."""


class WorkerChurn(_Params):
    """Kill random workers at the times of a Poisson process, as distributed.chaos.KillWorker."""

    mean_interval_s: float = Field(
        default=2.0, gt=0.0, le=3_600.0, description="Mean time between kills."
    )
    mode: Literal["kill", "close"] = Field(default="kill", description="SIGKILL, or retire.")
    restart: bool = Field(default=True, description="kill: let the nanny restart the worker.")
    seed: int = Field(default=0, ge=0, description="Seed of the kill times and choices.")


class TaskFault(_Params):
    """Extra latency (fixed plus a draw) and errors in the tasks of chosen workers."""

    workers: list[WorkerRef] = Field(
        default_factory=lambda: [0],  # type: ignore[arg-type]
        description="Workers slowed: indexes, addresses or '*'.",
    )
    delay_ms: float = Field(default=0.0, ge=0.0, le=600_000.0, description="Fixed extra ms.")
    dist: Literal["fixed", "exponential", "bimodal"] = Field(default="fixed")
    mean_ms: float = Field(default=0.0, ge=0.0, le=600_000.0, description="exponential: mean.")
    slow_ms: float = Field(default=0.0, ge=0.0, le=600_000.0, description="bimodal: slow ms.")
    slow_frac: float = Field(default=0.0, ge=0.0, le=1.0, description="bimodal: slow share.")
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="Share of tasks failed.")
    seed: int = Field(default=0, ge=0)

    @field_validator("workers")
    @classmethod
    def _workers(cls, v: list[WorkerRef]) -> list[WorkerRef]:
        if not v:
            raise ValueError("name at least one worker, or '*' for all")
        return [w if w == "*" else _worker_ref(w) for w in v]


TOXICS = ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "limit_data", "slicer")
"""Toxiproxy's toxics, by their names; ``down`` disables the link instead."""


class NetworkFault(_Params):
    """A toxic on one link of the fault proxy, as Toxiproxy names and means them."""

    link: Literal["scheduler", "redis"] = Field(description="The proxied link.")
    toxic: Literal[
        "latency",
        "bandwidth",
        "slow_close",
        "timeout",
        "reset_peer",
        "limit_data",
        "slicer",
        "down",
    ] = Field(description="The toxic, or 'down' to cut the link (a partition).")
    stream: Literal["upstream", "downstream", "both"] = Field(
        default="both", description="upstream: to the server; downstream: back to the client."
    )
    toxicity: float = Field(default=1.0, ge=0.0, le=1.0, description="Share of connections hit.")
    latency: float = Field(default=0.0, ge=0.0, description="latency: ms added to each chunk.")
    jitter: float = Field(default=0.0, ge=0.0, description="latency: +/- ms, uniform.")
    rate: float = Field(default=0.0, ge=0.0, description="bandwidth: KB/s.")
    delay: float = Field(default=0.0, ge=0.0, description="slow_close: ms; slicer: us per slice.")
    timeout: float = Field(default=0.0, ge=0.0, description="timeout, reset_peer: ms.")
    bytes: int = Field(default=0, ge=0, description="limit_data: bytes before closing.")
    average_size: int = Field(default=0, ge=0, description="slicer: bytes per slice.")
    size_variation: int = Field(default=0, ge=0, description="slicer: +/- bytes.")

    def attributes(self) -> dict[str, Any]:
        """The toxic's attributes, as Toxiproxy's API takes them."""
        names = {
            "latency": ("latency", "jitter"),
            "bandwidth": ("rate",),
            "slow_close": ("delay",),
            "timeout": ("timeout",),
            "reset_peer": ("timeout",),
            "limit_data": ("bytes",),
            "slicer": ("average_size", "size_variation", "delay"),
        }.get(self.toxic, ())
        return {name: getattr(self, name) for name in names}


class RedisStop(_Params):
    """Stop the service's own redis-server until the fault ends (``chaos.redis_server``)."""


KINDS: dict[str, type[BaseModel]] = {
    "worker_kill": WorkerKill,
    "worker_close": WorkerClose,
    "worker_pause": WorkerPause,
    "worker_churn": WorkerChurn,
    "task": TaskFault,
    "network": NetworkFault,
    "redis_stop": RedisStop,
}
"""Every kind of fault by name."""

INSTANT = frozenset({"worker_kill", "worker_close"})
"""Kinds that end as they start (unless their ``restore`` waits for the end)."""


class FaultParamsError(ValueError):
    """A fault's kind or parameters are not valid; the message names the field."""


def parse_fault(kind: str, params: dict[str, Any], where: str = "fault") -> BaseModel:
    """The parameters of a fault of ``kind``, validated; :class:`FaultParamsError` names fields."""
    model = KINDS.get(kind)
    if model is None:
        raise FaultParamsError(
            f"{where}: unknown fault kind {kind!r}; use one of {', '.join(KINDS)}"
        )
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise FaultParamsError(describe_validation_error(exc, f"{where} ({kind})")) from None


def lasting(kind: str, params: BaseModel) -> bool:
    """True when the fault holds until it is ended (not an instantaneous one)."""
    return kind not in INSTANT or bool(getattr(params, "restore", False))
