"""The partitioned orders over real HTTP, on a real LocalCluster: every query against the
dataset's files, bad input, pruning, repartitioning under load, both engines, hot partitions.

One service is shared by the module; each test sets the router configuration it needs
(a change rebuilds the router, which repartitions from the layout in force).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from scalelab.config import ServiceConfig
from scalelab.data.layout import read_customers, read_info, read_orders_file
from scalelab.data.queries import GroupBy, Join, Lookup, Range
from scalelab.service.process import ServiceProcess, start_service
from tests.data.truth import assert_same, truth

pytestmark = pytest.mark.integration

ROWS, CUSTOMERS = 6_000, 300


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A service with 2 workers and the orders in 4 hash partitions (memory engine)."""
    path = tmp_path_factory.mktemp("data") / "orders"
    config = ServiceConfig.model_validate(
        {
            "stack": ["admission", "faults", "router"],
            "cluster": {"workers": 2, "threads_per_worker": 1},
            "router": {
                "partitions": 4,
                "dataset": {
                    "path": str(path),
                    "rows": ROWS,
                    "customers": CUSTOMERS,
                    "skew": "zipf",
                    "seed": 5,
                },
            },
        }
    )
    with start_service(config) as svc:
        yield svc


@pytest.fixture(scope="module")
def tables(service: ServiceProcess) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The dataset the service generated, read back from its Parquet files here."""
    info = read_info(service.config.router.dataset.path)
    orders = pd.concat([read_orders_file(str(info.path), f) for f in info.orders_files()])
    return orders.reset_index(drop=True), read_customers(str(info.path))


def get(service: ServiceProcess, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{service.url}{path}", params=params, timeout=60)


def router(service: ServiceProcess, **change: Any) -> dict[str, Any]:
    """Lay ``change`` over the router's configuration; wait for the new layout."""
    response = httpx.put(f"{service.url}/admin/config", json={"router": change}, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()["router"]


def metric(service: ServiceProcess, name: str, labels: str = "") -> float:
    """The sum of a metric's samples (those with exactly ``labels`` if given)."""
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    wanted = r"\{" + re.escape(labels) + r"\}" if labels else r"(?:\{[^}]*\})?"
    pattern = r"^" + re.escape(name) + wanted + r" (\S+)$"
    return sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))


def ts(tables: tuple[pd.DataFrame, pd.DataFrame], i: int) -> int:
    return int(tables[0]["ts"].sort_values().iloc[i])


