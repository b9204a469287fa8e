"""What a service sets up so that it can be broken (``[chaos]``), and its cluster through it.

Before the cluster: its own redis-server (``chaos.redis_server``) and the fault
proxy with a ``redis`` link in front of ``cache.redis_url`` (``chaos.proxy``
names ``"redis"``); the configuration's ``cache.redis_url`` then points at what
the service should use. The cluster: with ``"scheduler"`` in ``chaos.proxy``
the Dask client connects to the scheduler through the proxy's ``scheduler``
link (a LocalCluster is started first, then the client connects through the
link; an external scheduler is proxied the same way). Closing ends the proxy
and the redis-server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

from scalelab.config import ServiceConfig

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

    from scalelab.chaos.proxy_process import ProxyProcess
    from scalelab.chaos.redis_server import RedisServer

log = logging.getLogger("scalelab.chaos")


def _hostport(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or (6379 if parts.scheme.startswith('redis') else 0)}"


def _with_hostport(url: str, hostport: str) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{hostport}" if userinfo else hostport
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class ChaosSetup:
    """The proxy and redis-server of one service, and its cluster connected through them."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.proxy: ProxyProcess | None = None
        self.redis: RedisServer | None = None
        self.links: dict[str, str] = {}
        """Each proxied link's upstream (host:port), by name."""

    async def before_cluster(self) -> ServiceConfig:
        """Start the redis-server and proxy asked for; the configuration to serve with."""
        chaos = self.config.chaos
        config = self.config
        if chaos.redis_server:
            from scalelab.chaos.redis_server import RedisServer

            self.redis = RedisServer()
            await asyncio.to_thread(self.redis.start)
            config = config.model_copy(
                update={"cache": config.cache.model_copy(update={"redis_url": self.redis.url})}
            )
        if chaos.proxy:
            from scalelab.chaos.proxy_process import ProxyProcess

            self.proxy = await asyncio.to_thread(ProxyProcess.start)
        if "redis" in chaos.proxy:
            assert self.proxy is not None
            upstream = _hostport(config.cache.redis_url)
            listen = await self.proxy.add_link("redis", upstream)
            self.links["redis"] = upstream
            url = _with_hostport(config.cache.redis_url, listen)
            config = config.model_copy(
                update={"cache": config.cache.model_copy(update={"redis_url": url})}
            )
        self.config = config
        return config

    async def start_cluster(self) -> tuple[Client, LocalCluster | None]:
        """The client and cluster; with a ``scheduler`` link the client goes through the proxy."""
        from scalelab.service.cluster import start_cluster

        cluster_config = self.config.cluster
        if "scheduler" not in self.config.chaos.proxy:
            return await start_cluster(cluster_config)
        from distributed import Client

        cluster = None
        scheduler = cluster_config.scheduler
        if scheduler is None:
            bare, cluster = await start_cluster(cluster_config)
            scheduler = str(cast(Any, bare.scheduler).address)
            await cast(Awaitable[None], bare.close())
        assert self.proxy is not None
        upstream = scheduler.split("://", 1)[-1]
        listen = await self.proxy.add_link("scheduler", upstream)
        self.links["scheduler"] = upstream
        try:
            client = await cast(
                Awaitable[Client],
                Client(
                    f"tcp://{listen}",
                    asynchronous=True,
                    timeout="30s",
                    direct_to_workers=cluster_config.direct_to_workers,
                ),
            )
        except BaseException:
            if cluster is not None:
                await cast(Awaitable[None], cluster.close())
            raise
        return client, cluster

    async def close(self) -> None:
        """End the proxy and the redis-server."""
        for part in (self.proxy, self.redis):
            if part is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(part.stop)
