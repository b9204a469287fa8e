"""A service shared by the fault tests, and helpers to drive its admin API."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from experiment.leaks import descendants, still_running

from scalelab.config import ServiceConfig
from scalelab.service.process import ServiceProcess, start_service

LONG = os.environ.get("SCALELAB_LONG_TESTS") == "1"
"""Run the long forms of the fault tests (every failure spec in full)."""

PASS_THROUGH = {
    "stack": ["admission", "limit", "retry", "breaker", "hedge", "timeout", "faults", "cache"],
    "retry": {"max_attempts": 1},
    "breaker": {"failures": 100_000},
    "hedge": {"max_extra": 0.0},
    "limit": {"initial": 1_000, "max_limit": 1_000},
}
"""Every failure-handling layer in the stack, each doing nothing until a test sets it."""


@pytest.fixture(scope="package")
def service() -> Iterator[ServiceProcess]:
    """A service of two workers with every failure-handling layer, passing requests through."""
    config = ServiceConfig.model_validate({"cluster": {"workers": 2}, **PASS_THROUGH})
    with start_service(config) as svc:
        before = descendants(svc.child.pid)
        yield svc
    left = still_running(before)
    assert not left, f"processes left after the service stopped: {left}"


def admin(service: ServiceProcess, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{service.url}{path}", timeout=30, **kw)


def start_fault(service: ServiceProcess, kind: str, **params: Any) -> dict[str, Any]:
    duration = params.pop("duration_s", None)
    body: dict[str, Any] = {"kind": kind, "params": params}
    if duration is not None:
        body["duration_s"] = duration
    response = admin(service, "POST", "/admin/faults", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def end_fault(service: ServiceProcess, fault_id: str) -> dict[str, Any]:
    response = admin(service, "DELETE", f"/admin/faults/{fault_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def workers(service: ServiceProcess) -> list[dict[str, Any]]:
    return list(admin(service, "GET", "/admin/workers").json()["workers"])


@contextlib.contextmanager
def configured(service: ServiceProcess, change: dict[str, Any]) -> Iterator[None]:
    """The service with ``change`` applied for the block, then as it was."""
    before = admin(service, "GET", "/admin/config").json()
    response = admin(service, "PUT", "/admin/config", json=change)
    assert response.status_code == 200, response.text
    try:
        yield
    finally:
        restore = {k: before[k] for k in change}
        assert admin(service, "PUT", "/admin/config", json=restore).status_code == 200


@contextlib.contextmanager
def fault(service: ServiceProcess, kind: str, **params: Any) -> Iterator[dict[str, Any]]:
    """A fault on for the block."""
    record = start_fault(service, kind, **params)
    try:
        yield record
    finally:
        end_fault(service, record["id"])


def layer_outcome(service: ServiceProcess, layer: str, outcome: str) -> float:
    text = admin(service, "GET", "/metrics").text
    needle = f'scalelab_layer_outcomes_total{{layer="{layer}",outcome="{outcome}"}} '
    for line in text.splitlines():
        if line.startswith(needle):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
