"""Faults and failure-handling layers in a real service on a real LocalCluster.

One service (two workers, every failure-handling layer in its stack, passing
requests through until a test configures it) is shared by the package; each
test sets what it needs and puts it back. Worker faults come last: they change
the workers' addresses. The package fixture checks that nothing is left
running once the service stops.
"""

from __future__ import annotations

import concurrent.futures
import json
import random
import re
import statistics
import time
import zlib
from typing import Any

import httpx
import psutil
import pytest

from scalelab.procs import wait_until
from scalelab.service.process import ServiceProcess

from .conftest import (
    admin,
    configured,
    end_fault,
    fault,
    layer_outcome,
    start_fault,
    workers,
)

# Delays, timeouts and hedges checked to tens of ms: run alone (tasks.py test's serial part).
pytestmark = [pytest.mark.integration, pytest.mark.serial]


def get(service: ServiceProcess, path: str = "/task/cpu", **params: Any) -> httpx.Response:
    params = params or {"units": 1}
    return httpx.get(f"{service.url}{path}", params=params, timeout=30)


def in_rounds(
    service: ServiceProcess, rounds: int, width: int = 2, **params: Any
) -> list[tuple[float, httpx.Response]]:
    """``rounds`` of ``width`` concurrent requests (both workers serve); (seconds, answer)."""

    def timed() -> tuple[float, httpx.Response]:
        started = time.monotonic()
        response = get(service, **params)
        return time.monotonic() - started, response

    out = []
    with concurrent.futures.ThreadPoolExecutor(width) as pool:
        for _ in range(rounds):
            out += list(pool.map(lambda _: timed(), range(width)))
    return out


def test_a_task_fault_slows_only_the_chosen_worker_by_its_delay(service: ServiceProcess) -> None:
    slow = workers(service)[0]["address"]
    get(service)  # warm both paths
    with fault(service, "task", workers=[0], delay_ms=150) as record:
        assert record["detail"]["workers"] == [slow]
        timed = in_rounds(service, 5)
    on_slow = [t for t, r in timed if r.headers["X-Worker"] == slow]
    on_fast = [t for t, r in timed if r.headers["X-Worker"] != slow]
    assert on_slow and on_fast, "both workers should have served"
    assert min(on_slow) >= 0.150
    added = statistics.median(on_slow) - statistics.median(on_fast)
    assert added == pytest.approx(0.150, abs=0.06)
    after = in_rounds(service, 5)  # the fault has ended: neither worker is slowed
    slow_after = [t for t, r in after if r.headers["X-Worker"] == slow]
    fast_after = [t for t, r in after if r.headers["X-Worker"] != slow]
    if slow_after and fast_after:
        assert statistics.median(slow_after) - statistics.median(fast_after) < 0.075


def test_task_errors_follow_the_seeded_draws_of_each_worker(service: ServiceProcess) -> None:
    seed, rate = 3, 0.5
    draws: dict[str, random.Random] = {}
    with fault(service, "task", workers=["*"], error_rate=rate, seed=seed):
        for _ in range(16):
            response = get(service)
            if response.status_code == 200:
                worker, failed = response.headers["X-Worker"], False
            else:
                found = re.search(r"injected task fault on (tcp://[\d.:]+)", response.text)
                assert found, response.text
                worker, failed = found.group(1), True
            rng = draws.setdefault(
                worker, random.Random(seed * 1_000_033 + zlib.crc32(worker.encode()))
            )
            assert failed == (rng.random() < rate)  # exactly the worker's next draw
    assert len(draws) >= 1


def test_retry_tries_a_failing_backend_exactly_max_attempts(service: ServiceProcess) -> None:
    before = layer_outcome(service, "retry", "retried")
    change = {"retry": {"max_attempts": 3, "backoff": "none", "budget": False}}
    with configured(service, change), fault(service, "task", workers=["*"], error_rate=1.0):
        answers = [get(service) for _ in range(3)]
    assert [r.status_code for r in answers] == [500, 500, 500]
    assert [r.headers["X-Attempts"] for r in answers] == ["3", "3", "3"]
    assert layer_outcome(service, "retry", "retried") - before == 6