def test_every_query_answers_as_the_files_say(service, tables) -> None:
    router(service, engine="memory", partitions=4, partitioner="hash", divisions=True)
    orders, customers = tables
    cases = [
        ("/data/lookup/0", {"limit": 5}, Lookup("customer_id", 0, 5)),
        ("/data/lookup/4321", {"column": "order_id"}, Lookup("order_id", 4321)),
        ("/data/range", {"low": ts(tables, 10), "high": ts(tables, 90)}, None),
        ("/data/groupby", {"by": "region", "agg": "mean"}, GroupBy("region", "mean")),
        ("/data/join", {"by": "country", "customer": 3}, Join("country", customer=3)),
    ]
    cases[2] = (cases[2][0], cases[2][1], Range("ts", ts(tables, 10), ts(tables, 90), 10))
    for path, params, query in cases:
        response = get(service, path, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert_same(body["result"], truth(query, orders, customers))
        assert response.headers["X-Layers"] == "admission,faults,router,executor"
        touched = response.headers["X-Partition"].split(",")
        assert [int(p) for p in touched] == body["partitions"]
        assert int(response.headers["X-Rows-Scanned"]) == body["rows_scanned"]
        assert response.headers["X-Worker"].startswith("tcp://")
    lookup = get(service, "/data/lookup/0").json()
    assert lookup["pruned_by"] == "partitioner" and len(lookup["partitions"]) == 1
    assert lookup["rows_scanned"] == lookup["result"]["count"]  # a binary search on the key
    full = get(service, "/data/groupby").json()
    assert full["partitions"] == [0, 1, 2, 3] and full["rows_scanned"] == ROWS


def test_bad_input_gets_422_naming_it(service) -> None:
    cases = [
        (
            "/data/range",
            {"column": "colour", "low": 1, "high": 2},
            "column",
            "unknown range column",
        ),
        ("/data/range", {"low": 9, "high": 3}, "low", "upside down"),
        ("/data/lookup/abc", {}, "value", "expected an integer for column customer_id"),
        ("/data/range", {"column": "amount", "low": "x", "high": 2}, "low", "a finite number"),
        ("/data/groupby", {"by": "payload"}, "by", "unknown group column"),
        ("/data/groupby", {"ts_low": 9, "ts_high": 3}, "ts_low", "upside down"),
        ("/data/join", {"by": "name"}, "by", "unknown customers column"),
        ("/data/lookup/1", {"limit": 5000}, "limit", "between 0 and 1000"),
    ]
    for path, params, param, message in cases:
        response = get(service, path, **params)
        assert response.status_code == 422, (path, params)
        detail = response.json()["detail"][0]
        assert detail["loc"][-1] == param and message in detail["msg"], detail
    write = httpx.post(f"{service.url}/data/orders", json={"rows": [{"customer_id": 1}]})
    assert write.status_code == 409 and "read-only" in write.json()["detail"]
    bad = httpx.post(f"{service.url}/data/orders", json={"rows": [{"customer_id": "x"}]})
    assert bad.status_code == 422 and "customer_id" in str(bad.json()["detail"][0]["loc"])


def test_without_divisions_every_query_scans_every_partition(service) -> None:
    router(service, divisions=False)
    try:
        lookup = get(service, "/data/lookup/0").json()
        assert lookup["partitions"] == [0, 1, 2, 3] and lookup["rows_scanned"] == ROWS
        assert lookup["pruned_by"].startswith("none")
    finally:
        router(service, divisions=True)


def test_load_per_partition_and_worker_is_in_metrics(service) -> None:
    before = metric(service, "scalelab_partition_requests_total")
    seconds = metric(service, "scalelab_worker_task_seconds_total")
    for _ in range(3):
        assert get(service, "/data/groupby").status_code == 200
    assert metric(service, "scalelab_partition_requests_total") == before + 12
    assert metric(service, "scalelab_worker_task_seconds_total") > seconds
    assert metric(service, "scalelab_router_partitions") == 4
    assert metric(service, "scalelab_partition_rows") == ROWS
    requests = metric(service, "scalelab_requests_total", 'endpoint="/data/groupby",status="200"')
    assert requests >= 3  # counted as data-plane load


async def _hammer(url: str, stop: asyncio.Event, outcomes: list[int]) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        key = 0
        while not stop.is_set():
            key = (key + 7) % CUSTOMERS
            response = await client.get(f"{url}/data/lookup/{key}?limit=1")
            outcomes.append(response.status_code)


def test_repartitioning_under_load_moves_few_keys_on_a_ring_and_fails_no_request(
    service, tables, four_hash_partitions
) -> None:
    router(service, partitioner="consistent", partitions=4)
    keys_moved = metric(service, "scalelab_router_keys_moved_total")
    keys = metric(service, "scalelab_router_keys_total")
    received = metric(service, "scalelab_worker_bytes_moved_total")

    async def scenario() -> list[int]:
        stop, outcomes = asyncio.Event(), []
        workers = [asyncio.create_task(_hammer(service.url, stop, outcomes)) for _ in range(4)]
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(timeout=120) as client:
            change = {"router": {"partitions": 5}}
            answer = await client.put(f"{service.url}/admin/config", json=change)
            assert answer.status_code == 200, answer.text
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*workers)
        return outcomes

    outcomes = asyncio.run(scenario())
    assert len(outcomes) > 20 and set(outcomes) == {200}
    moved = metric(service, "scalelab_router_keys_moved_total") - keys_moved
    looked = metric(service, "scalelab_router_keys_total") - keys
    assert looked == tables[0]["customer_id"].nunique()  # the keys the data holds
    assert moved / looked == pytest.approx(1 / 5, abs=0.07)  # 300 keys: about ±0.023 by chance
    layout = get(service, "/admin/data").json()
    assert len(layout["partitions"]) == 5 and layout["moves"][-1]["cause"] == "config"
    assert layout["moves"][-1]["keys_moved"] == moved
    # Rows crossed between workers; the router's watcher accounts Dask's transfer logs once
    # a second, so the counter is waited for (up to 10 s), not read at once.
    deadline = time.monotonic() + 10
    while metric(service, "scalelab_worker_bytes_moved_total") <= received:
        assert time.monotonic() < deadline, "no bytes moved between workers were accounted"
        time.sleep(0.2)


@pytest.fixture
def four_hash_partitions(service: ServiceProcess) -> Iterator[None]:
    """The module's layout (4 hash partitions) restored after a test, pass or fail."""
    yield
    router(service, partitioner="hash", partitions=4)


