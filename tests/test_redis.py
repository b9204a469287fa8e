"""The Redis tier with a real redis-server: shared entries, invalidation, and Redis going away
mid-run, which must degrade the service to its in-process tier without failing a request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from scalelab.config import CacheConfig, ServiceConfig
from scalelab.prometheus_text import metric_value
from scalelab.service.cache_origin import KeyStore
from scalelab.service.cache_stage import ServiceCache
from scalelab.service.cache_tiers import REDIS_PREFIX, Entry
from scalelab.service.metrics import ServiceMetrics
from scalelab.service.process import ServiceProcess, start_service

pytestmark = [pytest.mark.redis, pytest.mark.integration]


class Origin:
    """Counts computations; the value is the key's length."""

    def __init__(self) -> None:
        self.calls = 0

    async def compute(self, key: str, version: int) -> Entry:
        self.calls += 1
        return Entry(len(key), version, time.time(), "w", time.monotonic())

    def submit(self, key: str, version: int) -> Any:
        raise AssertionError("the service strategy never submits tasks itself")


def stage(url: str, tier: str) -> tuple[ServiceCache, Origin]:
    config = CacheConfig(policy="lru", size=10, tier=tier, redis_url=url, redis_retry_s=0.2)
    return ServiceCache(config, KeyStore(), ServiceMetrics()), Origin()


def test_two_services_share_entries_through_redis(redis_server: Any) -> None:
    async def go() -> tuple[list[str], int, int]:
        a, origin_a = stage(redis_server.url, "both")
        b, origin_b = stage(redis_server.url, "both")
        try:
            await a.clear()
            answers = [
                (await a.fetch("shared", origin_a)).status,
                (await b.fetch("shared", origin_b)).status,  # from Redis
                (await b.fetch("shared", origin_b)).status,  # now in b's own tier
            ]
            return answers, origin_a.calls + origin_b.calls, int(await b.redis_size() or 0)
        finally:
            await a.close()
            await b.close()

    answers, calls, keys = asyncio.run(go())
    assert answers == ["miss", "hit", "hit"] and calls == 1 and keys >= 1


@pytest.mark.parametrize("tier", ["redis", "both"])
def test_no_read_after_a_write_gets_an_older_version_through_redis(
    redis_server: Any, tier: str
) -> None:
    """The slow computation of the old version finishes after the write's invalidation;
    nothing old may be stored in Redis or served from it afterwards."""
    from tests.service.test_cache_stage import CountingOrigin, read_after_write_is_never_older

    class Clock:
        def __call__(self) -> float:
            return time.monotonic()

    config = CacheConfig(
        policy="lru", size=10, tier=tier, redis_url=redis_server.url, invalidate_on_write=True
    )
    cache = ServiceCache(config, KeyStore(), ServiceMetrics())
    try:
        got = read_after_write_is_never_older(cache, CountingOrigin(Clock(), delay_s=0.1))
    finally:
        asyncio.run(cache.close())
    assert got[:3] == [0, 1, "miss"]
    assert [version for version, _ in got[3:]] == [1, 1, 1]
    assert {status for _, status in got[3:]} == {"hit"}


@pytest.fixture(scope="module")
def own_redis(redis_server_factory: Any) -> Iterator[Any]:
    """A redis-server this module may stop and start again."""
    server = redis_server_factory().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def service(own_redis: Any) -> Iterator[ServiceProcess]:
    config = ServiceConfig.model_validate(
        {
            "cluster": {"workers": 1, "threads_per_worker": 2},
            "cache": {
                "policy": "lru",
                "tier": "redis",
                "redis_url": own_redis.url,
                "redis_timeout_ms": 50,
                "redis_retry_s": 0.5,
            },
        }
    )
    with start_service(config) as svc:
        yield svc


def metric(service: ServiceProcess, name: str) -> float:
    return metric_value(httpx.get(f"{service.url}/metrics", timeout=10).text, name)


def test_service_stores_in_redis_and_invalidates_there(
    service: ServiceProcess, own_redis: Any
) -> None:
    client = redis.Redis.from_url(own_redis.url)
    try:
        with httpx.Client(base_url=service.url, timeout=30) as c:
            assert c.get("/task/key/r1").headers["x-cache"] == "miss"
            assert client.exists(REDIS_PREFIX + "r1")
            assert c.get("/task/key/r1").headers["x-cache"] == "hit"
            assert c.delete("/cache/r1").status_code == 200
            assert not client.exists(REDIS_PREFIX + "r1")
    finally:
        client.close()


def test_redis_going_away_mid_run_degrades_without_failing_requests(
    service: ServiceProcess, own_redis: Any
) -> None:
    with httpx.Client(base_url=service.url, timeout=30) as c:
        c.get("/task/key/g")
        assert metric(service, "scalelab_cache_redis_up") == 1
        own_redis.stop()
        statuses = [c.get(f"/task/key/g{i % 5}").status_code for i in range(40)]
        assert statuses == [200] * 40
        assert metric(service, "scalelab_cache_redis_errors_total") >= 1
        assert metric(service, "scalelab_cache_redis_fallbacks_total") >= 30
        assert metric(service, "scalelab_cache_redis_up") == 0
        # the in-process tier stood in: repeated keys were hits
        assert c.get("/task/key/g1").headers["x-cache"] == "hit"
        own_redis.start()
        time.sleep(0.6)  # past redis_retry_s: the next request tries Redis again
        c.get("/task/key/back")
        assert metric(service, "scalelab_cache_redis_up") == 1