def test_breaker_fails_fast_while_the_backend_is_down_and_recovers(service: ServiceProcess) -> None:
    change = {"breaker": {"failures": 3, "open_s": 0.3}}
    with configured(service, change):
        with fault(service, "task", workers=["*"], error_rate=1.0):
            answers = [get(service) for _ in range(5)]
        assert [r.status_code for r in answers] == [500, 500, 500, 503, 503]
        assert answers[-1].headers["X-Circuit"] == "open"
        assert answers[-1].headers["X-Attempts"] == "0"  # kept off the backend
        time.sleep(0.35)
        assert get(service).status_code == 200  # the probe succeeds: closed again
        text = admin(service, "GET", "/metrics").text
        assert 'scalelab_layer_state{layer="breaker",name="state"} 0.0' in text


def test_timeout_answers_504_at_the_attempt_limit(service: ServiceProcess) -> None:
    change = {"timeout": {"attempt_ms": 100}}
    with configured(service, change), fault(service, "task", workers=["*"], delay_ms=400):
        started = time.monotonic()
        response = get(service)
        waited = time.monotonic() - started
    assert response.status_code == 504 and response.headers["X-Timeout"] == "attempt"
    assert 0.1 <= waited < 0.39
    time.sleep(0.4)  # let the abandoned tasks finish on their workers


