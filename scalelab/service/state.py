"""The state of one running service: configuration, cluster, the stack of layers, metrics.

Configuration changes at run time go through :meth:`ServiceState.apply_config`:
the whole new configuration is validated first (fields, then every layer's
class and parameters), the new stack is built (reusing the layers whose
settings did not change, so a cache keeps its entries), and then it replaces
the old one at once; requests in flight finish on the stack they started on.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from scalelab.config import ServiceConfig
from scalelab.errors import ConfigError, PluginError
from scalelab.service.cache_origin import KeyStore
from scalelab.service.layer import LayerContext
from scalelab.service.metrics import ServiceMetrics
from scalelab.service.stack import Pipeline, build_stack, plan_stack

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


def _plugin_rejection(exc: PluginError | ConfigError) -> ConfigRejected:
    field = getattr(exc, "field", None) or "stack"
    return ConfigRejected(str(exc), [{"field": field, "message": str(exc)}])


class ServiceState:
    """Everything the request path reads, owned by one app instance."""

    def __init__(self, config: ServiceConfig, admin_token: str | None = None) -> None:
        self.config = config
        self.admin_token = admin_token
        self.metrics = ServiceMetrics()
        self.store = KeyStore()
        self.client: Client | None = None
        self.cluster: LocalCluster | None = None
        self.context = LayerContext(
            self.metrics, self.store, config=lambda: self.config, client=lambda: self.client
        )
        self.pipeline = Pipeline()
        self.metrics.in_flight.set_function(lambda: self.pipeline.in_flight)
        self.metrics.cache_entries.labels("local").set_function(self.cache_size)
        self._config_lock = asyncio.Lock()

    def layer(self, name: str) -> Any:
        """The layer called ``name`` in the stack in force, or None."""
        stack = self.pipeline.stack
        return None if stack is None else stack.layer(name)

    def cache_size(self) -> int:
        """Keys the cache layer in force holds in the service process."""
        cache = self.layer("cache")
        stage = getattr(cache, "stage", None)
        return stage.size() if stage is not None else 0

    async def start(self) -> None:
        """Build the first stack (the cluster is up)."""
        self.pipeline.swap(await build_stack(self.config, self.context))

    async def close(self, deadline_s: float = 10.0) -> None:
        """Close every layer (the executor finishes what it has pending)."""
        await self.pipeline.close(deadline_s)

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
        fixed = ("cluster", "chaos")  # processes started with the service
        changed = [
            f"{section}.{name}"
            for section in fixed
            for name in type(getattr(new, section)).model_fields
            if getattr(getattr(new, section), name) != getattr(getattr(self.config, section), name)
        ]
        if changed:
            errors = [
                {"field": f, "message": "cannot change while the service runs; restart it"}
                for f in changed
            ]
            raise ConfigRejected(
                f"{', '.join(changed)}: the cluster and what the service started with it "
                "cannot change while the service runs; restart the service with the new "
                "configuration",
                errors,
            )
        try:
            plan_stack(new)
        except (PluginError, ConfigError) as exc:
            raise _plugin_rejection(exc) from None
        return new

    async def apply_config(self, change: dict[str, Any]) -> ServiceConfig:
        """Validate ``change`` (a partial configuration) and apply it to the running service."""
        async with self._config_lock:
            new = self.validate_change(change)
            if self.client is not None:
                try:
                    stack = await build_stack(new, self.context, previous=self.pipeline.stack)
                except (PluginError, ConfigError) as exc:
                    raise _plugin_rejection(exc) from None
                self.pipeline.swap(stack)
            self.config = new
        return new
