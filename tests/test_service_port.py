"""The service binds its own port and tells the parent which: no port is chosen, then bound later.

A port the parent finds free can be taken by another process before the child
binds it (a race that parallel test runs and a shared class machine do win). So
the child binds port 0 itself and the parent reads the port from the line the
service prints once it listens.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from scalelab import ports
from scalelab.config import ServiceConfig
from scalelab.service import process

pytestmark = pytest.mark.integration


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another process holds (here: this one, listening on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_the_service_binds_a_port_itself_and_reports_it(
    busy_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were a free port picked by the parent, this one would be picked: free a moment ago,
    # taken by someone else before the child binds it.
    monkeypatch.setattr(ports, "free_port", lambda host="127.0.0.1": busy_port)
    monkeypatch.setattr(process, "free_port", lambda host="127.0.0.1": busy_port, raising=False)
    log = tmp_path / "service.log"
    log.write_text("scalelab serve: listening on http://127.0.0.1:1 (an earlier run) ...\n")
    config = ServiceConfig.model_validate({"cluster": {"workers": 1, "threads_per_worker": 1}})
    with process.start_service(config, log_path=log) as service:
        assert service.port not in (0, 1, busy_port)
        assert service.url == f"http://127.0.0.1:{service.port}"
        assert httpx.get(f"{service.url}/ping", timeout=10).status_code == 200
        listening = {
            c.laddr.port
            for c in psutil.Process(service.child.pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN
        }
        assert service.port in listening
        assert "--port" in service.child.args and service.child.args[-1] == "0"
