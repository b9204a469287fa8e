"""The service over real HTTP with a real LocalCluster: endpoints, executors, admin, overload.

Two service processes are shared by the module (one per executor) to keep it fast;
tests that change their configuration put it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from scalelab.config import DEFAULT_STACK, ServiceConfig
from scalelab.procs import wait_until
from scalelab.prometheus_text import metric_value, samples
from scalelab.service.process import ServiceProcess, start_service
from scalelab.service.workloads import cpu_work

from .raw_http import RawResponse, raw_get, raw_many

pytestmark = pytest.mark.integration

TOKEN = "test-admin-token"
LIMITS = {"max_cpu_units": 5_000, "max_io_ms": 2_000.0}


@pytest.fixture(scope="module")
def direct() -> Iterator[ServiceProcess]:
    """A service with the direct executor on one worker process."""
    config = ServiceConfig.model_validate(
        {
            "cluster": {"workers": 1, "threads_per_worker": 1},
            "executor": {"kind": "direct"},
            "limits": LIMITS,
        }
    )
    with start_service(config) as service:
        yield service


@pytest.fixture(scope="module")
def batched() -> Iterator[ServiceProcess]:
    """A service with the batched executor, whose admin API needs a token."""
    config = ServiceConfig.model_validate(
        {
            "cluster": {"workers": 1, "threads_per_worker": 1},
            "executor": {"kind": "batched", "max_wait_ms": 20.0, "max_batch": 50},
            "limits": LIMITS,
        }
    )
    with start_service(config, admin_token=TOKEN) as service:
        yield service


def get(service: ServiceProcess, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{service.url}{path}", params=params, timeout=30)


def put_config(service: ServiceProcess, change: dict[str, Any]) -> httpx.Response:
    return httpx.put(
        f"{service.url}/admin/config", json=change, headers=service.admin_headers(), timeout=30
    )


@contextlib.contextmanager
def changed(service: ServiceProcess, change: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Apply a configuration change for the block, then put the old configuration back."""
    before = httpx.get(f"{service.url}/admin/config", headers=service.admin_headers()).json()
    response = put_config(service, change)
    assert response.status_code == 200, response.text
    try:
        yield response.json()
    finally:
        before.pop("cluster")
        assert put_config(service, before).status_code == 200


def sample(metrics_text: str, name: str, **labels: str) -> float:
    """The samples called ``name`` with ``labels`` (0 when absent), summed."""
    return metric_value(metrics_text, name, **labels)


def test_ping_answers_without_dask(direct: ServiceProcess) -> None:
    response = get(direct, "/ping")
    assert response.status_code == 200
    assert response.json() == {"pong": True}
    assert "x-worker" not in response.headers


def test_cpu_task_runs_on_a_worker(direct: ServiceProcess) -> None:
    response = get(direct, "/task/cpu", units=123)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] == cpu_work(123)
    assert response.headers["x-worker"].startswith("tcp://127.0.0.1:")
    assert response.headers["x-worker"] == body["worker"]
    assert response.headers["x-batch-size"] == "1"


def test_io_task_sleeps_the_drawn_delay(direct: ServiceProcess) -> None:
    start = time.perf_counter()
    response = get(direct, "/task/io", ms=60)
    assert time.perf_counter() - start >= 0.06
    assert response.json()["delay_ms"] == 60.0
    assert response.headers["x-worker"].startswith("tcp://")

    def delay(**params: Any) -> float:
        r = get(direct, "/task/io", local="true", **params)
        assert r.status_code == 200, r.text
        assert r.headers["x-worker"] == "local"
        return float(r.json()["delay_ms"])

    assert delay(ms=5, dist="exponential", seed=11) == delay(ms=5, dist="exponential", seed=11)
    assert len({delay(ms=5, dist="exponential", seed=s) for s in range(5)}) == 5
    bimodal = {delay(ms=1, dist="bimodal", slow_ms=30, slow_frac=0.5, seed=s) for s in range(20)}
    assert bimodal == {1.0, 30.0}


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/task/cpu", {"units": -1}, "units"),
        ("/task/cpu", {"units": 5_001}, "units"),
        ("/task/cpu", {"units": "many"}, "units"),
        ("/task/io", {"ms": 2_001}, "ms"),
        ("/task/io", {"ms": "nan"}, "ms"),
        ("/task/io", {"ms": 5, "dist": "uniform"}, "dist"),
        ("/task/io", {"ms": 5, "dist": "bimodal"}, "slow_ms"),
        ("/task/io", {"ms": 5, "dist": "bimodal", "slow_ms": 9, "slow_frac": 2}, "slow_frac"),
        ("/task/key/k1", {"units": -1}, "units"),
        ("/task/key/k1", {"units": "many"}, "units"),
        ("/task/key/k1", {"io_ms": 2_001}, "io_ms"),
        ("/task/key/k1", {"io_ms": "nan"}, "io_ms"),
    ],
)
def test_bad_input_gets_422_naming_the_parameter(
    direct: ServiceProcess, path: str, params: dict[str, Any], param: str
) -> None:
    response = get(direct, path, **params)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [d["loc"] for d in detail] == [["query", param]]
    if param in ("units", "ms", "io_ms") and params[param] != "many":
        assert "limits.max_" in detail[0]["msg"]


