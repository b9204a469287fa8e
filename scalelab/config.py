"""The service's typed configuration: one model with a section per pipeline stage.

It loads from TOML, validates with messages that name the field, and is what the
admin API (``GET``/``PUT /admin/config``) reads and changes at run time.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from scalelab.data.config import RouterConfig
from scalelab.errors import ConfigError
from scalelab.failure_config import (
    BreakerConfig,
    ChaosConfig,
    HedgeConfig,
    LimitConfig,
    RetryConfig,
    TimeoutConfig,
)
from scalelab.validation import describe_validation_error


class Section(BaseModel):
    """Base for every configuration section: unknown keys are errors, assignments validate."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ClusterConfig(Section):
    """Where the work runs: an embedded LocalCluster, or an existing scheduler."""

    scheduler: str | None = Field(
        default=None,
        description="Address of an existing Dask scheduler (tcp://host:8786); "
        "empty starts a LocalCluster.",
    )
    workers: int = Field(default=2, ge=1, le=64, description="LocalCluster worker processes.")
    threads_per_worker: int = Field(default=1, ge=1, le=64)
    processes: bool = Field(default=True, description="LocalCluster workers as processes.")
    direct_to_workers: bool = Field(
        default=True,
        description="Fetch results and call actors on the workers directly, not through the "
        "scheduler (set false when only the scheduler is reachable from the service).",
    )
    allowed_failures: int = Field(
        default=3,
        ge=0,
        le=100,
        description="LocalCluster: workers a task may see die before it fails with "
        "KilledWorker (Dask's distributed.scheduler.allowed-failures).",
    )

    @field_validator("scheduler")
    @classmethod
    def _scheduler_address(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if "://" not in v:
            raise ValueError("scheduler address must look like tcp://host:8786")
        return v


BUILTIN_EXECUTORS: tuple[str, ...] = ("direct", "batched", "actor")
"""Executor kinds the service knows by name (the terminal layer of the stack)."""


class ExecutorConfig(Section):
    """The terminal layer: how requests become work on the Dask cluster.

    ``direct`` submits one Dask task per request; ``batched`` gathers requests
    into one task per batch (group commit: a batch leaves at once while fewer
    than ``max_in_flight_batches`` are in flight, else it fills until one
    returns, ``max_batch`` is reached or ``max_wait_ms`` passes); ``actor``
    calls one stateful Dask actor per worker directly, without the scheduler
    on the request path. A user class is named ``module:Class`` and takes
    its own parameters from ``params``.
    """

    kind: str = Field(
        default="direct",
        description="'direct', 'batched', 'actor', or a user Executor as 'module:Class'.",
    )
    max_batch: int = Field(default=100, ge=1, le=10_000, description="Items per batch at most.")
    max_wait_ms: float = Field(
        default=5.0, ge=0.0, le=1_000.0, description="Longest a request waits for its batch."
    )
    max_in_flight_batches: int = Field(
        default=0,
        ge=0,
        le=1_024,
        description="Batches in flight at once before requests gather (0: one per worker thread).",
    )
    choice: Literal["round_robin", "least_outstanding"] = Field(
        default="round_robin",
        description="actor: which worker's actor takes the next call.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters of a user executor, checked against its Params model.",
    )
    retries: int = Field(
        default=0,
        ge=0,
        le=100,
        description="direct and batched: Dask re-runs a task that raised this many times "
        "(client.submit(..., retries=N)).",
    )

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in BUILTIN_EXECUTORS and ":" not in v:
            raise ValueError(
                f"executor kind must be one of {', '.join(BUILTIN_EXECUTORS)} or 'module:Class'"
            )
        return v


class AdmissionConfig(Section):
    """Load shedding: requests over ``max_in_flight`` get 503 with Retry-After."""

    max_in_flight: int = Field(default=1_000, ge=1, le=100_000)
    retry_after_s: int = Field(default=1, ge=0, le=3_600)


class LimitsConfig(Section):
    """Largest work a single request may ask for; more gets 422 naming the parameter."""

    max_cpu_units: int = Field(default=100_000, ge=1)
    max_io_ms: float = Field(default=10_000.0, gt=0)


class FaultsConfig(Section):
    """Faults injected at the "ingress" point, switched on at run time through the admin API."""

    ingress_delay_ms: float = Field(
        default=0.0, ge=0.0, le=60_000.0, description="Delay added to every request at ingress."
    )
    error_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of requests answered 500 at ingress."
    )