def test_sqlite_engine_answers_the_same_writes_and_shows_its_plan(service, tables) -> None:
    orders, customers = tables
    router(service, engine="sqlite", index=["customer_id"])
    try:
        lookup = get(service, "/data/lookup/0", limit=5, explain="true").json()
        assert_same(lookup["result"], truth(Lookup("customer_id", 0, 5), orders, customers))
        assert lookup["uses_index"] and not lookup["full_scan"]
        (plan,) = lookup["plan"].values()
        assert any("USING INDEX ix_customer_id" in line for line in plan)
        join = get(service, "/data/join", by="segment").json()
        assert_same(join["result"], truth(Join("segment"), orders, customers))
        rows = [{"customer_id": 11, "amount": 2.5}, {"customer_id": 12, "ts": 5}]
        write = httpx.post(f"{service.url}/data/orders", json={"rows": rows}, timeout=60)
        assert write.status_code == 200 and write.json()["result"] == {"inserted": 2}
        expected = int((orders["customer_id"] == 11).sum()) + 1
        assert get(service, "/data/lookup/11").json()["result"]["count"] == expected
        first = get(service, "/data/range", low=0, high=10).json()["result"]
        assert first["count"] == 1  # the zone map grew to cover ts = 5
        router(service, index=[])  # repartitioned from the databases: the writes move along
        scan = get(service, "/data/lookup/11", explain="true").json()
        assert scan["result"]["count"] == expected and scan["full_scan"]
    finally:
        router(service, engine="memory", index=["customer_id"])


def load_until(service: ServiceProcess, cause: str, path: Any) -> dict[str, Any]:
    """Send lookups (``path(i)``) until the router records a move of ``cause``; the layout."""
    layout: dict[str, Any] = {}
    for i in range(400):  # the router looks every 0.5 s; a busy machine may take a while
        assert get(service, path(i), limit=1).status_code == 200
        if i % 5 == 4:
            layout = get(service, "/admin/data").json()
            if any(m["cause"] == cause for m in layout["moves"]):
                return layout
    raise AssertionError(f"no {cause} after 400 lookups: {layout.get('moves')}")


def test_a_hot_partition_is_replicated_and_its_reads_spread(service) -> None:
    hot = {"mode": "replicate", "threshold": 1.2, "ways": 2, "check_s": 0.5, "min_requests": 5}
    router(service, hot=hot)
    try:
        layout = load_until(service, "replicate", lambda i: "/data/lookup/0")
        copies = {p["partition"]: p["workers"] for p in layout["partitions"]}
        (hot_partition,) = [p for p, w in copies.items() if len(w) == 2]
        workers = {get(service, "/data/lookup/0").headers["X-Worker"] for _ in range(6)}
        assert workers == set(copies[hot_partition])
    finally:
        router(service, hot={"mode": "off"})


def test_a_hot_partition_is_split(service) -> None:
    hot = {"mode": "split", "threshold": 1.2, "ways": 3, "check_s": 0.5, "min_requests": 5}
    rows = sum(p["rows"] for p in get(service, "/admin/data").json()["partitions"])
    assert rows >= ROWS  # and the orders the SQLite test wrote, which moved along since
    router(service, hot=hot)
    try:
        layout = load_until(service, "split", lambda i: f"/data/lookup/{i % 3}")
        assert len(layout["partitions"]) == 6
        assert sum(p["rows"] for p in layout["partitions"]) == rows
        split = layout["moves"][-1]
        assert split["cause"] == "split" and 0 < split["keys_moved"] < split["keys"]
        assert get(service, "/data/groupby").json()["rows_scanned"] == rows
    finally:
        router(service, hot={"mode": "off"})


def test_free_placement_leaves_the_worker_to_the_scheduler(service) -> None:
    router(service, placement="free")
    try:
        for _ in range(5):
            assert get(service, "/data/join", by="segment").status_code == 200
        assert get(service, "/admin/stack").json()["layers"][2]["params"]["placement"] == "free"
    finally:
        router(service, placement="pinned")


def test_a_stack_without_a_router_says_so(service) -> None:
    response = httpx.put(
        f"{service.url}/admin/config", json={"stack": ["admission", "faults"]}, timeout=60
    )
    assert response.status_code == 200
    try:
        answer = get(service, "/data/lookup/1")
        assert answer.status_code == 409 and "no 'router' layer" in answer.json()["detail"]
    finally:
        back = {"stack": ["admission", "faults", "router"]}
        assert httpx.put(f"{service.url}/admin/config", json=back, timeout=120).is_success
    assert get(service, "/data/lookup/1").status_code == 200


def test_a_bad_partitioner_or_ddl_is_refused_naming_the_field(service) -> None:
    for change, field in (
        ({"partitioner": "no_module:Nope"}, "router.partitioner"),
        ({"index_ddl": ["CREATE INDEX ix ON orders(colour)"]}, "router.index_ddl"),
        ({"partitions": 0}, "router.partitions"),
    ):
        response = httpx.put(f"{service.url}/admin/config", json={"router": change}, timeout=60)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"].startswith(field), response.json()


def test_the_dataset_folder_is_what_the_config_named(service) -> None:
    info = get(service, "/data/info").json()
    assert Path(info["path"]) == Path(service.config.router.dataset.path).resolve()
    assert (info["rows"], info["customers"], info["key"]) == (ROWS, CUSTOMERS, "customer_id")