def test_health_reports_workers_and_scheduler_metrics(direct: ServiceProcess) -> None:
    health = direct.health()
    assert health["http_status"] == 200
    assert health["status"] == "ok" and health["workers"] == 1
    assert health["scheduler"].startswith("tcp://127.0.0.1:")
    assert health["dashboard"].endswith("/status")
    scheduler_metrics = httpx.get(health["scheduler_metrics"], timeout=10)
    assert scheduler_metrics.status_code == 200
    assert "dask_scheduler_workers" in scheduler_metrics.text


def test_metrics_count_requests_by_endpoint_and_status(direct: ServiceProcess) -> None:
    before = get(direct, "/metrics").text
    for _ in range(3):
        assert get(direct, "/task/cpu", units=1).status_code == 200
    assert get(direct, "/task/cpu", units=-5).status_code == 422
    text = get(direct, "/metrics").text
    for name in (
        "scalelab_requests_total",
        "scalelab_request_duration_seconds_bucket",
        "scalelab_in_flight",
        "scalelab_dask_tasks_submitted_total",
        "scalelab_batch_size_bucket",
        "scalelab_rejected_total",
        "scalelab_dask_workers",
    ):
        assert name in text, name
    ok = {"endpoint": "/task/cpu", "status": "200"}
    assert (
        sample(text, "scalelab_requests_total", **ok)
        - sample(before, "scalelab_requests_total", **ok)
        == 3
    )
    bad = {"endpoint": "/task/cpu", "status": "422"}
    assert sample(text, "scalelab_requests_total", **bad) >= 1
    assert (
        sample(text, "scalelab_dask_tasks_submitted_total")
        - sample(before, "scalelab_dask_tasks_submitted_total")
        == 3
    )
    assert sample(text, "scalelab_request_duration_seconds_bucket", endpoint="/task/cpu", le="30.0")
    assert sample(text, "scalelab_dask_workers") == 1
    metrics_requests = [  # the control plane is not counted
        x
        for x in samples(text)
        if x.name == "scalelab_requests_total" and x.labels.get("endpoint") == "/metrics"
    ]
    assert not metrics_requests, metrics_requests


def test_docs_and_openapi(direct: ServiceProcess) -> None:
    assert get(direct, "/docs").status_code == 200
    paths = get(direct, "/openapi.json").json()["paths"]
    assert {"/ping", "/task/cpu", "/task/io", "/health", "/metrics", "/admin/config"} <= set(paths)
    keyed = paths["/task/key/{key}"]["get"]["parameters"]
    assert [p["name"] for p in keyed] == ["key", "units", "io_ms"]


def test_admin_config_get_and_put(direct: ServiceProcess) -> None:
    config = get(direct, "/admin/config").json()
    assert ServiceConfig.model_validate(config).executor.kind == "direct"
    with changed(direct, {"faults": {"error_rate": 1.0}}) as now:
        assert now["faults"]["error_rate"] == 1.0
        assert now["executor"] == config["executor"]  # untouched sections stay
        failed = get(direct, "/ping")
        assert failed.status_code == 500 and "faults.error_rate" in failed.text
        assert get(direct, "/health").status_code == 200  # the control plane is not faulted
    assert get(direct, "/ping").status_code == 200