class CacheConfig(Section):
    """The cache in front of the keyed workload (``GET /task/key/{key}``).

    ``policy`` and ``size`` govern the in-process tier; ``tier`` adds a shared
    Redis (``redis``: Redis only, with the in-process tier as a fallback while
    Redis is away; ``both``: in-process first, then Redis). ``strategy =
    "dask"`` instead keeps Dask futures of deterministic keys (``pure=True``)
    and lets Dask reuse their results; ``policy`` and ``size`` then choose which
    futures are held.
    """

    policy: str = Field(
        default="none",
        description="'none', 'lru', 'lfu', 'fifo', 'ttl', 'tlru', or an EvictionPolicy "
        "as 'module:Class'.",
    )
    size: int = Field(default=1_000, ge=1, le=10_000_000, description="Entries held at most.")
    strategy: Literal["service", "dask"] = Field(
        default="service",
        description="'service': values cached in the service; 'dask': Dask futures of "
        "deterministic keys held, results reused by Dask.",
    )
    tier: Literal["local", "redis", "both"] = Field(
        default="local", description="'local' (in-process), 'redis', or 'both' (local first)."
    )
    ttl_s: float = Field(
        default=0.0, ge=0.0, le=86_400.0, description="Seconds an entry is fresh; 0: forever."
    )
    stale_while_revalidate_s: float = Field(
        default=0.0,
        ge=0.0,
        le=86_400.0,
        description="After ttl_s, seconds an entry is still served (X-Cache: stale) "
        "while one background request refreshes it.",
    )
    stale_on_error: bool = Field(
        default=False,
        description="Serve a cached entry, however old, when computing a fresh one fails.",
    )
    coalesce: bool = Field(
        default=True, description="One computation per key in flight; others wait for it."
    )
    invalidate_on_write: bool = Field(
        default=False, description="PUT /kv/{key} removes the key from every tier."
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="The shared tier's Redis server."
    )
    redis_timeout_ms: float = Field(
        default=50.0, gt=0.0, le=10_000.0, description="Longest a Redis call may take."
    )
    redis_retry_s: float = Field(
        default=1.0,
        ge=0.0,
        le=3_600.0,
        description="After a Redis failure, serve from the in-process tier this long "
        "before trying Redis again.",
    )

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        builtins = ("none", "lru", "lfu", "fifo", "ttl", "tlru")
        if v not in builtins and ":" not in v:
            raise ValueError(f"cache policy must be one of {', '.join(builtins)} or 'module:Class'")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must look like redis://127.0.0.1:6379/0")
        return v

    @model_validator(mode="after")
    def _expiry(self) -> CacheConfig:
        if self.policy in ("ttl", "tlru") and self.ttl_s <= 0:
            raise ValueError(f"policy {self.policy!r} expires entries: set ttl_s above 0")
        return self


class LoggingConfig(Section):
    """Structured logs (JSON lines on standard error, so in a run's ``service.log``)."""

    requests: bool = Field(
        default=True, description="One line per data-plane request, with its request id."
    )
    tasks: bool = Field(
        default=True,
        description="The request id travels with the work; one line per call on the worker.",
    )


class OriginConfig(Section):
    """The keyed workload behind the cache: its default cost, and failures to inject."""

    units: int = Field(
        default=0, ge=0, description="CPU units per computation unless the request says."
    )
    io_ms: float = Field(
        default=0.0, ge=0.0, description="I/O ms per computation unless the request says."
    )
    error_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of computations that fail (a backend error).",
    )


BUILTIN_LAYERS: tuple[str, ...] = (
    "admission",
    "faults",
    "cache",
    "timeout",
    "retry",
    "breaker",
    "hedge",
    "limit",
    "router",
)
"""Layers the service knows by name; each takes its parameters from the section of that name."""

DEFAULT_STACK: tuple[str, ...] = ("admission", "faults", "cache")
"""The layers in front of the executor unless the configuration says otherwise."""

_LAYER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class LayerSpec(BaseModel):
    """A named layer of ``[layers.<name>]``: the class it uses and that class's parameters.

    ``use`` is a built-in layer's name or a user layer as ``module:Class``; every
    other key is a parameter, checked against the class's ``Params`` model when
    the service builds its stack (at start and on ``PUT /admin/config``).
    """

    model_config = ConfigDict(extra="allow")

    use: str = Field(description="A built-in layer's name, or a user layer as 'module:Class'.")

    @field_validator("use")
    @classmethod
    def _use(cls, v: str) -> str:
        if v not in BUILTIN_LAYERS and ":" not in v:
            raise ValueError(
                f"use = {v!r}: give a built-in layer ({', '.join(BUILTIN_LAYERS)}) "
                "or a user layer as 'module:Class'"
            )
        return v

    def params(self) -> dict[str, Any]:
        """The layer's parameters: every key but ``use``."""
        return dict(self.model_extra or {})


