"""The state of one running service: configuration, cluster, executor, cache, faults, metrics.

Configuration changes at run time go through :meth:`ServiceState.apply_config`,
which validates the whole new configuration first and then swaps what changed:
a new executor is built before the old one is closed, so requests in flight
finish on the executor they started on. A changed ``cache`` section gives a
new, empty cache stage (the old one's requests in flight finish on it).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from scalelab.config import ServiceConfig
from scalelab.errors import ConfigError, PluginError
from scalelab.service.cache_origin import KeyStore, Origin
from scalelab.service.cache_policies import policy_class
from scalelab.service.cache_stage import CacheStage, make_cache_stage
from scalelab.service.executors import Executor, executor_class, make_executor
from scalelab.service.faults import Faults
from scalelab.service.metrics import ServiceMetrics

if TYPE_CHECKING:
    from distributed import Client, LocalCluster


class ConfigRejected(Exception):
    """A configuration change that is not applied; ``errors`` name the fields."""

    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


def deep_merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``change`` laid over it, table by table."""
    out = dict(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class ServiceState:
    """Everything the request path reads, owned by one app instance."""

    def __init__(self, config: ServiceConfig, admin_token: str | None = None) -> None:
        self.config = config
        self.admin_token = admin_token
        self.metrics = ServiceMetrics()
        self.faults = Faults(config.faults)
        self.in_flight = 0
        self.metrics.in_flight.set_function(lambda: self.in_flight)
        self.client: Client | None = None
        self.cluster: LocalCluster | None = None
        self.executor: Executor | None = None
        self.store = KeyStore()
        self.origin = Origin(
            self.store, lambda: self.executor, lambda: self.client, lambda: self.config.origin
        )
        self.cache: CacheStage = make_cache_stage(config.cache, self.origin, self.metrics)
        self.metrics.cache_entries.labels("local").set_function(lambda: self.cache.size())
        self._config_lock = asyncio.Lock()

    def require_executor(self) -> Executor:
        """The current executor (set once the cluster is up)."""
        if self.executor is None:
            raise RuntimeError("the service is not ready: no executor yet")
        return self.executor

    def validate_change(self, change: dict[str, Any]) -> ServiceConfig:
        """The configuration ``change`` would give, or :class:`ConfigRejected` naming fields."""
        merged = deep_merge(self.config.model_dump(mode="python"), change)
        try:
            new = ServiceConfig.model_validate(merged)
        except ValidationError as exc:
            errors = [
                {"field": ".".join(str(p) for p in err["loc"]) or "<root>", "message": err["msg"]}
                for err in exc.errors()
            ]
            text = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            raise ConfigRejected(f"invalid configuration: {text}", errors) from None
        if new.cluster != self.config.cluster:
            changed = [
                f"cluster.{name}"
                for name in type(new.cluster).model_fields
                if getattr(new.cluster, name) != getattr(self.config.cluster, name)
            ]
            errors = [
                {
                    "field": f,
                    "message": "cannot change while the service runs; restart it",
                }
                for f in changed
            ]
            raise ConfigRejected(
                f"{', '.join(changed)}: the cluster cannot change while the service runs; "
                "restart the service with the new configuration",
                errors,
            )
        if new.cache.policy != self.config.cache.policy:
            try:
                policy_class(new.cache.policy)
            except PluginError as exc:
                raise ConfigRejected(
                    str(exc), [{"field": "cache.policy", "message": str(exc)}]
                ) from None
        if new.executor.kind != self.config.executor.kind:
            try:
                executor_class(new.executor.kind)
            except PluginError as exc:
                raise ConfigRejected(
                    str(exc), [{"field": "executor.kind", "message": str(exc)}]
                ) from None
        return new

    async def apply_config(self, change: dict[str, Any]) -> ServiceConfig:
        """Validate ``change`` (a partial configuration) and apply it to the running service."""
        async with self._config_lock:
            new = self.validate_change(change)
            cache = None
            if new.cache != self.config.cache:
                try:
                    cache = make_cache_stage(new.cache, self.origin, self.metrics)
                except (PluginError, ConfigError) as exc:
                    raise ConfigRejected(
                        str(exc), [{"field": "cache.policy", "message": str(exc)}]
                    ) from None
            old_executor = None
            if new.executor != self.config.executor and self.client is not None:
                try:
                    replacement = make_executor(self.client, new, self.metrics)
                except (PluginError, ConfigError) as exc:
                    raise ConfigRejected(
                        str(exc), [{"field": "executor.kind", "message": str(exc)}]
                    ) from None
                except Exception as exc:
                    message = (
                        f"executor.kind = {new.executor.kind!r}: could not be constructed: {exc}"
                    )
                    raise ConfigRejected(
                        message, [{"field": "executor.kind", "message": message}]
                    ) from None
                old_executor, self.executor = self.executor, replacement
            old_cache = None
            if cache is not None:
                old_cache, self.cache = self.cache, cache
            self.config = new
            self.faults.config = new.faults
        if old_executor is not None:
            with contextlib.suppress(Exception):
                await old_executor.close()
        if old_cache is not None:
            with contextlib.suppress(Exception):
                await old_cache.close()
        return new