def test_hedge_cuts_the_slow_worker_out_of_the_tail(service: ServiceProcess) -> None:
    # Actors called in turn put every other call on the slow worker, and its hedge on the other.
    change = {"executor": {"kind": "actor"}, "hedge": {"delay_ms": 60, "max_extra": 1.0}}
    with configured(service, change), fault(service, "task", workers=[0], delay_ms=300):
        timed = in_rounds(service, 6, 1)
        time.sleep(0.3)
    assert all(r.status_code == 200 for _, r in timed)
    # None waited for the slow worker's 300 ms: every answer came from the other worker (a
    # latency bound alone cannot tell such a wait from a machine that stalled for 0.3 s).
    slow, *others = [w["address"] for w in workers(service)]
    assert {r.headers["X-Worker"] for _, r in timed} <= set(others)
    assert sorted(t for t, _ in timed)[len(timed) // 2] < 0.2  # the median: no 300 ms wait
    won = [r for _, r in timed if r.headers.get("X-Hedged") == "won"]
    assert len(won) >= 2 and all(r.headers["X-Attempts"] == "2" for r in won)


def test_adaptive_limit_sheds_what_is_over_it(service: ServiceProcess) -> None:
    change = {"limit": {"initial": 2, "min_limit": 1, "max_limit": 2}}
    with configured(service, change), concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: get(service, "/task/io", ms=200), range(6)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(503) >= 3 and statuses.count(200) >= 1
    text = admin(service, "GET", "/metrics").text
    assert 'scalelab_layer_state{layer="limit",name="limit"}' in text


def test_the_command_line_starts_lists_and_ends_faults(
    service: ServiceProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    from scalelab.cli import main

    url = ["fault", "--url", service.url]
    assert main([*url, "start", "task", "workers=[0]", "delay_ms=5", "--for", "30"]) == 0
    started = json.loads(capsys.readouterr().out)
    assert started["kind"] == "task" and started["active"] and started["duration_s"] == 30
    assert main([*url, "list"]) == 0
    assert started["id"] in {f["id"] for f in json.loads(capsys.readouterr().out)["faults"]}
    assert main([*url, "end", started["id"]]) == 0
    assert json.loads(capsys.readouterr().out)["active"] is False
    assert main([*url, "workers"]) == 0
    assert len(json.loads(capsys.readouterr().out)["workers"]) == 2
    assert main([*url, "start", "task", "delay_ms=-1"]) == 1
    assert "delay_ms" in capsys.readouterr().err


def test_a_killed_worker_is_restarted_by_its_nanny(service: ServiceProcess) -> None:
    first = workers(service)[0]
    record = start_fault(service, "worker_kill", worker=0)
    assert record["ended"] == record["started"]  # instantaneous
    assert record["detail"]["pid"] == first["pid"]
    assert wait_until(lambda: not psutil.pid_exists(first["pid"]), 5.0)
    assert wait_until(
        lambda: (
            len(ws := workers(service)) == 2 and first["address"] not in {w["address"] for w in ws}
        ),
        20.0,
        0.2,
    )
    assert get(service).status_code == 200


def test_a_worker_killed_without_restart_stays_gone_until_restored(service: ServiceProcess) -> None:
    victim = workers(service)[1]
    record = start_fault(service, "worker_kill", worker=1, restart=False, restore=True)
    assert record["active"]
    assert wait_until(lambda: len(workers(service)) == 1, 10.0, 0.2)
    assert (
        not psutil.pid_exists(victim["pid"]) or psutil.Process(victim["pid"]).status() == "zombie"
    )
    time.sleep(1.0)
    assert len(workers(service)) == 1  # no nanny brought it back
    ended = end_fault(service, record["id"])
    assert ended["detail"]["restored"] and ended["ended"] >= ended["started"]
    assert wait_until(lambda: len(workers(service)) == 2, 20.0, 0.2)


def test_a_paused_worker_is_stopped_then_resumed(service: ServiceProcess) -> None:
    # Paused for 2 s: long enough to be seen stopped after the POST returns on a busy
    # machine (0.6 s once ran out before the check).
    record = start_fault(service, "worker_pause", worker=0, duration_s=2.0)
    pid, address = record["detail"]["pid"], record["detail"]["worker"]
    # A stop takes effect when the target next runs (its own CPU may be busy elsewhere).
    stopped = wait_until(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, 1.5, 0.02)
    assert stopped, (record, psutil.Process(pid).status())
    assert [w["paused"] for w in workers(service) if w["address"] == address] == [True]
    assert wait_until(lambda: psutil.Process(pid).status() != psutil.STATUS_STOPPED, 6.0)
    listed = {f["id"]: f for f in admin(service, "GET", "/admin/faults").json()["faults"]}
    assert listed[record["id"]]["ended"] - listed[record["id"]]["started"] == pytest.approx(
        2.0, abs=0.3
    )


def test_a_closed_worker_leaves_gracefully_and_churn_kills_at_random(
    service: ServiceProcess,
) -> None:
    record = start_fault(service, "worker_close", worker=0, restore=True)
    closed = record["detail"]["worker"]
    # Retired: its address leaves the cluster (a count of 1 may be too brief to see).
    left = wait_until(lambda: closed not in {w["address"] for w in workers(service)}, 10.0, 0.2)
    assert left, (record, workers(service))
    # Closed with its nanny: the process ends and nothing replaces it until the restore.
    pid = record["detail"]["pid"]
    assert wait_until(
        lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", 10.0, 0.2
    )
    time.sleep(1.5)
    assert len(workers(service)) == 1
    end_fault(service, record["id"])
    assert wait_until(lambda: len(workers(service)) == 2, 20.0, 0.2)
    churn = start_fault(service, "worker_churn", mean_interval_s=0.3, seed=2)
    time.sleep(1.2)
    ended = end_fault(service, churn["id"])
    kills = [k for k in ended["detail"]["kills"] if "pid" in k]
    assert kills, ended
    assert all(
        not psutil.pid_exists(k["pid"]) or psutil.Process(k["pid"]).status() == "zombie"
        for k in kills
    )
    assert wait_until(lambda: len(workers(service)) == 2, 20.0, 0.2)


def test_bad_faults_are_refused_naming_the_field(service: ServiceProcess) -> None:
    bad = admin(service, "POST", "/admin/faults", json={"kind": "task", "params": {"delay_ms": -1}})
    assert bad.status_code == 422 and "delay_ms" in bad.json()["detail"]
    unknown = admin(service, "POST", "/admin/faults", json={"kind": "meteor", "params": {}})
    assert unknown.status_code == 422 and "worker_kill" in unknown.json()["detail"]
    no_proxy = admin(
        service,
        "POST",
        "/admin/faults",
        json={"kind": "network", "params": {"link": "scheduler", "toxic": "down"}},
    )
    assert no_proxy.status_code == 409 and "chaos.proxy" in no_proxy.json()["detail"]
    too_far = admin(
        service, "POST", "/admin/faults", json={"kind": "worker_kill", "params": {"worker": 9}}
    )
    assert too_far.status_code == 409 and "2 running workers" in too_far.json()["detail"]
