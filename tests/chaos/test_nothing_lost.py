"""Nothing is lost: under a worker kill with retries on, every request Locust sent ends as a
success, an error or a timeout, and Locust, the recorder and the service count the same."""

from __future__ import annotations

import csv
import time
from collections import Counter
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from scalelab.config import ServiceConfig
from scalelab.experiment.faults import requests_seen
from scalelab.experiment.locust_command import locust_args
from scalelab.experiment.spec import parse_spec
from scalelab.procs import Child
from scalelab.service.process import start_service

pytestmark = pytest.mark.integration

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def service_counts(url: str) -> Counter[int]:
    """Requests the service answered on /task/io, by status, from its /metrics."""
    counts: Counter[int] = Counter()
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith('scalelab_requests_total{endpoint="/task/io"'):
            status = int(line.split('status="', 1)[1].split('"', 1)[0])
            counts[status] += int(float(line.rsplit(" ", 1)[1]))
    return counts


def test_a_worker_kill_with_retries_loses_nothing_and_every_count_agrees(tmp_path: Path) -> None:
    config = ServiceConfig.model_validate(
        {
            "cluster": {"workers": 2, "allowed_failures": 0},  # a kill fails its tasks at once
            "stack": ["admission", "retry", "faults", "cache"],
            "retry": {"max_attempts": 3, "base_ms": 20, "budget": False},
        }
    )
    spec = parse_spec(
        {
            "name": "nothing_lost",
            "locustfile": "baseline.py",
            "duration_s": 6,
            "load": {"users": 4},
            # Tasks of 200 ms keep both 1-thread workers holding tasks nearly all the time
            # (4 in flight), so the kill catches some; with 30 ms a busy machine could leave
            # the victim between tasks at the kill (seen once in a full run of the suite).
            "scenario": {"endpoint": "io", "io_ms": 200},
        },
        SCENARIOS,
    )
    with start_service(config) as service:
        locust = Child(
            locust_args(spec, service.url, tmp_path),
            "locust",
            log_path=tmp_path / "locust" / "console.log",
        )
        try:
            deadline = time.monotonic() + 60
            while requests_seen(httpx.get(f"{service.url}/metrics").text) < 20:
                assert time.monotonic() < deadline and locust.alive(), locust.log_tail()
                time.sleep(0.05)
            time.sleep(0.5)
            kill = httpx.post(
                f"{service.url}/admin/faults", json={"kind": "worker_kill", "params": {"worker": 0}}
            )
            assert kill.status_code == 201, kill.text
            assert locust.wait(60) == 0, locust.log_tail()
        finally:
            locust.stop(5)
        served = service_counts(service.url)
        retried = sum(
            float(line.rsplit(" ", 1)[1])
            for line in httpx.get(f"{service.url}/metrics").text.splitlines()
            if line.startswith('scalelab_layer_outcomes_total{layer="retry",outcome="retried"}')
        )

    rows = pq.read_table(tmp_path / "requests.parquet").to_pandas()
    with open(tmp_path / "locust" / "stats_stats.csv", newline="") as f:
        total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")

    # Every request sent ended as a success, an error or a timeout, and was counted once.
    assert set(rows["status"]) <= {200, 500, 503, 504}
    assert int(total["Request Count"]) == len(rows) == sum(served.values())
    assert (
        int(total["Failure Count"])
        == int((~rows["ok"]).sum())
        == sum(n for status, n in served.items() if status >= 400)
    )
    assert Counter(rows["status"].astype(int)) == served
    # The kill caught requests in flight; the retries saved every one of them.
    assert (rows["attempts"] > 1).any()
    assert int((rows["attempts"] - 1).clip(lower=0).sum()) == retried
    assert rows["ok"].all()
