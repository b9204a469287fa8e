"""The service's typed configuration: one model with a section per pipeline stage.

It loads from TOML, validates with messages that name the field, and is what the
admin API (``GET``/``PUT /admin/config``) reads and changes at run time.
"""

from __future__ import annotations

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

from scalelab.errors import ConfigError
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

    @field_validator("scheduler")
    @classmethod
    def _scheduler_address(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if "://" not in v:
            raise ValueError("scheduler address must look like tcp://host:8786")
        return v


class ExecutorConfig(Section):
    """How requests become Dask tasks: one per request, or gathered into batches."""

    kind: str = Field(
        default="direct",
        description="'direct', 'batched', or a user class as 'module:Class'.",
    )
    max_batch: int = Field(default=100, ge=1, le=10_000, description="Items per batch at most.")
    max_wait_ms: float = Field(
        default=5.0, ge=0.0, le=1_000.0, description="Longest a request waits for its batch."
    )

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in ("direct", "batched") and ":" not in v:
            raise ValueError("executor kind must be 'direct', 'batched' or 'module:Class'")
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


class ServiceConfig(Section):
    """The whole service configuration, one section per stage."""

    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    faults: FaultsConfig = Field(default_factory=FaultsConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    origin: OriginConfig = Field(default_factory=OriginConfig)


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
