"""A service whose scheduler and Redis links pass through its fault proxy, with a redis-server
of its own: network toxics, a partition, a Redis outage, and nothing left when parts die."""

from __future__ import annotations

import shutil
import signal
import statistics
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from scalelab.config import ServiceConfig
from scalelab.procs import wait_until
from scalelab.service.process import ServiceProcess, start_service

from .conftest import admin, fault, start_fault

# Latency toxics checked to tens of ms: run alone (tasks.py test's serial part).
pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.serial]


def children(service: ServiceProcess, needle: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if needle in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return [p for p in found if _owned(p, service)]


def _owned(proc: psutil.Process, service: ServiceProcess) -> bool:
    try:
        return any(parent.pid == service.child.pid for parent in proc.parents())
    except psutil.Error:
        return False


@pytest.fixture
def chaotic() -> Iterator[ServiceProcess]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    config = ServiceConfig.model_validate(
        {
            "cluster": {"workers": 1},
            "stack": ["admission", "timeout", "faults", "cache"],
            "chaos": {"proxy": ["scheduler", "redis"], "redis_server": True},
            "cache": {"policy": "lru", "tier": "redis", "redis_retry_s": 0.2},
        }
    )
    with start_service(config) as service:
        yield service


def timed_get(service: ServiceProcess, path: str = "/task/cpu?units=1") -> tuple[float, int]:
    started = time.monotonic()
    status = httpx.get(f"{service.url}{path}", timeout=30).status_code
    return time.monotonic() - started, status


def test_toxics_partition_and_redis_outage_then_nothing_left(chaotic: ServiceProcess) -> None:
    service = chaotic
    links = admin(service, "GET", "/admin/network").json()["links"]
    assert set(links) == {"scheduler", "redis"} and links["scheduler"]["connections"] >= 1
    base = statistics.median(timed_get(service)[0] for _ in range(5))
    with fault(service, "network", link="scheduler", toxic="latency", latency=40):
        slowed = statistics.median(timed_get(service)[0] for _ in range(5))
    assert slowed - base >= 0.075  # 40 ms each way on the scheduler's link

    # A partition: with a deadline the service answers 504 at once instead of hanging.
    assert admin(service, "PUT", "/admin/config", json={"timeout": {"deadline_ms": 300}}).is_success
    record = start_fault(service, "network", link="scheduler", toxic="down", duration_s=1.5)
    took, status = timed_get(service)
    assert status == 504 and took < 1.0
    assert wait_until(lambda: timed_get(service)[1] == 200, 20.0, 0.3)  # the client reconnected
    listed = {f["id"]: f for f in admin(service, "GET", "/admin/faults").json()["faults"]}
    assert listed[record["id"]]["ended"] - listed[record["id"]]["started"] == pytest.approx(
        1.5, abs=0.5
    )

    # Redis stopped: reads carry on from the in-process tier, and Redis comes back.
    assert timed_get(service, "/task/key/k1")[1] == 200
    redis = children(service, "redis-server --port")
    assert redis
    with fault(service, "redis_stop"):
        assert wait_until(
            lambda: not any(p.is_running() and p.status() != "zombie" for p in redis), 5.0
        )
        assert timed_get(service, "/task/key/k2")[1] == 200
        assert "scalelab_cache_redis_up 0.0" in admin(service, "GET", "/metrics").text
    time.sleep(0.3)
    timed_get(service, "/task/key/k3")
    assert wait_until(
        lambda: (
            timed_get(service, "/task/key/k4")[1] == 200
            and "scalelab_cache_redis_up 1.0" in admin(service, "GET", "/metrics").text
        ),
        10.0,
        0.3,
    )

    # The proxy killed outright, then the service itself: what runs in sessions of their own
    # (the proxy, the guarded redis-server) ends with it; the rest ends with its group.
    (proxy,) = children(service, "scalelab.chaos.proxy")
    redis_parts = children(service, "redis-server") + children(service, "scalelab.chaos.guard")
    kept = psutil.Process(service.child.pid).children(recursive=True)
    proxy.send_signal(signal.SIGKILL)
    assert wait_until(lambda: not _alive([proxy]), 5.0)
    assert timed_get(service, "/ping")[1] == 200  # the service carries on without it
    service.child.proc.send_signal(signal.SIGKILL)  # no clean-up runs in the service
    assert wait_until(lambda: not _alive(redis_parts), 10.0), _alive(redis_parts)
    service.stop()
    assert wait_until(lambda: not _alive(kept), 10.0), _alive(kept)


def _alive(procs: list[psutil.Process]) -> list[str]:
    left = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(" ".join(proc.cmdline())[:120])
        except psutil.NoSuchProcess:
            continue
    return left