def test_bad_put_is_refused_with_field_names(direct: ServiceProcess) -> None:
    before = get(direct, "/admin/config").json()
    response = put_config(direct, {"admission": {"max_in_flight": 0}, "executor": {"nope": 1}})
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"admission.max_in_flight", "executor.nope"}
    refused = put_config(direct, {"cluster": {"workers": 4}})
    assert refused.status_code == 422 and "cluster.workers" in refused.json()["detail"]
    plugin = put_config(direct, {"executor": {"kind": "no_such_module_xyz:Executor"}})
    assert plugin.status_code == 422
    assert plugin.json()["errors"][0]["field"] == "executor.kind"
    not_object = httpx.put(f"{direct.url}/admin/config", json=[1, 2], timeout=10)
    assert not_object.status_code == 422
    assert get(direct, "/admin/config").json() == before


def test_put_swaps_the_stack_while_requests_run(direct: ServiceProcess) -> None:
    """A change of executor and stack lands while requests run: those in flight finish on
    the old stack, later ones take the new one, and none fails because of the swap."""

    async def swap_during_load() -> tuple[list[RawResponse], float, float]:
        targets = [f"/task/io?ms=100&seed={i}" for i in range(30)]
        load = asyncio.ensure_future(raw_many("127.0.0.1", direct.port, targets, concurrency=10))
        await asyncio.sleep(0.3)
        asked = time.perf_counter()
        change = {"executor": {"kind": "batched", "max_wait_ms": 10.0}, "stack": ["admission"]}
        response = await asyncio.to_thread(put_config, direct, change)
        answered = time.perf_counter()
        assert response.status_code == 200, response.text
        return await load, asked, answered

    try:
        responses, asked, answered = asyncio.run(swap_during_load())
        assert [r.status for r in responses] == [200] * 30
        old = "admission,faults,cache,executor"
        new = "admission,executor"
        assert {r.headers["x-layers"] for r in responses} == {old, new}
        across = [r for r in responses if r.started < asked and r.ended > answered]
        assert across, "no request was in flight across the swap"
        assert {r.headers["x-layers"] for r in across} == {old}  # finished where they began
        after = [r for r in responses if r.started > answered]
        assert after and {r.headers["x-layers"] for r in after} == {new}
        assert {r.headers["x-batch-size"] for r in across} == {"1"}
    finally:
        put_config(
            direct,
            {"executor": {"kind": "direct", "max_wait_ms": 5.0}, "stack": list(DEFAULT_STACK)},
        )
    assert get(direct, "/task/cpu", units=1).headers["x-batch-size"] == "1"


def test_stall_holds_data_plane_but_not_control_plane(direct: ServiceProcess) -> None:
    response = httpx.post(f"{direct.url}/admin/stall", params={"seconds": 1.0}, timeout=10)
    assert response.status_code == 200
    start = time.perf_counter()
    assert get(direct, "/health").status_code == 200
    assert get(direct, "/metrics").status_code == 200
    control_s = time.perf_counter() - start
    assert get(direct, "/ping").status_code == 200
    ping_s = time.perf_counter() - start
    assert control_s < 0.7
    assert 0.8 < ping_s < 5.0
    bad = httpx.post(f"{direct.url}/admin/stall", params={"seconds": 301}, timeout=10)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "seconds"]


def test_batched_executor_batches_concurrent_requests(batched: ServiceProcess) -> None:
    targets = [f"/task/cpu?units={i % 40}" for i in range(200)]
    responses = asyncio.run(raw_many("127.0.0.1", batched.port, targets, concurrency=100))
    assert [r.status for r in responses] == [200] * 200
    for i, r in enumerate(responses):
        assert json.loads(r.body)["result"] == cpu_work(i % 40)
        assert r.headers["x-worker"].startswith("tcp://127.0.0.1:")
    sizes = [int(r.headers["x-batch-size"]) for r in responses]
    assert max(sizes) > 1
    assert max(sizes) <= 50
    text = get(batched, "/metrics").text
    assert sample(text, "scalelab_dask_tasks_submitted_total") < 200


def test_admin_api_needs_the_token_when_set(batched: ServiceProcess) -> None:
    url = f"{batched.url}/admin/config"
    assert httpx.get(url, timeout=10).status_code == 401
    wrong = httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert httpx.post(f"{batched.url}/admin/stall?seconds=0", timeout=10).status_code == 401
    assert httpx.get(url, headers=batched.admin_headers(), timeout=10).status_code == 200
    assert get(batched, "/ping").status_code == 200  # the data plane needs no token


