"""The cache stage in a real service over HTTP (real LocalCluster), and a real Locust run of
scenarios/caching.py. One service is shared; each test sets the cache it needs at run time."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from scalelab.config import ServiceConfig
from scalelab.errors import PluginError
from scalelab.procs import Child
from scalelab.prometheus_text import metric_value
from scalelab.service.process import ServiceProcess, start_service
from scalelab.service.workloads import keyed_value

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


PLUGINS = Path(__file__).parent / "plugin_modules"


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    config = ServiceConfig.model_validate(
        {"cluster": {"workers": 1, "threads_per_worker": 2}, "cache": {"policy": "lru"}}
    )
    with pytest.MonkeyPatch.context() as mp:  # the service can import the test's own plugins
        mp.setenv(
            "PYTHONPATH",
            os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")])),
        )
        with start_service(config) as svc:
            yield svc


def set_cache(service: ServiceProcess, **cache: Any) -> None:
    """A new, empty cache stage with these settings (the rest back to defaults)."""
    defaults = ServiceConfig().cache.model_dump()
    body = {"cache": {**defaults, **cache}, "origin": {"error_rate": 0.0}}
    r = httpx.put(f"{service.url}/admin/config", json=body, timeout=30)
    assert r.status_code == 200, r.text


def metric(service: ServiceProcess, name: str) -> float:
    return metric_value(httpx.get(f"{service.url}/metrics", timeout=10).text, name)


def test_miss_hit_write_and_staleness_headers(service: ServiceProcess) -> None:
    set_cache(service, policy="lru", ttl_s=60.0)
    with httpx.Client(base_url=service.url, timeout=30) as c:
        first = c.get("/task/key/k1", params={"units": 5})
        second = c.get("/task/key/k1")
        assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
        assert first.json()["value"] == second.json()["value"] == keyed_value("k1", 0)
        assert first.headers["x-worker"].startswith("tcp://")
        assert "x-worker" not in second.headers
        written = c.put("/kv/k1").json()
        assert written["version"] == 1
        stale = c.get("/task/key/k1")  # still cached at version 0
        assert stale.headers["x-version"] == "0" and float(stale.headers["x-stale-ms"]) > 0
        assert float(stale.headers["x-age-ms"]) >= float(stale.headers["x-stale-ms"])
        assert c.delete("/cache/k1").status_code == 200
        assert c.delete("/cache/k1").status_code == 404
        fresh = c.get("/task/key/k1")
        assert fresh.headers["x-cache"] == "miss" and fresh.headers["x-version"] == "1"
        assert fresh.json()["value"] == keyed_value("k1", 1) != keyed_value("k1", 0)
        assert c.delete("/cache").json()["removed"] == 1
        assert c.get("/task/key/bad key").status_code == 422
        assert c.get("/task/key/k1", params={"units": -1}).status_code == 422


def test_stampede_on_an_expired_key_makes_one_origin_call(service: ServiceProcess) -> None:
    set_cache(service, policy="ttl", ttl_s=2.0, coalesce=True)

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=service.url, timeout=30, limits=limits) as c:
            # open every connection first, so the burst arrives at once
            await asyncio.gather(*(c.get("/ping") for _ in range(100)))
            await c.get("/task/key/hot", params={"io_ms": 800})
            await asyncio.sleep(2.1)  # the entry expires (and the burst fits in its next TTL)
            return list(
                await asyncio.gather(
                    *(c.get("/task/key/hot", params={"io_ms": 300}) for _ in range(100))
                )
            )

    before = metric(service, "scalelab_cache_origin_calls_total")
    answers = asyncio.run(burst())
    calls = metric(service, "scalelab_cache_origin_calls_total") - before
    assert all(r.status_code == 200 for r in answers)
    kinds = [r.headers["x-cache"] for r in answers]
    assert calls == 2  # the first read, then one computation for the whole burst
    # one request computed; the rest waited for it, or came after it and hit
    assert kinds.count("miss") == 1 and kinds.count("coalesced") >= 1
    assert set(kinds) <= {"miss", "coalesced", "hit"}


def test_stale_on_error_keeps_answering_when_the_origin_fails(service: ServiceProcess) -> None:
    set_cache(service, policy="lru", ttl_s=0.2, stale_on_error=True)
    with httpx.Client(base_url=service.url, timeout=30) as c:
        assert c.get("/task/key/s").headers["x-cache"] == "miss"
        r = c.put(f"{service.url}/admin/config", json={"origin": {"error_rate": 1.0}})
        assert r.status_code == 200
        try:
            import time

            time.sleep(0.3)
            stale = c.get("/task/key/s")
            assert stale.status_code == 200 and stale.headers["x-cache"] == "stale"
            assert c.get("/task/key/never-cached").status_code == 500
        finally:
            c.put(f"{service.url}/admin/config", json={"origin": {"error_rate": 0.0}})


def test_dask_strategy_reuses_deterministic_keys(service: ServiceProcess) -> None:
    set_cache(service, strategy="dask", policy="lru", size=10)
    with httpx.Client(base_url=service.url, timeout=30) as c:
        kinds = [c.get("/task/key/d").headers["x-cache"] for _ in range(3)]
        assert kinds == ["miss", "hit", "hit"]
        c.put("/kv/d")
        assert c.get("/task/key/d").headers["x-cache"] == "miss"


def test_a_plugged_policy_runs_in_the_service_and_a_bad_one_is_refused(
    service: ServiceProcess,
) -> None:
    set_cache(service, policy="mru_policy:MRU", size=3)
    with httpx.Client(base_url=service.url, timeout=30) as c:
        for _ in range(2):
            hits = [c.get(f"/task/key/s{i}").headers["x-cache"] for i in range(5)]
        assert hits == ["hit", "hit", "miss", "miss", "hit"]  # MRU; LRU would never hit
        r = c.put("/admin/config", json={"cache": {"policy": "scalelab.config:ServiceConfig"}})
        assert r.status_code == 422 and "missing method 'victim'" in r.text
    from scalelab.service.app import create_app

    with pytest.raises(PluginError, match="cache.policy"):
        create_app(ServiceConfig.model_validate({"cache": {"policy": "nope_mod:Policy"}}))


def test_a_locust_run_of_the_caching_scenario_records_cache_columns(
    service: ServiceProcess, tmp_path: Path
) -> None:
    set_cache(service, policy="lru", size=50, ttl_s=0.5)
    args = [sys.executable, "-m", "locust", "-f", str(ROOT / "scenarios" / "caching.py")]
    args += ["--headless", "--host", service.url, "-u", "4", "-r", "4", "-t", "3s"]
    args += ["--stop-timeout", "2", "--exit-code-on-error", "0", "--results-dir", str(tmp_path)]
    args += ["--keys", "100", "--dist", "zipf", "--alpha", "1.1", "--write-ratio", "0.1"]
    child = Child(args, "locust", log_path=tmp_path / "locust.log")
    try:
        assert child.wait(60) == 0, child.log_tail()
    finally:
        child.stop(5)
    rows = pq.read_table(tmp_path / "requests.parquet").to_pylist()
    reads = [r for r in rows if r["name"] == "/task/key"]
    writes = [r for r in rows if r["name"] == "/kv"]
    assert reads and writes and all(r["ok"] for r in rows)
    assert {r["cache"] for r in reads} >= {"hit", "miss"}
    assert all(r["version"] is not None and r["age_ms"] is not None for r in reads)
    assert any(r["stale_ms"] > 0 for r in reads)  # writes made some cached reads stale
    assert 0.03 < len(writes) / len(rows) < 0.2