class ServiceConfig(Section):
    """The whole service configuration, one section per stage.

    ``stack`` orders the layers a data-plane request passes before the executor
    (the terminal layer, always last): built-in names, names of ``[layers.<name>]``
    tables, or ``module:Class`` paths of user layers with default parameters.
    """

    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    stack: list[str] = Field(
        default_factory=lambda: list(DEFAULT_STACK),
        description="Layers in front of the executor, outermost first.",
    )
    layers: dict[str, LayerSpec] = Field(
        default_factory=dict,
        description="Named layers with parameters: [layers.<name>] use = 'module:Class', ...",
    )
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    faults: FaultsConfig = Field(default_factory=FaultsConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    origin: OriginConfig = Field(default_factory=OriginConfig)
    timeout: TimeoutConfig = Field(default_factory=TimeoutConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    hedge: HedgeConfig = Field(default_factory=HedgeConfig)
    limit: LimitConfig = Field(default_factory=LimitConfig)
    chaos: ChaosConfig = Field(default_factory=ChaosConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    router: RouterConfig = Field(
        default_factory=RouterConfig,
        description="The router layer: partitioned data, its engine and placement (see "
        "docs/partitioning.md); in force when 'router' is in the stack.",
    )

    @field_validator("layers")
    @classmethod
    def _layer_names(cls, v: dict[str, LayerSpec]) -> dict[str, LayerSpec]:
        for name in v:
            if not _LAYER_NAME.match(name) or name in BUILTIN_LAYERS or name == "executor":
                raise ValueError(
                    f"layers.{name}: name a layer with a letter then letters, digits, '_' or '-', "
                    f"other than the built-in names ({', '.join((*BUILTIN_LAYERS, 'executor'))})"
                )
        return v

    @model_validator(mode="after")
    def _stack_names(self) -> ServiceConfig:
        seen: set[str] = set()
        for i, name in enumerate(self.stack):
            if name == "executor":
                raise ValueError(
                    f"stack.{i}: 'executor' is the terminal layer and always ends the stack; "
                    "leave it out and choose it with [executor] kind"
                )
            if name not in BUILTIN_LAYERS and name not in self.layers and ":" not in name:
                raise ValueError(
                    f"stack.{i} = {name!r} is not a layer: use a built-in "
                    f"({', '.join(BUILTIN_LAYERS)}), a [layers.{name}] table with "
                    "use = 'module:Class', or 'module:Class' itself"
                )
            if name in seen:
                raise ValueError(
                    f"stack.{i} = {name!r} appears twice; give the second one its own "
                    "[layers.<name>] table"
                )
            seen.add(name)
        return self

    def layer_params(self, name: str) -> tuple[str, dict[str, Any]]:
        """The class a stack entry uses (built-in name or path) and its raw parameters."""
        if name in self.layers:
            spec = self.layers[name]
            return spec.use, spec.params()
        if name in BUILTIN_LAYERS:
            return name, getattr(self, name).model_dump()
        return name, {}


def parse_config(data: dict[str, Any], source: str = "configuration") -> ServiceConfig:
    """Validate a mapping as a :class:`ServiceConfig`; raise :class:`ConfigError` naming fields."""
    try:
        return ServiceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source)) from None


def load_config(path: str | Path | None) -> ServiceConfig:
    """Load a service configuration from a TOML file (``None`` gives the defaults)."""
    if path is None:
        return ServiceConfig()
    p = Path(path)
    return parse_config(read_toml(p, "configuration", ConfigError), str(p))


def read_toml(path: Path, what: str, error: type[Exception]) -> dict[str, Any]:
    """Read a TOML file, raising ``error`` that names the file when it is absent or invalid."""
    if not path.is_file():
        raise error(f"{path}: {what} file not found; pass an existing TOML file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``dotted == "a.b"``, creating tables on the way."""
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: '{part}' is a value, not a table")
        node = child
    node[parts[-1]] = value


def get_path(data: dict[str, Any], dotted: str) -> Any:
    """Return the value at a dotted path, raising ``KeyError`` when it is absent."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value as a TOML value, falling back to a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