def test_overload_is_shed_quickly_with_bounded_memory(direct: ServiceProcess) -> None:
    limit = 8
    process = psutil.Process(direct.child.pid)
    rss_before = process.memory_info().rss
    seen_in_flight: list[float] = []

    async def watch(stop: asyncio.Event) -> None:
        while not stop.is_set():
            r = await raw_get("127.0.0.1", direct.port, "/metrics")
            seen_in_flight.append(sample(r.body.decode(), "scalelab_in_flight"))
            await asyncio.sleep(0.05)

    async def flood() -> list[RawResponse]:
        stop = asyncio.Event()
        watcher = asyncio.ensure_future(watch(stop))
        targets = ["/task/io?ms=100"] * 1500
        responses = await raw_many("127.0.0.1", direct.port, targets, concurrency=400)
        stop.set()
        await watcher
        return responses

    with changed(direct, {"admission": {"max_in_flight": limit, "retry_after_s": 2}}):
        responses = asyncio.run(flood())
        rss_after = process.memory_info().rss
        statuses = [r.status for r in responses]
        shed = [r for r in responses if r.status == 503]
        assert set(statuses) <= {200, 503}, set(statuses)
        assert statuses.count(200) >= limit
        assert len(shed) > 1000
        assert all(r.headers.get("retry-after") == "2" for r in shed)
        assert b"admission.max_in_flight" in shed[0].body
        shed_s = sorted(r.elapsed_s for r in shed)
        assert shed_s[len(shed_s) // 2] < 2.0  # answered at once, not queued behind the work
        assert max(seen_in_flight) <= limit
        assert rss_after - rss_before < 150 * 2**20
        metrics = get(direct, "/metrics").text
        assert sample(metrics, "scalelab_rejected_total") >= len(shed)
        assert sample(metrics, "scalelab_requests_total", endpoint="/task/io", status="503") >= len(
            shed
        )
        assert get(direct, "/ping").status_code == 200
    assert get(direct, "/task/cpu", units=1).status_code == 200


def _json_lines(service: ServiceProcess) -> list[dict[str, Any]]:
    assert service.log_path is not None
    lines = []
    for text in service.log_path.read_text().splitlines():
        if text.startswith("{"):
            lines.append(json.loads(text))
    return lines


def test_request_ids_are_echoed_and_travel_to_the_dask_task(direct: ServiceProcess) -> None:
    mine = get_with(direct, "/task/cpu", {"X-Request-Id": "test-req-1"}, units=3)
    assert mine.headers["x-request-id"] == "test-req-1"
    made = get(direct, "/ping").headers["x-request-id"]
    assert made and made != "test-req-1"

    def lines_of(rid: str) -> list[dict[str, Any]]:
        return [line for line in _json_lines(direct) if line.get("request_id") == rid]

    assert wait_until(lambda: len(lines_of("test-req-1")) == 2, 10, 0.1), lines_of("test-req-1")
    by_event = {line["event"]: line for line in lines_of("test-req-1")}
    request, task = by_event["request"], by_event["task"]
    assert request["endpoint"] == "/task/cpu" and request["status"] == 200
    assert request["layers"] == "admission,faults,cache,executor"
    assert task["fn"] == "cpu_work" and task["ok"] is True
    assert task["worker"] == request["worker"] == mine.headers["x-worker"]  # logged on the worker
    assert wait_until(lambda: lines_of(made), 10, 0.1)  # lines are written every 0.25 s
    time.sleep(0.5)
    assert [line["event"] for line in lines_of(made)] == ["request"]  # /ping runs no task

    with changed(direct, {"logging": {"requests": False, "tasks": False}}):
        quiet = get_with(direct, "/task/cpu", {"X-Request-Id": "test-req-2"}, units=3)
        assert quiet.headers["x-request-id"] == "test-req-2"
        time.sleep(0.5)
        assert lines_of("test-req-2") == []


def get_with(service: ServiceProcess, path: str, headers: dict[str, str], **params: Any) -> Any:
    return httpx.get(f"{service.url}{path}", params=params, headers=headers, timeout=30)
